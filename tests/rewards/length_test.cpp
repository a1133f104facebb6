// Length shaping (rewards/length.h): DAPO's soft overlong punishment at its breakpoints, the cosine
// length scaling's end points and monotonicity, the length units, and correctness sources.
#include <gtest/gtest.h>

#include <cmath>

#include "core/error.h"
#include "rewards/length.h"

namespace r1kit::rewards {
namespace {

TEST(Length, SoftOverlongBreakpoints) {
  // L_max = 20480, L_cache = 4096 (DAPO's setting): 0 up to 16384, then linear to -1.
  EXPECT_EQ(soft_overlong_penalty(0, 20480, 4096), 0.0);
  EXPECT_EQ(soft_overlong_penalty(16384, 20480, 4096), 0.0);
  EXPECT_DOUBLE_EQ(soft_overlong_penalty(16385, 20480, 4096), -1.0 / 4096);
  EXPECT_DOUBLE_EQ(soft_overlong_penalty(18432, 20480, 4096), -0.5);
  EXPECT_DOUBLE_EQ(soft_overlong_penalty(20480, 20480, 4096), -1.0);
  EXPECT_EQ(soft_overlong_penalty(20481, 20480, 4096), -1.0);
  EXPECT_EQ(soft_overlong_penalty(1u << 30, 20480, 4096), -1.0);
}

TEST(Length, SoftOverlongRewardUsesTokensElseChars) {
  SoftOverlongOptions o;
  o.max_length = 10;
  o.cache_length = 4;
  SoftOverlongReward r(o);
  Json ref = Json::object();
  RewardInput with_tokens{"", "short", ref, 8};
  auto a = r.score(with_tokens);
  EXPECT_DOUBLE_EQ(a.score, -0.5);
  EXPECT_EQ(a.details["length_unit"], "tokens");
  // No token count: code points ("ééééééééé" is 9 characters, 18 bytes).
  auto b = r.score(
      {"", "\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9", ref});
  EXPECT_DOUBLE_EQ(b.score, -0.75);
  EXPECT_EQ(b.details["length"], 9);
  EXPECT_EQ(b.details["length_unit"], "chars");
  EXPECT_THROW(SoftOverlongOptions::from_json(Json{{"max_length", 10}, {"cache_length", 11}}, "c"),
               Error);
  EXPECT_THROW(SoftOverlongOptions::from_json(Json{{"max_lenght", 10}}, "c"), Error);
}

TEST(Length, CosineEndPointsAndMonotonicity) {
  CosineLengthOptions o;  // open-r1's defaults: correct 1.0 -> 0.5, wrong -1.0 -> -0.5
  o.max_length = 1000;
  EXPECT_DOUBLE_EQ(cosine_length_value(0, true, o), 1.0);
  EXPECT_NEAR(cosine_length_value(1000, true, o), 0.5, 1e-12);
  EXPECT_NEAR(cosine_length_value(500, true, o), 0.75, 1e-12);
  EXPECT_DOUBLE_EQ(cosine_length_value(0, false, o), -1.0);
  EXPECT_NEAR(cosine_length_value(1000, false, o), -0.5, 1e-12);
  EXPECT_NEAR(cosine_length_value(5000, false, o), -0.5, 1e-12);  // clamped
  for (size_t l = 0; l < 1000; l += 50) {
    EXPECT_GT(cosine_length_value(l, true, o), cosine_length_value(l + 50, true, o));
    EXPECT_LT(cosine_length_value(l, false, o), cosine_length_value(l + 50, false, o));
    EXPECT_GT(cosine_length_value(l, true, o), cosine_length_value(l, false, o));
  }
  o.exceed_value = -10;
  EXPECT_EQ(cosine_length_value(1001, true, o), -10);
}

TEST(Length, CosineCorrectnessSources) {
  CosineLengthReward r(CosineLengthOptions{});
  Json ref = {{"correct", true}};
  auto a = r.score({"", "x", ref, 0});
  EXPECT_EQ(a.status, RewardStatus::ok);
  EXPECT_GT(a.score, 0.99);  // correct, length 1 of 1000
  std::map<std::string, RewardResult> earlier;
  earlier["accuracy"] = reward_ok(0.0);
  RewardInput in{"", "x", ref, 0, &earlier};
  EXPECT_LT(r.score(in).score, -0.99);  // the composition's accuracy wins over the field
  earlier["accuracy"] = reward_skip("no gold");
  EXPECT_EQ(r.score(in).status, RewardStatus::skip);
  earlier["accuracy"] = reward_error("boom");
  EXPECT_EQ(r.score(in).status, RewardStatus::error);
  EXPECT_EQ(r.score({"", "x", Json::object()}).status, RewardStatus::skip);
  EXPECT_EQ(r.depends_on(), std::vector<std::string>{"accuracy"});
}

}  // namespace
}  // namespace r1kit::rewards
