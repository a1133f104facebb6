// math_equivalent: each equivalence rule on parsed values (exact vs decimal, radicals, symbolic
// identities, sets/tuples/intervals, equations and inequalities, matrices, one-way rules), the
// expansion guard and the deadline.
#include <gtest/gtest.h>

#include <chrono>
#include <string>

#include "rewards/math_equiv.h"
#include "rewards/math_value.h"

namespace r1kit::rewards {
namespace {

bool eq(const std::string& gold, const std::string& pred, EquivOptions o = {}) {
  SymbolTable syms;
  Deadline dl(2.0);
  ParseResult g = parse_math(gold, syms, dl);
  ParseResult p = parse_math(pred, syms, dl);
  EXPECT_TRUE(g.ok) << gold << ": " << g.error;
  EXPECT_TRUE(p.ok) << pred << ": " << p.error;
  if (!g.ok || !p.ok) return false;
  return math_equivalent(g.value, gold, p.value, pred, syms, dl, o);
}

TEST(MathEquiv, ExactNumbers) {
  EXPECT_TRUE(eq("\\frac{1}{2}", "2/4"));
  EXPECT_TRUE(eq("3\\sqrt{13}", "\\sqrt{117}"));
  EXPECT_TRUE(eq("\\sqrt{2}+\\sqrt{5}", "\\sqrt 5+\\sqrt 2"));
  EXPECT_TRUE(eq("\\frac{9}{4}\\pi", "\\frac94\\pi"));
  EXPECT_TRUE(eq("e^{i\\pi}", "-1"));
  EXPECT_FALSE(eq("\\frac{1}{3}", "\\frac{1}{4}"));
  EXPECT_FALSE(eq("\\frac{1}{2^{99}}", "\\frac{1}{2^{98}}"));  // tiny values stay exact
  EXPECT_FALSE(eq("\\frac{1}{2004!}", "\\frac{1}{2006!}"));
  EXPECT_FALSE(eq("4", "4\\sqrt{2}"));
}

TEST(MathEquiv, DecimalsUseTolerance) {
  EXPECT_TRUE(eq("1000", "1000.0"));
  EXPECT_TRUE(eq("\\frac{1}{12}", "0.0833333333333333"));
  EXPECT_TRUE(eq("4.123105625617661", "\\sqrt{17}"));
  EXPECT_FALSE(eq("\\frac{1}{3}", "0.33"));  // default rel_tol 1e-6
  EquivOptions rounding;
  rounding.float_rounding = 2;
  EXPECT_TRUE(eq("\\frac{1}{3}", "0.33", rounding));
  EXPECT_FALSE(eq("\\frac{1}{3}", "0.34", rounding));
  EXPECT_FALSE(eq("\\frac{1}{3}", "1/3.0001"));
}

TEST(MathEquiv, SymbolicIdentities) {
  EXPECT_TRUE(eq("(x+2)^2 + (y-3)^2", "x^2 + y^2 + 4x - 6y + 13"));
  EXPECT_TRUE(eq("\\frac{x+2}{7}", "\\frac{x}{7}+\\frac{2}{7}"));
  EXPECT_TRUE(eq("\\tan^2(y)+1", "\\sec^2(y)"));  // random-point identity test
  EXPECT_TRUE(eq("\\sqrt{1/n}", "\\frac{1}{\\sqrt{n}}"));
  EXPECT_FALSE(eq("x+2n+1", "x+1"));
  EXPECT_FALSE(eq("(a+5)(b+2)", "(+5)(b+2)"));
  EXPECT_FALSE(eq("f(x)", "f(y)"));
  EquivOptions loose;
  loose.strict = false;
  EXPECT_TRUE(eq("f(x)", "f(y)", loose));
}

TEST(MathEquiv, Collections) {
  EXPECT_TRUE(eq("\\{1, 2\\}", "\\{2, 1\\}"));
  EXPECT_TRUE(eq("1, 2, 2", "2, 1"));  // a set: duplicates count once
  EXPECT_TRUE(eq("1 \\pm \\sqrt{19}", "\\{1-\\sqrt{19}, 1+\\sqrt{19}\\}"));
  EXPECT_FALSE(eq("(1, 2)", "(2, 1)"));
  EXPECT_TRUE(eq("(1, 4.5)", "(1, \\frac{9}{2})"));
  EXPECT_TRUE(eq("[0,1)", "[0, 1)"));
  EXPECT_FALSE(eq("[0,1)", "(0,1)"));
  EXPECT_FALSE(eq("[0,1)", "[0,1]"));
  EXPECT_TRUE(eq("(1, \\infty)", "(1, +\\infty)"));
  EXPECT_TRUE(eq("(0,1) \\cup (2,3)", "(2,3) \\cup (0,1)"));
  EXPECT_TRUE(eq("(1,3)", "\\{1,3\\}"));  // written order kept
  EXPECT_FALSE(eq("(3,1)", "\\{1,3\\}"));
  EquivOptions ordered;
  ordered.ordered_lists = true;
  EXPECT_FALSE(eq("10, 4, -2", "4, 10, -2", ordered));
  EXPECT_TRUE(eq("10, 4, -2", "4, 10, -2"));
}

TEST(MathEquiv, Matrices) {
  EXPECT_TRUE(
      eq("\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}", "\\begin{bmatrix}1&2\\\\3&4\\end{bmatrix}"));
  EXPECT_TRUE(
      eq("\\begin{pmatrix}6&8\\\\10&12\\end{pmatrix}",
         "\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}+\\begin{pmatrix}5&6\\\\7&8\\end{pmatrix}"));
  EXPECT_FALSE(
      eq("\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}", "\\begin{pmatrix}1&2\\\\3&5\\end{pmatrix}"));
  EXPECT_FALSE(eq("\\begin{pmatrix}1&2\\end{pmatrix}", "\\begin{pmatrix}1\\\\2\\end{pmatrix}"));
}

TEST(MathEquiv, EquationsAndNames) {
  EXPECT_TRUE(eq("k=1", "1"));  // a name on the left: the value
  EXPECT_TRUE(eq("1", "x=1"));
  EXPECT_TRUE(eq("|AB|=1", "1"));
  EXPECT_TRUE(eq("(p,q)=(3,2)", "(3,2)"));
  EXPECT_FALSE(eq("a+3z=0", "0"));  // not a name: not its right side
  EXPECT_FALSE(eq("7 = 11a+c", "11a+c"));
  EXPECT_TRUE(eq("2x = 4", "2"));  // one-variable linear: its solution (lsolve)
  EXPECT_TRUE(eq("2x+4y-3=0", "y=-\\frac{1}{2}x+\\frac{3}{4}"));  // proportional
  EXPECT_TRUE(eq("34x+45y-20z+100=0", "-34x-45y+20z-100=0"));
  EXPECT_FALSE(eq("5x - 7y + 11z + 4 = 0", "x + y - z + 2 = 0"));
  EXPECT_FALSE(eq("x=1, y=2", "x=2, y=1"));
}

TEST(MathEquiv, Inequalities) {
  EXPECT_TRUE(eq("x \\leq 5", "5 \\geq x"));
  EXPECT_TRUE(eq("x < 1", "-x > -1"));
  EXPECT_FALSE(eq("x < 1", "x > -1"));
  EXPECT_FALSE(eq("x \\geq 5", "x \\leq 5"));
  EXPECT_TRUE(eq("x \\geq 5", "[5, \\infty)"));
  EXPECT_TRUE(eq("-2 \\le x \\le 7", "x \\in [-2,7]"));
  EXPECT_FALSE(eq("x \\in [-2,7]", "-2 \\le x \\le 7"));  // only with allow_set_relation
  EquivOptions allow;
  allow.allow_set_relation = true;
  EXPECT_TRUE(eq("x \\in [-2,7]", "-2 \\le x \\le 7", allow));
  EXPECT_TRUE(eq("1\\leq|z|\\leq \\frac{3}{2}", "[-\\frac{3}{2}, -1] \\cup [1, \\frac{3}{2}]"));
  EXPECT_TRUE(eq("0<f(x)<1", "(0,1)"));
}

TEST(MathEquiv, PercentAndText) {
  EXPECT_TRUE(eq("28\\%", "28"));
  EXPECT_TRUE(eq("28\\%", "0.28"));
  EXPECT_TRUE(eq("20", "20\\%"));
  EXPECT_FALSE(eq("28\\%", "29"));
  EXPECT_TRUE(eq("\\text{Evelyn}", "\\text{evelyn}"));
  EXPECT_TRUE(eq("\\text{(C)}", "\\text{C}"));
  EXPECT_FALSE(eq("\\text{E}", "\\text{d}"));
}

// Expansion that would blow up is refused before GiNaC sees it; the answer is decided by the
// numeric identity test instead, fast.
TEST(MathEquiv, GuardedExpansionStaysFast) {
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_TRUE(eq("(x+y+z+w)^{50}", "(w+z+y+x)^{50}"));
  EXPECT_TRUE(eq("(x+1)^{1000}", "(1+x)^{1000}"));
  EXPECT_FALSE(eq("(x+1)^{1000}", "(x+1)^{999}(x+2)"));
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_LT(s, 1.0);
}

TEST(MathEquiv, DeadlineIsChecked) {
  SymbolTable syms;
  Deadline parse_dl(2.0);
  std::string a, b;
  for (int i = 0; i < 300; ++i) {
    a += "\\{" + std::to_string(i) + "x\\},";
    b += "\\{" + std::to_string(299 - i) + "x\\},";
  }
  a += "0";
  b += "0";
  ParseResult g = parse_math(a, syms, parse_dl);
  ParseResult p = parse_math(b, syms, parse_dl);
  ASSERT_TRUE(g.ok && p.ok);
  Deadline dl(1e-9);
  EXPECT_THROW(math_equivalent(g.value, a, p.value, b, syms, dl), BudgetExceeded);
}

}  // namespace
}  // namespace r1kit::rewards
