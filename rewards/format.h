// Format rewards for R1-style completions, all on RE2 (linear time, no backtracking) over at most
// max_input_bytes of input:
//   format          <think>…</think> then <answer>…</answer>: 1 or 0. mode "exact" is open-r1's
//                   format_reward (re.match of ^<think>\n.*?\n</think>\n<answer>\n.*?\n</answer>$
//                   with DOTALL|MULTILINE: anchored at the start; `$` also matches before any
//                   newline, so text may follow "</answer>\n"); mode "lenient" allows any
//                   whitespace around the tags, each tag exactly once, a non-blank answer and
//                   nothing but whitespace after </answer>.
//   tag_count       open-r1's tag_count_reward: 0.25 for each of "<think>\n", "\n</think>\n",
//                   "\n<answer>\n", "\n</answer>" occurring exactly once.
//   code_format     open-r1's code_format_reward: the exact format with a ```LANG fenced block
//                   inside the answer (LANG from the options or a reference field).
//   reasoning_steps open-r1's reasoning_steps_reward: min(1, n/3) for n step markers ("Step 1:",
//                   "1." at the very start, "\n-", "\n*", "First,", "Second,", "Next,",
//                   "Finally,").
// `prefix` is prepended to the completion before matching: give "<think>\n" when the prompt
// (chat template) already opened the think block.
#pragma once

#include <memory>
#include <string>

#include "rewards/reward.h"

namespace re2 {
class RE2;
}

namespace r1kit::rewards {

enum class FormatMode { exact, lenient };

struct FormatOptions {
  FormatMode mode = FormatMode::exact;
  std::string prefix;
  size_t max_input_bytes = 1 << 20;  // longer completions score 0 ("too long to check")
  // Rejects unknown keys ("did you mean"); `where` names the config position for errors.
  static FormatOptions from_json(const Json& j, std::string_view where);
};

class FormatReward : public Reward {
 public:
  explicit FormatReward(FormatOptions opts = {});
  ~FormatReward() override;
  std::string name() const override { return "format"; }
  RewardResult score(const RewardInput& in) const override;
  // 1 when `text` (prefix already applied) has the format.
  bool matches(std::string_view text) const;

 private:
  FormatOptions opts_;
  std::unique_ptr<re2::RE2> exact_, lenient_;
};

struct TagCountOptions {
  std::string prefix;
  size_t max_input_bytes = 1 << 20;
  static TagCountOptions from_json(const Json& j, std::string_view where);
};

// 0, 0.25, 0.5, 0.75 or 1.
double tag_count_score(std::string_view text);

class TagCountReward : public Reward {
 public:
  explicit TagCountReward(TagCountOptions opts = {}) : opts_(std::move(opts)) {}
  std::string name() const override { return "tag_count"; }
  RewardResult score(const RewardInput& in) const override;

 private:
  TagCountOptions opts_;
};

struct CodeFormatOptions {
  std::string language = "python";  // the fence tag required inside <answer>
  std::string language_field;       // when set and the reference holds it as a string, it wins
  std::string prefix;
  size_t max_input_bytes = 1 << 20;
  static CodeFormatOptions from_json(const Json& j, std::string_view where);
};

class CodeFormatReward : public Reward {
 public:
  explicit CodeFormatReward(CodeFormatOptions opts = {});
  ~CodeFormatReward() override;
  std::string name() const override { return "code_format"; }
  RewardResult score(const RewardInput& in) const override;

 private:
  CodeFormatOptions opts_;
  std::unique_ptr<re2::RE2> re_;  // for opts_.language
};

struct ReasoningStepsOptions {
  double steps_for_full = 3;  // n markers give min(1, n / steps_for_full)
  size_t max_input_bytes = 1 << 20;
  static ReasoningStepsOptions from_json(const Json& j, std::string_view where);
};

class ReasoningStepsReward : public Reward {
 public:
  explicit ReasoningStepsReward(ReasoningStepsOptions opts = {});
  ~ReasoningStepsReward() override;
  std::string name() const override { return "reasoning_steps"; }
  RewardResult score(const RewardInput& in) const override;
  size_t count_steps(std::string_view text) const;

 private:
  ReasoningStepsOptions opts_;
  std::unique_ptr<re2::RE2> start_, markers_;
};

}  // namespace r1kit::rewards
