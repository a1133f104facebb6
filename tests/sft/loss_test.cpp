// The SFT objective (sft/loss.h): the learning-rate schedules' values; packing equivalence (the
// loss and gradients of a packed micro-batch equal those of its examples run one by one, dense and
// MoE, in f64); global normalisation (one micro-batch or several give the same update); a tiny
// model memorises a handful of sequences within seconds on the CPU.
#include "sft/loss.h"

#include <cmath>
#include <random>

#include "gtest/gtest.h"
#include "policy/presets.h"
#include "tests/common/test_util.h"

namespace r1kit::sft {
namespace {

using policy::ModelArch;
using policy::Policy;
using testing::cpu_ctx;
using testing::to_double;

TEST(SftLoss, LearningRateSchedules) {
  OptimConfig c;
  c.lr = 1.0;
  c.warmup_steps = 4;
  c.total_steps = 14;
  c.min_lr_ratio = 0.1;
  c.schedule = LrSchedule::cosine;
  EXPECT_DOUBLE_EQ(learning_rate(c, 1), 0.25);
  EXPECT_DOUBLE_EQ(learning_rate(c, 4), 1.0);
  EXPECT_NEAR(learning_rate(c, 9), 0.1 + 0.9 * 0.5, 1e-15);  // halfway: cos(π/2) = 0
  EXPECT_NEAR(learning_rate(c, 14), 0.1, 1e-15);
  EXPECT_NEAR(learning_rate(c, 100), 0.1, 1e-15);
  c.schedule = LrSchedule::linear;
  EXPECT_NEAR(learning_rate(c, 9), 0.1 + 0.9 * 0.5, 1e-15);
  EXPECT_NEAR(learning_rate(c, 6), 0.1 + 0.9 * 0.8, 1e-15);
  c.schedule = LrSchedule::constant;
  EXPECT_DOUBLE_EQ(learning_rate(c, 6), 1.0);
  testing::expect_error_contains([&] { learning_rate(c, 0); }, {"step 0 must be >= 1"});
}

Example random_example(std::mt19937_64& rng, int64_t len, int64_t vocab) {
  std::uniform_int_distribution<int32_t> tok(0, static_cast<int32_t>(vocab - 1));
  Example e;
  for (int64_t i = 0; i < len; ++i) {
    e.tokens.push_back(tok(rng));
    e.loss_mask.push_back(i >= len / 3 ? 1 : 0);  // a prompt, then targets
  }
  return e;
}

std::vector<double> grads_of(const Policy& p) {
  return to_double(p.grads().flat());
}

Policy f64_policy(ModelArch arch) {
  policy::PolicyOptions po;
  po.dtype = DType::f64;
  return Policy::init(policy::preset_config(arch, "tiny"), 3, cpu_ctx(), po);
}

TEST(SftLoss, PackedMicroBatchEqualsItsExamplesOneByOne) {
  for (const ModelArch arch : {ModelArch::qwen2, ModelArch::deepseek_v3}) {
    SCOPED_TRACE(std::string(policy::model_arch_name(arch)));
    Policy p = f64_policy(arch);
    std::mt19937_64 rng(4);
    const int64_t V = p.config().vocab_size;
    const std::vector<Example> ex = {random_example(rng, 9, V), random_example(rng, 5, V),
                                     random_example(rng, 12, V)};
    const double n = 20.0;  // any normaliser: the same on both sides
    p.zero_grad(cpu_ctx());
    const MicroResult packed = micro_step(p, {&ex[0], &ex[1], &ex[2]}, n, true, cpu_ctx());
    const std::vector<double> g_packed = grads_of(p);
    p.zero_grad(cpu_ctx());
    MicroResult sum;
    for (const Example& e : ex) {
      const MicroResult m = micro_step(p, {&e}, n, true, cpu_ctx());
      sum.loss_sum += m.loss_sum;
      sum.targets += m.targets;
    }
    const std::vector<double> g_sep = grads_of(p);
    EXPECT_EQ(packed.targets, sum.targets);
    EXPECT_EQ(packed.targets, ex[0].targets() + ex[1].targets() + ex[2].targets());
    EXPECT_NEAR(packed.loss_sum, sum.loss_sum, 1e-10 * std::abs(sum.loss_sum));
    ASSERT_EQ(g_packed.size(), g_sep.size());
    double scale = 0, worst = 0;
    for (size_t i = 0; i < g_sep.size(); ++i) {
      scale = std::max(scale, std::abs(g_sep[i]));
      worst = std::max(worst, std::abs(g_packed[i] - g_sep[i]));
    }
    EXPECT_GT(scale, 0);
    EXPECT_LT(worst, 1e-10 * scale);
  }
}

TEST(SftLoss, OneOrSeveralMicroBatchesGiveTheSameUpdate) {
  std::mt19937_64 rng(6);
  Policy a = f64_policy(ModelArch::qwen2), b = f64_policy(ModelArch::qwen2);
  const int64_t V = a.config().vocab_size;
  const std::vector<Example> ex = {random_example(rng, 7, V), random_example(rng, 11, V),
                                   random_example(rng, 6, V), random_example(rng, 9, V)};
  OptimConfig cfg;
  cfg.lr = 1e-3;
  cfg.max_grad_norm = 0.5;
  cfg.weight_decay = 0.01;
  const StepResult ra = optimizer_step(a, {{&ex[0], &ex[1], &ex[2], &ex[3]}}, cfg, cpu_ctx());
  const StepResult rb = optimizer_step(b, {{&ex[0]}, {&ex[1], &ex[2]}, {&ex[3]}}, cfg, cpu_ctx());
  EXPECT_NEAR(ra.loss, rb.loss, 1e-12 * ra.loss);
  EXPECT_NEAR(ra.grad_norm, rb.grad_norm, 1e-12 * ra.grad_norm);
  EXPECT_EQ(ra.targets, rb.targets);
  EXPECT_FALSE(ra.skipped);
  const std::vector<double> pa = to_double(a.params().flat()), pb = to_double(b.params().flat());
  double worst = 0;
  for (size_t i = 0; i < pa.size(); ++i) worst = std::max(worst, std::abs(pa[i] - pb[i]));
  EXPECT_LT(worst, 1e-12);
  EXPECT_GT(ra.loss, 0);  // the mean of −log π over the targets
}

TEST(SftLoss, TinyModelMemorisesAFewSequences) {
  Context& ctx = cpu_ctx();
  Policy p = Policy::init(policy::preset_config(ModelArch::qwen2, "tiny"), 5, ctx);
  std::mt19937_64 rng(7);
  std::vector<Example> ex;
  for (int i = 0; i < 4; ++i) ex.push_back(random_example(rng, 16, p.config().vocab_size));
  const std::vector<const Example*> batch = {&ex[0], &ex[1], &ex[2], &ex[3]};
  OptimConfig cfg;
  cfg.lr = 1e-2;
  cfg.schedule = LrSchedule::constant;
  cfg.beta2 = 0.99;
  const double first = optimizer_step(p, {batch}, cfg, ctx).loss;
  double last = first;
  for (int s = 0; s < 300 && last > 0.02; ++s) last = optimizer_step(p, {batch}, cfg, ctx).loss;
  EXPECT_GT(first, 3.0);  // about log V at initialisation
  EXPECT_LT(last, 0.02);
  // Memorised: every target is the model's argmax, i.e. its log-prob is near 0.
  const MicroResult m = micro_step(p, batch, 1.0, false, ctx);
  EXPECT_LT(m.loss_sum / static_cast<double>(m.targets), 0.05);
}

}  // namespace
}  // namespace r1kit::sft
