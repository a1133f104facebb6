// Format rewards (rewards/format.h): open-r1's regex semantics reproduced on RE2 (anchoring, the
// MULTILINE `$`), the lenient mode, tag counting, the think prefix, bounded input.
#include <gtest/gtest.h>

#include <chrono>
#include <string>

#include "core/error.h"
#include "rewards/format.h"

namespace r1kit::rewards {
namespace {

double score(const Reward& r, std::string_view completion, const Json& ref = Json::object()) {
  RewardInput in{"", completion, ref};
  RewardResult res = r.score(in);
  EXPECT_EQ(res.status, RewardStatus::ok) << res.reason;
  return res.score;
}

TEST(Format, ExactFollowsPythonMultilineDollar) {
  FormatReward f;
  EXPECT_EQ(score(f, "<think>\na\n</think>\n<answer>\nb\n</answer>"), 1.0);
  // re.match anchors only the start; `$` under MULTILINE matches before any newline, so text
  // after "</answer>\n" is accepted, but not text right after "</answer>".
  EXPECT_EQ(score(f, "<think>\na\n</think>\n<answer>\nb\n</answer>\ntrailing"), 1.0);
  EXPECT_EQ(score(f, "<think>\na\n</think>\n<answer>\nb\n</answer>trailing"), 0.0);
  EXPECT_EQ(score(f, " <think>\na\n</think>\n<answer>\nb\n</answer>"), 0.0);
  // `.*?` is lazy but any later "\n</answer>" followed by a line end can end the match.
  EXPECT_EQ(score(f, "<think>\na\n</think>\n<answer>\nb\n</answer>x\n</answer>"), 1.0);
  // The newlines around the tags are required; the contents may be empty (two newlines).
  EXPECT_EQ(score(f, "<think>a</think>\n<answer>\nb\n</answer>"), 0.0);
  EXPECT_EQ(score(f, "<think>\n\n</think>\n<answer>\n\n</answer>"), 1.0);
  EXPECT_EQ(score(f, "<think>\na\n</think> <answer>\nb\n</answer>"), 0.0);
  // DOTALL: reasoning over many lines, with tags inside.
  EXPECT_EQ(score(f, "<think>\nl1\n<answer>\nl2\n</think>\n<answer>\nb\n</answer>"), 1.0);
}

TEST(Format, Lenient) {
  FormatOptions o;
  o.mode = FormatMode::lenient;
  FormatReward f(o);
  EXPECT_EQ(score(f, "<think>a</think><answer>b</answer>"), 1.0);
  EXPECT_EQ(score(f, "  <think> a </think>\n\n<answer> b </answer>\n"), 1.0);
  EXPECT_EQ(score(f, "<think>a</think><answer>  </answer>"), 0.0);         // blank answer
  EXPECT_EQ(score(f, "<think>a</think><answer>b</answer> more"), 0.0);     // text after
  EXPECT_EQ(score(f, "<think>a</think>x<answer>b</answer>"), 0.0);         // text between
  EXPECT_EQ(score(f, "<think>a<think>c</think><answer>b</answer>"), 0.0);  // a tag twice
  EXPECT_EQ(score(f, "<answer>b</answer><think>a</think>"), 0.0);
}

TEST(Format, PrefixForPromptsThatOpenTheThinkBlock) {
  FormatOptions o;
  o.prefix = "<think>\n";
  FormatReward f(o);
  EXPECT_EQ(score(f, "reasoning\n</think>\n<answer>\n4\n</answer>"), 1.0);
  // A second <think> still fits open-r1's regex (`.*?` takes it); lenient mode counts tags.
  EXPECT_EQ(score(f, "<think>\nreasoning\n</think>\n<answer>\n4\n</answer>"), 1.0);
  o.mode = FormatMode::lenient;
  EXPECT_EQ(score(FormatReward(o), "<think>\nreasoning\n</think>\n<answer>\n4\n</answer>"), 0.0);
  EXPECT_EQ(score(FormatReward(o), "reasoning\n</think>\n<answer>\n4\n</answer>"), 1.0);
  TagCountOptions t;
  t.prefix = "<think>\n";
  EXPECT_EQ(score(TagCountReward(t), "r\n</think>\n<answer>\n4\n</answer>"), 1.0);
}

TEST(Format, OptionsRejectUnknownKeys) {
  try {
    FormatOptions::from_json(Json{{"mdoe", "exact"}}, "cfg: rewards[0].options");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("did you mean 'mode'"), std::string::npos) << e.what();
  }
  EXPECT_THROW(FormatOptions::from_json(Json{{"mode", "strict"}}, "cfg"), Error);
  EXPECT_EQ(FormatOptions::from_json(Json{{"mode", "lenient"}}, "cfg").mode, FormatMode::lenient);
}

TEST(Format, TagCountCountsExactlyOnce) {
  EXPECT_EQ(tag_count_score("<think>\na\n</think>\n<answer>\nb\n</answer>"), 1.0);
  EXPECT_EQ(tag_count_score("<think>\n<think>\na\n</think>\n<answer>\nb\n</answer>"), 0.75);
  EXPECT_EQ(tag_count_score(""), 0.0);
}

TEST(Format, CodeFormatEscapesTheLanguage) {
  CodeFormatOptions o;
  o.language = "c++";
  CodeFormatReward r(o);
  EXPECT_EQ(score(r, "<think>\na\n</think>\n<answer>\n```c++\nint x;\n```\n</answer>"), 1.0);
  EXPECT_EQ(score(r, "<think>\na\n</think>\n<answer>\n```cxx\nint x;\n```\n</answer>"), 0.0);
  // The row's language wins when language_field is set.
  o.language_field = "language";
  CodeFormatReward by_row(o);
  EXPECT_EQ(score(by_row, "<think>\na\n</think>\n<answer>\n```rust\nfn f(){}\n```\n</answer>",
                  Json{{"language", "rust"}}),
            1.0);
}

TEST(Format, InvalidUtf8AndHugeInputsAreSafe) {
  FormatReward f;
  std::string bad = "<think>\n\xff\xfe\xc0\n</think>\n<answer>\n\x80\n</answer>";
  EXPECT_EQ(score(f, bad), 1.0);  // bytes, not characters: ill-formed UTF-8 still matches `.`
  FormatOptions small;
  small.max_input_bytes = 16;
  RewardInput in{"", "<think>\na\n</think>\n<answer>\nb\n</answer>", Json::object()};
  RewardResult r = FormatReward(small).score(in);
  EXPECT_EQ(r.score, 0.0);
  EXPECT_NE(r.reason.find("max_input_bytes"), std::string::npos);
  // 1 MiB of near-misses: linear time.
  std::string big = "<think>\n";
  while (big.size() < (1u << 20) - 64) big += "\n</think>\n<answer>\nx";
  auto t0 = std::chrono::steady_clock::now();
  score(f, big);
  score(TagCountReward(), big);
  score(ReasoningStepsReward(), big);
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_LT(secs, 2.0);
}

TEST(Format, ReasoningStepsCountsMarkers) {
  ReasoningStepsReward r;
  EXPECT_EQ(r.count_steps("1. a\n2. b"), 1u);  // `^` only at the very start (no MULTILINE)
  EXPECT_EQ(r.count_steps("Step 1: a\n- b\n* c\nNext, d"), 4u);
  EXPECT_EQ(score(r, "Step 1: a Step 2: b Step 3: c Step 4: d"), 1.0);
}

}  // namespace
}  // namespace r1kit::rewards
