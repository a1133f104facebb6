// Rewards: pure functions (prompt, completion, reference) -> RewardResult. Model output never makes
// a reward throw, hang or run code outside the sandbox; an unusable reference (gold answer, tests)
// gives status skip with a reason, never a silent zero. Rewards compose by config (compose.h).
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/json.h"

namespace r1kit::rewards {

// ok: score is meaningful. skip: the reward cannot judge this sample (unusable gold, no tests,
// wrong language for the code reward...); a trainer drops or masks it. error: the reward itself
// failed (sandbox could not start, budget exhausted on the gold side...); reason says why.
enum class RewardStatus { ok, skip, error };
const char* reward_status_name(RewardStatus s);

struct RewardResult {
  double score = 0.0;
  std::map<std::string, double> components;  // named parts (e.g. "format", "accuracy")
  RewardStatus status = RewardStatus::ok;
  std::string reason;  // why skip/error, or a short note for ok ("no \\boxed{} in completion")
  Json details;        // reward-specific extra information (per-test results, parsed answers)
};
Json to_json(const RewardResult& r);

// One sample. `reference` holds the dataset row's reference fields as they came (gold answer,
// tests, target language, countdown numbers...); each reward documents which fields it reads.
struct RewardInput {
  std::string_view prompt;
  std::string_view completion;
  const Json& reference;
  size_t completion_tokens = 0;  // for length shaping (0: unknown; length.h then counts chars)
  // Results of the components a composed reward scored before this one, by name (compose.h);
  // null outside a composition. The cosine length reward reads its correctness from here.
  const std::map<std::string, RewardResult>* earlier = nullptr;
};

// Shorthands for results.
RewardResult reward_ok(double score, std::string reason = {});
RewardResult reward_skip(std::string reason);
RewardResult reward_error(std::string reason);

// The first of `fields` that `reference` holds as a string (numbers are written out as JSON, so a
// GSM8K gold of 18 reads "18"); *used names it. std::nullopt when none is there or usable.
std::optional<std::string> reference_text(const Json& reference,
                                          const std::vector<std::string>& fields,
                                          std::string* used = nullptr);

// At most max_bytes of `s` as valid UTF-8 (ill-formed bytes become U+FFFD, a cut code point is
// dropped): for reasons and details that echo model output or program output into JSON.
std::string utf8_clip(std::string_view s, size_t max_bytes = 1024);

class Reward {
 public:
  virtual ~Reward() = default;
  virtual std::string name() const = 0;
  // Never throws on anything in `in`; may throw r1kit::Error only for misuse the config could
  // have caught (there is none after construction).
  virtual RewardResult score(const RewardInput& in) const = 0;
  // Components of a composition this reward reads through RewardInput::earlier (they must come
  // before it); a composition checks the names when it is built.
  virtual std::vector<std::string> depends_on() const { return {}; }
};

}  // namespace r1kit::rewards
