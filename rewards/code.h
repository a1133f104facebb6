// Code execution reward: the last fenced code block of the expected language in the completion
// runs against the reference's tests in the sandbox (sandbox/harness.h), through the row formats
// of sandbox/eval.h:
//   humaneval  {prompt, entry_point, test}            function harness, one verdict
//   mbpp       {test_list, test_imports?, code?}      function harness; with score "fraction"
//                                                      each assert is its own test
//   stdio      {tests: [{input, output}] | {inputs, outputs}, test, input_output,
//               verification_info: {test_cases, language}, language?, compare?}
// Score: passed / total tests ("fraction") or 1 only when all pass ("all_or_nothing"); per-test
// verdicts go to details.tests. No code block: score 0 (status ok, with the reason). No tests in
// the reference, or a language the sandbox does not run: skip. The sandbox failing (it cannot
// start on this kernel, or a run reports internal_error): status error.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "rewards/reward.h"
#include "sandbox/harness.h"

namespace r1kit::rewards {

// The content of the last ```TAG … ``` block whose tag (the first word of the fence's info
// string, compared case-insensitively) is in `tags`; a block with no tag counts when
// allow_untagged. Fences may open mid-line ("<answer>```python\n"); the block ends at the next
// ```. An unclosed last block does not count. std::nullopt when there is none.
std::optional<std::string> extract_code_block(std::string_view text,
                                              const std::vector<std::string>& tags,
                                              bool allow_untagged = false);
// The fence tags accepted for a sandbox language: python -> python, py, python3; cpp -> cpp,
// c++, cxx, cc; bash -> bash, sh, shell.
std::vector<std::string> default_fence_tags(sandbox::Language lang);

enum class CodeTestFormat { auto_detect, humaneval, mbpp, stdio };
enum class CodeScoreMode { fraction, all_or_nothing };

struct CodeRewardOptions {
  sandbox::Language language = sandbox::Language::python;
  std::string language_field = "language";  // a reference string here overrides `language`
  std::vector<std::string> fence_tags;      // empty: default_fence_tags(language of the row)
  bool allow_untagged = false;
  CodeTestFormat format = CodeTestFormat::auto_detect;
  CodeScoreMode mode = CodeScoreMode::fraction;
  size_t max_cases = 0;             // stdio: only the first max_cases cases (0: all)
  size_t max_code_bytes = 1 << 18;  // longer code blocks score 0
  sandbox::Compare compare = sandbox::Compare::whitespace;
  sandbox::Limits limits = {5.0, 5.0, 1ull << 30, 64, 64, 16ull << 20, 1ull << 20};
  bool allow_weaker_isolation = false;  // passed to the Sandbox this reward creates (UNSAFE)
  static CodeRewardOptions from_json(const Json& j, std::string_view where);
};

class CodeReward : public Reward {
 public:
  // Creates its own Sandbox; when that fails the reason is kept and every score() is an error.
  explicit CodeReward(CodeRewardOptions opts = {});
  // Creates its own Sandbox with these options (read-only paths, cgroup parent, ...).
  CodeReward(CodeRewardOptions opts, const sandbox::SandboxOptions& sandbox_opts);
  // Uses `sb`, which must outlive the reward.
  CodeReward(CodeRewardOptions opts, const sandbox::Sandbox& sb);
  ~CodeReward() override;
  std::string name() const override { return "code"; }
  RewardResult score(const RewardInput& in) const override;
  // Why the sandbox is unavailable (empty when it is available).
  const std::string& sandbox_error() const { return sandbox_error_; }

 private:
  CodeRewardOptions opts_;
  std::unique_ptr<sandbox::Sandbox> own_;
  const sandbox::Sandbox* sb_ = nullptr;
  std::string sandbox_error_;
};

}  // namespace r1kit::rewards
