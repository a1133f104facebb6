// The reward interface helpers (rewards/reward.h): status names, JSON form, reference fields,
// UTF-8 clipping; and every reward on hostile input.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "rewards/compose.h"
#include "rewards/reward.h"

namespace r1kit::rewards {
namespace {

TEST(Reward, ResultJson) {
  RewardResult r = reward_ok(0.5, "half");
  r.components["format"] = 1.0;
  r.details = {{"k", 1}};
  Json j = to_json(r);
  EXPECT_EQ(j["score"], 0.5);
  EXPECT_EQ(j["status"], "ok");
  EXPECT_EQ(j["reason"], "half");
  EXPECT_EQ(j["components"]["format"], 1.0);
  EXPECT_EQ(j["details"]["k"], 1);
  Json s = to_json(reward_skip("no gold"));
  EXPECT_EQ(s["status"], "skip");
  EXPECT_FALSE(s.contains("components"));
  EXPECT_STREQ(reward_status_name(RewardStatus::error), "error");
}

TEST(Reward, ReferenceText) {
  Json ref = {{"answer", nullptr}, {"gold", 18}, {"solution", "\\frac12"}, {"bad", {1, 2}}};
  std::string used;
  EXPECT_EQ(reference_text(ref, {"answer", "gold", "solution"}, &used), "18");
  EXPECT_EQ(used, "gold");
  EXPECT_EQ(reference_text(ref, {"solution"}), "\\frac12");
  EXPECT_FALSE(reference_text(ref, {"bad", "solution"}, &used).has_value());
  EXPECT_EQ(used, "bad");
  EXPECT_FALSE(reference_text(ref, {"missing"}).has_value());
  EXPECT_FALSE(reference_text(Json::array(), {"gold"}).has_value());
}

TEST(Reward, Utf8Clip) {
  EXPECT_EQ(utf8_clip("abc", 10), "abc");
  EXPECT_EQ(utf8_clip("a\xff"
                      "b",
                      10),
            "a\xEF\xBF\xBD"
            "b");
  EXPECT_EQ(utf8_clip("\xE4\xB8\xAD\xE6\x96\x87", 4), "\xE4\xB8\xAD");  // no cut code point
  EXPECT_EQ(utf8_clip(std::string(5000, 'x')).size(), 1024u);
  std::string junk(3000, '\x80');
  std::string c = utf8_clip(junk, 100);
  EXPECT_LE(c.size(), 100u);
  EXPECT_EQ(utf8_invalid_offset(c), std::string_view::npos);
}

// Every reward but code (which needs the sandbox; code_test covers it) on hostile completions and
// odd references: no exception, no error status, a finite score.
TEST(Reward, HostileInputsNeverThrow) {
  std::mt19937 rng(7);
  std::vector<std::string> inputs = {"",
                                     "<think>",
                                     "</answer><answer>",
                                     std::string(3, '\0'),
                                     std::string(100000, '{'),
                                     std::string(5000, '$'),
                                     "\\boxed{" + std::string(2000, '(') + "}",
                                     "<answer>" + std::string(2000, '(') + "1</answer>",
                                     "\xed\xa0\x80\xf4\x90\x80\x80\xc0\xaf"};
  for (int k = 0; k < 20; ++k) {
    std::string junk(size_t(rng() % 300), ' ');
    for (auto& c : junk) c = char(rng() % 256);
    inputs.push_back(junk);
  }
  std::vector<Json> refs = {Json::object(),
                            Json::array(),
                            {{"answer", "\\frac{1}{2}"}, {"numbers", {1, 2}}, {"target", 3}},
                            {{"answer", {1, 2}}, {"numbers", "x"}, {"language", 5}},
                            {{"input", "1,2"}, {"output", "oops"}, {"correct", "yes"}}};
  Json lang_opts = {{"language", "en"}, {"language_field", "language"}};
  for (const auto& type : reward_types()) {
    if (type == "code") continue;
    auto reward = make_reward(type, type == "language" ? lang_opts : Json(), "test");
    for (const auto& ref : refs)
      for (const auto& in : inputs) {
        RewardResult r;
        ASSERT_NO_THROW(r = reward->score({"", in, ref, 0})) << type;
        EXPECT_NE(r.status, RewardStatus::error) << type << ": " << r.reason;
        EXPECT_TRUE(std::isfinite(r.score)) << type;
        EXPECT_EQ(
            utf8_invalid_offset(to_json(r).dump(-1, ' ', false, Json::error_handler_t::replace)),
            std::string::npos);
        EXPECT_EQ(utf8_invalid_offset(r.reason), std::string::npos) << type << ": " << r.reason;
        EXPECT_NO_THROW(to_json(r).dump()) << type;
      }
  }
}

}  // namespace
}  // namespace r1kit::rewards
