// Philox random tensors on the CPU: determinism, stream independence, distribution moments.
#include "kernels/random.h"

#include <cmath>

#include "tests/common/test_util.h"

namespace r1kit::kernels {
namespace {
using testing::cpu_ctx;

TEST(Random, UniformIsAPureFunctionOfSeedOffsetIndex) {
  auto& ctx = cpu_ctx();
  auto a = ctx.empty({1001}, DType::f32);
  auto b = ctx.empty({1001}, DType::f32);
  random_uniform(a, -2, 3, 11, 5, ctx);
  random_uniform(b, -2, 3, 11, 5, ctx);
  auto av = testing::to_double(a), bv = testing::to_double(b);
  EXPECT_EQ(av, bv);
  for (double v : av) {
    EXPECT_GE(v, -2.0);
    EXPECT_LT(v, 3.0);
  }
  // A prefix of a longer draw equals a shorter draw (element i depends only on i).
  auto c = ctx.empty({10}, DType::f32);
  random_uniform(c, -2, 3, 11, 5, ctx);
  auto cv = testing::to_double(c);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(cv[i], av[i]);
  // Another offset or seed gives another stream.
  random_uniform(b, -2, 3, 11, 6, ctx);
  EXPECT_NE(testing::to_double(b), av);
  random_uniform(b, -2, 3, 12, 5, ctx);
  EXPECT_NE(testing::to_double(b), av);
}

TEST(Random, NormalMoments) {
  auto& ctx = cpu_ctx();
  const int n = 200001;
  auto x = ctx.empty({n}, DType::f64);
  random_normal(x, 1.5, 2.0, 3, 0, ctx);
  auto v = testing::to_double(x);
  double mean = 0, m2 = 0;
  for (double d : v) mean += d;
  mean /= n;
  for (double d : v) m2 += (d - mean) * (d - mean);
  double sd = std::sqrt(m2 / (n - 1));
  // Standard errors: mean 2/sqrt(n) ≈ 0.0045, sd ≈ 2/sqrt(2n) ≈ 0.0032; allow 5 sigma.
  EXPECT_NEAR(mean, 1.5, 5 * 2.0 / std::sqrt(n));
  EXPECT_NEAR(sd, 2.0, 5 * 2.0 / std::sqrt(2.0 * n));
  for (double d : v) ASSERT_TRUE(std::isfinite(d));
}

TEST(Random, Bf16OutputAndValidation) {
  auto& ctx = cpu_ctx();
  auto x = ctx.empty({33}, DType::bf16);
  random_uniform(x, 0, 1, 1, 0, ctx);
  for (double d : testing::to_double(x)) {
    EXPECT_GE(d, 0.0);
    EXPECT_LE(d, 1.0);  // rounding to bf16 may reach 1.0
  }
  auto i = ctx.empty({3}, DType::i32, "ids");
  testing::expect_error_contains([&] { random_uniform(i, 0, 1, 1, 0, ctx); },
                                 {"[random_uniform]", "'ids' (3) i32"});
  testing::expect_error_contains([&] { random_normal(x, 0, -1, 1, 0, ctx); },
                                 {"[random_normal]", "std -1"});
}

}  // namespace
}  // namespace r1kit::kernels
