// grad_norm: the global norm against sqrt(Σ g²) written here, thread-count independence, the
// clipping rule (PyTorch clip_grad_norm_), non-finite norms, validation.
#include "kernels/grad_norm.h"

#include <cmath>

#include "tests/common/test_util.h"

namespace r1kit::kernels {
namespace {
using testing::cpu_ctx;

constexpr double kF64Unit = 1.0 / 9007199254740992.0;  // 2^-53

// sqrt(Σ g²) over every element of every tensor, in long double.
double direct_norm(const std::vector<TensorView>& grads, int64_t* count = nullptr) {
  long double s = 0;
  int64_t n = 0;
  for (const auto& g : grads)
    for (double x : testing::to_double(g)) {
      s += static_cast<long double>(x) * x;
      ++n;
    }
  if (count) *count = n;
  return static_cast<double>(std::sqrt(s));
}

// x rounded to dtype t (through f32 for the 16-bit formats, like core's store_from_double).
double rounded(double x, DType t) {
  uint64_t buf = 0;
  store_from_double(&buf, t, 0, x);
  return load_as_double(&buf, t, 0);
}

struct GradSet {
  std::vector<Tensor> owned;
  std::vector<TensorView> views() const {
    std::vector<TensorView> v;
    for (const auto& t : owned) v.push_back(t.view());
    return v;
  }
  // Every tensor's values, to compare with after an op.
  std::vector<std::vector<double>> values() const {
    std::vector<std::vector<double>> v;
    for (const auto& t : owned) v.push_back(testing::to_double(t.view()));
    return v;
  }
};

// Odd shapes, every supported dtype, an empty tensor and one spanning several 8192-element blocks.
GradSet make_grads(Context& ctx, std::mt19937_64& rng) {
  GradSet s;
  s.owned.push_back(testing::random_tensor(ctx, {5, 7}, DType::f32, rng, -1, 1, "a.grad"));
  s.owned.push_back(testing::random_tensor(ctx, {13}, DType::f64, rng, -3, 3, "b.grad"));
  s.owned.push_back(testing::random_tensor(ctx, {3, 3, 3}, DType::bf16, rng, -1, 1, "c.grad"));
  s.owned.push_back(testing::random_tensor(ctx, {17}, DType::f16, rng, -1, 1, "d.grad"));
  s.owned.push_back(ctx.empty({0, 4}, DType::f32, "e.grad"));
  s.owned.push_back(testing::random_tensor(ctx, {20001}, DType::f32, rng, -0.1, 0.1, "f.grad"));
  return s;
}

TEST(GradNorm, MatchesDirectFormula) {
  std::mt19937_64 rng(31);
  auto& ctx = cpu_ctx();
  GradSet g = make_grads(ctx, rng);
  int64_t count = 0;
  const double want = direct_norm(g.views(), &count);
  // A double sum of `count` non-negative terms: relative error <= count·2^-53 (sqrt halves it).
  const double tol = count * kF64Unit * want;
  EXPECT_NEAR(grad_global_norm(g.views(), ctx), want, tol);
  EXPECT_GT(want, 1.0);  // the set is not accidentally zero
  // One view: the single-tensor overload.
  EXPECT_NEAR(grad_global_norm(g.owned[1].view(), ctx), direct_norm({g.owned[1].view()}), 1e-15);
  EXPECT_EQ(grad_global_norm(std::vector<TensorView>{}, ctx), 0.0);

  // A FlatArena's flat() (zero padding included) has the norm of its entries.
  FlatArena arena(DType::f32);
  arena.add("x.grad", {3, 7});
  arena.add("y.grad", {7});
  arena.allocate(ctx.host_allocator());
  testing::fill_from_double(arena.view(0), testing::to_double(g.owned[0].view().slice(0, 3)));
  testing::fill_from_double(arena.view(1), std::vector<double>(7, -0.25));
  std::vector<TensorView> entries = {arena.view(0), arena.view(1)};
  EXPECT_NEAR(grad_global_norm(arena.flat(), ctx), direct_norm(entries), 32 * kF64Unit);
}

TEST(GradNorm, IndependentOfThreadCount) {
  std::mt19937_64 rng(32);
  auto& ctx = cpu_ctx();
  GradSet g = make_grads(ctx, rng);
  g.owned.push_back(testing::random_tensor(ctx, {50001}, DType::f32, rng, -1, 1, "big.grad"));
  auto one = Context::cpu({.threads = 1});
  auto three = Context::cpu({.threads = 3});
  const double a = grad_global_norm(g.views(), *one);
  EXPECT_EQ(grad_global_norm(g.views(), *three), a);
  EXPECT_EQ(grad_global_norm(g.views(), ctx), a);
}

TEST(GradNorm, ClipScalesEveryGradAboveMaxNorm) {
  std::mt19937_64 rng(33);
  auto& ctx = cpu_ctx();
  GradSet g = make_grads(ctx, rng);
  const auto before = g.values();
  const double norm = grad_global_norm(g.views(), ctx);
  const double max_norm = norm / 3;
  EXPECT_EQ(clip_grad_norm(g.views(), max_norm, ctx), norm);  // the pre-clip norm
  const double coef = max_norm / (norm + 1e-6);
  for (size_t t = 0; t < g.owned.size(); ++t) {
    const TensorView v = g.owned[t].view();
    auto after = testing::to_double(v);
    for (size_t i = 0; i < after.size(); ++i) {
      // g·coef in double, rounded to the gradient's dtype as the dtype's store does.
      ASSERT_EQ(after[i], rounded(before[t][i] * coef, v.dtype)) << v.describe() << " at " << i;
    }
  }
  // After clipping the norm is max_norm·‖g‖/(‖g‖ + 1e-6) up to the per-element rounding (bf16,
  // 2^-9 relative, is the coarsest).
  EXPECT_NEAR(grad_global_norm(g.views(), ctx), max_norm * norm / (norm + 1e-6), max_norm / 512);
}

TEST(GradNorm, ClipLeavesSmallGradsUntouched) {
  std::mt19937_64 rng(34);
  auto& ctx = cpu_ctx();
  GradSet g = make_grads(ctx, rng);
  const auto before = g.values();
  const double norm = grad_global_norm(g.views(), ctx);
  EXPECT_EQ(clip_grad_norm(g.views(), 2 * norm, ctx), norm);
  for (size_t t = 0; t < g.owned.size(); ++t)
    EXPECT_EQ(testing::to_double(g.owned[t].view()), before[t]) << t;
  // max_norm == ‖g‖: coef = ‖g‖/(‖g‖ + 1e-6) < 1, so PyTorch (and we) still scale, slightly.
  auto flat = testing::tensor_from(ctx, {4}, DType::f64, {3, 0, 4, 0}, "flat.grad");  // norm 5
  EXPECT_EQ(clip_grad_norm(flat.view(), 5.0, ctx), 5.0);
  EXPECT_EQ(flat.ptr<double>()[0], 3 * (5.0 / (5.0 + 1e-6)));
}

TEST(GradNorm, NonFiniteNormIsReportedAndGradsUntouched) {
  std::mt19937_64 rng(35);
  auto& ctx = cpu_ctx();
  for (double poison : {double{NAN}, double{INFINITY}, -double{INFINITY}}) {
    SCOPED_TRACE("poison " + std::to_string(poison));
    GradSet g = make_grads(ctx, rng);
    g.owned[5].ptr<float>()[12345] = static_cast<float>(poison);
    const auto before = g.values();
    const double norm = clip_grad_norm(g.views(), 1e-3, ctx);
    EXPECT_FALSE(std::isfinite(norm));
    EXPECT_EQ(std::isnan(norm), std::isnan(poison)) << norm;  // inf (either sign) gives +inf
    for (size_t t = 0; t < g.owned.size(); ++t) {
      auto after = testing::to_double(g.owned[t].view());
      ASSERT_EQ(after.size(), before[t].size());
      for (size_t i = 0; i < after.size(); ++i)  // NaN-aware bitwise comparison
        ASSERT_TRUE(after[i] == before[t][i] || (std::isnan(after[i]) && std::isnan(before[t][i])))
            << t << " " << i;
    }
  }
}

TEST(GradNorm, ValidationNamesOpAndTensor) {
  auto& ctx = cpu_ctx();
  auto a = ctx.zeros({6}, DType::f32, "a.grad");
  auto ids = ctx.zeros({3}, DType::i32, "ids");
  testing::expect_error_contains(
      [&] {
        grad_global_norm({a.view(), ids.view()}, ctx);
      },
      {"[grad_global_norm]", "grads[1]", "ids", "i32"});
  for (double bad : {0.0, -1.0, double{NAN}, double{INFINITY}})
    testing::expect_error_contains([&] { clip_grad_norm(a.view(), bad, ctx); },
                                   {"[clip_grad_norm]", "max_norm"});
  auto big = ctx.zeros({10}, DType::f32, "buf");
  testing::expect_error_contains(
      [&] {
        clip_grad_norm({big.view().slice(4, 10), big.view().slice(0, 5)}, 1.0, ctx);
      },
      {"[clip_grad_norm]", "grads[0]", "grads[1]", "must not overlap"});
}

}  // namespace
}  // namespace r1kit::kernels
