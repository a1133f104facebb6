// Equivalence of two parsed answers (gold first: some rules are one-directional, e.g. a gold
// "k = 1" accepts a bare "1" but a gold "a + 3z = 0" does not accept "0").
//   scalars: exact when both are exact (structural, then GiNaC normal/expand of the difference,
//     then a 1e-12 numeric check for constants such as 3\sqrt{13} vs \sqrt{117}, then a
//     random-point identity test for expressions with symbols); numeric with rel_tol only when
//     a side holds a decimal literal.
//   sets unordered; tuples, intervals (with their ends), matrices element-wise in order;
//   relations by their normal form (lhs - rhs scaled by a constant; inequalities by a positive
//   one); an equation with a plain name on the left (x = 2, f(x) = 1, (p, q) = (3, 2)) stands
//   for its right side, a one-variable linear equation for its solution (GiNaC lsolve).
// Every GiNaC step sees only inputs whose expansion is bounded, and the Deadline is checked
// between steps; BudgetExceeded propagates to the caller.
#pragma once

#include <string_view>

#include "rewards/budget.h"
#include "rewards/math_value.h"

namespace r1kit::rewards {

struct EquivOptions {
  double rel_tol = 1e-6;            // numeric comparison, only when a side is a decimal
  int float_rounding = -1;          // >= 0: a decimal also matches when both round equal there
  bool allow_set_relation = false;  // gold set/interval accepts a pred inequality (x \in [a,b]
                                    // vs a \le x \le b); the other direction is always on
  bool strict = true;          // false: one free symbol on each side may be renamed (f(x) ~ f(y))
  bool ordered_lists = false;  // bare lists "1, 2, 3" compare in order (Hendrycks MATH)
};

// gold_text / pred_text: the normalised answer strings, used when one side is a text value.
bool math_equivalent(const MathValue& gold, std::string_view gold_text, const MathValue& pred,
                     std::string_view pred_text, SymbolTable& symbols, Deadline& deadline,
                     const EquivOptions& opts = {});

// Text form used to compare text answers: lower case, letters/digits and a few signs only.
std::string text_key(std::string_view s);

}  // namespace r1kit::rewards
