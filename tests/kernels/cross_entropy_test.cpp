// cross_entropy: forward against the composition log_softmax → gather (from the softmax op),
// backward against finite differences, ignore_index, in place, bad targets, validation.
#include "kernels/cross_entropy.h"

#include <cmath>

#include "kernels/softmax.h"
#include "tests/common/test_util.h"

namespace r1kit::kernels {
namespace {
using testing::cpu_ctx;

constexpr int64_t kN = 7, kV = 13;

// Targets in [0, V) with a few positions set to `ignore`.
Tensor make_targets(Context& ctx, std::mt19937_64& rng, int32_t ignore) {
  auto t = testing::random_ints(ctx, {kN}, rng, 0, kV - 1, "labels");
  t.ptr<int32_t>()[1] = ignore;
  t.ptr<int32_t>()[4] = ignore;
  return t;
}

// The oracle: lp = log_softmax(logits); loss_n = −lp[n, t_n] (0 where ignored);
// lse_n = logits[n, j] − lp[n, j] for any j.
void check_against_composition(DType dtype, DType stat, double u, uint64_t seed) {
  std::mt19937_64 rng(seed);
  auto& ctx = cpu_ctx();
  auto logits = testing::random_tensor(ctx, {kN, kV}, dtype, rng, -6, 6, "logits");
  auto targets = make_targets(ctx, rng, kCrossEntropyIgnoreIndex);
  auto loss = ctx.empty({kN}, stat, "loss"), lse = ctx.empty({kN}, stat, "lse");
  testing::fill_constant(loss, NAN);
  testing::fill_constant(lse, NAN);
  cross_entropy_forward(loss, lse, logits, targets, ctx);

  auto x64 = testing::tensor_from(ctx, {kN, kV}, DType::f64, testing::to_double(logits), "x64");
  auto lp = ctx.empty({kN, kV}, DType::f64, "lp");
  log_softmax_forward(lp, x64, ctx);
  auto lpv = testing::to_double(lp), xv = testing::to_double(x64);
  auto got_loss = testing::to_double(loss), got_lse = testing::to_double(lse);
  const int32_t* t = targets.ptr<int32_t>();
  for (int64_t i = 0; i < kN; ++i) {
    const double want_lse = xv[i * kV] - lpv[i * kV];
    // One rounding to the stat dtype plus a few double ulps per term of the V-term sum.
    EXPECT_NEAR(got_lse[i], want_lse, (u + (kV + 4) * 0x1p-53) * (1 + std::fabs(want_lse))) << i;
    if (t[i] == kCrossEntropyIgnoreIndex) {
      EXPECT_EQ(got_loss[i], 0.0) << i;
      continue;
    }
    const double want = -lpv[i * kV + t[i]];
    EXPECT_GT(want, 0.0);
    EXPECT_NEAR(got_loss[i], want, (u + (kV + 4) * 0x1p-53) * (1 + want)) << i;
  }
}

TEST(CrossEntropy, ForwardMatchesLogSoftmaxGather) {
  check_against_composition(DType::f64, DType::f64, 0.0, 1);
  check_against_composition(DType::f32, DType::f32, 0x1p-24, 2);
  check_against_composition(DType::bf16, DType::f32, 0x1p-24, 3);
}

TEST(CrossEntropy, LargeLogitsStayAccurate) {
  auto& ctx = cpu_ctx();
  // loss = log(1 + e^-1) for logits (1000, 1001) and target 1, independent of the offset.
  auto logits = testing::tensor_from(ctx, {1, 2}, DType::f32, {1000.0, 1001.0}, "logits");
  auto targets = testing::tensor_from(ctx, {1}, DType::i32, {1}, "t");
  auto loss = ctx.empty({1}, DType::f32), lse = ctx.empty({1}, DType::f32);
  cross_entropy_forward(loss, lse, logits, targets, ctx);
  const double want = std::log1p(std::exp(-1.0));
  EXPECT_NEAR(loss.ptr<float>()[0], want, 0x1p-24 * want);
}

TEST(CrossEntropy, BackwardMatchesFiniteDifferences) {
  std::mt19937_64 rng(4);
  auto& ctx = cpu_ctx();
  auto logits = testing::random_tensor(ctx, {kN, kV}, DType::f64, rng, -3, 3, "logits");
  auto targets = make_targets(ctx, rng, kCrossEntropyIgnoreIndex);
  auto dloss = testing::random_tensor(ctx, {kN}, DType::f64, rng, 0.1, 1, "dloss");
  auto loss = ctx.empty({kN}, DType::f64), lse = ctx.empty({kN}, DType::f64);
  auto total = [&] {
    cross_entropy_forward(loss, lse, logits, targets, ctx);
    return testing::dot(loss, dloss);
  };
  total();
  auto dlogits = ctx.empty({kN, kV}, DType::f64, "dlogits");
  testing::fill_constant(dlogits, NAN);  // overwrite, including ignored rows
  cross_entropy_backward(dlogits, dloss, logits, targets, lse, ctx);
  testing::expect_gradients_match(total, {{logits.view(), dlogits.view()}});
  for (int64_t j = 0; j < kV; ++j) {
    EXPECT_EQ(dlogits.ptr<double>()[1 * kV + j], 0.0);
    EXPECT_EQ(dlogits.ptr<double>()[4 * kV + j], 0.0);
  }

  // In place over the logits gives the same gradient (lse recomputed at the restored logits).
  total();
  auto inplace = testing::tensor_from(ctx, {kN, kV}, DType::f64, testing::to_double(logits));
  cross_entropy_backward(inplace, dloss, inplace, targets, lse, ctx);
  auto a = testing::to_double(inplace), b = testing::to_double(dlogits);
  for (size_t k = 0; k < a.size(); ++k) EXPECT_EQ(a[k], b[k]) << k;
}

TEST(CrossEntropy, CustomIgnoreIndex) {
  std::mt19937_64 rng(5);
  auto& ctx = cpu_ctx();
  auto logits = testing::random_tensor(ctx, {kN, kV}, DType::f32, rng, -3, 3, "logits");
  // -1 is not ignored by default (an error), but is with ignore_index = -1.
  auto targets = make_targets(ctx, rng, -1);
  auto loss = ctx.empty({kN}, DType::f32), lse = ctx.empty({kN}, DType::f32);
  testing::expect_error_contains(
      [&] { cross_entropy_forward(loss, lse, logits, targets, ctx); },
      {"[cross_entropy]", "target -1", "position 1", "V = 13", "labels"});
  cross_entropy_forward(loss, lse, logits, targets, -1, ctx);
  EXPECT_EQ(loss.ptr<float>()[1], 0.0f);
  EXPECT_EQ(loss.ptr<float>()[4], 0.0f);
  EXPECT_GT(loss.ptr<float>()[0], 0.0f);
  auto dloss = testing::tensor_from(ctx, {kN}, DType::f32, std::vector<double>(kN, 1.0));
  auto dlogits = ctx.empty({kN, kV}, DType::f32);
  testing::fill_constant(dlogits, NAN);
  cross_entropy_backward(dlogits, dloss, logits, targets, lse, -1, ctx);
  // Each kept row of softmax − onehot sums to 0; ignored rows are 0.
  for (int64_t i = 0; i < kN; ++i) {
    double s = 0;
    for (int64_t j = 0; j < kV; ++j) s += dlogits.ptr<float>()[i * kV + j];
    EXPECT_NEAR(s, 0.0, (kV + 2) * 0x1p-24) << i;
  }
  EXPECT_EQ(dlogits.ptr<float>()[1 * kV + 3], 0.0f);
}

TEST(CrossEntropy, ValidationNamesOpAndShapes) {
  auto& ctx = cpu_ctx();
  auto logits = ctx.zeros({4, 7}, DType::f32, "logits");
  auto targets = testing::tensor_from(ctx, {4}, DType::i32, {0, 1, 7, 2}, "targets");
  auto loss = ctx.empty({4}, DType::f32, "loss"), lse = ctx.empty({4}, DType::f32, "lse");
  testing::expect_error_contains([&] { cross_entropy_forward(loss, lse, logits, targets, ctx); },
                                 {"[cross_entropy]", "target 7", "position 2", "V = 7"});
  auto dlogits = ctx.empty({4, 7}, DType::f32, "dlogits");
  testing::expect_error_contains(
      [&] { cross_entropy_backward(dlogits, loss, logits, targets, lse, ctx); },
      {"[cross_entropy_backward]", "target 7", "position 2"});
  auto loss5 = ctx.empty({5}, DType::f32, "loss5");
  auto ok = ctx.zeros({4}, DType::i32, "ok");
  testing::expect_error_contains([&] { cross_entropy_forward(loss5, lse, logits, ok, ctx); },
                                 {"[cross_entropy]", "loss5", "(5)", "(4)"});
  auto lse16 = ctx.empty({4}, DType::bf16, "lse16");
  testing::expect_error_contains([&] { cross_entropy_forward(loss, lse16, logits, ok, ctx); },
                                 {"[cross_entropy]", "lse16", "f32 or f64"});
  auto ft = ctx.zeros({4}, DType::f32, "ft");
  testing::expect_error_contains([&] { cross_entropy_forward(loss, lse, logits, ft, ctx); },
                                 {"[cross_entropy]", "ft", "i32"});
  auto d3 = ctx.empty({4, 6}, DType::f32, "d3");
  testing::expect_error_contains([&] { cross_entropy_backward(d3, loss, logits, ok, lse, ctx); },
                                 {"[cross_entropy_backward]", "(4, 6)", "(4, 7)"});
}

}  // namespace
}  // namespace r1kit::kernels
