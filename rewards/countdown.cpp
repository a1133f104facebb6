// Countdown checker and reward (see countdown.h): a tokenizer, a recursive-descent parser with a
// depth bound, and exact evaluation on reduced fractions of 128-bit integers with overflow checks.
#include "rewards/countdown.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>

#include "core/error.h"

namespace r1kit::rewards {
namespace {

using i128 = __int128;

// --- Exact rationals ----------------------------------------------------------------------------

i128 abs128(i128 x) {
  return x < 0 ? -x : x;
}

i128 gcd128(i128 a, i128 b) {
  a = abs128(a);
  b = abs128(b);
  while (b != 0) {
    i128 t = a % b;
    a = b;
    b = t;
  }
  return a;
}

struct Q {
  i128 num = 0, den = 1;  // den > 0, gcd(num, den) == 1
};

enum class EvalError { none, division_by_zero, overflow };

bool make_q(i128 n, i128 d, Q* out) {
  if (d < 0) {
    if (n == std::numeric_limits<i128>::min() || d == std::numeric_limits<i128>::min())
      return false;
    n = -n;
    d = -d;
  }
  i128 g = gcd128(n, d);
  if (g > 1) {
    n /= g;
    d /= g;
  }
  *out = {n, d};
  return true;
}

// a/b + s*c/d with g = gcd(b, d): (a*(d/g) + s*c*(b/g)) / ((b/g)*d).
EvalError add_q(const Q& x, const Q& y, bool subtract, Q* out) {
  i128 g = gcd128(x.den, y.den);
  i128 l, r, n, d;
  if (__builtin_mul_overflow(x.num, y.den / g, &l) || __builtin_mul_overflow(y.num, x.den / g, &r))
    return EvalError::overflow;
  if (subtract ? __builtin_sub_overflow(l, r, &n) : __builtin_add_overflow(l, r, &n))
    return EvalError::overflow;
  if (__builtin_mul_overflow(x.den / g, y.den, &d)) return EvalError::overflow;
  return make_q(n, d, out) ? EvalError::none : EvalError::overflow;
}

// (a/b) * (c/d), cross-reduced first; division multiplies by the reciprocal.
EvalError mul_q(const Q& x, Q y, bool divide, Q* out) {
  if (divide) {
    if (y.num == 0) return EvalError::division_by_zero;
    if (!make_q(y.den, y.num, &y)) return EvalError::overflow;
  }
  i128 g1 = gcd128(x.num, y.den), g2 = gcd128(y.num, x.den);
  if (g1 == 0) g1 = 1;
  if (g2 == 0) g2 = 1;
  i128 n, d;
  if (__builtin_mul_overflow(x.num / g1, y.num / g2, &n) ||
      __builtin_mul_overflow(x.den / g2, y.den / g1, &d))
    return EvalError::overflow;
  return make_q(n, d, out) ? EvalError::none : EvalError::overflow;
}

std::string i128_text(i128 v) {
  if (v == 0) return "0";
  bool neg = v < 0;
  std::string s;
  // Digits from the negative side, so the minimum value needs no special case.
  i128 x = neg ? v : -v;
  while (x != 0) {
    s.push_back(char('0' - int(x % 10)));
    x /= 10;
  }
  if (neg) s.push_back('-');
  std::reverse(s.begin(), s.end());
  return s;
}

std::string q_text(const Q& q) {
  return q.den == 1 ? i128_text(q.num) : i128_text(q.num) + "/" + i128_text(q.den);
}

// --- Tokens and parser --------------------------------------------------------------------------

enum class Tok { number, plus, minus, times, divide, lparen, rparen };

struct Token {
  Tok kind;
  i128 value = 0;     // number
  bool huge = false;  // more digits than we keep
};

// Reads the expression's tokens; operator spellings: + - * / and × ÷ − (U+2212), \times \cdot
// \div. Whitespace and "\," "\ " are skipped.
bool tokenize(std::string_view s, std::vector<Token>* out, std::string* why) {
  size_t i = 0;
  auto starts = [&](std::string_view p) { return s.substr(i, p.size()) == p; };
  while (i < s.size()) {
    char c = s[i];
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
      ++i;
    } else if (c >= '0' && c <= '9') {
      Token t{Tok::number};
      size_t digits = 0;
      while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
        if (digits < 30)
          t.value = t.value * 10 + (s[i] - '0');
        else
          t.huge = true;
        if (t.value != 0) ++digits;
        ++i;
      }
      if (i < s.size() && (s[i] == '.' || s[i] == ',')) {
        *why = fmt::format("only whole numbers are allowed (found '{}')", s[i]);
        return false;
      }
      out->push_back(t);
    } else if (c == '+') {
      out->push_back({Tok::plus}), ++i;
    } else if (c == '-') {
      out->push_back({Tok::minus}), ++i;
    } else if (c == '*' || c == 'x' || c == 'X') {
      if (c != '*') {
        *why = fmt::format("'{}' is not an operator (use *)", c);
        return false;
      }
      out->push_back({Tok::times}), ++i;
    } else if (c == '/') {
      out->push_back({Tok::divide}), ++i;
    } else if (c == '(') {
      out->push_back({Tok::lparen}), ++i;
    } else if (c == ')') {
      out->push_back({Tok::rparen}), ++i;
    } else if (starts("\xC3\x97")) {  // ×
      out->push_back({Tok::times}), i += 2;
    } else if (starts("\xC3\xB7")) {  // ÷
      out->push_back({Tok::divide}), i += 2;
    } else if (starts("\xE2\x88\x92")) {  // −
      out->push_back({Tok::minus}), i += 3;
    } else if (starts("\\times")) {
      out->push_back({Tok::times}), i += 6;
    } else if (starts("\\cdot")) {
      out->push_back({Tok::times}), i += 5;
    } else if (starts("\\div")) {
      out->push_back({Tok::divide}), i += 4;
    } else if (starts("\\,") || starts("\\ ")) {
      i += 2;
    } else {
      size_t n = 1;
      while (i + n < s.size() && (uint8_t(s[i + n]) & 0xC0) == 0x80 && n < 4) ++n;
      *why = fmt::format("character '{}' is not allowed", utf8_clip(s.substr(i, n), 8));
      return false;
    }
  }
  return true;
}

// expr := term (('+'|'-') term)*; term := factor (('*'|'/') factor)*; factor := NUM | '(' expr ')'
// No unary signs: every number must be one of the given ones, used as given.
class Parser {
 public:
  explicit Parser(const std::vector<Token>& toks) : toks_(toks) {}

  // False when the expression is not well formed; its value is then meaningless, and so it is
  // when eval_error() is not none.
  bool parse(Q* value, std::vector<i128>* numbers, std::string* why) {
    numbers_ = numbers;
    if (toks_.empty()) return fail("empty expression", why);
    if (!expr(value, 0, why)) return false;
    if (pos_ != toks_.size()) return fail("unexpected token after the expression", why);
    return true;
  }
  EvalError eval_error() const { return err_; }

 private:
  bool fail(const std::string& what, std::string* why) {
    *why = what;
    return false;
  }
  bool at(Tok k) const { return pos_ < toks_.size() && toks_[pos_].kind == k; }

  // Evaluation errors are remembered and parsing goes on, so that a well-formed expression with
  // a division by zero is still reported as well formed (and incorrect).
  void apply(EvalError e) {
    if (err_ == EvalError::none) err_ = e;
  }

  bool expr(Q* v, size_t depth, std::string* why) {
    if (!term(v, depth, why)) return false;
    while (at(Tok::plus) || at(Tok::minus)) {
      bool sub = toks_[pos_++].kind == Tok::minus;
      Q r;
      if (!term(&r, depth, why)) return false;
      if (err_ == EvalError::none) apply(add_q(*v, r, sub, v));
    }
    return true;
  }

  bool term(Q* v, size_t depth, std::string* why) {
    if (!factor(v, depth, why)) return false;
    while (at(Tok::times) || at(Tok::divide)) {
      bool div = toks_[pos_++].kind == Tok::divide;
      Q r;
      if (!factor(&r, depth, why)) return false;
      if (err_ == EvalError::none) apply(mul_q(*v, r, div, v));
    }
    return true;
  }

  bool factor(Q* v, size_t depth, std::string* why) {
    if (pos_ >= toks_.size()) return fail("the expression ends too early", why);
    const Token& t = toks_[pos_];
    if (t.kind == Tok::number) {
      ++pos_;
      if (t.huge) return fail("a number has too many digits", why);
      if (numbers_->size() >= kCountdownMaxNumbers) return fail("too many numbers", why);
      numbers_->push_back(t.value);
      *v = {t.value, 1};
      return true;
    }
    if (t.kind == Tok::lparen) {
      if (depth + 1 > kCountdownMaxDepth) return fail("parentheses nested too deeply", why);
      ++pos_;
      if (!expr(v, depth + 1, why)) return false;
      if (!at(Tok::rparen)) return fail("missing ')'", why);
      ++pos_;
      return true;
    }
    if (t.kind == Tok::minus || t.kind == Tok::plus)
      return fail("unary signs are not allowed (each number is used as given)", why);
    return fail("expected a number or '('", why);
  }

  const std::vector<Token>& toks_;
  size_t pos_ = 0;
  std::vector<i128>* numbers_ = nullptr;
  EvalError err_ = EvalError::none;
};

std::string_view trim(std::string_view s) {
  size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string_view::npos) return {};
  size_t e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

// Strips what commonly wraps an expression: $…$, \( \), \[ \], \boxed{…}, a final period.
std::string_view unwrap(std::string_view s) {
  for (int round = 0; round < 4; ++round) {
    s = trim(s);
    auto strip = [&](std::string_view open, std::string_view close) {
      if (s.size() >= open.size() + close.size() && s.substr(0, open.size()) == open &&
          s.substr(s.size() - close.size()) == close) {
        s = s.substr(open.size(), s.size() - open.size() - close.size());
        return true;
      }
      return false;
    };
    if (!s.empty() && s.back() == '.') {
      s.remove_suffix(1);
      continue;
    }
    if (strip("$$", "$$") || strip("$", "$") || strip("\\(", "\\)") || strip("\\[", "\\]") ||
        strip("\\boxed{", "}"))
      continue;
    break;
  }
  return s;
}

// A line that could be an expression: digits, operators, parentheses, '=' and spaces only, with
// at least one digit and one operator.
bool looks_like_expression(std::string_view line) {
  bool digit = false, op = false;
  for (size_t i = 0; i < line.size(); ++i) {
    uint8_t c = uint8_t(line[i]);
    if (c >= '0' && c <= '9') {
      digit = true;
    } else if (c == '+' || c == '-' || c == '*' || c == '/') {
      op = true;
    } else if (c == '(' || c == ')' || c == ' ' || c == '=' || c == '\t' || c == '\r') {
    } else if (c >= 0x80 && (line.substr(i, 2) == "\xC3\x97" || line.substr(i, 2) == "\xC3\xB7")) {
      op = true;
      ++i;
    } else if (c >= 0x80 && line.substr(i, 3) == "\xE2\x88\x92") {
      op = true;
      i += 2;
    } else {
      return false;
    }
  }
  return digit && op;
}

// The expression text: the last <answer>…</answer>, else the last expression-like line.
std::optional<std::string_view> find_expression(std::string_view text) {
  size_t open = text.rfind("<answer>");
  if (open != std::string_view::npos) {
    size_t b = open + 8;
    size_t close = text.find("</answer>", b);
    if (close != std::string_view::npos) return unwrap(text.substr(b, close - b));
  }
  size_t end = text.size();
  while (end > 0) {
    size_t nl = text.rfind('\n', end - 1);
    size_t b = nl == std::string_view::npos ? 0 : nl + 1;
    std::string_view line = unwrap(text.substr(b, end - b));
    if (line.size() <= kCountdownMaxExpressionBytes && looks_like_expression(line)) return line;
    if (nl == std::string_view::npos) break;
    end = nl;
  }
  return std::nullopt;
}

bool parse_int(std::string_view s, int64_t* out) {
  s = trim(s);
  if (s.empty() || s.size() > 18) return false;
  bool neg = false;
  size_t i = 0;
  if (s[0] == '-' || s[0] == '+') {
    neg = s[0] == '-';
    i = 1;
  }
  if (i == s.size()) return false;
  int64_t v = 0;
  for (; i < s.size(); ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    v = v * 10 + (s[i] - '0');
  }
  *out = neg ? -v : v;
  return true;
}

constexpr int64_t kMaxMagnitude = 1'000'000'000'000;  // numbers and targets, |x| <= 1e12

bool number_of(const Json& v, int64_t* out) {
  if (v.is_number_integer()) {
    if (v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(kMaxMagnitude)) return false;
    *out = v.get<int64_t>();
  } else if (v.is_number_float()) {
    double d = v.get<double>();
    if (!(d == double(int64_t(d))) || std::abs(d) > double(kMaxMagnitude)) return false;
    *out = int64_t(d);
  } else if (v.is_string()) {
    if (!parse_int(v.get<std::string>(), out)) return false;
  } else {
    return false;
  }
  return *out >= -kMaxMagnitude && *out <= kMaxMagnitude;
}

bool numbers_from_text(std::string_view s, std::vector<int64_t>* out) {
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() &&
           (s[i] == ',' || s[i] == ' ' || s[i] == '\t' || s[i] == '[' || s[i] == ']'))
      ++i;
    if (i >= s.size()) break;
    size_t j = i;
    while (j < s.size() && s[j] != ',' && s[j] != ' ' && s[j] != '\t' && s[j] != ']') ++j;
    int64_t v;
    if (!parse_int(s.substr(i, j - i), &v) || std::abs(v) > kMaxMagnitude) return false;
    out->push_back(v);
    i = j;
  }
  return !out->empty();
}

bool valid_problem(const CountdownProblem& p, std::string* why) {
  if (p.numbers.empty()) {
    if (why) *why = "no numbers";
    return false;
  }
  if (p.numbers.size() > kCountdownMaxNumbers) {
    if (why) *why = "more than " + std::to_string(kCountdownMaxNumbers) + " numbers";
    return false;
  }
  for (int64_t n : p.numbers) {
    if (n < 0) {
      if (why)
        *why = "a negative number (" + std::to_string(n) + ") cannot be written without a sign";
      return false;
    }
  }
  return true;
}

}  // namespace

std::optional<CountdownProblem> countdown_problem_from_json(const Json& ref, std::string* why) {
  auto fail = [&](const std::string& w) -> std::optional<CountdownProblem> {
    if (why) *why = w;
    return std::nullopt;
  };
  if (!ref.is_object()) return fail("the countdown reference must be an object");
  CountdownProblem p;
  const Json* nums = nullptr;
  for (const char* k : {"numbers", "nums"})
    if (ref.contains(k)) {
      nums = &ref[k];
      break;
    }
  if (nums) {
    if (!nums->is_array()) return fail("'numbers' must be an array of integers");
    for (const auto& v : *nums) {
      int64_t n;
      if (!number_of(v, &n)) return fail("'numbers' must hold integers of at most 1e12");
      p.numbers.push_back(n);
    }
    if (!ref.contains("target") || !number_of(ref["target"], &p.target))
      return fail("'target' must be an integer of at most 1e12");
  } else if (ref.contains("input") && ref.contains("output")) {
    if (!ref["input"].is_string() ||
        !numbers_from_text(ref["input"].get<std::string>(), &p.numbers))
      return fail("'input' must be comma-separated integers");
    if (!number_of(ref["output"], &p.target)) return fail("'output' must be an integer");
  } else {
    return fail("no countdown problem in the reference (numbers/nums + target, or input + output)");
  }
  std::string w;
  if (!valid_problem(p, &w)) return fail(w);
  return p;
}

std::optional<CountdownProblem> countdown_problem_from_text(std::string_view gold,
                                                            std::string* why) {
  std::string_view g = trim(gold);
  if (!g.empty() && g.front() == '{') {
    Json j;
    if (try_parse_json(g, &j)) {
      if (why) *why = "the countdown gold is not valid JSON";
      return std::nullopt;
    }
    return countdown_problem_from_json(j, why);
  }
  size_t sep = g.find("->");
  size_t sep_len = 2;
  if (sep == std::string_view::npos) {
    sep = g.rfind('=');
    sep_len = 1;
  }
  if (sep == std::string_view::npos) {
    if (why) *why = "expected 'numbers=target' (\"30,100,93=23\") or 'numbers -> target'";
    return std::nullopt;
  }
  CountdownProblem p;
  if (!numbers_from_text(g.substr(0, sep), &p.numbers)) {
    if (why) *why = "the numbers must be integers separated by commas or spaces";
    return std::nullopt;
  }
  if (!parse_int(g.substr(sep + sep_len), &p.target) || std::abs(p.target) > kMaxMagnitude) {
    if (why) *why = "the target must be an integer";
    return std::nullopt;
  }
  std::string w;
  if (!valid_problem(p, &w)) {
    if (why) *why = w;
    return std::nullopt;
  }
  return p;
}

CountdownCheck check_countdown(const CountdownProblem& p, std::string_view completion) {
  CountdownCheck c;
  auto found = find_expression(completion);
  if (!found) {
    c.reason = "no expression found (no <answer>…</answer> and no expression line)";
    return c;
  }
  std::string_view e = *found;
  c.expression = utf8_clip(e, kCountdownMaxExpressionBytes);
  if (e.size() > kCountdownMaxExpressionBytes) {
    c.reason = "expression longer than " + std::to_string(kCountdownMaxExpressionBytes) + " bytes";
    return c;
  }
  // "expression = target" is accepted; the right side must then be the target.
  std::optional<int64_t> claimed;
  size_t eq = e.find('=');
  if (eq != std::string_view::npos) {
    if (e.find('=', eq + 1) != std::string_view::npos) {
      c.reason = "more than one '='";
      return c;
    }
    int64_t v;
    if (!parse_int(e.substr(eq + 1), &v)) {
      c.reason = "the right side of '=' is not an integer";
      return c;
    }
    claimed = v;
    e = e.substr(0, eq);
  }
  std::vector<Token> toks;
  std::string why;
  if (!tokenize(e, &toks, &why)) {
    c.reason = why;
    return c;
  }
  Q value;
  std::vector<i128> used;
  Parser parser(toks);
  if (!parser.parse(&value, &used, &why)) {
    c.reason = why;
    return c;
  }
  c.well_formed = true;
  if (parser.eval_error() == EvalError::division_by_zero) {
    c.reason = "division by zero";
    return c;
  }
  if (parser.eval_error() == EvalError::overflow) {
    c.reason = "an intermediate value is too large for exact evaluation";
    return c;
  }
  c.value = q_text(value);
  // The multiset of numbers used must equal the given one.
  std::map<i128, int> count;
  for (int64_t n : p.numbers) ++count[n];
  for (i128 n : used) --count[n];
  for (const auto& [n, k] : count) {
    if (k < 0) {
      bool given = std::find(p.numbers.begin(), p.numbers.end(), int64_t(n)) != p.numbers.end();
      c.reason = given ? "uses " + i128_text(n) + " more often than given"
                       : "uses " + i128_text(n) + ", which is not among the given numbers";
      return c;
    }
  }
  for (const auto& [n, k] : count) {
    if (k > 0) {
      c.reason = "does not use " + i128_text(n);
      return c;
    }
  }
  if (claimed && *claimed != p.target) {
    c.reason =
        "claims = " + std::to_string(*claimed) + ", the target is " + std::to_string(p.target);
    return c;
  }
  if (value.den != 1 || value.num != p.target) {
    c.reason = "evaluates to " + c.value + ", the target is " + std::to_string(p.target);
    return c;
  }
  c.correct = true;
  return c;
}

CountdownRewardOptions CountdownRewardOptions::from_json(const Json& j, std::string_view where) {
  reject_unknown_keys(j, {"format_score"}, where);
  CountdownRewardOptions o;
  o.format_score = get_optional<double>(j, "format_score", where, 0.0);
  return o;
}

RewardResult CountdownReward::score(const RewardInput& in) const {
  std::string why;
  auto p = countdown_problem_from_json(in.reference, &why);
  if (!p) return reward_skip(why);
  CountdownCheck c = check_countdown(*p, in.completion);
  RewardResult r = reward_ok(c.correct ? 1.0 : c.well_formed ? opts_.format_score : 0.0, c.reason);
  r.details = {{"expression", c.expression}, {"value", c.value}, {"well_formed", c.well_formed}};
  return r;
}

}  // namespace r1kit::rewards
