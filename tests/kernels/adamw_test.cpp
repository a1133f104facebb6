// adamw: several steps against a scalar loop of PyTorch's documented AdamW algorithm, decoupled
// weight decay, the bf16 working copy, validation. AdamW has no backward to check.
#include "kernels/adamw.h"

#include <cmath>

#include "tests/common/test_util.h"

namespace r1kit::kernels {
namespace {
using testing::cpu_ctx;

constexpr double kF32Unit = 1.0 / (1 << 24);           // 2^-24
constexpr double kF64Unit = 1.0 / 9007199254740992.0;  // 2^-53

struct State {
  std::vector<double> p, m, v;
};

// torch.optim.AdamW as documented (amsgrad = maximize = False), one step t >= 1:
//   θ ← θ − γλθ;  m ← β1 m + (1 − β1) g;  v ← β2 v + (1 − β2) g²;
//   m̂ ← m / (1 − β1^t);  v̂ ← v / (1 − β2^t);  θ ← θ − γ m̂ / (sqrt(v̂) + ε)
void reference_step(State& s, const std::vector<double>& g, const AdamWParams& hp) {
  for (size_t i = 0; i < s.p.size(); ++i) {
    s.p[i] = s.p[i] - hp.lr * hp.weight_decay * s.p[i];
    s.m[i] = hp.beta1 * s.m[i] + (1 - hp.beta1) * g[i];
    s.v[i] = hp.beta2 * s.v[i] + (1 - hp.beta2) * g[i] * g[i];
    const double m_hat = s.m[i] / (1 - std::pow(hp.beta1, static_cast<double>(hp.step)));
    const double v_hat = s.v[i] / (1 - std::pow(hp.beta2, static_cast<double>(hp.step)));
    s.p[i] = s.p[i] - hp.lr * m_hat / (std::sqrt(v_hat) + hp.eps);
  }
}

AdamWParams test_params() {
  AdamWParams hp;
  hp.lr = 1e-2;
  hp.beta1 = 0.9;
  hp.beta2 = 0.95;
  hp.eps = 1e-8;
  hp.weight_decay = 0.1;
  return hp;
}

TEST(Adamw, F64TrajectoryMatchesPytorchAlgorithm) {
  std::mt19937_64 rng(21);
  auto& ctx = cpu_ctx();
  const int64_t n = 37;
  auto p = testing::random_tensor(ctx, {n}, DType::f64, rng, -1, 1, "param");
  auto m = ctx.zeros({n}, DType::f64, "m"), v = ctx.zeros({n}, DType::f64, "v");
  const auto p_init = testing::to_double(p);
  State ref{p_init, std::vector<double>(n, 0.0), std::vector<double>(n, 0.0)};
  AdamWParams hp = test_params();
  for (int64_t step = 1; step <= 6; ++step) {
    SCOPED_TRACE("step " + std::to_string(step));
    hp.step = step;
    // Gradients of very different scales, including exact zeros.
    auto g = testing::random_tensor(ctx, {n}, DType::f64, rng, -1, 1, "grad");
    auto gv = testing::to_double(g);
    for (int64_t i = 0; i < n; i += 5) gv[i] *= 1e-6;
    gv[3] = 0;
    testing::fill_from_double(g, gv);
    adamw_update(p, g, m, v, TensorView{}, hp, ctx);
    reference_step(ref, gv, hp);
    // Same double formulas in a different order: a few ulps per step, accumulated over 6 steps
    // on values of size <= 1 + 6·lr.
    const double tol = 64 * kF64Unit;
    auto pv = testing::to_double(p), mv = testing::to_double(m), vv = testing::to_double(v);
    for (int64_t i = 0; i < n; ++i) {
      EXPECT_NEAR(pv[i], ref.p[i], tol) << "param " << i;
      EXPECT_NEAR(mv[i], ref.m[i], tol) << "m " << i;
      EXPECT_NEAR(vv[i], ref.v[i], tol) << "v " << i;
    }
  }
  // Adam steps have size about lr per element: six of them moved the parameters visibly.
  EXPECT_GT(testing::max_abs_diff(testing::to_double(p), p_init), hp.lr);
}

TEST(Adamw, F32StepIsTheDoubleStepRoundedAndBf16CopyMatches) {
  // Each f32 step is the double step from the stored f32 state, rounded once: within half an f32
  // ulp of the reference step (plus a few double ulps for the different operation order).
  std::mt19937_64 rng(22);
  auto& ctx = cpu_ctx();
  const int64_t n = 1001;  // several parallel_for chunks
  for (DType grad_dtype : {DType::f32, DType::bf16}) {
    SCOPED_TRACE(std::string("grad ") + std::string(dtype_name(grad_dtype)));
    auto p = testing::random_tensor(ctx, {n}, DType::f32, rng, -1, 1, "param");
    auto m = ctx.zeros({n}, DType::f32, "m"), v = ctx.zeros({n}, DType::f32, "v");
    auto p16 = ctx.empty({n}, DType::bf16, "param_bf16");
    AdamWParams hp = test_params();
    for (int64_t step = 1; step <= 4; ++step) {
      SCOPED_TRACE("step " + std::to_string(step));
      hp.step = step;
      auto g = testing::random_tensor(ctx, {n}, grad_dtype, rng, -2, 2, "grad");
      State ref{testing::to_double(p), testing::to_double(m), testing::to_double(v)};
      reference_step(ref, testing::to_double(g), hp);
      testing::fill_constant(p16, NAN);
      adamw_update(p, g, m, v, p16, hp, ctx);
      auto pv = testing::to_double(p), mv = testing::to_double(m), vv = testing::to_double(v);
      auto bv = testing::to_double(p16);
      auto tol = [](double x) { return kF32Unit * std::fabs(x) * (1 + 1e-6) + 8 * kF64Unit; };
      int bad = 0;
      for (int64_t i = 0; i < n && bad < 5; ++i) {
        bad += std::fabs(pv[i] - ref.p[i]) > tol(ref.p[i]);
        bad += std::fabs(mv[i] - ref.m[i]) > tol(ref.m[i]);
        bad += std::fabs(vv[i] - ref.v[i]) > tol(ref.v[i]);
        EXPECT_EQ(bv[i], static_cast<double>(round_to_bf16(p.ptr<float>()[i]))) << i;
        if (bad)
          ADD_FAILURE() << "element " << i << ": p " << pv[i] << " vs " << ref.p[i] << ", m "
                        << mv[i] << " vs " << ref.m[i] << ", v " << vv[i] << " vs " << ref.v[i];
      }
    }
  }
}

TEST(Adamw, WeightDecayIsDecoupled) {
  std::mt19937_64 rng(23);
  auto& ctx = cpu_ctx();
  const int64_t n = 9;
  auto p0 = testing::to_double(testing::random_tensor(ctx, {n}, DType::f64, rng, -1, 1));
  auto p_wd = testing::tensor_from(ctx, {n}, DType::f64, p0, "param");
  auto p_no = testing::tensor_from(ctx, {n}, DType::f64, p0, "param");
  auto m_wd = ctx.zeros({n}, DType::f64), v_wd = ctx.zeros({n}, DType::f64);
  auto m_no = ctx.zeros({n}, DType::f64), v_no = ctx.zeros({n}, DType::f64);
  AdamWParams with = test_params(), without = test_params();
  without.weight_decay = 0;
  for (int64_t step = 1; step <= 4; ++step) {
    with.step = without.step = step;
    auto before = testing::to_double(p_wd);
    auto g = testing::random_tensor(ctx, {n}, DType::f64, rng, -1, 1, "grad");
    adamw_update(p_wd, g, m_wd, v_wd, TensorView{}, with, ctx);
    adamw_update(p_no, g, m_no, v_no, TensorView{}, without, ctx);
    // Decay never reaches the moments (L2-style Adam would add wd·p to g and change both).
    EXPECT_EQ(testing::to_double(m_wd), testing::to_double(m_no));
    EXPECT_EQ(testing::to_double(v_wd), testing::to_double(v_no));
    if (step == 1) {
      // From the same start, the two runs differ exactly by the decoupled term lr·wd·p.
      auto a = testing::to_double(p_wd), b = testing::to_double(p_no);
      for (int64_t i = 0; i < n; ++i)
        EXPECT_NEAR(a[i] - b[i], -with.lr * with.weight_decay * before[i], 8 * kF64Unit) << i;
    }
  }
  // A zero gradient with zero state: the update term is 0 / (0 + eps) = 0, only decay remains.
  auto p = testing::tensor_from(ctx, {n}, DType::f64, p0, "param");
  auto m = ctx.zeros({n}, DType::f64), v = ctx.zeros({n}, DType::f64);
  auto zero = ctx.zeros({n}, DType::f64, "grad");
  with.step = 1;
  adamw_update(p, zero, m, v, TensorView{}, with, ctx);
  auto pv = testing::to_double(p);
  for (int64_t i = 0; i < n; ++i) EXPECT_EQ(pv[i], p0[i] * (1 - with.lr * with.weight_decay)) << i;
}

TEST(Adamw, ValidationNamesOpAndArguments) {
  auto& ctx = cpu_ctx();
  auto p = ctx.zeros({6}, DType::f32, "model.layers.0.mlp.up_proj.weight");
  auto g = ctx.zeros({6}, DType::f32, "grad");
  auto m = ctx.zeros({6}, DType::f32, "m"), v = ctx.zeros({6}, DType::f32, "v");
  AdamWParams hp;
  auto bad_step = hp;
  bad_step.step = 0;
  testing::expect_error_contains([&] { adamw_update(p, g, m, v, TensorView{}, bad_step, ctx); },
                                 {"[adamw]", "step 0"});
  auto bad_beta = hp;
  bad_beta.beta1 = 1.0;
  testing::expect_error_contains([&] { adamw_update(p, g, m, v, TensorView{}, bad_beta, ctx); },
                                 {"[adamw]", "beta1 1"});
  auto bad_eps = hp;
  bad_eps.eps = 0;
  testing::expect_error_contains([&] { adamw_update(p, g, m, v, TensorView{}, bad_eps, ctx); },
                                 {"[adamw]", "eps 0"});
  auto bad_lr = hp;
  bad_lr.lr = -1e-3;
  testing::expect_error_contains([&] { adamw_update(p, g, m, v, TensorView{}, bad_lr, ctx); },
                                 {"[adamw]", "lr"});
  auto m7 = ctx.zeros({7}, DType::f32, "m7");
  testing::expect_error_contains([&] { adamw_update(p, g, m7, v, TensorView{}, hp, ctx); },
                                 {"[adamw]", "m7", "(7)", "(6)", "up_proj"});
  auto v64 = ctx.zeros({6}, DType::f64, "v64");
  testing::expect_error_contains([&] { adamw_update(p, g, m, v64, TensorView{}, hp, ctx); },
                                 {"[adamw]", "v64", "f64"});
  auto p16 = ctx.zeros({6}, DType::bf16, "p16");
  testing::expect_error_contains([&] { adamw_update(p16, g, m, v, TensorView{}, hp, ctx); },
                                 {"[adamw]", "p16", "f32 or f64"});
  auto copy32 = ctx.zeros({6}, DType::f32, "copy32");
  testing::expect_error_contains([&] { adamw_update(p, g, m, v, copy32, hp, ctx); },
                                 {"[adamw]", "copy32", "bf16"});
  testing::expect_error_contains([&] { adamw_update(p, g, m, m, TensorView{}, hp, ctx); },
                                 {"[adamw]", "must not overlap"});
}

}  // namespace
}  // namespace r1kit::kernels
