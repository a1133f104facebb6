// Countdown (TinyZero / "Countdown-Tasks"): the completion's expression must use each given number
// exactly once, only + - * / and parentheses, and equal the target, evaluated with exact rationals
// (no floating point, no eval). The expression is taken from the last <answer>…</answer> when
// present, else the last line that looks like an expression ("… = target" is accepted).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/json.h"
#include "rewards/reward.h"

namespace r1kit::rewards {

struct CountdownProblem {
  std::vector<int64_t> numbers;
  int64_t target = 0;
};

// From a dataset reference: {"numbers":[…],"target":N}, {"nums":[…],"target":N} or the shared
// data's {"input":"30,100,93","output":"23"}; std::nullopt (with *why) when unusable.
std::optional<CountdownProblem> countdown_problem_from_json(const Json& ref, std::string* why);
// From a command-line gold string: "30,100,93=23", "30 100 93 -> 23" or the JSON forms above.
std::optional<CountdownProblem> countdown_problem_from_text(std::string_view gold,
                                                            std::string* why);

struct CountdownCheck {
  bool correct = false;
  bool well_formed = false;  // an expression was found and parsed
  std::string expression;    // as found
  std::string value;         // its exact value ("23", "7/2"), empty when it did not evaluate
  std::string reason;
};
CountdownCheck check_countdown(const CountdownProblem& p, std::string_view completion);

// Limits on what check_countdown reads: longer expressions, deeper parentheses or more numbers are
// not well formed; intermediate values are exact rationals of 128-bit integers (an overflow makes
// the expression incorrect, with the reason).
constexpr size_t kCountdownMaxExpressionBytes = 1024;
constexpr size_t kCountdownMaxDepth = 64;
constexpr size_t kCountdownMaxNumbers = 32;

// The countdown reward: 1 when check_countdown says correct, `format_score` when an expression was
// found and parsed but is wrong (TinyZero gives 0.1), else 0. The problem comes from the
// reference row (countdown_problem_from_json); an unusable one is a skip.
struct CountdownRewardOptions {
  double format_score = 0.0;
  static CountdownRewardOptions from_json(const Json& j, std::string_view where);
};

class CountdownReward : public Reward {
 public:
  explicit CountdownReward(CountdownRewardOptions opts = {}) : opts_(opts) {}
  std::string name() const override { return "countdown"; }
  RewardResult score(const RewardInput& in) const override;

 private:
  CountdownRewardOptions opts_;
};

}  // namespace r1kit::rewards
