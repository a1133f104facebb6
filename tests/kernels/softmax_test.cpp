// softmax / log_softmax: forward against the direct formula (including huge logits), in place,
// bf16, backward against finite differences, validation.
#include "kernels/softmax.h"

#include <cmath>

#include "tests/common/test_util.h"

namespace r1kit::kernels {
namespace {
using testing::cpu_ctx;

// Direct softmax of each row in double (max-subtracted).
std::vector<double> direct_softmax(const std::vector<double>& x, int64_t n, int64_t v) {
  std::vector<double> y(x.size());
  for (int64_t i = 0; i < n; ++i) {
    double m = x[i * v];
    for (int64_t j = 0; j < v; ++j) m = std::max(m, x[i * v + j]);
    double s = 0;
    for (int64_t j = 0; j < v; ++j) s += std::exp(x[i * v + j] - m);
    for (int64_t j = 0; j < v; ++j) y[i * v + j] = std::exp(x[i * v + j] - m) / s;
  }
  return y;
}

TEST(Softmax, ForwardMatchesFormula) {
  std::mt19937_64 rng(1);
  auto& ctx = cpu_ctx();
  const int64_t n = 7, v = 13;
  auto x = testing::random_tensor(ctx, {n, v}, DType::f64, rng, -5, 5, "logits");
  // Row 0 is huge: exp(x) overflows without the max subtraction.
  for (int64_t j = 0; j < v; ++j) x.ptr<double>()[j] = 1000.0 + j;
  auto y = ctx.empty({n, v}, DType::f64, "y"), ly = ctx.empty({n, v}, DType::f64, "ly");
  testing::fill_constant(y, NAN);
  testing::fill_constant(ly, NAN);
  softmax_forward(y, x, ctx);
  log_softmax_forward(ly, x, ctx);
  auto want = direct_softmax(testing::to_double(x), n, v);
  auto got = testing::to_double(y), lgot = testing::to_double(ly);
  for (int64_t i = 0; i < n; ++i) {
    double total = 0;
    for (int64_t j = 0; j < v; ++j) {
      const size_t k = static_cast<size_t>(i * v + j);
      // Relative error of a few ulps per exp and per sum of V terms.
      EXPECT_NEAR(got[k], want[k], (v + 4) * 0x1p-53 * want[k]) << i << "," << j;
      EXPECT_NEAR(lgot[k], std::log(want[k]), (v + 4) * 0x1p-53 * (1 + std::fabs(lgot[k])));
      total += got[k];
    }
    EXPECT_NEAR(total, 1.0, 2 * v * 0x1p-53);
  }
  // Row 0: softmax(1000 + j) = softmax(j).
  auto shifted = testing::tensor_from(ctx, {1, v}, DType::f64, std::vector<double>(v), "shifted");
  for (int64_t j = 0; j < v; ++j) shifted.ptr<double>()[j] = static_cast<double>(j);
  auto want0 = direct_softmax(testing::to_double(shifted), 1, v);
  for (int64_t j = 0; j < v; ++j) EXPECT_NEAR(got[j], want0[j], (v + 4) * 0x1p-53);

  // In place.
  softmax_forward(x, x, ctx);
  auto inplace = testing::to_double(x);
  for (size_t k = 0; k < got.size(); ++k) EXPECT_EQ(inplace[k], got[k]) << k;
}

TEST(Softmax, Bf16InputAndOutput) {
  std::mt19937_64 rng(2);
  auto& ctx = cpu_ctx();
  const int64_t n = 3, v = 33;
  auto x = testing::random_tensor(ctx, {n, v}, DType::bf16, rng, -8, 8, "x");
  auto y = ctx.empty({n, v}, DType::bf16, "y");
  softmax_forward(y, x, ctx);
  auto want = direct_softmax(testing::to_double(x), n, v);  // on the bf16-exact inputs
  auto got = testing::to_double(y);
  // One bf16 rounding of the f32 result (itself within a few f32 ulps of exact).
  for (size_t k = 0; k < got.size(); ++k)
    EXPECT_NEAR(got[k], want[k], (0x1p-8 + (v + 4) * 0x1p-24) * want[k]) << k;
}

TEST(Softmax, BackwardMatchesFiniteDifferences) {
  std::mt19937_64 rng(3);
  auto& ctx = cpu_ctx();
  const int64_t n = 5, v = 11;
  auto x = testing::random_tensor(ctx, {n, v}, DType::f64, rng, -3, 3);
  auto g = testing::random_tensor(ctx, {n, v}, DType::f64, rng);
  auto y = ctx.empty({n, v}, DType::f64);
  for (bool log : {false, true}) {
    SCOPED_TRACE(log ? "log_softmax" : "softmax");
    auto loss = [&] {
      if (log) {
        log_softmax_forward(y, x, ctx);
      } else {
        softmax_forward(y, x, ctx);
      }
      return testing::dot(y, g);
    };
    loss();
    auto dx = ctx.empty({n, v}, DType::f64, "dx");
    testing::fill_constant(dx, NAN);  // overwrite: every element written
    if (log) {
      log_softmax_backward(dx, g, y, ctx);
    } else {
      softmax_backward(dx, g, y, ctx);
    }
    testing::expect_gradients_match(loss, {{x.view(), dx.view()}});

    // dx may be dy itself (recompute y: the gradient check left it at a perturbed x).
    loss();
    auto dy = testing::tensor_from(ctx, {n, v}, DType::f64, testing::to_double(g), "dy");
    if (log) {
      log_softmax_backward(dy, dy, y, ctx);
    } else {
      softmax_backward(dy, dy, y, ctx);
    }
    auto a = testing::to_double(dy), b = testing::to_double(dx);
    for (size_t k = 0; k < a.size(); ++k) EXPECT_EQ(a[k], b[k]) << k;
  }
}

TEST(Softmax, ValidationNamesOpAndShapes) {
  auto& ctx = cpu_ctx();
  auto x3 = ctx.empty({2, 4, 7}, DType::f32, "x3");
  auto y3 = ctx.empty({2, 4, 7}, DType::f32, "y3");
  testing::expect_error_contains([&] { softmax_forward(y3, x3, ctx); },
                                 {"[softmax]", "(2, 4, 7)", "2 dims"});
  auto x = ctx.empty({4, 7}, DType::f32, "logits");
  auto y = ctx.empty({4, 8}, DType::f32, "y");
  testing::expect_error_contains([&] { log_softmax_forward(y, x, ctx); },
                                 {"[log_softmax]", "(4, 8)", "(4, 7)"});
  auto buf = ctx.empty({5, 7}, DType::f32, "buf");
  testing::expect_error_contains(
      [&] { softmax_forward(buf.view().slice(1, 5), buf.view().slice(0, 4), ctx); },
      {"[softmax]", "overlap"});
  auto dy = ctx.empty({4, 7}, DType::f32, "dy");
  testing::expect_error_contains([&] { softmax_backward(x, dy, x, ctx); },
                                 {"[softmax_backward]", "dx", "overlap"});
  auto dy64 = ctx.empty({4, 7}, DType::f64, "dy64");
  testing::expect_error_contains([&] { log_softmax_backward(dy, dy64, x, ctx); },
                                 {"[log_softmax_backward]", "f64"});
}

}  // namespace
}  // namespace r1kit::kernels
