// swiglu: forward against the formula (contiguous and packed gate_up column slices, bf16),
// backward against finite differences through a packed (N, 2H) buffer, validation.
#include "kernels/swiglu.h"

#include <cmath>

#include "tests/common/test_util.h"

namespace r1kit::kernels {
namespace {
using testing::cpu_ctx;

double silu(double g) {
  return g / (1.0 + std::exp(-g));
}

TEST(Swiglu, ForwardMatchesFormula) {
  std::mt19937_64 rng(1);
  auto& ctx = cpu_ctx();
  const int64_t n = 7, h = 13;
  auto gate = testing::random_tensor(ctx, {n, h}, DType::f64, rng, -4, 4, "gate");
  auto up = testing::random_tensor(ctx, {n, h}, DType::f64, rng, -2, 2, "up");
  auto out = ctx.empty({n, h}, DType::f64, "out");
  testing::fill_constant(out, NAN);
  swiglu_forward(out, gate, up, ctx);
  auto g = testing::to_double(gate), u = testing::to_double(up), o = testing::to_double(out);
  for (size_t i = 0; i < o.size(); ++i)
    EXPECT_NEAR(o[i], silu(g[i]) * u[i], 4 * 0x1p-53 * std::fabs(silu(g[i]) * u[i])) << i;
}

TEST(Swiglu, PackedGateUpColumnSlices) {
  std::mt19937_64 rng(2);
  auto& ctx = cpu_ctx();
  const int64_t n = 5, h = 9;
  for (DType dt : {DType::f64, DType::f32, DType::bf16}) {
    // One (N, 2H) GEMM output: gate = columns [0, H), up = columns [H, 2H).
    auto gate_up = testing::random_tensor(ctx, {n, 2 * h}, dt, rng, -4, 4, "gate_up");
    TensorView gate = column_slice(gate_up, 0, h), up = column_slice(gate_up, h, 2 * h);
    EXPECT_FALSE(gate.is_contiguous());
    EXPECT_EQ(gate.name, "gate_up[:, 0:9]");
    // The output is itself a column slice of a wider buffer whose other columns must survive.
    auto wide = testing::random_tensor(ctx, {n, h + 3}, dt, rng, -1, 1, "wide");
    auto before = testing::to_double(wide);
    swiglu_forward(column_slice(wide, 2, 2 + h), gate, up, ctx);
    auto gu = testing::to_double(gate_up), w = testing::to_double(wide);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < h + 3; ++j) {
        const double got = w[i * (h + 3) + j];
        if (j < 2 || j >= 2 + h) {
          EXPECT_EQ(got, before[i * (h + 3) + j]) << "column outside the slice was written";
          continue;
        }
        const double want = silu(gu[i * 2 * h + j - 2]) * gu[i * 2 * h + h + j - 2];
        // Computed in double, then stored: one rounding to the dtype (bf16 via f32: two).
        const double u = dt == DType::f64 ? 0.0 : dt == DType::f32 ? 0x1p-24 : 0x1p-8 + 0x1p-24;
        const double tol = (u + 8 * 0x1p-53) * std::fabs(want);
        EXPECT_NEAR(got, want, tol) << dtype_name(dt) << " at " << i << "," << j;
      }
  }
}

TEST(Swiglu, BackwardMatchesFiniteDifferencesThroughPackedBuffers) {
  std::mt19937_64 rng(3);
  auto& ctx = cpu_ctx();
  const int64_t n = 7, h = 11;
  auto gate_up = testing::random_tensor(ctx, {n, 2 * h}, DType::f64, rng, -3, 3, "gate_up");
  auto g = testing::random_tensor(ctx, {n, h}, DType::f64, rng);
  auto out = ctx.empty({n, h}, DType::f64);
  TensorView gate = column_slice(gate_up, 0, h), up = column_slice(gate_up, h, 2 * h);
  auto loss = [&] {
    swiglu_forward(out, gate, up, ctx);
    return testing::dot(out, g);
  };
  auto dgate_up = ctx.empty({n, 2 * h}, DType::f64, "dgate_up");
  testing::fill_constant(dgate_up, NAN);  // both halves must be written
  swiglu_backward(column_slice(dgate_up, 0, h), column_slice(dgate_up, h, 2 * h), g, gate, up, ctx);
  testing::expect_gradients_match(loss, {{gate_up.view(), dgate_up.view()}});

  // Contiguous arguments give the same gradients.
  auto gc = testing::tensor_from(ctx, {n, h}, DType::f64, std::vector<double>(n * h), "gate");
  auto uc = testing::tensor_from(ctx, {n, h}, DType::f64, std::vector<double>(n * h), "up");
  auto gu = testing::to_double(gate_up);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < h; ++j) {
      gc.ptr<double>()[i * h + j] = gu[i * 2 * h + j];
      uc.ptr<double>()[i * h + j] = gu[i * 2 * h + h + j];
    }
  auto dg = ctx.empty({n, h}, DType::f64), du = ctx.empty({n, h}, DType::f64);
  swiglu_backward(dg, du, g, gc, uc, ctx);
  auto packed = testing::to_double(dgate_up);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < h; ++j) {
      EXPECT_EQ(dg.ptr<double>()[i * h + j], packed[i * 2 * h + j]);
      EXPECT_EQ(du.ptr<double>()[i * h + j], packed[i * 2 * h + h + j]);
    }
}

TEST(Swiglu, ValidationNamesOpAndShapes) {
  auto& ctx = cpu_ctx();
  auto gate = ctx.empty({7, 13}, DType::f32, "gate");
  auto up = ctx.empty({7, 12}, DType::f32, "up");
  auto out = ctx.empty({7, 13}, DType::f32, "out");
  testing::expect_error_contains([&] { swiglu_forward(out, gate, up, ctx); },
                                 {"[swiglu]", "(7, 12)", "(7, 13)"});
  // Column stride 2 (every other column) is not a row-strided view.
  auto wide = ctx.empty({7, 26}, DType::f32, "wide");
  TensorView every_other = wide.view();
  every_other.shape[1] = 13;
  every_other.stride[1] = 2;
  testing::expect_error_contains([&] { swiglu_forward(out, every_other, gate, ctx); },
                                 {"[swiglu]", "gate", "unit column stride", "(26, 2)"});
  // Rows that interleave (row stride < width).
  TensorView squeezed = wide.view();
  squeezed.shape = {7, 13, 0, 0};
  squeezed.stride = {4, 1, 0, 0};
  testing::expect_error_contains([&] { swiglu_forward(out, gate, squeezed, ctx); },
                                 {"[swiglu]", "up", "row stride"});
  // An output overlapping an input, and two packed halves that overlap each other.
  auto gate_up = ctx.empty({7, 26}, DType::f32, "gate_up");
  testing::expect_error_contains(
      [&] {
        swiglu_forward(column_slice(gate_up, 5, 18), column_slice(gate_up, 0, 13),
                       column_slice(gate_up, 13, 26), ctx);
      },
      {"[swiglu]", "out", "overlap"});
  testing::expect_error_contains(
      [&] {
        swiglu_backward(column_slice(gate_up, 0, 13), column_slice(gate_up, 12, 25), out, gate,
                        gate, ctx);
      },
      {"[swiglu_backward]", "dgate", "dup", "overlap"});
  testing::expect_error_contains([&] { column_slice(gate_up, 20, 27); },
                                 {"[column_slice]", "[20, 27)", "(7, 26)"});
  auto x64 = ctx.empty({7, 13}, DType::f64, "x64");
  testing::expect_error_contains([&] { swiglu_forward(out, x64, gate, ctx); }, {"[swiglu]", "f64"});
}

}  // namespace
}  // namespace r1kit::kernels
