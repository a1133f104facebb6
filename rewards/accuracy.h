// Math accuracy reward: verify() (math_verify.h) of the completion against the reference's gold
// answer. The gold is the first of `gold_fields` the row holds (default "answer", "gold",
// "solution": a MATH row's "answer" wins over its full "solution"); numbers are read as their
// JSON text. Verdicts: correct -> 1, incorrect -> 0 (reason says why), skip (unusable or missing
// gold) -> status skip. See docs/MATH_VERIFY.md for what the verifier accepts.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "rewards/math_verify.h"
#include "rewards/reward.h"

namespace r1kit::rewards {

struct AccuracyOptions {
  std::vector<std::string> gold_fields = {"answer", "gold", "solution"};
  VerifyOptions verify;  // mode math or gsm8k (countdown has its own reward)
  // Keys: gold_fields, mode, rel_tol, time_budget_s, pred_extract {answer_tag, boxed,
  // gsm8k_hashes, final_answer_phrase, answer_colon, last_number, whole_text, max_input_bytes,
  // max_candidates}, gold_extract {same}, strip_units, percent_as_fraction.
  static AccuracyOptions from_json(const Json& j, std::string_view where);
};

class AccuracyReward : public Reward {
 public:
  explicit AccuracyReward(AccuracyOptions opts = {}) : opts_(std::move(opts)) {}
  std::string name() const override { return "accuracy"; }
  RewardResult score(const RewardInput& in) const override;

 private:
  AccuracyOptions opts_;
};

}  // namespace r1kit::rewards
