// rmsnorm: forward against the direct formula, backward against finite differences, validation.
#include "kernels/rmsnorm.h"

#include <cmath>

#include "tests/common/test_util.h"

namespace r1kit::kernels {
namespace {
using testing::cpu_ctx;

TEST(Rmsnorm, ForwardMatchesFormula) {
  std::mt19937_64 rng(1);
  auto& ctx = cpu_ctx();
  const int64_t n = 5, ch = 13;
  auto x = testing::random_tensor(ctx, {n, ch}, DType::f64, rng);
  auto w = testing::random_tensor(ctx, {ch}, DType::f64, rng, 0.5, 1.5);
  auto y = ctx.empty({n, ch}, DType::f64);
  auto rstd = ctx.empty({n}, DType::f64);
  testing::fill_constant(y, NAN);
  rmsnorm_forward(y, rstd, x, w, 1e-6, ctx);
  auto xv = testing::to_double(x), wv = testing::to_double(w), yv = testing::to_double(y);
  for (int64_t i = 0; i < n; ++i) {
    double ss = 0;
    for (int64_t j = 0; j < ch; ++j) ss += xv[i * ch + j] * xv[i * ch + j];
    double r = 1 / std::sqrt(ss / ch + 1e-6);
    EXPECT_NEAR(rstd.ptr<double>()[i], r, 1e-12);
    for (int64_t j = 0; j < ch; ++j) EXPECT_NEAR(yv[i * ch + j], xv[i * ch + j] * r * wv[j], 1e-12);
  }
}

TEST(Rmsnorm, Bf16InputsSeeRoundedValues) {
  std::mt19937_64 rng(2);
  auto& ctx = cpu_ctx();
  auto x = testing::random_tensor(ctx, {3, 33}, DType::bf16, rng);
  auto w = testing::random_tensor(ctx, {33}, DType::bf16, rng);
  auto y = ctx.empty({3, 33}, DType::bf16);
  auto rstd = ctx.empty({3}, DType::f32);
  rmsnorm_forward(y, rstd, x, w, 1e-5, ctx);
  // Reference in double on the (already bf16-exact) inputs, then rounded to bf16.
  auto xd = testing::tensor_from(ctx, {3, 33}, DType::f64, testing::to_double(x));
  auto wd = testing::tensor_from(ctx, {33}, DType::f64, testing::to_double(w));
  auto yd = ctx.empty({3, 33}, DType::f64);
  auto rd = ctx.empty({3}, DType::f64);
  rmsnorm_forward(yd, rd, xd, wd, 1e-5, ctx);
  auto got = testing::to_double(y), want = testing::to_double(yd);
  for (size_t i = 0; i < got.size(); ++i)
    EXPECT_EQ(got[i], static_cast<double>(round_to_bf16(static_cast<float>(want[i])))) << i;
}

TEST(Rmsnorm, BackwardMatchesFiniteDifferences) {
  std::mt19937_64 rng(3);
  auto& ctx = cpu_ctx();
  const int64_t n = 7, ch = 11;
  auto x = testing::random_tensor(ctx, {n, ch}, DType::f64, rng);
  auto w = testing::random_tensor(ctx, {ch}, DType::f64, rng);
  auto g = testing::random_tensor(ctx, {n, ch}, DType::f64, rng);
  auto y = ctx.empty({n, ch}, DType::f64);
  auto rstd = ctx.empty({n}, DType::f64);
  auto loss = [&] {
    rmsnorm_forward(y, rstd, x, w, 1e-5, ctx);
    return testing::dot(y, g);
  };
  loss();
  auto dx = ctx.empty({n, ch}, DType::f64);
  auto dw = ctx.zeros({ch}, DType::f64);
  testing::fill_constant(dx, NAN);  // overwrite mode must write every element
  rmsnorm_backward(dx, dw, g, x, w, rstd, GradWrite::overwrite, ctx);
  testing::expect_gradients_match(loss, {{x.view(), dx.view()}, {w.view(), dw.view()}});

  // Parameter gradients accumulate; accumulate mode adds to dx.
  auto dw2 = testing::tensor_from(ctx, {ch}, DType::f64, std::vector<double>(ch, 1.0));
  auto dx2 = testing::tensor_from(ctx, {n, ch}, DType::f64, std::vector<double>(n * ch, 2.0));
  rmsnorm_backward(dx2, dw2, g, x, w, rstd, GradWrite::accumulate, ctx);
  auto a = testing::to_double(dw2), b = testing::to_double(dw);
  for (int64_t j = 0; j < ch; ++j) EXPECT_NEAR(a[j], b[j] + 1.0, 1e-12);
  auto c = testing::to_double(dx2), d = testing::to_double(dx);
  for (int64_t i = 0; i < n * ch; ++i) EXPECT_NEAR(c[i], d[i] + 2.0, 1e-12);
}

TEST(Rmsnorm, ValidationNamesOpAndShapes) {
  auto& ctx = cpu_ctx();
  auto x = ctx.empty({4, 7}, DType::f32, "h");
  auto w = ctx.empty({8}, DType::f32, "model.norm.weight");
  auto y = ctx.empty({4, 7}, DType::f32, "y");
  auto rstd = ctx.empty({4}, DType::f32, "rstd");
  testing::expect_error_contains([&] { rmsnorm_forward(y, rstd, x, w, 1e-6, ctx); },
                                 {"[rmsnorm]", "model.norm.weight", "(8)", "(7)"});
  auto w7 = ctx.empty({7}, DType::i32, "w");
  testing::expect_error_contains([&] { rmsnorm_forward(y, rstd, x, w7, 1e-6, ctx); },
                                 {"[rmsnorm]", "i32"});
  auto x64 = ctx.empty({4, 7}, DType::f64, "x64");
  auto w32 = ctx.empty({7}, DType::f32, "w32");
  testing::expect_error_contains([&] { rmsnorm_forward(y, rstd, x64, w32, 1e-6, ctx); },
                                 {"[rmsnorm]", "f64"});
}

TEST(Rmsnorm, BackwardInPlaceOverDyMatchesSeparate) {
  std::mt19937_64 rng(9);
  auto& ctx = cpu_ctx();
  const int64_t n = 6, ch = 11;
  auto x = testing::random_tensor(ctx, {n, ch}, DType::f32, rng);
  auto w = testing::random_tensor(ctx, {ch}, DType::f32, rng, 0.5, 1.5);
  auto dy = testing::random_tensor(ctx, {n, ch}, DType::f32, rng);
  auto y = ctx.empty({n, ch}, DType::f32);
  auto rstd = ctx.empty({n}, DType::f32);
  rmsnorm_forward(y, rstd, x, w, 1e-6, ctx);
  auto dx = ctx.empty({n, ch}, DType::f32);
  auto dw1 = ctx.zeros({ch}, DType::f32), dw2 = ctx.zeros({ch}, DType::f32);
  rmsnorm_backward(dx, dw1, dy, x, w, rstd, GradWrite::overwrite, ctx);
  rmsnorm_backward(dy, dw2, dy, x, w, rstd, GradWrite::overwrite, ctx);  // dx is dy
  EXPECT_EQ(testing::to_double(dy), testing::to_double(dx));
  EXPECT_EQ(testing::to_double(dw2), testing::to_double(dw1));
}

TEST(Rmsnorm, PartialOverlapIsRejected) {
  auto& ctx = cpu_ctx();
  auto buf = ctx.empty({5, 8}, DType::f32);
  testing::fill_constant(buf, 1.0);
  auto w = ctx.empty({8}, DType::f32);
  testing::fill_constant(w, 1.0);
  auto rstd = ctx.empty({4}, DType::f32);
  const TensorView x = buf.view().slice(0, 4), y = buf.view().slice(1, 5);
  testing::expect_error_contains([&] { rmsnorm_forward(y, rstd, x, w, 1e-6, ctx); },
                                 {"[rmsnorm]", "y"});
  auto dw = ctx.zeros({8}, DType::f32);
  testing::expect_error_contains(
      [&] { rmsnorm_backward(y, dw, x, x, w, rstd, GradWrite::overwrite, ctx); },
      {"[rmsnorm_backward]", "dx"});
}

}  // namespace
}  // namespace r1kit::kernels
