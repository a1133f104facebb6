// Elementwise ops: add/mul forward against the formula (in place too) and backward against finite
// differences, axpy, scale, cast rounding (ties to even, NaN, overflow), fill, validation.
#include "kernels/elementwise.h"

#include <cmath>
#include <functional>
#include <limits>

#include "tests/common/test_util.h"

namespace r1kit::kernels {
namespace {
using testing::cpu_ctx;

const Shape kShape = {7, 13, 5};

using BinaryForward =
    std::function<void(const TensorView& y, const TensorView& a, const TensorView& b)>;
using BinaryBackward =
    std::function<void(const TensorView& da, const TensorView& db, const TensorView& dy,
                       const TensorView& a, const TensorView& b)>;

// y = forward(a, b) on random f64 a, b of shape s; backward(da, db, dy, a, b) into NaN-poisoned
// da, db against central finite differences of the loss Σ y·dy for a random dy, which is returned.
Tensor expect_binary_gradients_match(const Shape& s, uint64_t seed, const BinaryForward& forward,
                                     const BinaryBackward& backward) {
  std::mt19937_64 rng(seed);
  auto& ctx = cpu_ctx();
  auto a = testing::random_tensor(ctx, s, DType::f64, rng);
  auto b = testing::random_tensor(ctx, s, DType::f64, rng);
  auto g = testing::random_tensor(ctx, s, DType::f64, rng);
  auto y = ctx.empty(s, DType::f64);
  auto loss = [&] {
    forward(y, a, b);
    return testing::dot(y, g);
  };
  auto da = ctx.empty(s, DType::f64, "da"), db = ctx.empty(s, DType::f64, "db");
  testing::fill_constant(da, NAN);
  testing::fill_constant(db, NAN);
  backward(da, db, g, a, b);
  testing::expect_gradients_match(loss, {{a.view(), da.view()}, {b.view(), db.view()}});
  return g;
}

TEST(Elementwise, AddAndMulForwardMatchFormula) {
  std::mt19937_64 rng(1);
  auto& ctx = cpu_ctx();
  auto a = testing::random_tensor(ctx, kShape, DType::f64, rng, -1, 1, "a");
  auto b = testing::random_tensor(ctx, kShape, DType::f64, rng, -1, 1, "b");
  auto y = ctx.empty(kShape, DType::f64, "y");
  auto av = testing::to_double(a), bv = testing::to_double(b);
  testing::fill_constant(y, NAN);
  add_forward(y, a, b, ctx);
  auto yv = testing::to_double(y);
  for (size_t i = 0; i < yv.size(); ++i) EXPECT_EQ(yv[i], av[i] + bv[i]) << i;
  testing::fill_constant(y, NAN);
  mul_forward(y, a, b, ctx);
  yv = testing::to_double(y);
  for (size_t i = 0; i < yv.size(); ++i) EXPECT_EQ(yv[i], av[i] * bv[i]) << i;

  // In place: y is a (add), then y is b (mul).
  add_forward(a, a, b, ctx);
  auto a2 = testing::to_double(a);
  for (size_t i = 0; i < a2.size(); ++i) EXPECT_EQ(a2[i], av[i] + bv[i]) << i;
  mul_forward(b, a, b, ctx);
  auto b2 = testing::to_double(b);
  for (size_t i = 0; i < b2.size(); ++i) EXPECT_EQ(b2[i], a2[i] * bv[i]) << i;
}

TEST(Elementwise, MixedBf16AndF32RoundOnceToOutput) {
  std::mt19937_64 rng(2);
  auto& ctx = cpu_ctx();
  auto a = testing::random_tensor(ctx, kShape, DType::bf16, rng, -1, 1, "a");
  auto b = testing::random_tensor(ctx, kShape, DType::f32, rng, -1, 1, "b");
  auto y32 = ctx.empty(kShape, DType::f32, "y32");
  auto y16 = ctx.empty(kShape, DType::bf16, "y16");
  add_forward(y32, a, b, ctx);
  add_forward(y16, a, b, ctx);
  auto av = testing::to_double(a), bv = testing::to_double(b);
  auto p = testing::to_double(y32), q = testing::to_double(y16);
  for (size_t i = 0; i < p.size(); ++i) {
    const float sum = static_cast<float>(av[i] + bv[i]);  // summed in double, one f32 rounding
    EXPECT_EQ(p[i], sum) << i;
    // bf16 output: rounded from the f32 result (as the GPU would store it).
    EXPECT_EQ(q[i], round_to_bf16(sum)) << i;
  }
}

TEST(Elementwise, AddBackwardMatchesFiniteDifferences) {
  auto& ctx = cpu_ctx();
  const Shape s = {3, 7, 5};
  const Tensor g = expect_binary_gradients_match(
      s, 3, [&](auto& y, auto& a, auto& b) { add_forward(y, a, b, ctx); },
      [&](auto& da, auto& db, auto& dy, auto&, auto&) {
        add_backward(da, db, dy, GradWrite::overwrite, GradWrite::overwrite, ctx);
      });
  const int64_t numel = g.numel();

  // The residual stream accumulates: da += dy while db is overwritten; then db += dy alone.
  auto da2 = testing::tensor_from(ctx, s, DType::f64, std::vector<double>(numel, 0.5));
  auto db2 = ctx.empty(s, DType::f64, "db2");
  testing::fill_constant(db2, NAN);
  add_backward(da2, db2, g, GradWrite::accumulate, GradWrite::overwrite, ctx);
  auto db3 = testing::tensor_from(ctx, s, DType::f64, std::vector<double>(numel, -1.0));
  add_backward(TensorView{}, db3, g, GradWrite::overwrite, GradWrite::accumulate, ctx);
  auto p = testing::to_double(da2), q = testing::to_double(g);
  auto r = testing::to_double(db2), t = testing::to_double(db3);
  for (size_t i = 0; i < p.size(); ++i) {
    EXPECT_EQ(p[i], q[i] + 0.5) << i;
    EXPECT_EQ(r[i], q[i]) << i;
    EXPECT_EQ(t[i], q[i] - 1.0) << i;
  }
}

TEST(Elementwise, MulBackwardMatchesFiniteDifferences) {
  auto& ctx = cpu_ctx();
  expect_binary_gradients_match(
      {5, 3, 11}, 4, [&](auto& y, auto& a, auto& b) { mul_forward(y, a, b, ctx); },
      [&](auto& da, auto& db, auto& dy, auto& a, auto& b) { mul_backward(da, db, dy, a, b, ctx); });
}

TEST(Elementwise, AxpyAndScale) {
  std::mt19937_64 rng(5);
  auto& ctx = cpu_ctx();
  auto x = testing::random_tensor(ctx, kShape, DType::f64, rng, -1, 1, "x");
  auto y = testing::random_tensor(ctx, kShape, DType::f64, rng, -1, 1, "residual");
  auto xv = testing::to_double(x), yv = testing::to_double(y);
  axpy(y, -0.75, x, ctx);
  auto r = testing::to_double(y);
  for (size_t i = 0; i < r.size(); ++i) EXPECT_EQ(r[i], yv[i] + -0.75 * xv[i]) << i;
  scale(x, 3.0, x, ctx);  // in place
  auto s = testing::to_double(x);
  for (size_t i = 0; i < s.size(); ++i) EXPECT_EQ(s[i], 3.0 * xv[i]) << i;
  // f32 residual: y += alpha·x rounds once per element.
  auto x32 = testing::random_tensor(ctx, kShape, DType::f32, rng, -1, 1, "x32");
  auto y32 = testing::random_tensor(ctx, kShape, DType::f32, rng, -1, 1, "y32");
  auto x0 = testing::to_double(x32), y0 = testing::to_double(y32);
  axpy(y32, 0.1, x32, ctx);
  auto y1 = testing::to_double(y32);
  for (size_t i = 0; i < y1.size(); ++i)
    EXPECT_EQ(y1[i], static_cast<float>(y0[i] + 0.1 * x0[i])) << i;
}

TEST(Elementwise, CastRoundsToNearestEven) {
  auto& ctx = cpu_ctx();
  const double inf = std::numeric_limits<double>::infinity();
  // bf16 has 8 significand bits (spacing 2^-7 at 1): 1 + 2^-8 is a tie -> 1 (even);
  // 1 + 3·2^-8 is a tie -> 1 + 2^-6 (even); just above the tie rounds up.
  const std::vector<double> in = {
      1 + 0x1p-8, 1 + 3 * 0x1p-8, 1 + 0x1p-8 + 0x1p-20, -2.5, 0.0, inf, 70000.0, NAN};
  const int64_t n = static_cast<int64_t>(in.size());
  auto src = testing::tensor_from(ctx, {n}, DType::f32, in, "src");
  auto b16 = ctx.empty({n}, DType::bf16, "b16");
  cast(b16, src, ctx);
  auto got = testing::to_double(b16);
  const std::vector<double> want_bf16 = {1.0, 1 + 0x1p-6, 1 + 0x1p-7, -2.5, 0.0, inf, 70144.0};
  for (size_t i = 0; i < want_bf16.size(); ++i) EXPECT_EQ(got[i], want_bf16[i]) << i;
  EXPECT_TRUE(std::isnan(got[7]));

  // f16 has 11 significand bits: 1 + 2^-11 ties to 1, 1 + 3·2^-11 ties to 1 + 2^-9; 70000
  // overflows (max 65504) to inf.
  auto h_src = testing::tensor_from(ctx, {4}, DType::f64,
                                    {1 + 0x1p-11, 1 + 3 * 0x1p-11, 70000.0, -0x1p-24}, "h_src");
  auto f16 = ctx.empty({4}, DType::f16, "f16");
  cast(f16, h_src, ctx);
  auto h = testing::to_double(f16);
  EXPECT_EQ(h[0], 1.0);
  EXPECT_EQ(h[1], 1 + 0x1p-9);
  EXPECT_EQ(h[2], inf);
  EXPECT_EQ(h[3], -0x1p-24);  // smallest f16 subnormal

  // Widening is exact, and a round trip through f32 of bf16 values is the identity.
  auto back = ctx.empty({n}, DType::f64, "back");
  cast(back, b16, ctx);
  auto bv = testing::to_double(back);
  for (size_t i = 0; i < want_bf16.size(); ++i) EXPECT_EQ(bv[i], want_bf16[i]) << i;
  std::mt19937_64 rng(6);
  auto big = testing::random_tensor(ctx, {3, 7, 2000}, DType::f32, rng, -3, 3, "big");
  auto big16 = ctx.empty({3, 7, 2000}, DType::bf16, "big16");
  cast(big16, big, ctx);
  auto bigv = testing::to_double(big), big16v = testing::to_double(big16);
  for (size_t i = 0; i < bigv.size(); ++i)
    ASSERT_EQ(big16v[i], round_to_bf16(static_cast<float>(bigv[i]))) << i;
}

TEST(Elementwise, FillRoundsOnce) {
  auto& ctx = cpu_ctx();
  auto y = ctx.empty({7, 13}, DType::bf16, "y");
  fill(y, 1.0 / 3.0, ctx);
  for (double v : testing::to_double(y)) EXPECT_EQ(v, round_to_bf16(1.0f / 3.0f));
  auto z = ctx.empty({5, 3}, DType::f64, "z");
  fill(z, -0.1, ctx);
  for (double v : testing::to_double(z)) EXPECT_EQ(v, -0.1);
}

TEST(Elementwise, ValidationNamesOpAndShapes) {
  auto& ctx = cpu_ctx();
  auto a = ctx.empty({4, 7}, DType::f32, "a");
  auto b = ctx.empty({4, 8}, DType::f32, "b");
  auto y = ctx.empty({4, 7}, DType::f32, "y");
  testing::expect_error_contains([&] { add_forward(y, a, b, ctx); }, {"[add]", "(4, 8)", "(4, 7)"});
  testing::expect_error_contains([&] { mul_forward(b, a, a, ctx); }, {"[mul]", "(4, 8)", "(4, 7)"});
  // A shifted view of a overlaps a without being a.
  auto buf = ctx.empty({5, 7}, DType::f32, "buf");
  TensorView lo = buf.view().slice(0, 4), hi = buf.view().slice(1, 5);
  testing::expect_error_contains([&] { add_forward(hi, lo, a, ctx); }, {"[add]", "overlap"});
  testing::expect_error_contains(
      [&] { add_backward(lo, hi, a, GradWrite::overwrite, GradWrite::overwrite, ctx); },
      {"[add_backward]", "da", "db", "overlap"});
  auto i32 = ctx.empty({4, 7}, DType::i32, "ids");
  testing::expect_error_contains([&] { cast(y, i32, ctx); }, {"[cast]", "ids", "i32"});
  testing::expect_error_contains([&] { scale(y, NAN, a, ctx); }, {"[scale]", "alpha"});
  auto a64 = ctx.empty({4, 7}, DType::f64, "a64");
  testing::expect_error_contains([&] { axpy(y, 1.0, a64, ctx); }, {"[axpy]", "f64"});
  testing::expect_error_contains([&] { mul_backward(y, TensorView{}, a, b, a, ctx); },
                                 {"[mul_backward]", "(4, 8)", "(4, 7)"});
}

TEST(Copy, StridedViewsWithConversion) {
  std::mt19937_64 rng(31);
  auto& ctx = testing::cpu_ctx();
  // Heads 1..2 of a (5, 4, 6) buffer, columns 2..5, into a (5, 2, 4) bf16 tensor and back.
  auto src = testing::random_tensor(ctx, {5, 4, 6}, DType::f32, rng);
  TensorView band = src.view();
  band.data = band.element(1 * 6 + 2);
  band.shape = {5, 2, 4, 0};
  auto dst = ctx.empty({5, 2, 4}, DType::bf16);
  copy(dst, band, ctx);
  auto sv = testing::to_double(src), dv = testing::to_double(dst);
  for (int64_t t = 0; t < 5; ++t)
    for (int64_t h = 0; h < 2; ++h)
      for (int64_t d = 0; d < 4; ++d)
        EXPECT_EQ(dv[(t * 2 + h) * 4 + d], static_cast<double>(round_to_bf16(static_cast<float>(
                                               sv[t * 24 + (h + 1) * 6 + d + 2]))));
  auto back = ctx.zeros({5, 4, 6}, DType::f32);
  TensorView bband = back.view();
  bband.data = bband.element(1 * 6 + 2);
  bband.shape = {5, 2, 4, 0};
  copy(bband, dst, ctx);
  auto bv = testing::to_double(back);
  for (int64_t t = 0; t < 5; ++t)
    for (int64_t h = 0; h < 4; ++h)
      for (int64_t d = 0; d < 6; ++d) {
        const bool inside = h >= 1 && h < 3 && d >= 2 && d < 6;
        const double want = inside ? dv[(t * 2 + h - 1) * 4 + d - 2] : 0.0;
        EXPECT_EQ(bv[t * 24 + h * 6 + d], want) << t << " " << h << " " << d;
      }
}

TEST(Copy, OverlapAndShapeErrors) {
  auto& ctx = testing::cpu_ctx();
  auto buf = ctx.zeros({6, 4}, DType::f32);
  testing::expect_error_contains([&] { copy(buf.view().slice(1, 5), buf.view().slice(0, 4), ctx); },
                                 {"[copy]", "dst"});
  auto other = ctx.zeros({4, 5}, DType::f32);
  testing::expect_error_contains([&] { copy(other, buf.view().slice(0, 4), ctx); }, {"[copy]"});
}

}  // namespace
}  // namespace r1kit::kernels
