// logprob: forward against a direct log-softmax + gather, the fused head against its unfused
// composition (logits = h·wᵀ computed here, then logprob_forward/backward), backward against
// finite differences in double, chunk-size independence, validation.
#include "kernels/logprob.h"

#include <cmath>

#include "tests/common/test_util.h"

namespace r1kit::kernels {
namespace {
using testing::cpu_ctx;

constexpr double kF32Unit = 1.0 / (1 << 24);           // unit roundoff of f32 (2^-24)
constexpr double kF64Unit = 1.0 / 9007199254740992.0;  // 2^-53

struct Reference {
  std::vector<double> logprob, entropy, lse;
};

// Direct formulas on (N, V) logits, no max shift (the tests keep |z| small where this is used):
// lse = log Σ exp z, logprob = z_t − lse, entropy = −Σ p log p.
Reference direct_logprob(const std::vector<double>& logits, const std::vector<double>& targets,
                         int64_t n, int64_t vocab, double temperature) {
  Reference r;
  for (int64_t i = 0; i < n; ++i) {
    double s = 0;
    for (int64_t j = 0; j < vocab; ++j) s += std::exp(logits[i * vocab + j] / temperature);
    const double lse = std::log(s);
    double ent = 0;
    for (int64_t j = 0; j < vocab; ++j) {
      const double p = std::exp(logits[i * vocab + j] / temperature) / s;
      ent -= p * std::log(p);
    }
    const auto t = static_cast<int64_t>(targets[i]);
    r.lse.push_back(lse);
    r.logprob.push_back(logits[i * vocab + t] / temperature - lse);
    r.entropy.push_back(ent);
  }
  return r;
}

// logits (N, V) = h (N, C) · wᵀ, in double.
std::vector<double> direct_logits(const std::vector<double>& h, const std::vector<double>& w,
                                  int64_t n, int64_t ch, int64_t vocab) {
  std::vector<double> z(n * vocab, 0.0);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t v = 0; v < vocab; ++v)
      for (int64_t c = 0; c < ch; ++c) z[i * vocab + v] += h[i * ch + c] * w[v * ch + c];
  return z;
}

void expect_close(const std::vector<double>& got, const std::vector<double>& want, double tol,
                  const char* what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], tol) << what << " at " << i;
}

TEST(Logprob, ForwardMatchesDirectLogSoftmaxGather) {
  std::mt19937_64 rng(11);
  auto& ctx = cpu_ctx();
  const int64_t n = 5, vocab = 11;
  const double tau = 0.7;
  auto logits = testing::random_tensor(ctx, {n, vocab}, DType::f64, rng, -3, 3, "logits");
  auto targets = testing::random_ints(ctx, {n}, rng, 0, vocab - 1, "targets");
  auto lp = ctx.empty({n}, DType::f64, "logprob");
  auto ent = ctx.empty({n}, DType::f64, "entropy");
  auto lse = ctx.empty({n}, DType::f64, "lse");
  for (auto* t : {&lp, &ent, &lse}) testing::fill_constant(*t, NAN);
  logprob_forward(lp, ent, lse, logits, targets, tau, ctx);
  auto ref = direct_logprob(testing::to_double(logits), testing::to_double(targets), n, vocab, tau);
  // Both sides are double sums of V terms of size <= e^(3/0.7): well inside 1e-12.
  expect_close(testing::to_double(lp), ref.logprob, 1e-12, "logprob");
  expect_close(testing::to_double(ent), ref.entropy, 1e-12, "entropy");
  expect_close(testing::to_double(lse), ref.lse, 1e-12, "lse");

  // Without entropy: the same logprob, nothing else needed.
  auto lp2 = ctx.empty({n}, DType::f64, "logprob");
  logprob_forward(lp2, TensorView{}, lse, logits, targets, tau, ctx);
  expect_close(testing::to_double(lp2), ref.logprob, 1e-12, "logprob without entropy");
}

TEST(Logprob, ForwardIsStableForLargeLogits) {
  // exp(1e4) overflows; the max-shifted forward must give the shift-invariant answer.
  std::mt19937_64 rng(12);
  auto& ctx = cpu_ctx();
  const int64_t n = 3, vocab = 7;
  const double tau = 1.3, shift = 1e4;
  auto base = testing::random_tensor(ctx, {n, vocab}, DType::f64, rng, -2, 2, "logits");
  auto shifted_values = testing::to_double(base);
  for (auto& v : shifted_values) v += shift;
  auto shifted = testing::tensor_from(ctx, {n, vocab}, DType::f64, shifted_values, "logits");
  auto targets = testing::random_ints(ctx, {n}, rng, 0, vocab - 1, "targets");
  auto ref = direct_logprob(testing::to_double(base), testing::to_double(targets), n, vocab, tau);
  auto lp = ctx.empty({n}, DType::f64), ent = ctx.empty({n}, DType::f64);
  auto lse = ctx.empty({n}, DType::f64);
  logprob_forward(lp, ent, lse, shifted, targets, tau, ctx);
  // Shifting rounds each logit by <= ulp(shift) / 2 = (shift / τ)·2^-53 after scaling; logprob
  // and entropy move by at most 2× and (1 + |log p|)× the largest logit error.
  const double dz = 2 * (shift + 2) / tau * kF64Unit;
  expect_close(testing::to_double(lp), ref.logprob, 4 * dz, "logprob");
  expect_close(testing::to_double(ent), ref.entropy, 4 * dz * (1 + 10), "entropy");
  std::vector<double> lse_want;
  for (double l : ref.lse) lse_want.push_back(l + shift / tau);
  expect_close(testing::to_double(lse), lse_want, 4 * dz, "lse");
}

TEST(Logprob, ReducedPrecisionInputsRoundOnlyTheOutputs) {
  // The CPU reference computes in double from the (rounded) inputs, so f32 outputs are within
  // half an f32 ulp of the f64 op run on the same values.
  std::mt19937_64 rng(13);
  auto& ctx = cpu_ctx();
  const int64_t n = 4, vocab = 19;
  const double tau = 0.9;
  auto targets = testing::random_ints(ctx, {n}, rng, 0, vocab - 1, "targets");
  for (DType dt : {DType::f32, DType::bf16}) {
    auto logits = testing::random_tensor(ctx, {n, vocab}, dt, rng, -4, 4, "logits");
    auto lp = ctx.empty({n}, DType::f32), ent = ctx.empty({n}, DType::f32);
    auto lse = ctx.empty({n}, DType::f32);
    logprob_forward(lp, ent, lse, logits, targets, tau, ctx);
    auto l64 = testing::tensor_from(ctx, {n, vocab}, DType::f64, testing::to_double(logits));
    auto lp64 = ctx.empty({n}, DType::f64), ent64 = ctx.empty({n}, DType::f64);
    auto lse64 = ctx.empty({n}, DType::f64);
    logprob_forward(lp64, ent64, lse64, l64, targets, tau, ctx);
    for (auto [got, want] : {std::pair{&lp, &lp64}, {&ent, &ent64}, {&lse, &lse64}}) {
      auto g = testing::to_double(*got), w = testing::to_double(*want);
      for (int64_t i = 0; i < n; ++i)
        EXPECT_NEAR(g[i], w[i], kF32Unit * std::fabs(w[i]) + 1e-15) << dtype_name(dt) << " " << i;
    }
  }
}

TEST(Logprob, BackwardMatchesFiniteDifferences) {
  std::mt19937_64 rng(14);
  auto& ctx = cpu_ctx();
  const int64_t n = 5, vocab = 11;
  const double tau = 0.8;
  auto logits = testing::random_tensor(ctx, {n, vocab}, DType::f64, rng, -2, 2, "logits");
  auto targets = testing::random_ints(ctx, {n}, rng, 0, vocab - 1, "targets");
  auto glp = testing::random_tensor(ctx, {n}, DType::f64, rng, -1, 1, "dlogprob");
  auto gent = testing::random_tensor(ctx, {n}, DType::f64, rng, -1, 1, "dentropy");
  auto lp = ctx.empty({n}, DType::f64), ent = ctx.empty({n}, DType::f64);
  auto lse = ctx.empty({n}, DType::f64);
  for (bool with_entropy : {true, false}) {
    SCOPED_TRACE(with_entropy ? "with entropy" : "logprob only");
    auto loss = [&] {
      logprob_forward(lp, ent, lse, logits, targets, tau, ctx);
      return testing::dot(lp, glp) + (with_entropy ? testing::dot(ent, gent) : 0.0);
    };
    loss();
    auto dlogits = ctx.empty({n, vocab}, DType::f64, "dlogits");
    testing::fill_constant(dlogits, NAN);  // overwrite: every element must be written
    logprob_backward(dlogits, glp, with_entropy ? gent.view() : TensorView{}, logits, targets, lse,
                     tau, ctx);
    testing::expect_gradients_match(loss, {{logits.view(), dlogits.view()}});
  }
}

// −inf logits (masked vocabulary entries) have p = 0 and contribute nothing: the forward and the
// backward equal those of the same rows with the −inf columns removed, the entropy and its gradient
// included (no 0·(−inf) = NaN), and the removed columns get dlogits exactly 0. A target on a −inf
// logit has logprob −inf and a finite entropy.
TEST(Logprob, NegInfLogitsContributeNothing) {
  std::mt19937_64 rng(16);
  auto& ctx = cpu_ctx();
  const int64_t n = 4, vocab = 9, kept = vocab - 2;
  const double tau = 0.8, inf = INFINITY;
  auto base = testing::random_tensor(ctx, {n, vocab}, DType::f64, rng, -2, 2, "logits");
  std::vector<double> full = testing::to_double(base), packed;
  std::vector<double> t_full, t_packed;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t a = (3 * i) % vocab, b = (3 * i + 4) % vocab;  // the −inf columns of row i
    full[i * vocab + a] = full[i * vocab + b] = -inf;
    const int64_t t = (3 * i + 1) % vocab;  // never a or b
    int64_t tp = 0;
    for (int64_t j = 0, k = 0; j < vocab; ++j) {
      if (j == a || j == b) continue;
      if (j == t) tp = k;
      packed.push_back(full[i * vocab + j]);
      ++k;
    }
    t_full.push_back(static_cast<double>(t));
    t_packed.push_back(static_cast<double>(tp));
  }
  auto x = testing::tensor_from(ctx, {n, vocab}, DType::f64, full, "logits");
  auto xp = testing::tensor_from(ctx, {n, kept}, DType::f64, packed, "logits");
  auto tf = testing::tensor_from(ctx, {n}, DType::i32, t_full, "targets");
  auto tp = testing::tensor_from(ctx, {n}, DType::i32, t_packed, "targets");

  auto lp = ctx.empty({n}, DType::f64), ent = ctx.empty({n}, DType::f64);
  auto lse = ctx.empty({n}, DType::f64);
  auto lp_p = ctx.empty({n}, DType::f64), ent_p = ctx.empty({n}, DType::f64);
  auto lse_p = ctx.empty({n}, DType::f64);
  logprob_forward(lp, ent, lse, x, tf, tau, ctx);
  logprob_forward(lp_p, ent_p, lse_p, xp, tp, tau, ctx);
  const auto ent_v = testing::to_double(ent);
  for (double e : ent_v) ASSERT_TRUE(std::isfinite(e)) << "entropy with -inf logits";
  expect_close(testing::to_double(lp), testing::to_double(lp_p), 1e-13, "logprob");
  expect_close(ent_v, testing::to_double(ent_p), 1e-13, "entropy");
  expect_close(testing::to_double(lse), testing::to_double(lse_p), 1e-13, "lse");

  auto glp = testing::random_tensor(ctx, {n}, DType::f64, rng, -1, 1, "dlogprob");
  auto gent = testing::random_tensor(ctx, {n}, DType::f64, rng, -1, 1, "dentropy");
  for (bool with_entropy : {true, false}) {
    SCOPED_TRACE(with_entropy ? "with dentropy" : "no dentropy");
    const TensorView ge = with_entropy ? gent.view() : TensorView{};
    auto dx = ctx.empty({n, vocab}, DType::f64, "dlogits");
    auto dxp = ctx.empty({n, kept}, DType::f64, "dlogits");
    testing::fill_constant(dx, NAN);
    logprob_backward(dx, glp, ge, x, tf, lse, tau, ctx);
    logprob_backward(dxp, glp, ge, xp, tp, lse_p, tau, ctx);
    const auto d = testing::to_double(dx), dp = testing::to_double(dxp);
    std::vector<double> d_kept;
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < vocab; ++j) {
        const double g = d[i * vocab + j];
        if (std::isinf(full[i * vocab + j])) {
          EXPECT_EQ(g, 0.0) << "dlogits of a -inf logit at " << i << ", " << j;
        } else {
          d_kept.push_back(g);
        }
      }
    expect_close(d_kept, dp, 1e-13, "dlogits");
  }

  // A target on a −inf logit: logprob −inf, the entropy as before; its dlogits is dlogprob / τ
  // (1 − p with p = 0), the others as before.
  std::vector<double> t_bad_v = t_full;
  t_bad_v[1] = 3;  // row 1's first −inf column
  auto t_bad = testing::tensor_from(ctx, {n}, DType::i32, t_bad_v, "targets");
  auto lp2 = ctx.empty({n}, DType::f64), ent2 = ctx.empty({n}, DType::f64);
  auto lse2 = ctx.empty({n}, DType::f64);
  logprob_forward(lp2, ent2, lse2, x, t_bad, tau, ctx);
  EXPECT_EQ(testing::to_double(lp2)[1], -inf);
  expect_close(testing::to_double(ent2), ent_v, 1e-13, "entropy, target on -inf");
  auto dx2 = ctx.empty({n, vocab}, DType::f64, "dlogits");
  logprob_backward(dx2, glp, gent, x, t_bad, lse2, tau, ctx);
  const auto d2 = testing::to_double(dx2);
  for (double g : d2) ASSERT_TRUE(std::isfinite(g)) << "dlogits, target on -inf";
  EXPECT_NEAR(d2[1 * vocab + 3], testing::to_double(glp)[1] / tau, 1e-15);
}

// Random inputs of the fused head, drawn in this order: h (N, C) and w (V, C) in [−1, 1), targets
// (N) in [0, V), and the upstream gradients dlogprob, dentropy (N) in [−1, 1).
struct HeadInputs {
  Tensor h, w, targets, glp, gent;
};
HeadInputs random_head(Context& ctx, int64_t n, int64_t ch, int64_t vocab, DType dtype,
                       std::mt19937_64& rng) {
  HeadInputs in;
  in.h = testing::random_tensor(ctx, {n, ch}, dtype, rng, -1, 1, "h");
  in.w = testing::random_tensor(ctx, {vocab, ch}, dtype, rng, -1, 1, "lm_head.weight");
  in.targets = testing::random_ints(ctx, {n}, rng, 0, vocab - 1, "targets");
  in.glp = testing::random_tensor(ctx, {n}, dtype, rng, -1, 1, "dlogprob");
  in.gent = testing::random_tensor(ctx, {n}, dtype, rng, -1, 1, "dentropy");
  return in;
}

TEST(LogprobHead, MatchesUnfusedComposition) {
  std::mt19937_64 rng(15);
  auto& ctx = cpu_ctx();
  const int64_t n = 7, ch = 5, vocab = 13, chunk = 3;  // 3 does not divide 7
  const double tau = 1.1;
  const HeadInputs in = random_head(ctx, n, ch, vocab, DType::f64, rng);
  const Tensor &h = in.h, &w = in.w, &targets = in.targets;
  const Tensor &glp = in.glp, &gent = in.gent;
  const auto hv = testing::to_double(h), wv = testing::to_double(w);

  // Unfused: logits here, then the logits-path op.
  auto logits =
      testing::tensor_from(ctx, {n, vocab}, DType::f64, direct_logits(hv, wv, n, ch, vocab));
  auto lp_u = ctx.empty({n}, DType::f64), ent_u = ctx.empty({n}, DType::f64);
  auto lse_u = ctx.empty({n}, DType::f64);
  logprob_forward(lp_u, ent_u, lse_u, logits, targets, tau, ctx);
  auto dlogits = ctx.empty({n, vocab}, DType::f64);
  logprob_backward(dlogits, glp, gent, logits, targets, lse_u, tau, ctx);
  const auto dl = testing::to_double(dlogits);
  // dh = dlogits · w;  dw = dlogitsᵀ · h (+ the 0.5 already in dw below).
  std::vector<double> dh_want(n * ch, 0.0), dw_want(vocab * ch, 0.5);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t v = 0; v < vocab; ++v)
      for (int64_t c = 0; c < ch; ++c) {
        dh_want[i * ch + c] += dl[i * vocab + v] * wv[v * ch + c];
        dw_want[v * ch + c] += dl[i * vocab + v] * hv[i * ch + c];
      }

  auto lp = ctx.empty({n}, DType::f64), ent = ctx.empty({n}, DType::f64);
  auto lse = ctx.empty({n}, DType::f64);
  for (auto* t : {&lp, &ent, &lse}) testing::fill_constant(*t, NAN);
  logprob_head_forward(lp, ent, lse, h, w, targets, tau, chunk, ctx);
  // The two sides differ only in the GEMM's summation order over C = 5 products of size <= 1:
  // |Δz| <= C·2^-53·C / τ per logit, and the outputs move by a small multiple of that.
  const double tol = 64 * ch * ch * kF64Unit / tau;
  expect_close(testing::to_double(lp), testing::to_double(lp_u), tol, "logprob");
  expect_close(testing::to_double(ent), testing::to_double(ent_u), tol, "entropy");
  expect_close(testing::to_double(lse), testing::to_double(lse_u), tol, "lse");

  auto dh = ctx.empty({n, ch}, DType::f64, "dh");
  testing::fill_constant(dh, NAN);  // overwrite
  auto dw = testing::tensor_from(ctx, {vocab, ch}, DType::f64, std::vector<double>(vocab * ch, 0.5),
                                 "dw");  // accumulate
  logprob_head_backward(dh, dw, glp, gent, h, w, targets, lse, tau, chunk, ctx);
  expect_close(testing::to_double(dh), dh_want, tol * vocab, "dh");
  expect_close(testing::to_double(dw), dw_want, tol * n, "dw");
}

TEST(LogprobHead, BackwardMatchesFiniteDifferences) {
  std::mt19937_64 rng(16);
  auto& ctx = cpu_ctx();
  const int64_t n = 5, ch = 4, vocab = 7, chunk = 2;
  const double tau = 0.9;
  const HeadInputs in = random_head(ctx, n, ch, vocab, DType::f64, rng);
  const Tensor &h = in.h, &w = in.w, &targets = in.targets;
  const Tensor &glp = in.glp, &gent = in.gent;
  auto lp = ctx.empty({n}, DType::f64), ent = ctx.empty({n}, DType::f64);
  auto lse = ctx.empty({n}, DType::f64);
  auto loss = [&] {
    logprob_head_forward(lp, ent, lse, h, w, targets, tau, chunk, ctx);
    return testing::dot(lp, glp) + testing::dot(ent, gent);
  };
  loss();
  auto dh = ctx.empty({n, ch}, DType::f64, "dh");
  auto dw = ctx.zeros({vocab, ch}, DType::f64, "dw");
  testing::fill_constant(dh, NAN);
  logprob_head_backward(dh, dw, glp, gent, h, w, targets, lse, tau, chunk, ctx);
  testing::expect_gradients_match(loss, {{h.view(), dh.view()}, {w.view(), dw.view()}});
}

TEST(LogprobHead, ChunkSizeDoesNotChangeResults) {
  std::mt19937_64 rng(17);
  auto& ctx = cpu_ctx();
  const int64_t n = 11, ch = 6, vocab = 9;
  const double tau = 1.0;
  const HeadInputs in = random_head(ctx, n, ch, vocab, DType::f64, rng);
  const Tensor &h = in.h, &w = in.w, &targets = in.targets;
  const Tensor &glp = in.glp, &gent = in.gent;
  struct Out {
    std::vector<double> lp, ent, lse, dh, dw;
  };
  auto run = [&](int64_t chunk) {
    auto lp = ctx.empty({n}, DType::f64), ent = ctx.empty({n}, DType::f64);
    auto lse = ctx.empty({n}, DType::f64);
    logprob_head_forward(lp, ent, lse, h, w, targets, tau, chunk, ctx);
    auto dh = ctx.empty({n, ch}, DType::f64), dw = ctx.zeros({vocab, ch}, DType::f64);
    logprob_head_backward(dh, dw, glp, gent, h, w, targets, lse, tau, chunk, ctx);
    return Out{testing::to_double(lp), testing::to_double(ent), testing::to_double(lse),
               testing::to_double(dh), testing::to_double(dw)};
  };
  const Out ref = run(n);
  // Chunking changes only GEMM blocking and the order dw sums its N chunks: a few ulps of sums
  // of C (forward, dh via V) or N (dw) terms of size <= 1.
  const double tol = 64 * (ch + vocab + n) * kF64Unit;
  for (int64_t chunk : {1, 2, 4, 10, 64}) {
    SCOPED_TRACE("chunk_tokens " + std::to_string(chunk));
    const Out o = run(chunk);
    expect_close(o.lp, ref.lp, tol, "logprob");
    expect_close(o.ent, ref.ent, tol, "entropy");
    expect_close(o.lse, ref.lse, tol, "lse");
    expect_close(o.dh, ref.dh, tol * ch, "dh");
    expect_close(o.dw, ref.dw, tol * n, "dw");
  }
}

TEST(LogprobHead, F32WithinGemmRoundingOfDouble) {
  // The f32 head (sgemm) against the f64 head on the same values, with per-row bounds from
  // first-order error analysis (u = 2^-24, γ_k = k·u):
  //   logits: |δz_j| <= d = γ_{C+1}·A / τ,  A = max_j Σ_c |h_c w_jc|  (GEMM + store)
  //   lse: d;  logprob = z_t − lse: 2d;  log p_j: 2d;  |δp_j| <= 2d·p_j;
  //   H = −Σ p log p: 2d·Σ p_j |log p_j + 1| <= 2d (L + 1),  L = max_j |log p_j| (>= H);
  // each plus one rounding of the output. Backward uses the f32-rounded lse, so log p_j carries
  // e = 2d + u|lse| and, with dz_j = g·(1[j=t] − p_j) − k·p_j·(log p_j + H),
  //   Σ_j |δ dlogits_j| <= S = [e (|g| + |k| (3L + 2)) + u (2|g| + 2L|k|)] / τ,
  //   Σ_j |dlogits_j| <= G = (2|g| + 2L|k|) / τ;
  //   dh_c = Σ_j dlogits_j w_jc: W (S + γ_{V+1} G);  dw_jc += Σ_i dlogits_ij h_ic: H Σ_i (S_i +
  //   γ_{N+1} G_i), with W, H the largest |w|, |h|.
  std::mt19937_64 rng(18);
  auto& ctx = cpu_ctx();
  const int64_t n = 9, ch = 16, vocab = 37, chunk = 4;
  const double tau = 0.9, u = kF32Unit;
  const HeadInputs in32 = random_head(ctx, n, ch, vocab, DType::f32, rng);
  const Tensor &h32 = in32.h, &w32 = in32.w, &targets = in32.targets;
  const Tensor &glp32 = in32.glp, &gent32 = in32.gent;
  auto as64 = [&](const Tensor& t) {
    return testing::tensor_from(ctx, t.view().dims(), DType::f64, testing::to_double(t));
  };
  auto h64 = as64(h32), w64 = as64(w32), glp64 = as64(glp32), gent64 = as64(gent32);

  auto lp32 = ctx.empty({n}, DType::f32), ent32 = ctx.empty({n}, DType::f32);
  auto lse32 = ctx.empty({n}, DType::f32);
  logprob_head_forward(lp32, ent32, lse32, h32, w32, targets, tau, chunk, ctx);
  auto dh32 = ctx.empty({n, ch}, DType::f32), dw32 = ctx.zeros({vocab, ch}, DType::f32);
  logprob_head_backward(dh32, dw32, glp32, gent32, h32, w32, targets, lse32, tau, chunk, ctx);

  auto lp64 = ctx.empty({n}, DType::f64), ent64 = ctx.empty({n}, DType::f64);
  auto lse64 = ctx.empty({n}, DType::f64);
  logprob_head_forward(lp64, ent64, lse64, h64, w64, targets, tau, chunk, ctx);
  auto dh64 = ctx.empty({n, ch}, DType::f64), dw64 = ctx.zeros({vocab, ch}, DType::f64);
  logprob_head_backward(dh64, dw64, glp64, gent64, h64, w64, targets, lse64, tau, chunk, ctx);

  const auto hv = testing::to_double(h64), wv = testing::to_double(w64);
  const auto z = direct_logits(hv, wv, n, ch, vocab);
  const auto lp = testing::to_double(lp64), ent = testing::to_double(ent64);
  const auto lse = testing::to_double(lse64);
  const auto g = testing::to_double(glp64), k = testing::to_double(gent64);
  const auto lp_got = testing::to_double(lp32), ent_got = testing::to_double(ent32);
  const auto lse_got = testing::to_double(lse32);
  double w_max = 0, h_max = 0;
  for (double x : wv) w_max = std::max(w_max, std::fabs(x));
  for (double x : hv) h_max = std::max(h_max, std::fabs(x));
  double dw_bound = 0, dh_bound = 0;
  for (int64_t i = 0; i < n; ++i) {
    double a = 0, big_l = 0;
    for (int64_t v = 0; v < vocab; ++v) {
      double s = 0;
      for (int64_t c = 0; c < ch; ++c) s += std::fabs(hv[i * ch + c] * wv[v * ch + c]);
      a = std::max(a, s);
      big_l = std::max(big_l, std::fabs(z[i * vocab + v] / tau - lse[i]));
    }
    const double d = (ch + 1) * u * a / tau;
    EXPECT_NEAR(lse_got[i], lse[i], d + u * std::fabs(lse[i])) << i;
    EXPECT_NEAR(lp_got[i], lp[i], 2 * d + u * std::fabs(lp[i])) << i;
    EXPECT_NEAR(ent_got[i], ent[i], 2 * d * (big_l + 1) + u * std::fabs(ent[i])) << i;
    const double e = 2 * d + u * std::fabs(lse[i]);
    const double gi = std::fabs(g[i]), ki = std::fabs(k[i]);
    const double s_i = (e * (gi + ki * (3 * big_l + 2)) + u * (2 * gi + 2 * big_l * ki)) / tau;
    const double g_i = (2 * gi + 2 * big_l * ki) / tau;
    dh_bound = std::max(dh_bound, w_max * (s_i + (vocab + 1) * u * g_i));
    dw_bound += h_max * (s_i + (n + 1) * u * g_i);
  }
  EXPECT_LE(testing::max_abs_diff(testing::to_double(dh32), testing::to_double(dh64)), dh_bound);
  EXPECT_LE(testing::max_abs_diff(testing::to_double(dw32), testing::to_double(dw64)), dw_bound);
}

TEST(Logprob, ValidationNamesOpShapesAndBadTargets) {
  auto& ctx = cpu_ctx();
  auto logits = ctx.zeros({4, 9}, DType::f32, "logits");
  auto lp = ctx.empty({4}, DType::f32, "logprob");
  auto lse = ctx.empty({4}, DType::f32, "lse");
  auto targets = ctx.zeros({4}, DType::i32, "targets");
  targets.ptr<int32_t>()[2] = 9;
  testing::expect_error_contains(
      [&] { logprob_forward(lp, TensorView{}, lse, logits, targets, 1.0, ctx); },
      {"[logprob]", "position 2", "holds 9", "[0, 9)", "(4, 9)"});
  targets.ptr<int32_t>()[2] = 0;
  targets.ptr<int32_t>()[3] = -1;
  auto dlogits = ctx.empty({4, 9}, DType::f32, "dlogits");
  testing::expect_error_contains(
      [&] { logprob_backward(dlogits, lp, TensorView{}, logits, targets, lse, 1.0, ctx); },
      {"[logprob_backward]", "position 3", "holds -1"});
  targets.ptr<int32_t>()[3] = 8;

  auto lp5 = ctx.empty({5}, DType::f32, "lp5");
  testing::expect_error_contains(
      [&] { logprob_forward(lp5, TensorView{}, lse, logits, targets, 1.0, ctx); },
      {"[logprob]", "lp5", "(5)", "(4)"});
  testing::expect_error_contains(
      [&] { logprob_forward(lp, TensorView{}, lse, logits, targets, 0.0, ctx); },
      {"[logprob]", "temperature 0"});
  auto lse_bf16 = ctx.empty({4}, DType::bf16, "lse_bf16");
  testing::expect_error_contains(
      [&] { logprob_forward(lp, TensorView{}, lse_bf16, logits, targets, 1.0, ctx); },
      {"[logprob]", "lse_bf16", "f32 or f64"});
  auto lp64 = ctx.empty({4}, DType::f64, "lp64");
  testing::expect_error_contains(
      [&] { logprob_forward(lp64, TensorView{}, lse, logits, targets, 1.0, ctx); },
      {"[logprob]", "f64"});
  auto ids64 = ctx.zeros({4}, DType::i64, "ids64");
  testing::expect_error_contains(
      [&] { logprob_forward(lp, TensorView{}, lse, logits, ids64, 1.0, ctx); },
      {"[logprob]", "ids64", "i32"});
  testing::expect_error_contains([&] { logprob_forward(lp, lp, lse, logits, targets, 1.0, ctx); },
                                 {"[logprob]", "must not overlap"});

  auto h = ctx.zeros({4, 7}, DType::f32, "h");
  auto w = ctx.zeros({9, 6}, DType::f32, "lm_head.weight");
  testing::expect_error_contains(
      [&] { logprob_head_forward(lp, TensorView{}, lse, h, w, targets, 1.0, 2, ctx); },
      {"[logprob_head]", "lm_head.weight", "(9, 6)", "(4, 7)"});
  auto w7 = ctx.zeros({9, 7}, DType::f32, "w");
  testing::expect_error_contains(
      [&] { logprob_head_forward(lp, TensorView{}, lse, h, w7, targets, 1.0, 0, ctx); },
      {"[logprob_head]", "chunk_tokens 0"});
  auto dh = ctx.empty({4, 7}, DType::f32, "dh");
  auto dw_bad = ctx.zeros({7, 9}, DType::f32, "dw");
  testing::expect_error_contains(
      [&] {
        logprob_head_backward(dh, dw_bad, lp, TensorView{}, h, w7, targets, lse, 1.0, 2, ctx);
      },
      {"[logprob_head_backward]", "dw", "(7, 9)", "(9, 7)"});
}

}  // namespace
}  // namespace r1kit::kernels
