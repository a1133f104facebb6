// Length shaping rewards. The length is RewardInput::completion_tokens when given (non-zero);
// otherwise the completion's code points (details.length_unit says which), or bytes when asked.
//   soft_overlong  DAPO's soft overlong punishment (Yu et al. 2025, eq. 13), with L = length:
//                    0                                  L <= L_max - L_cache
//                    ((L_max - L_cache) - L) / L_cache  L_max - L_cache < L <= L_max
//                    -1                                 L > L_max
//                  times `scale` (1 by default).
//   cosine_length  cosine length scaling (Yeo et al. 2025, "Demystifying Long Chain-of-Thought
//                  Reasoning in LLMs"): with t = min(L, max_length) / max_length,
//                    r = lo + (hi - lo) (1 + cos(pi t)) / 2
//                  where (hi, lo) = (max_value_correct, min_value_correct) for a correct answer
//                  (short correct answers earn most) and (min_value_wrong, max_value_wrong) for a
//                  wrong one (short wrong answers are punished most); past max_length the value
//                  is exceed_value when set. Correctness: the score of the component named
//                  `correct_from` in a composition (>= correct_threshold), else the reference's
//                  boolean `correct_field`; a skipped or failed source makes this skip or fail.
#pragma once

#include <optional>
#include <string>

#include "rewards/reward.h"

namespace r1kit::rewards {

enum class LengthUnit { tokens, chars, bytes };

// The length of a completion in `unit` (tokens fall back to code points when unknown);
// *used_unit says what was counted.
size_t completion_length(const RewardInput& in, LengthUnit unit, LengthUnit* used_unit);

// The DAPO formula above (without scale). Requires cache_length <= max_length.
double soft_overlong_penalty(size_t length, size_t max_length, size_t cache_length);

struct SoftOverlongOptions {
  size_t max_length = 20480;   // L_max
  size_t cache_length = 4096;  // L_cache
  double scale = 1.0;
  LengthUnit unit = LengthUnit::tokens;
  static SoftOverlongOptions from_json(const Json& j, std::string_view where);
};

class SoftOverlongReward : public Reward {
 public:
  explicit SoftOverlongReward(SoftOverlongOptions opts);
  std::string name() const override { return "soft_overlong"; }
  RewardResult score(const RewardInput& in) const override;

 private:
  SoftOverlongOptions opts_;
};

struct CosineLengthOptions {
  double min_value_wrong = -1.0;
  double max_value_wrong = -0.5;
  double min_value_correct = 0.5;
  double max_value_correct = 1.0;
  size_t max_length = 1000;
  std::optional<double> exceed_value;  // for L > max_length (unset: the value at max_length)
  std::string correct_from = "accuracy";
  std::string correct_field = "correct";
  double correct_threshold = 1.0;
  LengthUnit unit = LengthUnit::tokens;
  static CosineLengthOptions from_json(const Json& j, std::string_view where);
};

double cosine_length_value(size_t length, bool correct, const CosineLengthOptions& opts);

class CosineLengthReward : public Reward {
 public:
  explicit CosineLengthReward(CosineLengthOptions opts);
  std::string name() const override { return "cosine_length"; }
  RewardResult score(const RewardInput& in) const override;
  std::vector<std::string> depends_on() const override { return {opts_.correct_from}; }

 private:
  CosineLengthOptions opts_;
};

}  // namespace r1kit::rewards
