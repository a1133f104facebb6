// Rewards composed by a JSON config (docs/REWARDS.md has the full reference):
//   {"rewards": [{"type": "format", "weight": 0.5},
//                {"type": "accuracy", "weight": 1, "gate": "format"}, ...],
//    "on_skip": "skip" | "renormalize", "normalize": false}
// Components are scored in order (a later one may read earlier results: cosine_length reads
// "accuracy"). A gated component counts only when its gate component passed (status ok and score
// >= gate_threshold); otherwise its effective score is 0. The total is sum(weight * effective)
// (divided by the sum of weights when normalize). A component that errs makes the result an
// error. A skipped one (or one whose gate skipped) either skips the whole sample (on_skip
// "skip", the default) or is left out with the other weights scaled up to the same total
// ("renormalize"); on_skip may be set per component. Unknown keys and types are rejected with a
// "did you mean" suggestion.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "rewards/reward.h"

namespace r1kit::rewards {

// The reward types a config may name: format, tag_count, code_format, reasoning_steps, accuracy,
// code, countdown, language, soft_overlong, cosine_length.
const std::vector<std::string>& reward_types();
// One reward of `type` with its options object (null: defaults); throws r1kit::Error naming
// `where` for unknown types, unknown option keys and bad values.
std::unique_ptr<Reward> make_reward(std::string_view type, const Json& options,
                                    std::string_view where);

enum class SkipPolicy { skip, renormalize };

class ComposedReward : public Reward {
 public:
  struct Component {
    std::string name;  // unique; defaults to the type
    std::string type;
    double weight = 1.0;
    std::string gate;  // a component name, or empty
    double gate_threshold = 1.0;
    SkipPolicy on_skip = SkipPolicy::skip;
    std::unique_ptr<Reward> reward;
  };

  // Throws r1kit::Error (naming `where`) for duplicate names, unknown gates, dependencies that
  // do not come earlier, and negative or non-finite weights.
  ComposedReward(std::vector<Component> components, bool normalize, std::string_view where = "");
  // From a parsed config; `where` names it in errors (e.g. the file path).
  static std::unique_ptr<ComposedReward> from_json(const Json& config, std::string_view where);

  std::string name() const override { return "compose"; }
  // components: name -> effective score; details.components: per component {name, type, weight,
  // status, score, effective, gated?, reason?, details?}.
  RewardResult score(const RewardInput& in) const override;
  const std::vector<Component>& components() const { return components_; }

 private:
  std::vector<Component> components_;
  bool normalize_ = false;
};

// Reads and builds a config file; errors name the file and the key.
std::unique_ptr<ComposedReward> load_reward_config(const std::string& path);

}  // namespace r1kit::rewards
