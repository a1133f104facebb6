// parse_math: latex2sympy2_extended's conformance strings (good ones parse, >= 95%, and equal
// the expected expression where it is a plain expression; bad ones are rejected), the parser's
// features one by one, and its bounds (depth, number sizes, the deadline).
#include <ginac/ginac.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "core/json.h"
#include "rewards/math_equiv.h"
#include "rewards/math_value.h"

namespace r1kit::rewards {
namespace {

const std::string kData = R1KIT_SHARED_DIR "/data/rewards/";

struct Parsed {
  bool ok;
  std::string text;
  std::string error;
};

Parsed parse(const std::string& s, bool plain = false) {
  SymbolTable syms;
  Deadline dl(1.0);
  ParseOptions o;
  o.plain_text = plain;
  ParseResult r = parse_math(s, syms, dl, o);
  return {r.ok, r.ok ? to_string(r.value) : "", r.error};
}

// --- a reader for the expected SymPy source ("_Add(_Mul(2, x), Pow(y, -1))") ----------------
// Only plain expressions are converted; anything else (Limit, Integral, Matrix, FiniteSet, Eq...)
// returns false and the row is checked for parsing only.
class SympySource {
 public:
  SympySource(std::string_view s, SymbolTable& syms) : s_(s), syms_(syms) {}
  bool read(GiNaC::ex* out) {
    try {
      *out = sum();
      skip();
      return pos_ == s_.size();
    } catch (const Unsupported&) {
      return false;
    }
  }

 private:
  struct Unsupported {};
  std::string_view s_;
  size_t pos_ = 0;
  SymbolTable& syms_;

  void skip() {
    while (pos_ < s_.size() && s_[pos_] == ' ') ++pos_;
  }
  bool eat(char c) {
    skip();
    if (pos_ < s_.size() && s_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }
  GiNaC::ex sum() {
    GiNaC::ex a = product();
    for (;;) {
      if (eat('+')) {
        a = a + product();
      } else if (eat('-')) {
        a = a - product();
      } else {
        return a;
      }
    }
  }
  GiNaC::ex product() {
    GiNaC::ex a = unary();
    for (;;) {
      skip();
      if (s_.substr(pos_, 2) == "**") return a;
      if (eat('*')) {
        a = a * unary();
      } else if (eat('/')) {
        a = a / unary();
      } else {
        return a;
      }
    }
  }
  GiNaC::ex unary() {
    if (eat('-')) return -unary();
    GiNaC::ex b = atom();
    skip();
    if (s_.substr(pos_, 2) == "**") {
      pos_ += 2;
      return GiNaC::pow(b, unary());
    }
    return b;
  }
  std::string quoted() {
    skip();
    char q = s_[pos_++];
    size_t e = s_.find(q, pos_);
    std::string t(s_.substr(pos_, e - pos_));
    pos_ = e + 1;
    return t;
  }
  std::vector<GiNaC::ex> args() {
    std::vector<GiNaC::ex> a;
    if (eat(')')) return a;
    for (;;) {
      skip();
      size_t save = pos_;
      while (pos_ < s_.size() && std::isalpha(static_cast<unsigned char>(s_[pos_]))) ++pos_;
      if (s_.substr(save, pos_ - save) == "evaluate" && eat('=')) {  // evaluate=False
        while (pos_ < s_.size() && std::isalpha(static_cast<unsigned char>(s_[pos_]))) ++pos_;
      } else {
        pos_ = save;
        a.push_back(sum());
      }
      if (eat(')')) return a;
      if (!eat(',')) throw Unsupported{};
    }
  }
  GiNaC::ex atom() {
    skip();
    if (eat('(')) {
      GiNaC::ex e = sum();
      if (!eat(')')) throw Unsupported{};
      return e;
    }
    size_t b = pos_;
    if (pos_ < s_.size() && std::isdigit(static_cast<unsigned char>(s_[pos_]))) {
      while (pos_ < s_.size() &&
             (std::isdigit(static_cast<unsigned char>(s_[pos_])) || s_[pos_] == '.')) {
        ++pos_;
      }
      return number(std::string(s_.substr(b, pos_ - b)));
    }
    while (pos_ < s_.size() && (std::isalnum(static_cast<unsigned char>(s_[pos_])) ||
                                s_[pos_] == '_' || s_[pos_] == '.')) {
      ++pos_;
    }
    std::string name(s_.substr(b, pos_ - b));
    if (name.empty()) throw Unsupported{};
    if (name == "S.Half") return GiNaC::numeric(1, 2);
    if (!eat('(')) {
      if (name == "pi") return GiNaC::Pi;
      if (name == "E") return GiNaC::exp(GiNaC::ex(1));
      if (name == "I") return GiNaC::I;
      if (name == "oo") return syms_.infinity();
      if (name.find('.') != std::string::npos) throw Unsupported{};
      return syms_.get(name);
    }
    if (name == "Symbol") {
      std::string n;
      for (char c : quoted()) {  // a Python literal: '\\theta' is \theta
        if (!(c == '\\' && !n.empty() && n.back() == '\\')) n += c;
      }
      if (!eat(')')) throw Unsupported{};
      size_t u = n.find("_{");
      if (u != std::string::npos && n.back() == '}')
        n = n.substr(0, u + 1) + n.substr(u + 2, n.size() - u - 3);
      return syms_.get(n);
    }
    if (name == "Rational" && pos_ < s_.size() && (s_[pos_] == '\'' || s_[pos_] == '"')) {
      std::string q = quoted();
      if (!eat(')')) throw Unsupported{};
      return number(q);
    }
    std::vector<GiNaC::ex> a = args();
    auto one = [&]() {
      if (a.size() != 1) throw Unsupported{};
      return a[0];
    };
    if (name == "_Add" || name == "Add") {
      GiNaC::ex r = 0;
      for (auto& x : a) r += x;
      return r;
    }
    if (name == "_Mul" || name == "Mul") {
      GiNaC::ex r = 1;
      for (auto& x : a) r *= x;
      return r;
    }
    if ((name == "_Pow" || name == "Pow") && a.size() == 2) return GiNaC::pow(a[0], a[1]);
    if (name == "Rational" && a.size() == 2) return a[0] / a[1];
    if (name == "Integer") return one();
    if (name == "sin") return GiNaC::sin(one());
    if (name == "cos") return GiNaC::cos(one());
    if (name == "tan") return GiNaC::tan(one());
    if (name == "csc") return 1 / GiNaC::sin(one());
    if (name == "sec") return 1 / GiNaC::cos(one());
    if (name == "asin") return GiNaC::asin(one());
    if (name == "acos") return GiNaC::acos(one());
    if (name == "atan") return GiNaC::atan(one());
    if (name == "sinh") return GiNaC::sinh(one());
    if (name == "cosh") return GiNaC::cosh(one());
    if (name == "tanh") return GiNaC::tanh(one());
    if (name == "asinh") return GiNaC::asinh(one());
    if (name == "acosh") return GiNaC::acosh(one());
    if (name == "atanh") return GiNaC::atanh(one());
    if (name == "sqrt") return GiNaC::sqrt(one());
    if (name == "exp") return GiNaC::exp(one());
    if (name == "_Abs" || name == "Abs") return GiNaC::abs(one());
    if (name == "_factorial" || name == "factorial") return GiNaC::factorial(one());
    if (name == "root" && a.size() == 2) return GiNaC::pow(a[0], 1 / a[1]);
    if (name == "_log" && a.size() == 2) {
      if (a[1].is_equal(GiNaC::exp(GiNaC::ex(1)))) return GiNaC::log(a[0]);
      return GiNaC::log(a[0]) / GiNaC::log(a[1]);
    }
    throw Unsupported{};
  }
  static GiNaC::ex number(const std::string& t) {
    bool neg = !t.empty() && t[0] == '-';
    std::string d = neg ? t.substr(1) : t;
    size_t dot = d.find('.');
    std::string digits = dot == std::string::npos ? d : d.substr(0, dot) + d.substr(dot + 1);
    GiNaC::numeric v(digits.c_str());
    if (dot != std::string::npos) {
      v = v / GiNaC::pow(GiNaC::numeric(10), GiNaC::numeric(static_cast<long>(d.size() - dot - 1)));
    }
    return neg ? -v : v;
  }
};

TEST(MathParse, Latex2Sympy2GoodPairsParseAndMatch) {
  int rows = 0, parsed = 0, compared = 0, equal = 0;
  for (const Json& row : read_jsonl_file(kData + "latex2sympy2_extended_good_pairs.jsonl")) {
    ++rows;
    const std::string latex = row["latex"].get<std::string>();
    SymbolTable syms;
    Deadline dl(1.0);
    ParseResult r = parse_math(latex, syms, dl);
    if (!r.ok) {
      std::printf("good pair did not parse: %s (%s)\n", latex.c_str(), r.error.c_str());
      continue;
    }
    ++parsed;
    if (!row.contains("expected_sympy_src")) continue;
    GiNaC::ex expected;
    const std::string expected_src = row["expected_sympy_src"].get<std::string>();
    SympySource src(expected_src, syms);
    if (!src.read(&expected)) continue;  // not a plain expression: parsing is what is checked
    ++compared;
    MathValue want;
    want.ex = expected;
    if (math_equivalent(want, "", r.value, latex, syms, dl)) {
      ++equal;
    } else {
      std::printf("good pair differs: %s -> %s, expected %s\n", latex.c_str(),
                  to_string(r.value).c_str(), row["expected_sympy_src"].get<std::string>().c_str());
    }
  }
  std::printf("latex2sympy2 good pairs: %d/%d parse, %d/%d equal the expected expression\n", parsed,
              rows, equal, compared);
  EXPECT_EQ(rows, 206);
  EXPECT_GE(parsed, rows * 95 / 100);
  EXPECT_GE(compared, 110);
  EXPECT_EQ(equal, compared);
}

TEST(MathParse, Latex2Sympy2BadStringsRejected) {
  int bad = 0;
  for (const Json& row : read_jsonl_file(kData + "latex2sympy2_extended_bad_strings.jsonl")) {
    ++bad;
    const std::string latex = row["latex"].get<std::string>();
    Parsed p = parse(latex);
    EXPECT_FALSE(p.ok) << latex << " parsed as " << p.text;
    Parsed q = parse(latex, /*plain=*/true);
    EXPECT_FALSE(q.ok) << latex << " parsed (plain text) as " << q.text;
  }
  EXPECT_EQ(bad, 37);
}

TEST(MathParse, Numbers) {
  EXPECT_EQ(parse("1,234").text, "1234");
  EXPECT_EQ(parse("7,425,000").text, "7425000");
  EXPECT_EQ(parse("14{,}916").text, "14916");
  EXPECT_EQ(parse("11,\\! 111,\\! 100").text, "11111100");
  EXPECT_EQ(parse("0.25").text, "1/4");
  EXPECT_EQ(parse(".4").text, "2/5");
  EXPECT_EQ(parse("2.5E2").text, "250");
  EXPECT_EQ(parse("204_5").text, "204");
  // plain text: decimal comma (one comma only) and a thousands space
  EXPECT_EQ(parse("1,22", true).text, "61/50");
  EXPECT_EQ(parse("0,111", true).text, "111/1000");
  EXPECT_EQ(parse("1 000", true).text, "1000");
  EXPECT_EQ(parse("1,2", false).text, "{1, 2}");
  // inside brackets a comma separates: (12,102) is a pair
  EXPECT_EQ(parse("(12,102)").text, "(12, 102)");
}

TEST(MathParse, StructuresAndRelations) {
  EXPECT_EQ(parse("[0,1)").text, "[0, 1)");
  EXPECT_EQ(parse("(1, 2]").text, "(1, 2]");
  EXPECT_EQ(parse("\\{1,2\\}").text, "{1, 2}");
  EXPECT_EQ(parse("1 \\pm \\sqrt{19}").text, "{1+sqrt(19), 1-sqrt(19)}");
  EXPECT_EQ(parse("x = 5+5+1 = 11").text, "11");
  EXPECT_EQ(parse("x \\approx 11").text, "11");
  EXPECT_EQ(parse("x = 1/3 \\approx 0.33").text, "x = 1/3");
  EXPECT_EQ(parse("x \\in [-2,7]").text, "[-2, 7]");
  EXPECT_EQ(parse("x \\geq 5").text, "x >= 5");
  EXPECT_EQ(parse("-2 \\le x < 7").text, "-2 <= x < 7");
  EXPECT_EQ(parse("(p,q)=(3,2)").text, "(p, q) = (3, 2)");
  EXPECT_EQ(parse("p=5,q=2;p=7,q=2").text, "{(p = 5, q = 2), (p = 7, q = 2)}");
  EXPECT_EQ(parse("[0,1) \\cup (2, \\infty)").text, "[0, 1) U (2, \\infty)");
  EXPECT_EQ(parse("\\begin{pmatrix}1 & 2 \\\\ 3 & 4\\end{pmatrix}").text, "[[1,2],[3,4]]");
  EXPECT_EQ(parse("\\begin{vmatrix}1 & 2 \\\\ 3 & 4\\end{vmatrix}").text, "-2");
  EXPECT_EQ(parse("\\text{Evelyn}").text, "\\text{Evelyn}");
  EXPECT_EQ(parse("\\text{13}").text, "13");
  EXPECT_EQ(parse("\\emptyset").text, "{}");
}

TEST(MathParse, ExpressionsAndFunctions) {
  EXPECT_EQ(parse("\\frac13").text, "1/3");
  EXPECT_EQ(parse("\\dfrac{10}{9}").text, "10/9");
  EXPECT_EQ(parse("\\sqrt[3]{8}").text, "2");
  EXPECT_EQ(parse("2^{10}").text, "1024");
  EXPECT_EQ(parse("5!").text, "120");
  EXPECT_EQ(parse("\\binom{5}{2}").text, "10");
  EXPECT_EQ(parse("\\sin\\frac{\\pi}{2}").text, "1");
  EXPECT_TRUE(parse("\\log_2 8").ok);
  EXPECT_EQ(parse("2 \\cdot 3 \\times 4 \\div 6").text, "4");
  EXPECT_EQ(parse("7:32").text, "7/32");
  EXPECT_EQ(parse("28\\%").text, "7/25 (%)");
  EXPECT_EQ(parse("\\lfloor 2.5 \\rfloor").text, "2");
  EXPECT_EQ(parse("|-3|").text, "3");
  EXPECT_EQ(parse("\\sum_{k=1}^{10} k").text, "55");
  EXPECT_EQ(parse("f(x) + 1").text, "1+f(x)");
  // plain text spellings
  EXPECT_EQ(parse("sqrt(4) + 2**3", true).text, "10");
  EXPECT_EQ(parse("pi/2", true).text, "1/2*Pi");
  // unicode (after normalize_answer) and words are not products of letters
  EXPECT_FALSE(parse("Therefore x").ok);
}

TEST(MathParse, BoundsRefuseHugeWork) {
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_FALSE(parse("10^{10^{10}}").ok);
  EXPECT_FALSE(parse("9!!!!!!").ok);
  EXPECT_FALSE(parse("100000!").ok);
  EXPECT_FALSE(parse("2^{2^{2^{2^{2}}}}").ok);
  EXPECT_FALSE(parse("(10^{5000}x)^{1000}").ok);
  EXPECT_FALSE(parse("\\binom{10^{9}}{500000}").ok);
  EXPECT_TRUE(parse("2^{2006}").ok);
  EXPECT_TRUE(parse("\\frac{1}{2004!}").ok);
  EXPECT_TRUE(parse("(x+1)^{1000}").ok);  // stays unexpanded (math_equiv never expands it)
  EXPECT_FALSE(parse("(x+1)^{100000}").ok);
  std::string deep(500, '(');
  deep += "1" + std::string(500, ')');
  Parsed d = parse(deep);
  EXPECT_FALSE(d.ok);
  EXPECT_EQ(d.error, "nesting too deep");
  std::string braces(1 << 20, '{');
  EXPECT_EQ(parse(braces).error, "answer too long");
  std::string many;
  for (int i = 0; i < 4000; ++i) many += "1+";
  many += "1";
  EXPECT_TRUE(parse(many).ok);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_LT(s, 2.0);
}

TEST(MathParse, DeadlineStopsTheParser) {
  SymbolTable syms;
  Deadline dl(1e-9);  // already over: the first clock read throws
  std::string many;
  for (int i = 0; i < 2000; ++i) many += "x+";
  many += "x";
  EXPECT_THROW(parse_math(many, syms, dl), BudgetExceeded);
}

}  // namespace
}  // namespace r1kit::rewards
