// Hostile input for the math verifier: deep nesting, a megabyte of braces, towers of powers,
// stacked factorials, long \frac chains, huge numbers and sets, NUL bytes and invalid UTF-8. Each
// must come back with a verdict within the time budget (plus a margin for the cooperative
// deadline's granularity and sanitizer builds), on the gold side, the prediction side and both.
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

#include "rewards/math_verify.h"

namespace r1kit::rewards {
namespace {

constexpr double kBudget = 0.5;  // seconds per verify() call
constexpr double kMargin = 1.0;  // deadline granularity, ASan, a loaded 2-core CI machine

std::string repeat(const std::string& unit, size_t bytes) {
  std::string s;
  s.reserve(bytes + unit.size());
  while (s.size() + unit.size() <= bytes) s += unit;
  return s;
}
std::string nest(const std::string& open, const std::string& mid, const std::string& close,
                 size_t depth) {
  std::string s;
  for (size_t i = 0; i < depth; ++i) s += open;
  s += mid;
  for (size_t i = 0; i < depth; ++i) s += close;
  return s;
}

struct Case {
  std::string name, text;
};

std::vector<Case> hostile_inputs() {
  const size_t mb = 1 << 20;
  std::vector<Case> cases = {
      {"1MB of {", repeat("{", mb)},
      {"1MB of }", repeat("}", mb)},
      {"1MB of {} pairs", repeat("{}", mb)},
      {"boxed 1MB of {", std::string("\\boxed{") + repeat("{", mb)},
      {"boxed balanced 1MB", std::string("\\boxed{") + nest("{", "1", "}", mb / 2 - 8) + "}"},
      {"1MB of \\boxed{", repeat("\\boxed{", mb)},
      {"nested parens 100k", nest("(", "1", ")", 100000)},
      {"nested \\left( 20k", nest("\\left(", "1", "\\right)", 20000)},
      {"nested \\frac 10k", nest("\\frac{1}{", "2", "}", 10000)},
      {"nested \\sqrt 10k", nest("\\sqrt{", "2", "}", 10000)},
      {"nested \\sin 10k", nest("\\sin(", "x", ")", 10000)},
      {"nested powers 5k", nest("2^{", "2", "}", 5000)},
      {"tower 10^{10^{10}}", "10^{10^{10}}"},
      {"tower 2^2^2^2^2^2", "2^{2^{2^{2^{2^{2}}}}}"},
      {"tower ungrouped", repeat("9^", 2000) + "9"},
      {"9!!!!!!", "9!!!!!!"},
      {"(10^{100})!", "(10^{100})!"},
      {"1000000!", "1000000!"},
      {"factorial chain", std::string("3") + repeat("!", 10000)},
      {"huge binomial", "\\binom{10^{9}}{5 \\cdot 10^{8}}"},
      {"e^{10^{10}} difference", "e^{10^{10}} - e^{10^{10}} + 1"},
      {"frac chain sum 20k", repeat("\\frac{1}{2}+", 240000) + "1"},
      {"frac chain product", repeat("\\frac{3}{7}\\cdot", 100000) + "1"},
      {"1MB of digits", repeat("7", mb)},
      {"long decimal", std::string("0.") + repeat("9", 200000)},
      {"huge exponent literal", "1e999999999"},
      {"big set", std::string("\\{") + repeat("1,", 200000) + "1\\}"},
      {"big matrix", std::string("\\begin{pmatrix}") + repeat("1&", 100000) + std::string("1\\\\") +
                         repeat("1&", 100000) + "1\\end{pmatrix}"},
      {"unclosed environments", repeat("\\begin{pmatrix}", 50000)},
      {"interval soup", repeat("[0,1)\\cup(", 50000)},
      {"relation chain", repeat("x<", 100000) + "1"},
      {"1MB of backslashes", repeat("\\", mb)},
      {"1MB of $", repeat("$", mb)},
      {"1MB of ^_", repeat("^_", mb)},
      {"answer tags", repeat("<answer>", mb / 2)},
      {"phrases", repeat("the answer is ", mb)},
      {"NUL bytes", std::string("1\0 2\0\\frac{1}{\0}", 15)},
      {"boxed NUL", std::string("\\boxed{\0\0\0}", 12)},
      {"all NUL", std::string(100000, '\0')},
      {"invalid UTF-8", "\xff\xfe\\frac{\xC3(}{\xC0\xAF} = \xED\xA0\x80"},
      {"random bytes", ""},
      {"symbolic blowup", std::string("(") + repeat("x+", 500) + "1)^{1000}"},
      {"expand blowup", "(x+y+z+w)^{200} - (w+z+y+x)^{200}"},
      {"many symbols", repeat("a", 1) + repeat("*b_{1}", 20000)},
      {"trig identity depth", repeat("\\sin(\\cos(", 2000) + std::string("x") + repeat("))", 2000)},
  };
  // A long box followed by near-copies of its content: finding the candidate again by
  // searching the text would be quadratic.
  std::string near = std::string("\\boxed{") + std::string(250000, 'A') + "}";
  for (int k = 0; k < 3; ++k) near += std::string(249999, 'A') + "B";
  cases.push_back({"long box then near-copies", near});
  std::string bytes;
  uint64_t s = 0x9E3779B97F4A7C15ull;
  for (int i = 0; i < 200000; ++i) {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    bytes += static_cast<char>(s & 0xFF);
  }
  for (auto& c : cases)
    if (c.name == "random bytes") c.text = bytes;
  return cases;
}

double timed_verify(const std::string& gold, const std::string& pred, VerifyMode mode,
                    VerifyResult* out) {
  VerifyOptions o;
  o.mode = mode;
  o.time_budget_s = kBudget;
  const auto t0 = std::chrono::steady_clock::now();
  *out = verify(gold, pred, o);
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

void expect_bounded(const Case& c, const std::string& gold, const std::string& pred,
                    VerifyMode mode, const char* side) {
  VerifyResult r;
  const double s = timed_verify(gold, pred, mode, &r);
  EXPECT_LT(s, kBudget + kMargin) << c.name << " (" << side << ")";
  const int v = static_cast<int>(r.verdict);
  EXPECT_TRUE(v >= 0 && v <= 2) << c.name;
  if (r.verdict == Verdict::skip) {
    EXPECT_FALSE(r.reason.empty()) << c.name << " (" << side << ")";
  }
}

TEST(MathAdversarial, HostileGoldAndPredictionReturnWithinBudget) {
  for (const Case& c : hostile_inputs()) {
    expect_bounded(c, "5", c.text, VerifyMode::math, "prediction");
    expect_bounded(c, "5", "\\boxed{" + c.text + "}", VerifyMode::math, "boxed prediction");
    expect_bounded(c, c.text, "\\boxed{5}", VerifyMode::math, "gold");
    expect_bounded(c, c.text, c.text, VerifyMode::math, "both");
  }
}

TEST(MathAdversarial, OtherModesReturnWithinBudget) {
  for (const Case& c : hostile_inputs()) {
    expect_bounded(c, "72", c.text, VerifyMode::gsm8k, "gsm8k prediction");
    expect_bounded(c, c.text, "72", VerifyMode::gsm8k, "gsm8k gold");
    expect_bounded(c, "30,100,93=23", c.text, VerifyMode::countdown, "countdown prediction");
    expect_bounded(c, c.text, "100-93+30-14", VerifyMode::countdown, "countdown gold");
  }
}

// Values too large to compute are never declared equal to something else.
TEST(MathAdversarial, HugeValuesAreNotEqualToNeighbours) {
  const std::vector<std::pair<std::string, std::string>> pairs = {
      {"10^{10^{10}}", "10^{10^{10}}+1"},
      {"9!!!!!!", "9!!!!!!+1"},
      {"(10^{100})!", "(10^{100})! + 1"},
      {"1000000!", "999999!"},
      {"2^{2^{2^{2^{2^{2}}}}}", "2^{2^{2^{2^{2^{2}}}}} - 1"},
      {"10^{10^{10}}", "5"},
  };
  for (const auto& [gold, pred] : pairs) {
    VerifyResult r;
    const double s = timed_verify(gold, "\\boxed{" + pred + "}", VerifyMode::math, &r);
    EXPECT_LT(s, kBudget + kMargin) << gold << " vs " << pred;
    EXPECT_NE(r.verdict, Verdict::correct) << gold << " vs " << pred << ": " << r.reason;
  }
}

// The deadline covers the whole call: a tiny budget still gives a verdict, promptly.
TEST(MathAdversarial, TinyBudgetStillGivesAVerdict) {
  VerifyOptions o;
  o.time_budget_s = 1e-6;
  const auto t0 = std::chrono::steady_clock::now();
  const VerifyResult r = verify("(x+y+z+w)^{50}", "\\boxed{(w+z+y+x)^{50}}", o);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_LT(s, kMargin);
  const int v = static_cast<int>(r.verdict);
  EXPECT_TRUE(v >= 0 && v <= 2);
  if (r.verdict != Verdict::correct) {
    EXPECT_FALSE(r.reason.empty());
  }
}

}  // namespace
}  // namespace r1kit::rewards
