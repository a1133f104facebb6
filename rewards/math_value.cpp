// Recursive-descent parser for LaTeX / plain-text math answers into MathValue (GiNaC scalars).
// Precedence, loosest first: list (, ;) > relation chain (= < \le \in \approx) > union (\cup) >
// sum (+ - \pm) > product (* / : \cdot, implicit) > unary sign > postfix (! %) > power > primary.
#include "rewards/math_value.h"

#include <ginac/ginac.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <sstream>
#include <string>
#include <unordered_map>

namespace r1kit::rewards {

using GiNaC::ex;
using GiNaC::ex_to;
using GiNaC::is_a;
using GiNaC::numeric;

const char* rel_op_text(RelOp op) {
  switch (op) {
    case RelOp::eq:
      return "=";
    case RelOp::ne:
      return "!=";
    case RelOp::lt:
      return "<";
    case RelOp::le:
      return "<=";
    case RelOp::gt:
      return ">";
    case RelOp::ge:
      return ">=";
  }
  return "?";
}

GiNaC::symbol SymbolTable::get(const std::string& name) {
  auto it = map_.find(name);
  if (it != map_.end()) return it->second;
  return map_.emplace(name, GiNaC::symbol(name)).first->second;
}

bool SymbolTable::is_infinity(const ex& e) {
  auto it = map_.find(std::string_view("\\infty"));
  return it != map_.end() && e.has(it->second);
}

static size_t numeric_bits(const numeric& n) {
  if (n.is_rational()) {
    return std::max<size_t>(n.numer().int_length(), n.denom().int_length());
  }
  if (!n.is_real()) return std::max(numeric_bits(n.real()), numeric_bits(n.imag()));
  return 64;  // a float: fixed size
}

static size_t max_numeric_bits(const ex& e) {
  if (is_a<numeric>(e)) return numeric_bits(ex_to<numeric>(e));
  size_t m = 0;
  for (size_t i = 0; i < e.nops(); ++i) m = std::max(m, max_numeric_bits(e.op(i)));
  return m;
}

size_t max_numeric_digits(const ex& e) {
  return (max_numeric_bits(e) * 30103 + 99999) / 100000;
}

namespace {

struct ParseError {
  std::string msg;
};

[[noreturn]] void fail(std::string msg) {
  throw ParseError{std::move(msg)};
}

bool is_alpha(char c) {
  return std::isalpha(static_cast<unsigned char>(c)) != 0;
}
bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

MathValue scalar(ex e, bool inexact = false) {
  MathValue v;
  v.kind = MathValue::Kind::scalar;
  v.ex = std::move(e);
  v.inexact = inexact;
  return v;
}

const std::unordered_map<std::string_view, const char*>& greek_letters() {
  static const std::unordered_map<std::string_view, const char*> m = {
      {"alpha", "alpha"},    {"beta", "beta"},       {"gamma", "gamma"},
      {"delta", "delta"},    {"epsilon", "epsilon"}, {"varepsilon", "epsilon"},
      {"zeta", "zeta"},      {"eta", "eta"},         {"theta", "theta"},
      {"vartheta", "theta"}, {"iota", "iota"},       {"kappa", "kappa"},
      {"lambda", "lambda"},  {"mu", "mu"},           {"nu", "nu"},
      {"xi", "xi"},          {"omicron", "omicron"}, {"rho", "rho"},
      {"varrho", "rho"},     {"sigma", "sigma"},     {"varsigma", "sigma"},
      {"tau", "tau"},        {"upsilon", "upsilon"}, {"phi", "phi"},
      {"varphi", "phi"},     {"chi", "chi"},         {"psi", "psi"},
      {"omega", "omega"},    {"Gamma", "Gamma"},     {"Delta", "Delta"},
      {"Theta", "Theta"},    {"Lambda", "Lambda"},   {"Xi", "Xi"},
      {"Sigma", "Sigma"},    {"Upsilon", "Upsilon"}, {"Phi", "Phi"},
      {"Psi", "Psi"},        {"Omega", "Omega"},     {"ell", "ell"},
  };
  return m;
}

// Functions of one argument that GiNaC knows (or we express through ones it knows).
enum class Fn : uint8_t {
  sin,
  cos,
  tan,
  cot,
  sec,
  csc,
  asin,
  acos,
  atan,
  acot,
  asec,
  acsc,
  sinh,
  cosh,
  tanh,
  coth,
  sech,
  csch,
  asinh,
  acosh,
  atanh,
  exp,
  ln,
  log,
  lg,
  sqrt,
  abs,
  floor,
  ceil,
  sgn,
  gcd,
  lcm,
  max,
  min,
  det,
  deg,
};

const std::unordered_map<std::string_view, Fn>& function_names() {
  static const std::unordered_map<std::string_view, Fn> m = {
      {"sin", Fn::sin},       {"cos", Fn::cos},      {"tan", Fn::tan},       {"cot", Fn::cot},
      {"sec", Fn::sec},       {"csc", Fn::csc},      {"cosec", Fn::csc},     {"arcsin", Fn::asin},
      {"arccos", Fn::acos},   {"arctan", Fn::atan},  {"arccot", Fn::acot},   {"arcsec", Fn::asec},
      {"arccsc", Fn::acsc},   {"asin", Fn::asin},    {"acos", Fn::acos},     {"atan", Fn::atan},
      {"sinh", Fn::sinh},     {"cosh", Fn::cosh},    {"tanh", Fn::tanh},     {"coth", Fn::coth},
      {"sech", Fn::sech},     {"csch", Fn::csch},    {"arcsinh", Fn::asinh}, {"arccosh", Fn::acosh},
      {"arctanh", Fn::atanh}, {"arsinh", Fn::asinh}, {"arcosh", Fn::acosh},  {"artanh", Fn::atanh},
      {"asinh", Fn::asinh},   {"acosh", Fn::acosh},  {"atanh", Fn::atanh},   {"exp", Fn::exp},
      {"ln", Fn::ln},         {"log", Fn::log},      {"lg", Fn::lg},         {"sqrt", Fn::sqrt},
      {"abs", Fn::abs},       {"floor", Fn::floor},  {"ceil", Fn::ceil},     {"ceiling", Fn::ceil},
      {"sgn", Fn::sgn},       {"sign", Fn::sgn},     {"gcd", Fn::gcd},       {"lcm", Fn::lcm},
      {"max", Fn::max},       {"min", Fn::min},      {"det", Fn::det},       {"deg", Fn::deg},
  };
  return m;
}

// Commands that are spacing or sizing only.
bool is_ignored_command(std::string_view c) {
  static const char* const kIgnored[] = {
      "left",  "right",    "big",       "Big",          "bigg",      "Bigg",
      "bigl",  "bigr",     "Bigl",      "Bigr",         "biggl",     "biggr",
      "Biggl", "Biggr",    "middle",    "displaystyle", "textstyle", "scriptstyle",
      "quad",  "qquad",    "limits",    "nolimits",     "mathstrut", "strut",
      "hfill", "notag",    "nonumber",  "newline",      "cr",        "hline",
      "space", "medspace", "thinspace", "negthinspace", "enspace",   "phantom"};
  for (const char* k : kIgnored) {
    if (c == k) return true;
  }
  return false;
}

class Parser {
 public:
  Parser(std::string_view s, SymbolTable& syms, Deadline& dl, const ParseOptions& o)
      : s_(s), syms_(syms), dl_(dl), opts_(o) {
    comma_count_ = static_cast<size_t>(std::count(s.begin(), s.end(), ','));
  }

  MathValue parse_all() {
    MathValue v = parse_list_top();
    skip_ws();
    if (pos_ < s_.size()) fail("unexpected '" + std::string(1, s_[pos_]) + "'");
    return v;
  }

 private:
  std::string_view s_;
  size_t pos_ = 0;
  SymbolTable& syms_;
  Deadline& dl_;
  const ParseOptions& opts_;
  int depth_ = 0;
  size_t nodes_ = 0;
  int abs_depth_ = 0;
  int integral_depth_ = 0;
  int bracket_depth_ = 0;  // inside (…), […], {…}: a plain comma is never a thousands separator
  size_t comma_count_ = 0;

  struct DepthGuard {
    Parser& p;
    explicit DepthGuard(Parser& parser) : p(parser) {
      if (++p.depth_ > p.opts_.limits.max_depth) fail("nesting too deep");
      if (++p.nodes_ > p.opts_.limits.max_nodes) fail("expression too large");
      p.dl_.tick();
    }
    ~DepthGuard() { --p.depth_; }
  };

  // --- characters and commands -----------------------------------------------------------------

  char peek(size_t ahead = 0) const { return pos_ + ahead < s_.size() ? s_[pos_ + ahead] : '\0'; }
  bool at_end() const { return pos_ >= s_.size(); }

  // The command name at pos (after '\'), or "" when pos is not at a letter command.
  std::string_view command_at(size_t p) const {
    if (p >= s_.size() || s_[p] != '\\') return {};
    size_t q = p + 1;
    while (q < s_.size() && is_alpha(s_[q])) ++q;
    return s_.substr(p + 1, q - p - 1);
  }

  void skip_ws() {
    for (;;) {
      while (pos_ < s_.size() &&
             (std::isspace(static_cast<unsigned char>(s_[pos_])) || s_[pos_] == '~')) {
        ++pos_;
      }
      if (peek() != '\\') return;
      char c = peek(1);
      if (c == ',' || c == ';' || c == ':' || c == '!' || c == ' ' || c == '>') {
        pos_ += 2;
        continue;
      }
      std::string_view cmd = command_at(pos_);
      if (cmd.empty()) return;
      if (cmd == "phantom") fail("\\phantom is not supported");
      if (!is_ignored_command(cmd)) return;
      pos_ += 1 + cmd.size();
      if ((cmd == "left" || cmd == "right" || cmd == "middle") && peek() == '.') ++pos_;
    }
  }

  bool eat(char c) {
    skip_ws();
    if (peek() == c) {
      ++pos_;
      return true;
    }
    return false;
  }
  void expect(char c) {
    if (!eat(c)) fail(std::string("expected '") + c + "'");
  }
  bool peek_command(std::string_view name) {
    skip_ws();
    return command_at(pos_) == name;
  }
  bool eat_command(std::string_view name) {
    if (!peek_command(name)) return false;
    pos_ += 1 + name.size();
    return true;
  }
  bool eat_str(std::string_view t) {
    skip_ws();
    if (s_.substr(pos_, t.size()) == t) {
      pos_ += t.size();
      return true;
    }
    return false;
  }

  // --- numbers and guards -------------------------------------------------------------------

  void check_digits(const ex& e) {
    if (is_a<numeric>(e) && max_numeric_digits(e) > opts_.limits.max_digits) {
      fail("number too large");
    }
  }

  ex guarded_pow(const ex& b, const ex& e) {
    // 0^0 and 0^(negative) make GiNaC throw from inside eval(), leaking what it was building.
    if (is_a<numeric>(b) && ex_to<numeric>(b).is_zero() && is_a<numeric>(e) &&
        !ex_to<numeric>(e).is_positive())
      fail("0 to a non-positive power");
    if (is_a<numeric>(e)) {
      const numeric& n = ex_to<numeric>(e);
      if (n.is_rational()) {
        numeric p = abs(n.numer());
        numeric q = n.denom();
        if (q > 1000) fail("root index too large");
        size_t bits = max_numeric_bits(b);
        if (bits > 0 && p > 1) {
          if (p > 1000000 || static_cast<double>(bits) * p.to_double() >
                                 3.33 * static_cast<double>(opts_.limits.max_digits)) {
            fail("power too large");
          }
        }
      }
    } else if (is_a<numeric>(b) && !e.info(GiNaC::info_flags::numeric)) {
      // symbolic exponent: GiNaC keeps it unevaluated
    }
    // e^{x} is exp(x): GiNaC then knows exp(I*Pi) = -1, exp(log(2)) = 2
    ex r = b.is_equal(GiNaC::exp(ex(1))) ? GiNaC::exp(e) : GiNaC::pow(b, e);
    check_digits(r);
    return r;
  }

  ex guarded_factorial(const ex& a) {
    if (is_a<numeric>(a)) {
      const numeric& n = ex_to<numeric>(a);
      if (!n.is_integer() || n.is_negative()) fail("factorial of a non-natural number");
      if (n > opts_.limits.max_factorial) fail("factorial too large");
    } else if (a.info(GiNaC::info_flags::numeric)) {
      fail("factorial of a non-natural number");
    }
    return GiNaC::factorial(a);
  }

  ex guarded_binomial(const ex& n, const ex& k) {
    if (is_a<numeric>(n) && is_a<numeric>(k)) {
      const numeric& nn = ex_to<numeric>(n);
      const numeric& kk = ex_to<numeric>(k);
      if (!nn.is_integer() || !kk.is_integer()) fail("binomial of non-integers");
      if (nn > 1000000 || std::min(kk, nn - kk) > opts_.limits.max_factorial) {
        fail("binomial too large");
      }
      if (kk.is_negative() || kk > nn) return 0;
    }
    return GiNaC::binomial(n, k);
  }

  ex checked(ex r) {
    check_digits(r);
    return r;
  }

  static numeric pow10(size_t k) { return GiNaC::pow(numeric(10), numeric(static_cast<long>(k))); }

  // "{,}" (optionally with spaces around and inside) at p: its length in *len.
  bool brace_comma_at(size_t p, size_t* len) const {
    size_t q = p;
    while (q < s_.size() && s_[q] == ' ') ++q;
    if (q >= s_.size() || s_[q] != '{') return false;
    ++q;
    while (q < s_.size() && s_[q] == ' ') ++q;
    if (q >= s_.size() || s_[q] != ',') return false;
    ++q;
    while (q < s_.size() && s_[q] == ' ') ++q;
    if (q >= s_.size() || s_[q] != '}') return false;
    *len = q + 1 - p;
    return true;
  }

  // digits [thousands groups] [. digits] [E exp]; also ".5".
  MathValue parse_number() {
    std::string int_digits, frac_digits;
    bool decimal = false;
    while (is_digit(peek())) int_digits += s_[pos_++];
    // thousands separators: "1,234", "1{,}234", "1,\!234", plain "1 234"
    if (!int_digits.empty() && int_digits.size() <= 3 && int_digits != "0") {
      for (;;) {
        size_t save = pos_;
        size_t skip = 0;
        if (peek() == ',' && !(peek(1) == '\\' && peek(2) == '!')) {
          // inside (…), […], {…} a plain comma separates items: (12,102)
          if (bracket_depth_ > 0) break;
          skip = 1;
        } else if (peek() == ',' && peek(1) == '\\' && peek(2) == '!') {
          skip = 3;
          while (pos_ + skip < s_.size() && s_[pos_ + skip] == ' ') ++skip;
        } else if (brace_comma_at(pos_, &skip)) {
          // "14{,}916", "14 {, }916"
        } else if (opts_.plain_text && peek() == ' ' && comma_count_ == 0) {
          skip = 1;
        }
        if (skip == 0) break;
        size_t q = pos_ + skip;
        bool three = q + 3 <= s_.size() && is_digit(s_[q]) && is_digit(s_[q + 1]) &&
                     is_digit(s_[q + 2]) && (q + 3 == s_.size() || !is_digit(s_[q + 3]));
        // "1,234" with a plain comma is a thousands group unless it is a decimal comma
        if (!three) {
          pos_ = save;
          break;
        }
        int_digits.append(s_.substr(q, 3));
        pos_ = q + 3;
      }
    }
    if (peek() == '.' && is_digit(peek(1))) {
      ++pos_;
      decimal = true;
      while (is_digit(peek())) frac_digits += s_[pos_++];
    } else if (opts_.plain_text && comma_count_ == 1 && bracket_depth_ == 0 && peek() == ',' &&
               is_digit(peek(1)) && is_digit(peek(2)) && !int_digits.empty()) {
      // decimal comma in plain text: "1,22", "0,111", "1000,99" (a thousands group was taken
      // above; "-2,1" stays a list)
      ++pos_;
      decimal = true;
      while (is_digit(peek())) frac_digits += s_[pos_++];
    }
    if (int_digits.empty() && frac_digits.empty()) fail("expected a number");
    if (int_digits.size() + frac_digits.size() > opts_.limits.max_digits) fail("number too long");
    // scientific notation: 2.5E2, 1500E-1 (only E/e directly followed by digits)
    long exp10 = 0;
    if ((peek() == 'E' || peek() == 'e') &&
        (is_digit(peek(1)) || ((peek(1) == '-' || peek(1) == '+') && is_digit(peek(2))))) {
      size_t q = pos_ + 1;
      bool neg = false;
      if (s_[q] == '-' || s_[q] == '+') neg = s_[q++] == '-';
      std::string ed;
      while (q < s_.size() && is_digit(s_[q])) ed += s_[q++];
      if (q < s_.size() && is_alpha(s_[q])) {
        // "2e3x": not scientific
      } else {
        if (ed.size() > 6) fail("exponent too large");
        exp10 = std::stol(ed);
        if (neg) exp10 = -exp10;
        if (static_cast<size_t>(std::labs(exp10)) > opts_.limits.max_digits)
          fail("number too large");
        pos_ = q;
      }
    }
    std::string all = int_digits + frac_digits;
    size_t first = all.find_first_not_of('0');
    numeric value = first == std::string::npos ? numeric(0) : numeric(all.c_str() + first);
    if (!frac_digits.empty()) value = value / pow10(frac_digits.size());
    if (exp10 > 0) value = value * pow10(static_cast<size_t>(exp10));
    if (exp10 < 0) value = value / pow10(static_cast<size_t>(-exp10));
    // a base subscript "204_5" is dropped (the digits are compared as written)
    if (peek() == '_') {
      size_t q = pos_ + 1;
      if (q < s_.size() && is_digit(s_[q])) {
        pos_ = q + 1;
      } else if (q < s_.size() && s_[q] == '{') {
        size_t close = s_.find('}', q);
        if (close != std::string_view::npos && close - q <= 4) pos_ = close + 1;
      }
    }
    return scalar(value, decimal);
  }

  // --- groups -----------------------------------------------------------------------------------

  // A TeX argument: {…} or one token (a digit, a letter, a command).
  MathValue parse_arg() {
    DepthGuard g(*this);
    skip_ws();
    if (eat('{')) {
      MathValue v = parse_list_in('}');
      expect('}');
      return v;
    }
    if (is_digit(peek())) {
      ++pos_;
      return scalar(numeric(s_[pos_ - 1] - '0'));
    }
    if (is_alpha(peek())) return parse_letter_symbol();
    if (peek() == '\\') return parse_primary();
    fail("expected an argument");
  }

  // The raw text of a {…} group (balanced), consuming it.
  std::string_view raw_group() {
    skip_ws();
    if (peek() != '{') fail("expected '{'");
    size_t start = pos_ + 1;
    int depth = 0;
    for (size_t q = pos_; q < s_.size(); ++q) {
      if (s_[q] == '\\' && q + 1 < s_.size()) {
        ++q;
        continue;
      }
      if (s_[q] == '{') ++depth;
      if (s_[q] == '}' && --depth == 0) {
        pos_ = q + 1;
        return s_.substr(start, q - start);
      }
    }
    fail("unbalanced '{'");
  }

  ex scalar_of(const MathValue& v, const char* what) {
    if (!v.is_scalar()) fail(std::string(what) + " must be a number or expression");
    return v.ex;
  }

  // --- list level -------------------------------------------------------------------------------

  bool at_list_end(char close) {
    skip_ws();
    if (at_end()) return true;
    char c = peek();
    if (close != '\0' && c == close) return true;
    if (c == ')' || c == ']' || c == '}') return true;
    if (c == '\\') {
      std::string_view cmd = command_at(pos_);
      if (cmd == "end" || cmd == "rbrace" || cmd == "rfloor" || cmd == "rceil") return true;
      if (peek(1) == '}' || peek(1) == '\\') return true;
    }
    if (c == '&') return true;
    return false;
  }

  // Items separated by ',' or ';' up to close (not consumed).
  std::vector<MathValue> parse_items(char close, bool* semicolons, bool* commas) {
    std::vector<MathValue> items;
    if (at_list_end(close)) return items;
    for (;;) {
      items.push_back(parse_item());
      if (items.size() > opts_.limits.max_items) fail("too many items");
      skip_ws();
      if (eat(',')) {
        if (commas) *commas = true;
        continue;
      }
      if (eat(';')) {
        if (semicolons) *semicolons = true;
        continue;
      }
      break;
    }
    return items;
  }

  // Expands the ± marker: a value containing it becomes two values (+ and -).
  void append_expanded(std::vector<MathValue>* out, MathValue v) {
    ex pm = syms_.pm();
    if (v.is_scalar() && v.ex.has(pm)) {
      MathValue plus = v, minus = v;
      plus.ex = v.ex.subs(pm == 1);
      minus.ex = v.ex.subs(pm == -1);
      out->push_back(std::move(plus));
      out->push_back(std::move(minus));
      return;
    }
    if (v.kind == MathValue::Kind::relation && v.items.size() == 2 && v.items[1].is_scalar() &&
        v.items[1].ex.has(pm)) {
      MathValue plus = v, minus = v;
      plus.items[1].ex = v.items[1].ex.subs(pm == 1);
      minus.items[1].ex = v.items[1].ex.subs(pm == -1);
      out->push_back(std::move(plus));
      out->push_back(std::move(minus));
      return;
    }
    out->push_back(std::move(v));
  }

  MathValue make_set(std::vector<MathValue> items) {
    MathValue s;
    s.kind = MathValue::Kind::set;
    for (auto& it : items) append_expanded(&s.items, std::move(it));
    return s;
  }

  MathValue parse_list_top() {
    bool semi = false, commas = false;
    std::vector<MathValue> items = parse_items('\0', &semi, &commas);
    if (items.empty()) fail("empty answer");
    if (items.size() == 1) {
      std::vector<MathValue> ex_items;
      append_expanded(&ex_items, std::move(items[0]));
      if (ex_items.size() == 1) return std::move(ex_items[0]);
      return make_set(std::move(ex_items));
    }
    MathValue s;
    if (semi && commas) {
      // "p=5,q=2;p=7,q=2": ';' separates solutions, ',' their coordinates
      s = group_semicolon_list();
    } else {
      s = make_set(std::move(items));
    }
    s.bare_list = true;
    return s;
  }

  // Re-parses the whole input split at top-level ';' (rare; only used for ";" + "," lists).
  MathValue group_semicolon_list() {
    MathValue s;
    s.kind = MathValue::Kind::set;
    std::vector<std::string_view> parts;
    int depth = 0;
    size_t start = 0;
    for (size_t q = 0; q < s_.size(); ++q) {
      char c = s_[q];
      if (c == '\\' && q + 1 < s_.size()) {
        ++q;
        continue;
      }
      if (c == '(' || c == '[' || c == '{') ++depth;
      if (c == ')' || c == ']' || c == '}') --depth;
      if (c == ';' && depth == 0) {
        parts.push_back(s_.substr(start, q - start));
        start = q + 1;
      }
    }
    parts.push_back(s_.substr(start));
    for (std::string_view part : parts) {
      Parser sub(part, syms_, dl_, opts_);
      sub.depth_ = depth_;
      bool semi = false, commas = false;
      std::vector<MathValue> items = sub.parse_items('\0', &semi, &commas);
      sub.skip_ws();
      if (!sub.at_end()) fail("unexpected text in list");
      if (items.size() == 1) {
        append_expanded(&s.items, std::move(items[0]));
      } else {
        MathValue t;
        t.kind = MathValue::Kind::tuple;
        t.items = std::move(items);
        s.items.push_back(std::move(t));
      }
    }
    return s;
  }

  // Items inside a group closed by close; one item is the item itself, several a set.
  MathValue parse_list_in(char close) {
    bool semi = false, commas = false;
    std::vector<MathValue> items = parse_items(close, &semi, &commas);
    if (items.empty()) fail("empty group");
    if (items.size() == 1) {
      std::vector<MathValue> ex_items;
      append_expanded(&ex_items, std::move(items[0]));
      if (ex_items.size() == 1) return std::move(ex_items[0]);
      return make_set(std::move(ex_items));
    }
    MathValue s = make_set(std::move(items));
    s.braces = true;
    return s;
  }

  // --- relations --------------------------------------------------------------------------------

  enum class Rel : uint8_t { none, eq, ne, lt, le, gt, ge, in, approx };

  Rel peek_rel(size_t* len) {
    skip_ws();
    char c = peek(), d = peek(1);
    if (c == '<' && d == '=') return *len = 2, Rel::le;
    if (c == '>' && d == '=') return *len = 2, Rel::ge;
    if (c == '!' && d == '=') return *len = 2, Rel::ne;
    if (c == '=' && d == '>') return Rel::none;
    if (c == '=') return *len = (d == '=' ? 2 : 1), Rel::eq;
    if (c == '<') return *len = 1, Rel::lt;
    if (c == '>') return *len = 1, Rel::gt;
    std::string_view cmd = command_at(pos_);
    if (cmd.empty()) return Rel::none;
    *len = cmd.size() + 1;
    if (cmd == "le" || cmd == "leq" || cmd == "leqslant" || cmd == "leqq") return Rel::le;
    if (cmd == "ge" || cmd == "geq" || cmd == "geqslant" || cmd == "geqq") return Rel::ge;
    if (cmd == "lt") return Rel::lt;
    if (cmd == "gt") return Rel::gt;
    if (cmd == "ne" || cmd == "neq") return Rel::ne;
    if (cmd == "in") return Rel::in;
    if (cmd == "approx" || cmd == "simeq" || cmd == "sim" || cmd == "cong") return Rel::approx;
    if (cmd == "equiv") return Rel::eq;
    return Rel::none;
  }

  static RelOp to_op(Rel r) {
    switch (r) {
      case Rel::ne:
        return RelOp::ne;
      case Rel::lt:
        return RelOp::lt;
      case Rel::le:
        return RelOp::le;
      case Rel::gt:
        return RelOp::gt;
      case Rel::ge:
        return RelOp::ge;
      default:
        return RelOp::eq;
    }
  }

  MathValue parse_item() {
    DepthGuard g(*this);
    std::vector<MathValue> parts;
    std::vector<Rel> rels;
    parts.push_back(parse_union());
    for (;;) {
      size_t len = 0;
      Rel r = peek_rel(&len);
      if (r == Rel::none) break;
      pos_ += len;
      rels.push_back(r);
      parts.push_back(parse_union());
      if (parts.size() > 64) fail("relation chain too long");
    }
    if (rels.empty()) return std::move(parts[0]);
    // "a \approx b": the exact part before the approximation wins; "x \approx 11" is 11
    auto approx = std::find(rels.begin(), rels.end(), Rel::approx);
    if (approx != rels.end()) {
      size_t k = static_cast<size_t>(approx - rels.begin());
      if (k == 0) return std::move(parts[1]);
      parts.resize(k + 1);
      rels.resize(k);
    }
    // "x \in S": S
    if (rels.size() == 1 && rels[0] == Rel::in) {
      MathValue v = std::move(parts[1]);
      v.membership = true;
      return v;
    }
    if (std::find(rels.begin(), rels.end(), Rel::in) != rels.end()) fail("unsupported '\\in'");
    // "x = 5+5+1 = 11": a chain of equalities stands for its last value
    bool all_eq = std::all_of(rels.begin(), rels.end(), [](Rel r) { return r == Rel::eq; });
    if (all_eq && parts.size() >= 3) return std::move(parts.back());
    MathValue rel;
    rel.kind = MathValue::Kind::relation;
    for (Rel r : rels) rel.ops.push_back(to_op(r));
    rel.items = std::move(parts);
    for (const auto& p : rel.items) rel.inexact = rel.inexact || p.inexact;
    return rel;
  }

  // --- sets ------------------------------------------------------------------------------------

  MathValue parse_union() {
    MathValue first = parse_sum();
    if (!peek_command("cup")) return first;
    MathValue u;
    u.kind = MathValue::Kind::set_union;
    u.items.push_back(std::move(first));
    while (eat_command("cup")) {
      u.items.push_back(parse_sum());
      if (u.items.size() > opts_.limits.max_items) fail("too many items");
    }
    for (const auto& p : u.items) {
      if (p.kind != MathValue::Kind::interval && p.kind != MathValue::Kind::set &&
          p.kind != MathValue::Kind::empty_set &&
          !(p.kind == MathValue::Kind::tuple && p.paren_pair)) {
        fail("\\cup of something that is not a set");
      }
      u.inexact = u.inexact || p.inexact;
    }
    // (a, b) in a union is an open interval
    for (auto& p : u.items) {
      if (p.kind == MathValue::Kind::tuple) {
        p.kind = MathValue::Kind::interval;
        p.lo_closed = p.hi_closed = false;
        p.paren_pair = false;
      }
    }
    return u;
  }

  // --- arithmetic ------------------------------------------------------------------------------

  static MathValue combine(const MathValue& a, const MathValue& b, ex r) {
    MathValue v = scalar(std::move(r), a.inexact || b.inexact);
    return v;
  }

  MathValue parse_sum() {
    DepthGuard g(*this);
    MathValue acc = parse_term();
    for (;;) {
      skip_ws();
      char c = peek();
      int sign = 0;
      bool pm = false;
      if (c == '+') {
        sign = 1;
      } else if (c == '-') {
        sign = -1;
      } else if (peek_command("pm")) {
        pm = true;
        sign = 1;
      } else if (peek_command("mp")) {
        pm = true;
        sign = -1;
      }
      if (sign == 0) break;
      if (pm) {
        pos_ += 3;
      } else {
        ++pos_;
      }
      MathValue rhs = parse_term();
      if (acc.kind == MathValue::Kind::text || rhs.kind == MathValue::Kind::text) {
        fail("text in an expression");
      }
      ex a = scalar_of(acc, "a summand");
      ex b = scalar_of(rhs, "a summand");
      if (pm) b = b * syms_.pm();
      acc = combine(acc, rhs, checked(sign > 0 ? a + b : a - b));
    }
    return acc;
  }

  // Can the next token start an implicitly multiplied factor?
  bool starts_factor() {
    skip_ws();
    if (at_end()) return false;
    char c = peek();
    if (is_digit(c) || c == '.') return is_digit(c) || is_digit(peek(1));
    if (is_alpha(c)) {
      if (integral_depth_ > 0 && c == 'd' && (is_alpha(peek(1)) || peek(1) == '\\')) {
        return false;  // "dx" ends an integrand
      }
      return true;
    }
    if (c == '(' || c == '[') return true;
    if (c == '{') return true;
    if (c == '|') return abs_depth_ == 0;
    if (c == '\\') {
      if (peek(1) == '{') return true;
      std::string_view cmd = command_at(pos_);
      if (cmd.empty()) return false;
      static const char* const kNot[] = {
          "cdot",   "times",    "div",        "pm",       "mp",    "cup",    "cap",        "le",
          "leq",    "ge",       "geq",        "lt",       "gt",    "ne",     "neq",        "in",
          "approx", "end",      "rbrace",     "rfloor",   "rceil", "to",     "rightarrow", "mod",
          "bmod",   "leqslant", "geqslant",   "setminus", "sim",   "simeq",  "equiv",      "cong",
          "ast",    "implies",  "Rightarrow", "iff",      "land",  "lor",    "wedge",      "vee",
          "and",    "or",       "leqq",       "geqq",     "over",  "choose", "circ",       "pmod"};
      for (const char* k : kNot) {
        if (cmd == k) return false;
      }
      return true;
    }
    return false;
  }

  // "2\frac{1}{4}" right after an integer literal is the mixed number 2 + 1/4.
  bool mixed_fraction_ahead(size_t term_start) {
    std::string_view lit = s_.substr(term_start, pos_ - term_start);
    while (!lit.empty() && lit.front() == ' ') lit.remove_prefix(1);
    while (!lit.empty() && lit.back() == ' ') lit.remove_suffix(1);
    if (lit.empty() || !std::all_of(lit.begin(), lit.end(), is_digit)) return false;
    size_t q = pos_;
    while (q < s_.size() && s_[q] == ' ') ++q;
    std::string_view cmd = command_at(q);
    if (cmd != "frac" && cmd != "dfrac" && cmd != "tfrac") return false;
    q += 1 + cmd.size();
    for (int k = 0; k < 2; ++k) {
      while (q < s_.size() && s_[q] == ' ') ++q;
      if (q < s_.size() && is_digit(s_[q])) {
        ++q;
        continue;
      }
      if (q >= s_.size() || s_[q] != '{') return false;
      size_t r = q + 1;
      while (r < s_.size() && is_digit(s_[r])) ++r;
      if (r == q + 1 || r >= s_.size() || s_[r] != '}') return false;
      q = r + 1;
    }
    return true;
  }

  MathValue parse_term() {
    DepthGuard g(*this);
    skip_ws();
    size_t term_start = pos_;
    MathValue acc = parse_unary();
    if (mixed_fraction_ahead(term_start)) {
      MathValue frac = parse_unary();
      acc = combine(acc, frac, checked(acc.ex + frac.ex));
    }
    for (;;) {
      skip_ws();
      char c = peek();
      enum { none, mul, div, mod } op = none;
      size_t len = 0;
      if (c == '*' && peek(1) == '*') {
        break;  // handled as power
      } else if (c == '*') {
        op = mul, len = 1;
      } else if (c == '/') {
        op = div, len = 1;
      } else if (c == ':' && peek(1) != '=') {
        op = div, len = 1;  // a ratio 7:32
      } else if (c == '\\') {
        std::string_view cmd = command_at(pos_);
        if (cmd == "cdot" || cmd == "times" || cmd == "ast") op = mul, len = cmd.size() + 1;
        if (cmd == "div") op = div, len = cmd.size() + 1;
        if (cmd == "mod" || cmd == "bmod") op = mod, len = cmd.size() + 1;
      }
      if (op == none) {
        if (!starts_factor()) break;
        op = mul;
      }
      pos_ += len;
      MathValue rhs = parse_unary();
      if (acc.kind == MathValue::Kind::text || rhs.kind == MathValue::Kind::text) {
        fail("text in an expression");
      }
      ex a = scalar_of(acc, "a factor");
      ex b = scalar_of(rhs, "a factor");
      ex r;
      if (op == mul) {
        r = a * b;
      } else if (op == div) {
        if (b.is_zero()) fail("division by zero");
        r = a / b;
      } else {
        r = make_mod(a, b);
      }
      acc = combine(acc, rhs, checked(r));
    }
    return acc;
  }

  bool only_infinity_symbols(const ex& e) {
    for (GiNaC::const_preorder_iterator it = e.preorder_begin(); it != e.preorder_end(); ++it) {
      if (is_a<GiNaC::symbol>(*it) && !syms_.is_infinity(*it)) return false;
    }
    return true;
  }

  ex make_mod(const ex& a, const ex& b) {
    if (is_a<numeric>(a) && is_a<numeric>(b) && ex_to<numeric>(a).is_integer() &&
        ex_to<numeric>(b).is_integer() && !b.is_zero()) {
      return GiNaC::mod(ex_to<numeric>(a), ex_to<numeric>(b));
    }
    return opaque("Mod", {a, b});
  }

  // An uninterpreted application: a symbol named by its canonical text, so that equal
  // arguments give the same symbol ("f(x)", "Integral(x,x)").
  ex opaque(const std::string& head, const std::vector<ex>& args) {
    std::ostringstream os;
    os << head << '(';
    for (size_t i = 0; i < args.size(); ++i) {
      if (i) os << ',';
      os << args[i];
    }
    os << ')';
    std::string name = os.str();
    if (name.size() > 4096) fail("expression too large");
    return syms_.get(name);
  }

  MathValue parse_unary() {
    DepthGuard g(*this);
    skip_ws();
    if (peek() == '-' && peek(1) != '-') {
      ++pos_;
      MathValue v = parse_unary();
      ex e = scalar_of(v, "a negated value");
      MathValue r = scalar(-e, v.inexact);
      r.percent = v.percent;
      return r;
    }
    if (peek() == '+') {
      ++pos_;
      return parse_unary();
    }
    if (peek_command("pm") || peek_command("mp")) {
      bool mp = peek_command("mp");
      pos_ += 3;
      MathValue v = parse_unary();
      ex e = scalar_of(v, "a ±value");
      return scalar(mp ? -syms_.pm() * e : syms_.pm() * e, v.inexact);
    }
    return parse_postfix();
  }

  MathValue parse_postfix() {
    MathValue v = parse_power();
    for (;;) {
      if (peek() == '!' && peek(1) != '=') {
        ++pos_;
        v.ex = guarded_factorial(scalar_of(v, "a factorial"));
        continue;
      }
      skip_ws();
      if (command_at(pos_) == "pmod") {  // "44 \pmod{83}": the modulus is an annotation
        pos_ += 5;
        raw_group_or_token();
        continue;
      }
      if (peek() == '%' || (peek() == '\\' && peek(1) == '%')) {
        pos_ += peek() == '%' ? 1 : 2;
        ex e = scalar_of(v, "a percentage");
        if (v.percent) fail("double percent");
        // a percentage of a number (or of infinity), not of a symbol: "a\%" is not an answer
        if (!only_infinity_symbols(e)) fail("percent of a non-number");
        v.ex = e / 100;
        v.percent = true;
        continue;
      }
      break;
    }
    return v;
  }

  MathValue parse_power() {
    MathValue base = parse_primary();
    for (;;) {
      skip_ws();
      bool star2 = peek() == '*' && peek(1) == '*';
      if (peek() != '^' && !star2) break;
      pos_ += star2 ? 2 : 1;
      MathValue e = parse_exponent();
      ex b = scalar_of(base, "a base");
      ex x = scalar_of(e, "an exponent");
      MathValue r = scalar(guarded_pow(b, x), base.inexact || e.inexact);
      base = std::move(r);
    }
    return base;
  }

  MathValue parse_exponent() {
    DepthGuard g(*this);
    skip_ws();
    if (peek() == '{') return parse_arg();
    if (peek() == '-' || peek() == '+') {
      bool neg = peek() == '-';
      ++pos_;
      MathValue v = parse_exponent();
      if (neg) v.ex = -scalar_of(v, "an exponent");
      return v;
    }
    if (is_digit(peek())) {
      // LaTeX "x^23" is x^2 * 3; plain "2**10" takes the whole number
      if (opts_.plain_text) return parse_number();
      ++pos_;
      return scalar(numeric(s_[pos_ - 1] - '0'));
    }
    if (peek() == '(') return parse_primary();
    return parse_arg();
  }

  // --- primaries ----------------------------------------------------------------------------

  MathValue parse_letter_symbol() {
    char c = s_[pos_++];
    std::string name(1, c);
    return finish_symbol(std::move(name), /*constant_ok=*/true);
  }

  // Adds a subscript and primes to a symbol name and makes the value.
  MathValue finish_symbol(std::string name, bool constant_ok) {
    bool subscripted = false;
    if (peek() == '_') {
      ++pos_;
      std::string sub;
      if (peek() == '{') {
        std::string_view raw = raw_group();
        for (char ch : raw) {
          if (!std::isspace(static_cast<unsigned char>(ch))) sub += ch;
        }
      } else if (peek() == '\\') {
        std::string_view cmd = command_at(pos_);
        if (cmd.empty()) fail("bad subscript");
        sub = "\\" + std::string(cmd);
        pos_ += 1 + cmd.size();
      } else if (is_alpha(peek()) || is_digit(peek())) {
        sub = std::string(1, s_[pos_++]);
      } else {
        fail("bad subscript");
      }
      if (sub.empty() || sub.size() > 64) fail("bad subscript");
      name += "_" + sub;
      subscripted = true;
    }
    while (peek() == '\'') {
      name += '\'';
      ++pos_;
      subscripted = true;
    }
    if (constant_ok && !subscripted) {
      if (name == "e") return scalar(GiNaC::exp(ex(1)));
      if (name == "i" || name == "I") return scalar(GiNaC::I);
    }
    return scalar(syms_.get(name));
  }

  MathValue parse_primary() {
    DepthGuard g(*this);
    skip_ws();
    if (at_end()) fail("unexpected end");
    char c = peek();
    if (is_digit(c) || (c == '.' && is_digit(peek(1)))) return parse_number();
    if (is_alpha(c)) return parse_word();
    if (c == '(' || c == '[') return parse_bracket();
    if (c == '{') {
      ++pos_;
      bool semi = false, commas = false;
      ++bracket_depth_;
      std::vector<MathValue> items = parse_items('}', &semi, &commas);
      --bracket_depth_;
      expect('}');
      if (items.empty()) fail("empty group");
      if (items.size() == 1 && !commas && !semi) {
        std::vector<MathValue> ex_items;
        append_expanded(&ex_items, std::move(items[0]));
        if (ex_items.size() == 1) return std::move(ex_items[0]);
        return make_set(std::move(ex_items));
      }
      MathValue s = make_set(std::move(items));
      s.braces = true;
      return s;
    }
    if (c == '|') return parse_abs_bars();
    if (c == '\\') return parse_command();
    fail(std::string("unexpected '") + c + "'");
  }

  MathValue parse_abs_bars() {
    ++pos_;
    ++abs_depth_;
    int saved_integral = integral_depth_;
    MathValue inner = parse_sum();
    integral_depth_ = saved_integral;
    --abs_depth_;
    expect('|');
    if (inner.kind == MathValue::Kind::scalar && is_a<GiNaC::matrix>(inner.ex)) {
      const auto& m = ex_to<GiNaC::matrix>(inner.ex);
      if (m.rows() != m.cols() || m.rows() > 6) fail("determinant of a non-square matrix");
      return scalar(m.determinant(), inner.inexact);
    }
    return scalar(GiNaC::abs(scalar_of(inner, "an absolute value")), inner.inexact);
  }

  // Letters: a known word (sin, sqrt, pi, ...) or one symbol per letter (implicit product).
  MathValue parse_word() {
    size_t q = pos_;
    while (q < s_.size() && is_alpha(s_[q])) ++q;
    std::string_view word = s_.substr(pos_, q - pos_);
    if (word.size() > 1) {
      if (word == "pi") {
        pos_ = q;
        return scalar(GiNaC::Pi);
      }
      if (word == "infty" || word == "inf" || word == "infinity") {
        pos_ = q;
        return scalar(syms_.infinity());
      }
      auto it = function_names().find(word);
      if (it != function_names().end()) {
        pos_ = q;
        return parse_function(it->second, std::string(word));
      }
    }
    // a longer run of letters is a word, not a product of symbols ("Therefore")
    if (word.size() >= 4) fail("unexpected word '" + std::string(word.substr(0, 32)) + "'");
    // f(x): an uninterpreted function of the usual function letters
    char c = peek();
    if ((c == 'f' || c == 'g' || c == 'h' || c == 'F' || c == 'G' || c == 'H') && peek(1) == '(') {
      ++pos_;
      return parse_applied(std::string(1, c));
    }
    return parse_letter_symbol();
  }

  MathValue parse_applied(std::string name) {
    expect('(');
    bool semi = false, commas = false;
    std::vector<MathValue> args = parse_items(')', &semi, &commas);
    expect(')');
    std::vector<ex> a;
    for (const auto& v : args) a.push_back(scalar_of(v, "a function argument"));
    if (a.empty()) fail("empty function argument");
    return scalar(opaque(name, a));
  }

  MathValue parse_bracket() {
    char open = s_[pos_++];
    bool semi = false, commas = false;
    ++bracket_depth_;
    std::vector<MathValue> items = parse_items('\0', &semi, &commas);
    --bracket_depth_;
    skip_ws();
    char close = peek();
    if (close != ')' && close != ']') fail("unbalanced bracket");
    ++pos_;
    if (items.empty()) fail("empty brackets");
    if (items.size() == 1 && !commas && !semi) {
      if (open != close - (close == ')' ? 1 : 2)) fail("mismatched brackets");
      std::vector<MathValue> ex_items;
      append_expanded(&ex_items, std::move(items[0]));
      if (ex_items.size() == 1) return std::move(ex_items[0]);
      return make_set(std::move(ex_items));
    }
    for (auto& it : items) {
      if (it.kind == MathValue::Kind::text) fail("text in a tuple");
    }
    bool mixed = (open == '(') != (close == ')');
    MathValue v;
    if (items.size() == 2 && (mixed || (open == '[' && close == ']'))) {
      v.kind = MathValue::Kind::interval;
      v.lo_closed = open == '[';
      v.hi_closed = close == ']';
    } else if (mixed) {
      fail("mismatched brackets");
    } else {
      v.kind = MathValue::Kind::tuple;
      v.paren_pair = items.size() == 2 && open == '(';
    }
    for (const auto& it : items) v.inexact = v.inexact || it.inexact;
    v.items = std::move(items);
    return v;
  }

  // --- commands --------------------------------------------------------------------------------

  MathValue parse_command() {
    if (peek(1) == '{') {  // \{ … \}
      pos_ += 2;
      return parse_brace_set("\\}");
    }
    if (peek(1) == '%') fail("stray percent sign");
    if (peek(1) == '$') {  // \$: a dollar sign before a number
      pos_ += 2;
      return parse_unary();
    }
    std::string_view cmd = command_at(pos_);
    if (cmd.empty()) fail("stray backslash");
    pos_ += 1 + cmd.size();
    std::string name(cmd);
    if (name == "lbrace") return parse_brace_set("\\rbrace");
    if (name == "frac" || name == "dfrac" || name == "tfrac" || name == "cfrac")
      return parse_frac();
    if (name == "sqrt") return parse_sqrt();
    if (name == "binom" || name == "dbinom" || name == "tbinom") {
      ex n = scalar_of(parse_arg(), "a binomial argument");
      ex k = scalar_of(parse_arg(), "a binomial argument");
      return scalar(guarded_binomial(n, k));
    }
    if (name == "pi") return scalar(GiNaC::Pi);
    if (name == "infty" || name == "infin" || name == "infinity") {
      return scalar(syms_.infinity());
    }
    if (name == "emptyset" || name == "varnothing") {
      MathValue v;
      v.kind = MathValue::Kind::empty_set;
      return v;
    }
    if (name == "ldots" || name == "cdots" || name == "dots" || name == "dotsc" ||
        name == "dotsb" || name == "vdots") {
      return scalar(syms_.get("..."));
    }
    if (name == "operatorname" || name == "mathrm" || name == "text" || name == "textrm" ||
        name == "textbf" || name == "mbox" || name == "textnormal" || name == "textit" ||
        name == "mathit" || name == "mathbf" || name == "mathsf" || name == "mathtt" ||
        name == "boldsymbol" || name == "bm" || name == "mathcal" || name == "mathbb" ||
        name == "textsf" || name == "texttt" || name == "hbox" || name == "mathnormal" ||
        name == "textup" || name == "emph") {
      return parse_text_like(name);
    }
    if (name == "overline" || name == "bar" || name == "hat" || name == "vec" || name == "tilde" ||
        name == "widehat" || name == "widetilde" || name == "dot" || name == "ddot" ||
        name == "overrightarrow" || name == "underline") {
      std::string_view raw = raw_group_or_token();
      std::string inner;
      for (char ch : raw) {
        if (!std::isspace(static_cast<unsigned char>(ch))) inner += ch;
      }
      if (inner.empty()) fail("empty accent");
      std::string head = name == "overline" ? "bar" : name;
      return finish_symbol(head + "{" + inner + "}", false);
    }
    if (name == "lfloor" || name == "lceil") {
      MathValue inner = parse_sum();
      if (!eat_command(name == "lfloor" ? "rfloor" : "rceil")) fail("unclosed " + name);
      return scalar(apply_fn(name == "lfloor" ? Fn::floor : Fn::ceil,
                             {scalar_of(inner, "a floor argument")}));
    }
    if (name == "begin") return parse_environment();
    if (name == "sum" || name == "prod") return parse_big_operator(name);
    if (name == "int") return parse_integral();
    if (name == "lim") return parse_limit();
    if (name == "circ" || name == "degree") return scalar(numeric(1));
    auto g = greek_letters().find(cmd);
    if (g != greek_letters().end()) return finish_symbol(g->second, false);
    auto f = function_names().find(cmd);
    if (f != function_names().end()) return parse_function(f->second, name);
    // an unknown command of letters is a name (\zzz, \Box): compared as a symbol
    if (name.size() <= 24 && !is_structural_command(name)) return finish_symbol("\\" + name, false);
    fail("unsupported command \\" + name);
  }

  static bool is_structural_command(const std::string& n) {
    static const char* const kNo[] = {"end",
                                      "right",
                                      "rbrace",
                                      "rfloor",
                                      "rceil",
                                      "over",
                                      "choose",
                                      "to",
                                      "rightarrow",
                                      "phantom",
                                      "hline",
                                      "item",
                                      "label",
                                      "tag",
                                      "newcommand",
                                      "def",
                                      "input",
                                      "include",
                                      "usepackage",
                                      "documentclass",
                                      "color",
                                      "textcolor",
                                      "href",
                                      "url",
                                      "cases",
                                      "partial",
                                      "nabla",
                                      "forall",
                                      "exists",
                                      "implies",
                                      "iff",
                                      "Rightarrow",
                                      "Leftrightarrow",
                                      "land",
                                      "lor",
                                      "neg",
                                      "wedge",
                                      "vee",
                                      "cap",
                                      "setminus",
                                      "subset",
                                      "subseteq",
                                      "supset",
                                      "perp",
                                      "parallel",
                                      "angle",
                                      "triangle",
                                      "mid",
                                      "nmid"};
    for (const char* k : kNo) {
      if (n == k) return true;
    }
    return false;
  }

  std::string_view raw_group_or_token() {
    skip_ws();
    if (peek() == '{') return raw_group();
    if (peek() == '\\') {
      std::string_view cmd = command_at(pos_);
      if (cmd.empty()) fail("bad argument");
      std::string_view r = s_.substr(pos_, cmd.size() + 1);
      pos_ += cmd.size() + 1;
      return r;
    }
    if (at_end()) fail("missing argument");
    return s_.substr(pos_++, 1);
  }

  MathValue parse_brace_set(std::string_view close) {
    bool semi = false, commas = false;
    std::vector<MathValue> items;
    skip_ws();
    if (!eat_str(close)) {
      ++bracket_depth_;
      items = parse_items('\0', &semi, &commas);
      --bracket_depth_;
      if (!eat_str(close)) fail("unclosed set");
    }
    if (items.empty()) {
      MathValue e;
      e.kind = MathValue::Kind::empty_set;
      return e;
    }
    MathValue s = make_set(std::move(items));
    s.braces = true;
    return s;
  }

  // \text{…} and friends: a number inside is a number; words are a text value; \mathrm{e},
  // \mathbf{x}, \operatorname{f} are math.
  MathValue parse_text_like(const std::string& name) {
    std::string_view raw = raw_group_or_token();
    bool text_mode =
        name.rfind("text", 0) == 0 || name == "mbox" || name == "hbox" || name == "emph";
    if (name == "operatorname") {
      std::string fn;
      for (char ch : raw) {
        if (!std::isspace(static_cast<unsigned char>(ch)) && ch != '*') fn += ch;
      }
      auto f = function_names().find(fn);
      if (f != function_names().end()) return parse_function(f->second, fn);
      if (peek() == '(') return parse_applied(fn);
      return scalar(syms_.get(fn));
    }
    std::string trimmed;
    {
      size_t a = 0, b = raw.size();
      while (a < b && std::isspace(static_cast<unsigned char>(raw[a]))) ++a;
      while (b > a && std::isspace(static_cast<unsigned char>(raw[b - 1]))) --b;
      trimmed = std::string(raw.substr(a, b - a));
    }
    if (trimmed.empty()) fail("empty text");
    // math content: parse it in place
    Parser sub(trimmed, syms_, dl_, opts_);
    sub.depth_ = depth_;
    sub.nodes_ = nodes_;
    bool numeric_text = std::all_of(trimmed.begin(), trimmed.end(), [](char ch) {
      return is_digit(ch) || ch == '.' || ch == ',' || ch == '-' || ch == ' ';
    });
    if (!text_mode || numeric_text) {
      try {
        MathValue v = sub.parse_all();
        nodes_ = sub.nodes_;
        return v;
      } catch (const ParseError&) {
        if (!text_mode) throw;
      }
    }
    MathValue t;
    t.kind = MathValue::Kind::text;
    t.text = trimmed;
    return t;
  }

  MathValue parse_frac() {
    // d/dx operator: \frac{d}{dx} f
    size_t save = pos_;
    skip_ws();
    if (peek() == '{') {
      std::string_view num = raw_group();
      skip_ws();
      if (peek() == '{' && (num == "d" || num == "\\mathrm{d}" || num == "\\partial")) {
        std::string_view den = raw_group();
        std::string var;
        for (char ch : den) {
          if (!std::isspace(static_cast<unsigned char>(ch))) var += ch;
        }
        if (var.size() >= 2 && (var[0] == 'd' || var.rfind("\\partial", 0) == 0)) {
          var = var[0] == 'd' ? var.substr(1) : var.substr(8);
          if (var.empty()) fail("bad derivative");
          if (!starts_factor()) fail("derivative of nothing");
          MathValue operand = parse_term();
          Parser vs(var, syms_, dl_, opts_);
          ex v = scalar_of(vs.parse_all(), "a variable");
          return scalar(opaque("Derivative", {scalar_of(operand, "a derivative"), v}));
        }
      }
      pos_ = save;
    }
    MathValue n = parse_integrand_arg();
    MathValue d = parse_arg();
    ex a = scalar_of(n, "a numerator");
    ex b = scalar_of(d, "a denominator");
    if (b.is_zero()) fail("division by zero");
    return combine(n, d, checked(a / b));
  }

  // A fraction numerator inside an integral may hold the differential: \int \frac{3 dz}{z}.
  MathValue parse_integrand_arg() {
    if (integral_depth_ == 0) return parse_arg();
    skip_ws();
    if (peek() != '{') return parse_arg();
    size_t save = pos_;
    std::string_view raw = raw_group();
    // strip a trailing "d<var>" (optionally "\cdot d<var>")
    std::string r(raw);
    while (!r.empty() && std::isspace(static_cast<unsigned char>(r.back()))) r.pop_back();
    size_t dpos = std::string::npos;
    for (size_t k = r.size(); k-- > 0;) {
      if (r[k] == 'd' && k + 1 < r.size() && (is_alpha(r[k + 1]) || r[k + 1] == '\\') &&
          (k == 0 || !is_alpha(r[k - 1]))) {
        dpos = k;
        break;
      }
    }
    if (dpos == std::string::npos) {
      pos_ = save;
      return parse_arg();
    }
    pending_differential_ = r.substr(dpos + 1);
    std::string rest = r.substr(0, dpos);
    while (!rest.empty() && (std::isspace(static_cast<unsigned char>(rest.back()))))
      rest.pop_back();
    if (rest.size() >= 5 && rest.substr(rest.size() - 5) == "\\cdot") rest.resize(rest.size() - 5);
    while (!rest.empty() && (std::isspace(static_cast<unsigned char>(rest.back()))))
      rest.pop_back();
    if (rest.empty()) return scalar(numeric(1));
    Parser sub(rest, syms_, dl_, opts_);
    sub.depth_ = depth_;
    return sub.parse_all();
  }
  std::string pending_differential_;

  MathValue parse_sqrt() {
    skip_ws();
    ex index = 2;
    if (peek() == '[') {
      ++pos_;
      MathValue iv = parse_sum();
      expect(']');
      index = scalar_of(iv, "a root index");
    }
    MathValue arg = parse_arg();
    ex a = scalar_of(arg, "a square root");
    if (index.is_equal(2)) return scalar(guarded_pow(a, numeric(1, 2)), arg.inexact);
    if (is_a<numeric>(index)) {
      const numeric& n = ex_to<numeric>(index);
      if (!n.is_pos_integer()) fail("bad root index");
      return scalar(guarded_pow(a, ex(1) / index), arg.inexact);
    }
    return scalar(guarded_pow(a, ex(1) / index), arg.inexact);
  }

  // \sin x, \sin(x), \sin^2 x, \sin^{-1} x, \log_2 x, \ln x.
  MathValue parse_function(Fn fn, const std::string& name) {
    ex power = 1;
    bool inverse = false;
    ex log_base;
    bool has_base = false;
    for (int round = 0; round < 2; ++round) {
      skip_ws();
      if (peek() == '^') {
        ++pos_;
        MathValue p = parse_exponent();
        ex pe = scalar_of(p, "a function power");
        if (pe.is_equal(-1) && fn != Fn::log && fn != Fn::ln && fn != Fn::exp) {
          inverse = true;
        } else {
          if (!is_a<numeric>(pe)) fail("function power must be a number");
          power = pe;
        }
      } else if (peek() == '_' && (fn == Fn::log)) {
        ++pos_;
        MathValue b = parse_arg();
        log_base = scalar_of(b, "a log base");
        has_base = true;
      }
    }
    std::vector<ex> args;
    skip_ws();
    bool multi = fn == Fn::gcd || fn == Fn::lcm || fn == Fn::max || fn == Fn::min;
    if (peek() == '(') {
      ++pos_;
      bool semi = false, commas = false;
      std::vector<MathValue> items = parse_items(')', &semi, &commas);
      expect(')');
      for (const auto& v : items) args.push_back(scalar_of(v, "a function argument"));
    } else if (peek() == '{' && fn != Fn::sqrt) {
      MathValue v = parse_arg();
      if (v.kind == MathValue::Kind::set && multi) {
        for (const auto& it : v.items) args.push_back(scalar_of(it, "a function argument"));
      } else {
        args.push_back(scalar_of(v, "a function argument"));
      }
    } else {
      if (!starts_factor()) fail("\\" + name + " without an argument");
      // unbraced argument: factors up to the next function or operator
      MathValue acc = parse_power_postfix_arg();
      while (starts_factor() && !next_is_function()) {
        MathValue more = parse_power_postfix_arg();
        acc = combine(acc, more,
                      checked(scalar_of(acc, "an argument") * scalar_of(more, "an argument")));
      }
      args.push_back(scalar_of(acc, "a function argument"));
    }
    if (args.empty()) fail("\\" + name + " without an argument");
    if (!multi && args.size() != 1) fail("\\" + name + " takes one argument");
    ex r;
    if (has_base) {
      if (args.size() != 1) fail("log takes one argument");
      if (log_base.is_zero() || log_base.is_equal(1)) fail("bad log base");
      r = GiNaC::log(args[0]) / GiNaC::log(log_base);
    } else {
      r = apply_fn(inverse ? inverse_of(fn) : fn, args);
    }
    if (!power.is_equal(1)) r = guarded_pow(r, power);
    return scalar(checked(r));
  }

  MathValue parse_power_postfix_arg() {
    DepthGuard g(*this);
    MathValue v = parse_power();
    while (peek() == '!' && peek(1) != '=') {
      ++pos_;
      v.ex = guarded_factorial(scalar_of(v, "a factorial"));
    }
    return v;
  }

  bool next_is_function() {
    skip_ws();
    if (peek() == '\\') {
      std::string_view cmd = command_at(pos_);
      return function_names().count(cmd) > 0 || cmd == "operatorname";
    }
    if (is_alpha(peek())) {
      size_t q = pos_;
      while (q < s_.size() && is_alpha(s_[q])) ++q;
      return function_names().count(s_.substr(pos_, q - pos_)) > 0;
    }
    return false;
  }

  static Fn inverse_of(Fn fn) {
    switch (fn) {
      case Fn::sin:
        return Fn::asin;
      case Fn::cos:
        return Fn::acos;
      case Fn::tan:
        return Fn::atan;
      case Fn::cot:
        return Fn::acot;
      case Fn::sec:
        return Fn::asec;
      case Fn::csc:
        return Fn::acsc;
      case Fn::sinh:
        return Fn::asinh;
      case Fn::cosh:
        return Fn::acosh;
      case Fn::tanh:
        return Fn::atanh;
      default:
        fail("no inverse function");
    }
  }

  ex apply_fn(Fn fn, const std::vector<ex>& a) {
    const ex& x = a[0];
    switch (fn) {
      case Fn::sin:
        return GiNaC::sin(x);
      case Fn::cos:
        return GiNaC::cos(x);
      case Fn::tan:
        return GiNaC::tan(x);
      case Fn::cot:
        return GiNaC::cos(x) / GiNaC::sin(x);
      case Fn::sec:
        return 1 / GiNaC::cos(x);
      case Fn::csc:
        return 1 / GiNaC::sin(x);
      case Fn::asin:
        return GiNaC::asin(x);
      case Fn::acos:
        return GiNaC::acos(x);
      case Fn::atan:
        return GiNaC::atan(x);
      case Fn::acot:
        return GiNaC::atan(1 / x);
      case Fn::asec:
        return GiNaC::acos(1 / x);
      case Fn::acsc:
        return GiNaC::asin(1 / x);
      case Fn::sinh:
        return GiNaC::sinh(x);
      case Fn::cosh:
        return GiNaC::cosh(x);
      case Fn::tanh:
        return GiNaC::tanh(x);
      case Fn::coth:
        return GiNaC::cosh(x) / GiNaC::sinh(x);
      case Fn::sech:
        return 1 / GiNaC::cosh(x);
      case Fn::csch:
        return 1 / GiNaC::sinh(x);
      case Fn::asinh:
        return GiNaC::asinh(x);
      case Fn::acosh:
        return GiNaC::acosh(x);
      case Fn::atanh:
        return GiNaC::atanh(x);
      case Fn::exp:
        if (is_a<numeric>(x) && GiNaC::abs(ex_to<numeric>(x)) > 100000) fail("exp too large");
        return GiNaC::exp(x);
      case Fn::ln:
        return GiNaC::log(x);
      case Fn::log:
      case Fn::lg:
        return GiNaC::log(x) / GiNaC::log(ex(10));
      case Fn::sqrt:
        return guarded_pow(x, numeric(1, 2));
      case Fn::abs:
        return GiNaC::abs(x);
      case Fn::floor:
      case Fn::ceil:
        if (is_a<numeric>(x) && ex_to<numeric>(x).is_rational()) {
          const numeric& n = ex_to<numeric>(x);
          numeric q = GiNaC::iquo(n.numer(), n.denom());
          if (n.is_integer()) return n;
          if (fn == Fn::floor) return n.is_negative() ? q - 1 : q;
          return n.is_negative() ? q : q + 1;
        }
        return opaque(fn == Fn::floor ? "floor" : "ceil", {x});
      case Fn::sgn:
        return opaque("sgn", {x});
      case Fn::gcd:
      case Fn::lcm: {
        bool ints = std::all_of(a.begin(), a.end(), [](const ex& e) {
          return is_a<numeric>(e) && ex_to<numeric>(e).is_integer();
        });
        if (ints && a.size() >= 2) {
          numeric r = ex_to<numeric>(a[0]);
          for (size_t k = 1; k < a.size(); ++k) {
            r = fn == Fn::gcd ? GiNaC::gcd(r, ex_to<numeric>(a[k]))
                              : GiNaC::lcm(r, ex_to<numeric>(a[k]));
          }
          return checked(r);
        }
        return opaque(fn == Fn::gcd ? "gcd" : "lcm", a);
      }
      case Fn::max:
      case Fn::min: {
        bool reals = std::all_of(a.begin(), a.end(), [](const ex& e) {
          return is_a<numeric>(e) && ex_to<numeric>(e).is_real();
        });
        if (reals) {
          numeric r = ex_to<numeric>(a[0]);
          for (size_t k = 1; k < a.size(); ++k) {
            const numeric& n = ex_to<numeric>(a[k]);
            if (fn == Fn::max ? n > r : n < r) r = n;
          }
          return r;
        }
        return opaque(fn == Fn::max ? "max" : "min", a);
      }
      case Fn::det:
        if (is_a<GiNaC::matrix>(x)) {
          const auto& m = ex_to<GiNaC::matrix>(x);
          if (m.rows() != m.cols() || m.rows() > 6) fail("bad determinant");
          return m.determinant();
        }
        return opaque("det", {x});
      case Fn::deg:
        return opaque("deg", {x});
    }
    fail("unknown function");
  }

  // \begin{pmatrix} a & b \\ c & d \end{pmatrix} (also bmatrix, matrix, array, vmatrix...).
  MathValue parse_environment() {
    std::string_view env = raw_group();
    std::string name(env);
    bool det = name == "vmatrix" || name == "Vmatrix";
    static const char* const kMatrices[] = {"pmatrix",     "bmatrix", "Bmatrix", "matrix",
                                            "smallmatrix", "array",   "vmatrix", "Vmatrix"};
    bool known = false;
    for (const char* k : kMatrices) known = known || name == k;
    if (!known) fail("unsupported environment " + name);
    if (name == "array") raw_group();  // column spec
    std::vector<std::vector<ex>> rows(1);
    bool inexact = false;
    size_t cells = 0;
    for (;;) {
      skip_ws();
      if (command_at(pos_) == "end") {
        pos_ += 4;
        std::string_view endname = raw_group();
        if (endname != env) fail("mismatched \\end");
        break;
      }
      if (at_end()) fail("unclosed environment");
      if (peek() == '\\' && peek(1) == '\\') {
        pos_ += 2;
        rows.emplace_back();
        continue;
      }
      if (eat('&')) {
        if (rows.back().empty()) rows.back().push_back(0);  // "& x": empty cell
        continue;
      }
      // \hline and similar
      MathValue v = parse_sum();
      if (++cells > opts_.limits.max_items) fail("matrix too large");
      inexact = inexact || v.inexact;
      rows.back().push_back(scalar_of(v, "a matrix entry"));
      skip_ws();
      if (!(peek() == '&' || (peek() == '\\' && (peek(1) == '\\' || command_at(pos_) == "end")))) {
        fail("bad matrix entry");
      }
    }
    while (!rows.empty() && rows.back().empty()) rows.pop_back();
    if (rows.empty()) fail("empty matrix");
    size_t cols = rows[0].size();
    for (const auto& r : rows) {
      if (r.size() != cols) fail("ragged matrix");
    }
    GiNaC::matrix m(static_cast<unsigned>(rows.size()), static_cast<unsigned>(cols));
    for (size_t i = 0; i < rows.size(); ++i) {
      for (size_t j = 0; j < cols; ++j) {
        m(static_cast<unsigned>(i), static_cast<unsigned>(j)) = rows[i][j];
      }
    }
    if (det) {
      if (m.rows() != m.cols() || m.rows() > 6) fail("bad determinant");
      return scalar(m.determinant(), inexact);
    }
    return scalar(m, inexact);
  }

  // Bounds of \sum / \prod / \int: _{…} and ^{…} in either order.
  void parse_bounds(std::string* lower, std::string* upper) {
    for (int k = 0; k < 2; ++k) {
      skip_ws();
      if (peek() == '_') {
        ++pos_;
        *lower = std::string(raw_group_or_token());
      } else if (peek() == '^') {
        ++pos_;
        *upper = std::string(raw_group_or_token());
      }
    }
  }

  MathValue sub_parse(std::string_view text) {
    Parser sub(text, syms_, dl_, opts_);
    sub.depth_ = depth_;
    MathValue v = sub.parse_all();
    nodes_ += sub.nodes_;
    return v;
  }

  MathValue parse_big_operator(const std::string& name) {
    std::string lower, upper;
    parse_bounds(&lower, &upper);
    size_t eq = lower.find('=');
    if (eq == std::string::npos || upper.empty()) fail("\\" + name + " needs bounds");
    ex var = scalar_of(sub_parse(lower.substr(0, eq)), "a summation index");
    ex lo = scalar_of(sub_parse(lower.substr(eq + 1)), "a bound");
    ex hi = scalar_of(sub_parse(upper), "a bound");
    if (!is_a<GiNaC::symbol>(var)) fail("bad summation index");
    MathValue body = parse_term();
    ex b = scalar_of(body, "a summand");
    bool is_sum = name == "sum";
    if (is_a<numeric>(lo) && is_a<numeric>(hi) && ex_to<numeric>(lo).is_integer() &&
        ex_to<numeric>(hi).is_integer()) {
      numeric n = ex_to<numeric>(hi) - ex_to<numeric>(lo);
      if (n < 0) return scalar(is_sum ? 0 : 1, body.inexact);
      if (n < 1000) {
        ex acc = is_sum ? ex(0) : ex(1);
        for (numeric k = ex_to<numeric>(lo); k <= ex_to<numeric>(hi); k = k + 1) {
          dl_.tick();
          ex term = b.subs(var == k);
          acc = checked(is_sum ? acc + term : acc * term);
        }
        return scalar(acc, body.inexact);
      }
    }
    return scalar(opaque(is_sum ? "Sum" : "Product", {b, var, lo, hi}), body.inexact);
  }

  MathValue parse_integral() {
    std::string lower, upper;
    parse_bounds(&lower, &upper);
    auto blank = [](const std::string& t) {
      return std::all_of(t.begin(), t.end(),
                         [](char ch) { return std::isspace(static_cast<unsigned char>(ch)); });
    };
    ++integral_depth_;
    pending_differential_.clear();
    ex body = 1;
    bool inexact = false;
    skip_ws();
    if (!(peek() == 'd' && (is_alpha(peek(1)) || peek(1) == '\\'))) {
      MathValue v = parse_sum();
      body = scalar_of(v, "an integrand");
      inexact = v.inexact;
    }
    --integral_depth_;
    std::string var_text = pending_differential_;
    pending_differential_.clear();
    skip_ws();
    if (var_text.empty() && peek() == 'd' && (is_alpha(peek(1)) || peek(1) == '\\')) {
      ++pos_;
      if (peek() == '\\') {
        std::string_view cmd = command_at(pos_);
        var_text = "\\" + std::string(cmd);
        pos_ += 1 + cmd.size();
      } else {
        var_text = std::string(1, s_[pos_++]);
      }
    }
    ex var;
    if (var_text.empty()) {
      // \int (x + a): the one free symbol is the variable
      GiNaC::exset syms;
      for (GiNaC::const_preorder_iterator it = body.preorder_begin(); it != body.preorder_end();
           ++it) {
        if (is_a<GiNaC::symbol>(*it)) syms.insert(*it);
      }
      if (syms.empty()) fail("integral without a variable");
      var = *syms.begin();
      if (body.nops() == 0 && !is_a<GiNaC::symbol>(body)) fail("integral without a variable");
    } else {
      var = scalar_of(sub_parse(var_text), "an integration variable");
    }
    std::vector<ex> args{body, var};
    if (!blank(lower) || !blank(upper)) {
      if (blank(lower) || blank(upper)) fail("integral needs both bounds");
      args.push_back(scalar_of(sub_parse(lower), "a bound"));
      args.push_back(scalar_of(sub_parse(upper), "a bound"));
    }
    return scalar(opaque("Integral", args), inexact);
  }

  MathValue parse_limit() {
    skip_ws();
    if (peek() != '_') fail("\\lim needs a subscript");
    ++pos_;
    std::string sub(raw_group_or_token());
    // x \to a, x \rightarrow a, ...
    static const char* const kArrows[] = {
        "\\to", "\\rightarrow", "\\Rightarrow", "\\longrightarrow", "\\Longrightarrow", "->"};
    size_t at = std::string::npos, alen = 0;
    for (const char* a : kArrows) {
      size_t p = sub.find(a);
      if (p != std::string::npos) {
        // the longest arrow at that spot
        size_t len = std::strlen(a);
        if (at == std::string::npos || p < at || (p == at && len > alen)) at = p, alen = len;
      }
    }
    if (at == std::string::npos) fail("\\lim without an arrow");
    std::string target = sub.substr(at + alen);
    std::string dir;
    size_t caret = target.rfind('^');
    if (caret != std::string::npos) {
      std::string d = target.substr(caret + 1);
      d.erase(std::remove_if(d.begin(), d.end(),
                             [](char ch) { return ch == '{' || ch == '}' || ch == ' '; }),
              d.end());
      if (d == "+" || d == "-") {
        dir = d;
        target.resize(caret);
      }
    }
    ex var = scalar_of(sub_parse(sub.substr(0, at)), "a limit variable");
    ex to = scalar_of(sub_parse(target), "a limit point");
    if (!starts_factor()) fail("\\lim of nothing");
    MathValue body = parse_term();
    std::vector<ex> args{scalar_of(body, "a limit"), var, to};
    if (!dir.empty()) args.push_back(syms_.get(dir == "+" ? "dir+" : "dir-"));
    return scalar(opaque("Limit", args));
  }
};

void print_value(std::ostream& os, const MathValue& v) {
  switch (v.kind) {
    case MathValue::Kind::scalar:
      os << v.ex;
      if (v.percent) os << " (%)";
      return;
    case MathValue::Kind::text:
      os << "\\text{" << v.text << "}";
      return;
    case MathValue::Kind::tuple:
    case MathValue::Kind::set: {
      bool set = v.kind == MathValue::Kind::set;
      os << (set ? '{' : '(');
      for (size_t i = 0; i < v.items.size(); ++i) {
        if (i) os << ", ";
        print_value(os, v.items[i]);
      }
      os << (set ? '}' : ')');
      return;
    }
    case MathValue::Kind::interval:
      os << (v.lo_closed ? '[' : '(');
      print_value(os, v.items[0]);
      os << ", ";
      print_value(os, v.items[1]);
      os << (v.hi_closed ? ']' : ')');
      return;
    case MathValue::Kind::relation:
      for (size_t i = 0; i < v.items.size(); ++i) {
        if (i) os << ' ' << rel_op_text(v.ops[i - 1]) << ' ';
        print_value(os, v.items[i]);
      }
      return;
    case MathValue::Kind::set_union:
      for (size_t i = 0; i < v.items.size(); ++i) {
        if (i) os << " U ";
        print_value(os, v.items[i]);
      }
      return;
    case MathValue::Kind::empty_set:
      os << "{}";
      return;
  }
}

// GiNaC keeps a + b of matrices unevaluated; evalm() computes it (sizes are bounded).
void evaluate_matrices(MathValue& v) {
  if (v.kind == MathValue::Kind::scalar) {
    if (v.ex.info(GiNaC::info_flags::numeric)) return;
    bool has_matrix = false;
    for (GiNaC::const_preorder_iterator it = v.ex.preorder_begin(); it != v.ex.preorder_end();
         ++it) {
      if (is_a<GiNaC::matrix>(*it)) {
        has_matrix = true;
        break;
      }
    }
    if (has_matrix) v.ex = v.ex.evalm();
    return;
  }
  for (auto& it : v.items) evaluate_matrices(it);
}

}  // namespace

ParseResult parse_math(std::string_view text, SymbolTable& symbols, Deadline& deadline,
                       const ParseOptions& opts) {
  ParseResult r;
  if (text.size() > opts.limits.max_input_bytes) {
    r.error = "answer too long";
    return r;
  }
  try {
    Parser p(text, symbols, deadline, opts);
    r.value = p.parse_all();
    evaluate_matrices(r.value);
    r.ok = true;
  } catch (const ParseError& e) {
    r.error = e.msg;
  } catch (const BudgetExceeded&) {
    throw;
  } catch (const std::exception& e) {
    r.error = std::string("CAS error: ") + e.what();
  }
  return r;
}

std::string to_string(const MathValue& v) {
  std::ostringstream os;
  print_value(os, v);
  return os.str();
}

}  // namespace r1kit::rewards
