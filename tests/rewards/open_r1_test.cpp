// open-r1's own reward test cases (tests/shared/data/rewards/open_r1_reward_tests.jsonl): every
// expected value of format_reward, tag_count_reward, code_format_reward, reasoning_steps_reward and
// accuracy_reward is reproduced by our reward of the same name.
#include <gtest/gtest.h>

#include <map>

#include "core/json.h"
#include "rewards/accuracy.h"
#include "rewards/format.h"

namespace r1kit::rewards {
namespace {

const std::string kFile = R1KIT_SHARED_DIR "/data/rewards/open_r1_reward_tests.jsonl";

std::vector<Json> rows_of(const std::string& reward) {
  std::vector<Json> out;
  for (auto& r : read_jsonl_file(kFile))
    if (r["reward"] == reward) out.push_back(r);
  return out;
}

void expect_all(const std::string& reward_name, const Reward& reward, size_t expected_rows) {
  auto rows = rows_of(reward_name);
  ASSERT_EQ(rows.size(), expected_rows) << reward_name;
  for (const auto& row : rows) {
    std::string content = row["content"];
    RewardInput in{"", content, row};
    RewardResult r = reward.score(in);
    EXPECT_EQ(r.status, RewardStatus::ok) << content << ": " << r.reason;
    EXPECT_DOUBLE_EQ(r.score, row["expected"].get<double>()) << reward_name << " on " << content;
  }
}

TEST(OpenR1, FormatReward) {
  expect_all("format_reward", FormatReward(), 7);
}

TEST(OpenR1, TagCountReward) {
  expect_all("tag_count_reward", TagCountReward(), 6);
}

TEST(OpenR1, CodeFormatReward) {
  // Each row names the language its check used; the reward reads it from the row.
  CodeFormatOptions o;
  o.language_field = "language";
  expect_all("code_format_reward", CodeFormatReward(o), 10);
  // With the language fixed to python, the javascript row that expects 1.0 fails.
  auto rows = rows_of("code_format_reward");
  size_t js_ok = 0;
  for (const auto& row : rows) {
    if (row["language"] != "javascript") continue;
    std::string content = row["content"];
    RewardInput in{"", content, row};
    js_ok += CodeFormatReward().score(in).score == 1.0;
  }
  EXPECT_EQ(js_ok, 0u);
}

TEST(OpenR1, ReasoningStepsReward) {
  expect_all("reasoning_steps_reward", ReasoningStepsReward(), 5);
}

TEST(OpenR1, AccuracyReward) {
  AccuracyOptions o;
  o.gold_fields = {"solution"};
  expect_all("accuracy_reward", AccuracyReward(o), 3);
}

}  // namespace
}  // namespace r1kit::rewards
