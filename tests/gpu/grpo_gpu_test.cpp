// The GRPO stage on CUDA (bf16 policy, the engine and the trainer on the device): a tiny MoE
// policy with router replay trains on the rollout's own experts, so the trainer's log-probs agree
// with the engine's (importance weights near 1) and every metric is finite; and the CPU learning
// check (warm-up SFT, then GRPO on a + b) learns on the GPU too.
#include <cmath>

#include "grpo/trainer.h"
#include "gtest/gtest.h"
#include "tests/common/test_util.h"
#include "tests/common/training_fixtures.h"
#include "tests/gpu/gpu_util.h"

namespace r1kit::grpo {
namespace {

using testing::ScratchDir;
using namespace testing::training;

TEST(GrpoGpu, MoePolicyWithRouterReplayRunsInBf16) {
  R1_REQUIRE_GPU();
  ScratchDir dir;
  const std::string model = write_model(dir, "m", policy::ModelArch::deepseek_v3, 3);
  write_text(dir.file("train.jsonl"), sum_prompts(3));
  Json j = base_config(model, dir.file("train.jsonl"), dir.file("out"));
  j["device"] = "cuda";
  j["dtype"] = "bf16";
  j["group_size"] = 8;
  j["prompts_per_step"] = 4;
  j["max_steps"] = 3;
  j["sampling"]["stop"] = Json::array();  // full-length completions: more tokens to compare
  j["kl"] = {{"estimator", "k3"}, {"placement", "loss"}, {"beta", 0.01}};
  // A random policy earns no reward (zero advantages): the entropy bonus gives the update a
  // gradient, so the policy leaves the reference and the KL becomes positive.
  j["loss"] = {{"entropy_coef", 0.01}};
  const GrpoResult r = run_grpo(GrpoConfig::from_json(j, "gpu"));
  EXPECT_EQ(r.steps, 3);
  const auto m = metric_lines(dir.file("out"));
  ASSERT_EQ(m.size(), 3u);
  for (const Json& l : m) {
    for (const char* k : {"loss", "grad_norm", "entropy", "kl", "is_weight_mean", "ratio_mean"})
      EXPECT_TRUE(std::isfinite(l.at(k).get<double>())) << k << " " << l.dump();
    EXPECT_GT(l.at("generated_tokens").get<double>(), 0);
    // The trainer recomputes the sampled tokens' log-probs with the rollout's experts: in bf16 the
    // two forwards differ by rounding only, so the truncated IS weight stays near 1.
    EXPECT_NEAR(l.at("is_weight_mean").get<double>(), 1.0, 0.05) << l.dump();
    EXPECT_LT(l.at("is_capped_fraction").get<double>(), 0.01) << l.dump();
  }
  EXPECT_GT(m.back().at("kl").get<double>(), 0);
}

TEST(GrpoGpu, WarmedUpPolicyLearnsToAdd) {
  R1_REQUIRE_GPU();
  ScratchDir dir;
  const auto [first, last] = learning_run(dir, "cuda", "f32");
  EXPECT_GT(last, first + 0.30) << "first " << first << " last " << last;
}

}  // namespace
}  // namespace r1kit::grpo
