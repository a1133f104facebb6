// topk_head: the top-k head against a direct sort of the double log-softmax (chunk sizes that do
// and do not divide N, K = 1 against logprob_head's argmax, K = V the whole distribution, ties by
// id, −inf logits and a row with none finite); the multi-target head against logprob_head_forward
// column by column, its backward against finite differences in double and against K single-target
// logprob_head_backward calls summed (the gradient is linear in dlogprob), duplicate targets;
// validation.
#include "kernels/topk_head.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>
#include <vector>

#include "kernels/logprob.h"
#include "tests/common/test_util.h"

namespace r1kit::kernels {
namespace {
using testing::cpu_ctx;

constexpr double kF32Unit = 1.0 / (1 << 24);           // unit roundoff of f32 (2^-24)
constexpr double kF64Unit = 1.0 / 9007199254740992.0;  // 2^-53

// logits (N, V) = h (N, C) · wᵀ, in double.
std::vector<double> direct_logits(const std::vector<double>& h, const std::vector<double>& w,
                                  int64_t n, int64_t ch, int64_t vocab) {
  std::vector<double> z(n * vocab, 0.0);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t v = 0; v < vocab; ++v)
      for (int64_t c = 0; c < ch; ++c) z[i * vocab + v] += h[i * ch + c] * w[v * ch + c];
  return z;
}

// The direct top-k of logits (N, V) at temperature τ: z = x/τ, lse = m + log Σ exp(z − m), ids by
// (z descending, id ascending) (a stable sort of 0..V−1 by z descending), log p = z − lse. Also
// z − lse of every id (`all`), to judge near-ties.
struct TopkRef {
  std::vector<double> lp, lse, all;
  std::vector<int32_t> idx;
};
TopkRef direct_topk(const std::vector<double>& logits, int64_t n, int64_t vocab, int64_t k,
                    double tau) {
  TopkRef r;
  for (int64_t i = 0; i < n; ++i) {
    std::vector<double> z(vocab);
    double m = -INFINITY;
    for (int64_t j = 0; j < vocab; ++j) {
      z[j] = logits[i * vocab + j] / tau;
      m = std::max(m, z[j]);
    }
    double s = 0;
    for (double zj : z) s += std::exp(zj - m);
    const double lse = m + std::log(s);
    std::vector<int32_t> ids(vocab);
    std::iota(ids.begin(), ids.end(), 0);
    std::stable_sort(ids.begin(), ids.end(), [&](int32_t a, int32_t b) { return z[a] > z[b]; });
    for (int64_t q = 0; q < k; ++q) {
      r.idx.push_back(ids[q]);
      r.lp.push_back(z[ids[q]] - lse);
    }
    for (double zj : z) r.all.push_back(zj - lse);
    r.lse.push_back(lse);
  }
  return r;
}

// v += xs (vector::insert of a braced list trips GCC 12's -Wstringop-overflow).
void append(std::vector<double>& v, std::initializer_list<double> xs) {
  for (double x : xs) v.push_back(x);
}

std::vector<int32_t> to_ids(const TensorView& t) {
  std::vector<int32_t> out(static_cast<size_t>(t.numel()));
  std::copy_n(t.ptr<int32_t>(), t.numel(), out.begin());
  return out;
}

void expect_close(const std::vector<double>& got, const std::vector<double>& want, double tol,
                  const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], tol) << what << " at " << i;
}

// The op's top-k (idx, log-probs, lse) against the direct one: log-probs and lse within tol; ids
// equal, except that a position may hold another id whose direct log-prob is within tol of the
// reference's (a near-tie the op's rounding may order either way); each row's ids distinct.
void expect_topk(const Tensor& idx, const Tensor& lp, const Tensor& lse, const TopkRef& ref,
                 int64_t vocab, double tol, const std::string& what) {
  const auto got_idx = to_ids(idx);
  const auto got_lp = testing::to_double(lp);
  const int64_t n = idx.view().shape[0], k = idx.view().shape[1];
  ASSERT_EQ(got_idx.size(), ref.idx.size()) << what;
  expect_close(got_lp, ref.lp, tol, what + " topk_logprob");
  expect_close(testing::to_double(lse), ref.lse, tol, what + " lse");
  for (int64_t i = 0; i < n; ++i) {
    std::vector<int32_t> row(got_idx.begin() + i * k, got_idx.begin() + (i + 1) * k);
    std::sort(row.begin(), row.end());
    EXPECT_TRUE(std::adjacent_find(row.begin(), row.end()) == row.end())
        << what << ": row " << i << " repeats an id";
    for (int64_t q = 0; q < k; ++q) {
      const int32_t g = got_idx[i * k + q], w = ref.idx[i * k + q];
      ASSERT_TRUE(g >= 0 && g < vocab) << what << ": id " << g << " at " << i << ", " << q;
      if (g != w) {
        EXPECT_NEAR(ref.all[i * vocab + g], ref.all[i * vocab + w], tol)
            << what << ": id " << g << " instead of " << w << " at " << i << ", " << q
            << " is not a near-tie";
      }
    }
  }
}

struct TopkOut {
  Tensor lp, idx, lse;
};
TopkOut run_topk(const Tensor& h, const Tensor& w, int64_t k, double tau, int64_t chunk) {
  auto& ctx = cpu_ctx();
  const int64_t n = h.view().shape[0];
  const DType st = h.dtype() == DType::f64 ? DType::f64 : DType::f32;
  TopkOut o{ctx.empty({n, k}, st, "topk_logprob"), ctx.empty({n, k}, DType::i32, "topk_idx"),
            ctx.empty({n}, st, "lse")};
  testing::fill_constant(o.lp, NAN);
  testing::fill_constant(o.lse, NAN);
  testing::fill_constant(o.idx, -1);
  logprob_head_topk(o.lp, o.idx, o.lse, h, w, tau, chunk, ctx);
  return o;
}

TEST(TopkHead, MatchesDirectSortOfLogSoftmax) {
  std::mt19937_64 rng(31);
  auto& ctx = cpu_ctx();
  const int64_t n = 7, ch = 5, vocab = 23;
  for (DType dt : {DType::f64, DType::f32}) {
    auto h = testing::random_tensor(ctx, {n, ch}, dt, rng, -1, 1, "h");
    auto w = testing::random_tensor(ctx, {vocab, ch}, dt, rng, -1, 1, "lm_head.weight");
    const auto z = direct_logits(testing::to_double(h), testing::to_double(w), n, ch, vocab);
    for (double tau : {1.0, 0.7}) {
      // The GEMM rounds each logit by about C·u·max|h·w|; everything after is in double.
      const double u = dt == DType::f64 ? kF64Unit : kF32Unit;
      const double tol = 16 * (ch + 1) * u / tau + 4 * u;
      for (int64_t k : {int64_t{1}, int64_t{5}, vocab}) {
        const TopkRef ref = direct_topk(z, n, vocab, k, tau);
        for (int64_t chunk : {1, 3, 7, 64}) {  // 3 does not divide 7; 64 > N
          const std::string what = std::string(dtype_name(dt)) + " tau " + std::to_string(tau) +
                                   " K " + std::to_string(k) + " chunk " + std::to_string(chunk);
          const TopkOut o = run_topk(h, w, k, tau, chunk);
          expect_topk(o.idx, o.lp, o.lse, ref, vocab, tol, what);
        }
      }
    }
  }
}

TEST(TopkHead, KOneIsTheArgmaxWithLogprobHeadsValues) {
  std::mt19937_64 rng(32);
  auto& ctx = cpu_ctx();
  const int64_t n = 9, ch = 6, vocab = 31, chunk = 4;
  const double tau = 0.8;
  for (DType dt : {DType::f64, DType::f32}) {
    auto h = testing::random_tensor(ctx, {n, ch}, dt, rng, -1, 1, "h");
    auto w = testing::random_tensor(ctx, {vocab, ch}, dt, rng, -1, 1, "w");
    const TopkOut o = run_topk(h, w, 1, tau, chunk);
    // The argmax of the same logits, through logprob_head (same GEMM chunks, same double math).
    const DType st = dt == DType::f64 ? DType::f64 : DType::f32;
    auto lp = ctx.empty({n}, st, "logprob"), lse = ctx.empty({n}, st, "lse");
    logprob_head_forward(lp, TensorView{}, lse, h, w, o.idx.view().reshape({n}), tau, chunk, ctx);
    expect_close(testing::to_double(o.lp), testing::to_double(lp), 0.0, "K = 1 logprob");
    expect_close(testing::to_double(o.lse), testing::to_double(lse), 0.0, "K = 1 lse");
    const auto z = direct_logits(testing::to_double(h), testing::to_double(w), n, ch, vocab);
    const auto ids = to_ids(o.idx);
    for (int64_t i = 0; i < n; ++i) {
      const auto row = z.begin() + i * vocab;
      EXPECT_EQ(ids[i], std::max_element(row, row + vocab) - row) << dtype_name(dt) << " " << i;
    }
  }
}

TEST(TopkHead, FullKIsTheWholeSortedDistribution) {
  std::mt19937_64 rng(33);
  auto& ctx = cpu_ctx();
  const int64_t n = 5, ch = 4, vocab = 17;
  const double tau = 1.3;
  auto h = testing::random_tensor(ctx, {n, ch}, DType::f64, rng, -2, 2, "h");
  auto w = testing::random_tensor(ctx, {vocab, ch}, DType::f64, rng, -2, 2, "w");
  const TopkOut o = run_topk(h, w, vocab, tau, 2);
  const auto ids = to_ids(o.idx);
  const auto lp = testing::to_double(o.lp);
  for (int64_t i = 0; i < n; ++i) {
    std::vector<int32_t> perm(ids.begin() + i * vocab, ids.begin() + (i + 1) * vocab);
    std::sort(perm.begin(), perm.end());
    for (int64_t j = 0; j < vocab; ++j) ASSERT_EQ(perm[j], j) << "row " << i << " not all ids";
    double mass = 0;
    for (int64_t q = 0; q < vocab; ++q) {
      mass += std::exp(lp[i * vocab + q]);
      if (q > 0) {
        EXPECT_GE(lp[i * vocab + q - 1], lp[i * vocab + q]) << i << ", " << q;
      }
    }
    EXPECT_NEAR(mass, 1.0, 64 * vocab * kF64Unit) << "row " << i;
  }
  // The same values as the multi-target head asked for those ids.
  auto mlp = ctx.empty({n, vocab}, DType::f64, "logprob"), mlse = ctx.empty({n}, DType::f64);
  logprob_head_multi_forward(mlp, mlse, h, w, o.idx, tau, 2, ctx);
  expect_close(lp, testing::to_double(mlp), 0.0, "K = V vs multi");
  expect_close(testing::to_double(o.lse), testing::to_double(mlse), 0.0, "K = V lse vs multi");
}

// Small integers give exact logits (any summation order) with many equal values: ties must go to
// the lowest id, in f64 and f32, at τ = 1 and not.
TEST(TopkHead, TiesGoToTheLowestId) {
  std::mt19937_64 rng(34);
  auto& ctx = cpu_ctx();
  const int64_t n = 6, ch = 3, vocab = 40;
  std::uniform_int_distribution<int> small(-2, 2);
  std::vector<double> hv(n * ch), wv(vocab * ch);
  for (double& x : hv) x = small(rng);
  for (double& x : wv) x = small(rng);
  const auto z = direct_logits(hv, wv, n, ch, vocab);
  for (DType dt : {DType::f64, DType::f32}) {
    auto h = testing::tensor_from(ctx, {n, ch}, dt, hv, "h");
    auto w = testing::tensor_from(ctx, {vocab, ch}, dt, wv, "w");
    for (double tau : {1.0, 0.6})
      for (int64_t k : {3, 11, 40}) {
        const TopkRef ref = direct_topk(z, n, vocab, k, tau);
        const TopkOut o = run_topk(h, w, k, tau, 4);
        const std::string what =
            std::string(dtype_name(dt)) + " tau " + std::to_string(tau) + " K " + std::to_string(k);
        EXPECT_EQ(to_ids(o.idx), ref.idx) << what;
        expect_close(testing::to_double(o.lp), ref.lp, 8 * kF32Unit * 10, what + " topk_logprob");
      }
  }
}

// −inf logits (p = 0) come last, by id, with log-prob −inf; a row with no finite logit gets NaN
// log-probs and lse and the ids 0, ..., K − 1. Built exactly: h_i = (1, 1e200, t_i) and
// w_j = (a_j, m_j, −1e200), so logit_ij = a_j, or −inf where m_j = −1e200 (an overflow), or −inf
// everywhere in the row with t_i = 1e200.
TEST(TopkHead, NegInfLogitsComeLastAndADeadRowIsNaN) {
  std::mt19937_64 rng(35);
  auto& ctx = cpu_ctx();
  const int64_t n = 4, ch = 3, vocab = 12, dead = 2;
  const double big = 1e200, tau = 0.9;
  std::vector<double> hv, wv;
  for (int64_t i = 0; i < n; ++i) {
    append(hv, {1.0, big, i == dead ? big : 0.0});
  }
  std::uniform_real_distribution<double> u(-2, 2);
  std::vector<bool> masked(vocab);
  for (int64_t j = 0; j < vocab; ++j) {
    masked[j] = j % 4 == 1 || j == 6;
    append(wv, {u(rng), masked[j] ? -big : 0.0, -big});
  }
  auto h = testing::tensor_from(ctx, {n, ch}, DType::f64, hv, "h");
  auto w = testing::tensor_from(ctx, {vocab, ch}, DType::f64, wv, "w");
  std::vector<double> z(n * vocab);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < vocab; ++j)
      z[i * vocab + j] = (i == dead || masked[j]) ? -INFINITY : wv[j * ch];
  int64_t n_masked = 0;
  for (bool m : masked) n_masked += m;
  for (int64_t k : {vocab - n_masked, vocab}) {
    const TopkOut o = run_topk(h, w, k, tau, 3);
    const auto ids = to_ids(o.idx);
    const auto lp = testing::to_double(o.lp), lse = testing::to_double(o.lse);
    for (int64_t i = 0; i < n; ++i) {
      if (i == dead) {
        EXPECT_TRUE(std::isnan(lse[i])) << "dead row lse";
        for (int64_t q = 0; q < k; ++q) {
          EXPECT_EQ(ids[i * k + q], q) << "dead row ids";
          EXPECT_TRUE(std::isnan(lp[i * k + q])) << "dead row log-probs";
        }
        continue;
      }
      // The finite part against the direct sort of the row with its −inf columns; then the −inf
      // ids in ascending order.
      const TopkRef ref =
          direct_topk(std::vector<double>(z.begin() + i * vocab, z.begin() + (i + 1) * vocab), 1,
                      vocab, k, tau);
      EXPECT_NEAR(lse[i], ref.lse[0], 1e-13) << i;
      for (int64_t q = 0; q < k; ++q) {
        EXPECT_EQ(ids[i * k + q], ref.idx[q]) << i << ", " << q;
        if (q < vocab - n_masked) {
          EXPECT_NEAR(lp[i * k + q], ref.lp[q], 1e-13) << i << ", " << q;
        } else {
          EXPECT_TRUE(masked[ids[i * k + q]]) << i << ", " << q;
          EXPECT_EQ(lp[i * k + q], -INFINITY) << i << ", " << q;
        }
      }
    }
  }
  // The multi-target head: a target on a −inf logit has log-prob −inf; the dead row is NaN.
  std::vector<double> tv;
  for (int64_t i = 0; i < n; ++i) append(tv, {1.0, 0.0});  // id 1 is masked, 0 is not
  auto t = testing::tensor_from(ctx, {n, 2}, DType::i32, tv, "targets");
  auto mlp = ctx.empty({n, 2}, DType::f64), mlse = ctx.empty({n}, DType::f64);
  logprob_head_multi_forward(mlp, mlse, h, w, t, tau, 3, ctx);
  const auto m = testing::to_double(mlp);
  for (int64_t i = 0; i < n; ++i) {
    if (i == dead) {
      EXPECT_TRUE(std::isnan(m[i * 2]) && std::isnan(m[i * 2 + 1])) << "dead row";
    } else {
      EXPECT_EQ(m[i * 2], -INFINITY) << i;
      EXPECT_TRUE(std::isfinite(m[i * 2 + 1])) << i;
    }
  }
}

// ---- the multi-target head -----------------------------------------------------------------

// Random inputs: h (N, C), w (V, C) in [−1, 1), targets (N, K) in [0, V) with column 1 a copy of
// column 0 (duplicates), dlogprob (N, K) in [−1, 1).
struct MultiInputs {
  Tensor h, w, targets, glp;
};
MultiInputs random_multi(int64_t n, int64_t ch, int64_t vocab, int64_t k, DType dtype,
                         std::mt19937_64& rng) {
  auto& ctx = cpu_ctx();
  MultiInputs in;
  in.h = testing::random_tensor(ctx, {n, ch}, dtype, rng, -1, 1, "h");
  in.w = testing::random_tensor(ctx, {vocab, ch}, dtype, rng, -1, 1, "lm_head.weight");
  in.targets = testing::random_ints(ctx, {n, k}, rng, 0, static_cast<int>(vocab - 1), "targets");
  if (k > 1)
    for (int64_t i = 0; i < n; ++i)
      in.targets.ptr<int32_t>()[i * k + 1] = in.targets.ptr<int32_t>()[i * k];
  const DType st = dtype == DType::f64 ? DType::f64 : DType::f32;
  in.glp = testing::random_tensor(ctx, {n, k}, st, rng, -1, 1, "dlogprob");
  return in;
}

// Column q of an (N, K) tensor as an (N) tensor.
Tensor column(const Tensor& t, int64_t q) {
  const int64_t n = t.view().shape[0], k = t.view().shape[1];
  const auto v = testing::to_double(t);
  std::vector<double> c;
  for (int64_t i = 0; i < n; ++i) c.push_back(v[i * k + q]);
  return testing::tensor_from(cpu_ctx(), {n}, t.dtype(), c, t.view().name + ".col");
}

TEST(TopkHeadMulti, ForwardEqualsLogprobHeadColumnByColumn) {
  std::mt19937_64 rng(41);
  auto& ctx = cpu_ctx();
  const int64_t n = 7, ch = 5, vocab = 19, k = 4, chunk = 3;
  const double tau = 0.9;
  for (DType dt : {DType::f64, DType::f32}) {
    const MultiInputs in = random_multi(n, ch, vocab, k, dt, rng);
    const DType st = dt == DType::f64 ? DType::f64 : DType::f32;
    auto lp = ctx.empty({n, k}, st, "logprob"), lse = ctx.empty({n}, st, "lse");
    testing::fill_constant(lp, NAN);
    logprob_head_multi_forward(lp, lse, in.h, in.w, in.targets, tau, chunk, ctx);
    for (int64_t q = 0; q < k; ++q) {
      auto lp1 = ctx.empty({n}, st), lse1 = ctx.empty({n}, st);
      logprob_head_forward(lp1, TensorView{}, lse1, in.h, in.w, column(in.targets, q), tau, chunk,
                           ctx);
      const std::string what = std::string(dtype_name(dt)) + " column " + std::to_string(q);
      // Same GEMM chunks and the same double math: equal.
      expect_close(testing::to_double(column(lp, q)), testing::to_double(lp1), 0.0, what);
      expect_close(testing::to_double(lse), testing::to_double(lse1), 0.0, what + " lse");
    }
  }
}

TEST(TopkHeadMulti, BackwardMatchesFiniteDifferences) {
  std::mt19937_64 rng(42);
  auto& ctx = cpu_ctx();
  const int64_t n = 5, ch = 4, vocab = 7, k = 3, chunk = 2;
  const double tau = 0.8;
  const MultiInputs in = random_multi(n, ch, vocab, k, DType::f64, rng);
  auto lp = ctx.empty({n, k}, DType::f64), lse = ctx.empty({n}, DType::f64);
  auto loss = [&] {
    logprob_head_multi_forward(lp, lse, in.h, in.w, in.targets, tau, chunk, ctx);
    return testing::dot(lp, in.glp);
  };
  loss();
  auto dh = ctx.empty({n, ch}, DType::f64, "dh");
  auto dw = ctx.zeros({vocab, ch}, DType::f64, "dw");
  testing::fill_constant(dh, NAN);  // overwrite: every element must be written
  logprob_head_multi_backward(dh, dw, in.glp, in.h, in.w, in.targets, lse, tau, chunk, ctx);
  testing::expect_gradients_match(loss, {{in.h.view(), dh.view()}, {in.w.view(), dw.view()}});
}

TEST(TopkHeadMulti, BackwardIsTheSumOfSingleTargetBackwards) {
  std::mt19937_64 rng(43);
  auto& ctx = cpu_ctx();
  const int64_t n = 9, ch = 6, vocab = 13, k = 5;
  const double tau = 1.2;
  for (DType dt : {DType::f64, DType::f32}) {
    const MultiInputs in = random_multi(n, ch, vocab, k, dt, rng);
    const DType st = dt == DType::f64 ? DType::f64 : DType::f32;
    auto lp = ctx.empty({n, k}, st), lse = ctx.empty({n}, st);
    logprob_head_multi_forward(lp, lse, in.h, in.w, in.targets, tau, 4, ctx);
    auto dh = ctx.empty({n, ch}, dt, "dh");
    testing::fill_constant(dh, NAN);  // overwrite
    auto dw = testing::tensor_from(ctx, {vocab, ch}, dt, std::vector<double>(vocab * ch, 0.5),
                                   "dw");  // accumulate
    logprob_head_multi_backward(dh, dw, in.glp, in.h, in.w, in.targets, lse, tau, 4, ctx);

    // By linearity in dlogprob: Σ_q logprob_head_backward(dlogprob[:, q], targets[:, q]).
    std::vector<double> dh_want(n * ch, 0.0);
    auto dw_want = testing::tensor_from(ctx, {vocab, ch}, dt, std::vector<double>(vocab * ch, 0.5));
    for (int64_t q = 0; q < k; ++q) {
      auto dh1 = ctx.empty({n, ch}, dt);
      logprob_head_backward(dh1, dw_want, column(in.glp, q), TensorView{}, in.h, in.w,
                            column(in.targets, q), lse, tau, 3, ctx);
      const auto d = testing::to_double(dh1);
      for (int64_t e = 0; e < n * ch; ++e) dh_want[e] += d[e];
    }
    // Sums of V (dh) or N·K (dw) terms of size <= 2 in the working precision.
    const double u = dt == DType::f64 ? kF64Unit : kF32Unit;
    expect_close(testing::to_double(dh), dh_want, 8 * k * (vocab + ch) * u * 4,
                 std::string(dtype_name(dt)) + " dh");
    expect_close(testing::to_double(dw), testing::to_double(dw_want), 8 * k * (n + ch) * u * 4,
                 std::string(dtype_name(dt)) + " dw");
  }
}

// Targets (t, t, s) with dlogprob (a, b, c) are targets (t, s) with (a + b, c): equal log-probs in
// the duplicated columns, and the same gradients.
TEST(TopkHeadMulti, DuplicateTargetsAddUp) {
  std::mt19937_64 rng(44);
  auto& ctx = cpu_ctx();
  const int64_t n = 4, ch = 3, vocab = 11;
  const double tau = 1.0;
  auto h = testing::random_tensor(ctx, {n, ch}, DType::f64, rng, -1, 1, "h");
  auto w = testing::random_tensor(ctx, {vocab, ch}, DType::f64, rng, -1, 1, "w");
  std::vector<double> t3, t2, g3, g2;
  std::uniform_int_distribution<int> id(0, static_cast<int>(vocab - 1));
  std::uniform_real_distribution<double> g(-1, 1);
  for (int64_t i = 0; i < n; ++i) {
    const double t = id(rng), s = id(rng), a = g(rng), b = g(rng), c = g(rng);
    append(t3, {t, t, s});
    append(g3, {a, b, c});
    append(t2, {t, s});
    append(g2, {a + b, c});
  }
  auto tt3 = testing::tensor_from(ctx, {n, 3}, DType::i32, t3, "targets");
  auto tt2 = testing::tensor_from(ctx, {n, 2}, DType::i32, t2, "targets");
  auto gg3 = testing::tensor_from(ctx, {n, 3}, DType::f64, g3, "dlogprob");
  auto gg2 = testing::tensor_from(ctx, {n, 2}, DType::f64, g2, "dlogprob");
  auto lp3 = ctx.empty({n, 3}, DType::f64), lse3 = ctx.empty({n}, DType::f64);
  logprob_head_multi_forward(lp3, lse3, h, w, tt3, tau, 2, ctx);
  const auto l3 = testing::to_double(lp3);
  for (int64_t i = 0; i < n; ++i) EXPECT_EQ(l3[i * 3], l3[i * 3 + 1]) << i;
  auto dh3 = ctx.empty({n, ch}, DType::f64), dw3 = ctx.zeros({vocab, ch}, DType::f64);
  auto dh2 = ctx.empty({n, ch}, DType::f64), dw2 = ctx.zeros({vocab, ch}, DType::f64);
  logprob_head_multi_backward(dh3, dw3, gg3, h, w, tt3, lse3, tau, 2, ctx);
  logprob_head_multi_backward(dh2, dw2, gg2, h, w, tt2, lse3, tau, 2, ctx);
  expect_close(testing::to_double(dh3), testing::to_double(dh2), 1e-14, "dh");
  expect_close(testing::to_double(dw3), testing::to_double(dw2), 1e-14, "dw");
}

TEST(TopkHeadMulti, Bf16InputsMatchTheF32HeadOnTheSameValues) {
  // bf16 h and w are upcast to f32 copies: the same results as the f32 op on those values.
  std::mt19937_64 rng(45);
  auto& ctx = cpu_ctx();
  const int64_t n = 6, ch = 8, vocab = 21, k = 3;
  const MultiInputs in = random_multi(n, ch, vocab, k, DType::bf16, rng);
  auto h32 = testing::tensor_from(ctx, {n, ch}, DType::f32, testing::to_double(in.h));
  auto w32 = testing::tensor_from(ctx, {vocab, ch}, DType::f32, testing::to_double(in.w));
  auto lp = ctx.empty({n, k}, DType::f32), lse = ctx.empty({n}, DType::f32);
  auto lp32 = ctx.empty({n, k}, DType::f32), lse32 = ctx.empty({n}, DType::f32);
  logprob_head_multi_forward(lp, lse, in.h, in.w, in.targets, 1.0, 4, ctx);
  logprob_head_multi_forward(lp32, lse32, h32, w32, in.targets, 1.0, 4, ctx);
  expect_close(testing::to_double(lp), testing::to_double(lp32), 0.0, "bf16 logprob");
  const TopkOut o = run_topk(in.h, in.w, k, 1.0, 4), o32 = run_topk(h32, w32, k, 1.0, 4);
  EXPECT_EQ(to_ids(o.idx), to_ids(o32.idx));
  expect_close(testing::to_double(o.lp), testing::to_double(o32.lp), 0.0, "bf16 topk");
  auto dh = ctx.empty({n, ch}, DType::bf16), dw = ctx.zeros({vocab, ch}, DType::bf16);
  auto dh32 = ctx.empty({n, ch}, DType::f32), dw32 = ctx.zeros({vocab, ch}, DType::f32);
  logprob_head_multi_backward(dh, dw, in.glp, in.h, in.w, in.targets, lse, 1.0, 4, ctx);
  logprob_head_multi_backward(dh32, dw32, in.glp, h32, w32, in.targets, lse32, 1.0, 4, ctx);
  // Only the output rounding to bf16 differs (relative 2^-9).
  const auto a = testing::to_double(dh), b = testing::to_double(dh32);
  for (size_t e = 0; e < a.size(); ++e) EXPECT_NEAR(a[e], b[e], std::fabs(b[e]) / 256 + 1e-30);
}

// ---- validation ----------------------------------------------------------------------------

TEST(TopkHead, ValidationNamesOpArgumentAndShapes) {
  auto& ctx = cpu_ctx();
  auto h = ctx.zeros({4, 7}, DType::f32, "h");
  auto w = ctx.zeros({9, 7}, DType::f32, "lm_head.weight");
  auto w_bad = ctx.zeros({9, 6}, DType::f32, "w6");
  auto lse = ctx.empty({4}, DType::f32, "lse");
  auto lp = ctx.empty({4, 3}, DType::f32, "topk_logprob");
  auto idx = ctx.empty({4, 3}, DType::i32, "topk_idx");
  auto call = [&](const TensorView& l, const TensorView& i, const TensorView& s,
                  const TensorView& ww, double tau, int64_t chunk) {
    return [&, l, i, s, ww, tau, chunk] { logprob_head_topk(l, i, s, h, ww, tau, chunk, ctx); };
  };
  testing::expect_error_contains(call(lp, idx, lse, w_bad, 1.0, 2),
                                 {"[logprob_head_topk]", "w6", "(9, 6)", "(4, 7)"});
  auto idx10 = ctx.empty({4, 10}, DType::i32, "idx10");
  auto lp10 = ctx.empty({4, 10}, DType::f32, "lp10");
  testing::expect_error_contains(call(lp10, idx10, lse, w, 1.0, 2),
                                 {"[logprob_head_topk]", "K = 10", "idx10", "[1, 9]"});
  auto idx0 = ctx.empty({4, 0}, DType::i32, "idx0");
  auto lp0 = ctx.empty({4, 0}, DType::f32, "lp0");
  testing::expect_error_contains(call(lp0, idx0, lse, w, 1.0, 2),
                                 {"[logprob_head_topk]", "K = 0", "[1, 9]"});
  auto lp_wrong = ctx.empty({4, 2}, DType::f32, "lp_wrong");
  testing::expect_error_contains(call(lp_wrong, idx, lse, w, 1.0, 2),
                                 {"[logprob_head_topk]", "lp_wrong", "(4, 2)", "(4, 3)"});
  auto idx_f32 = ctx.empty({4, 3}, DType::f32, "idx_f32");
  testing::expect_error_contains(call(lp, idx_f32, lse, w, 1.0, 2),
                                 {"[logprob_head_topk]", "idx_f32", "i32"});
  auto idx_rows = ctx.empty({5, 3}, DType::i32, "idx_rows");
  testing::expect_error_contains(call(lp, idx_rows, lse, w, 1.0, 2),
                                 {"[logprob_head_topk]", "idx_rows", "(4, K)"});
  testing::expect_error_contains(call(lp, idx, lse, w, 1.0, 0),
                                 {"[logprob_head_topk]", "chunk_tokens 0"});
  testing::expect_error_contains(call(lp, idx, lse, w, -1.0, 2),
                                 {"[logprob_head_topk]", "temperature -1"});
  testing::expect_error_contains(call(lp, idx, lse, w, INFINITY, 2),
                                 {"[logprob_head_topk]", "temperature inf"});
  auto lse_bf16 = ctx.empty({4}, DType::bf16, "lse_bf16");
  testing::expect_error_contains(call(lp, idx, lse_bf16, w, 1.0, 2),
                                 {"[logprob_head_topk]", "lse_bf16", "f32 or f64"});
  auto lp64 = ctx.empty({4, 3}, DType::f64, "lp64");
  testing::expect_error_contains(call(lp64, idx, lse, w, 1.0, 2),
                                 {"[logprob_head_topk]", "lp64", "f64"});
  // lse over the first four elements of topk_logprob: outputs overlap.
  TensorView lse_alias = lp.view();
  lse_alias.ndim = 1;
  lse_alias.shape = {4, 0, 0, 0};
  lse_alias.stride = {1, 0, 0, 0};
  testing::expect_error_contains(call(lp, idx, lse_alias, w, 1.0, 2),
                                 {"[logprob_head_topk]", "must not overlap"});
}

TEST(TopkHeadMulti, ValidationNamesOpArgumentAndBadTargets) {
  auto& ctx = cpu_ctx();
  auto h = ctx.zeros({4, 7}, DType::f32, "h");
  auto w = ctx.zeros({9, 7}, DType::f32, "lm_head.weight");
  auto lse = ctx.empty({4}, DType::f32, "lse");
  auto lp = ctx.empty({4, 2}, DType::f32, "logprob");
  auto targets = ctx.zeros({4, 2}, DType::i32, "targets");
  targets.ptr<int32_t>()[2 * 2 + 1] = 9;
  testing::expect_error_contains(
      [&] { logprob_head_multi_forward(lp, lse, h, w, targets, 1.0, 2, ctx); },
      {"[logprob_head_multi]", "row 2", "column 1", "holds 9", "[0, 9)", "lm_head.weight"});
  targets.ptr<int32_t>()[2 * 2 + 1] = 0;
  targets.ptr<int32_t>()[3 * 2] = -1;
  auto dh = ctx.empty({4, 7}, DType::f32, "dh");
  auto dw = ctx.zeros({9, 7}, DType::f32, "dw");
  testing::expect_error_contains(
      [&] { logprob_head_multi_backward(dh, dw, lp, h, w, targets, lse, 1.0, 2, ctx); },
      {"[logprob_head_multi_backward]", "row 3", "column 0", "holds -1"});
  targets.ptr<int32_t>()[3 * 2] = 8;

  auto t1 = ctx.zeros({4}, DType::i32, "t1");
  testing::expect_error_contains(
      [&] { logprob_head_multi_forward(lp, lse, h, w, t1, 1.0, 2, ctx); },
      {"[logprob_head_multi]", "t1", "2 dims"});
  auto lp3 = ctx.empty({4, 3}, DType::f32, "lp3");
  testing::expect_error_contains(
      [&] { logprob_head_multi_forward(lp3, lse, h, w, targets, 1.0, 2, ctx); },
      {"[logprob_head_multi]", "lp3", "(4, 3)", "(4, 2)"});
  testing::expect_error_contains(
      [&] { logprob_head_multi_forward(lp, lse, h, w, targets, 1.0, 0, ctx); },
      {"[logprob_head_multi]", "chunk_tokens 0"});
  testing::expect_error_contains(
      [&] { logprob_head_multi_forward(lp, lse, h, w, targets, 0.0, 2, ctx); },
      {"[logprob_head_multi]", "temperature 0"});
  auto dw_bad = ctx.zeros({7, 9}, DType::f32, "dw_bad");
  testing::expect_error_contains(
      [&] { logprob_head_multi_backward(dh, dw_bad, lp, h, w, targets, lse, 1.0, 2, ctx); },
      {"[logprob_head_multi_backward]", "dw_bad", "(7, 9)", "(9, 7)"});
  auto dlp_bad = ctx.empty({4, 3}, DType::f32, "dlp_bad");
  testing::expect_error_contains(
      [&] { logprob_head_multi_backward(dh, dw, dlp_bad, h, w, targets, lse, 1.0, 2, ctx); },
      {"[logprob_head_multi_backward]", "dlp_bad", "(4, 3)", "(4, 2)"});
  testing::expect_error_contains(
      [&] { logprob_head_multi_backward(dh, dw, lp, h, w, targets, lse, 1.0, 0, ctx); },
      {"[logprob_head_multi_backward]", "chunk_tokens 0"});
  testing::expect_error_contains(
      [&] { logprob_head_multi_backward(dh, h, lp, h, w, targets, lse, 1.0, 2, ctx); },
      {"[logprob_head_multi_backward]", "dw", "(4, 7)", "(9, 7)"});
  testing::expect_error_contains(
      [&] { logprob_head_multi_backward(dh, dw, lp, dh, w, targets, lse, 1.0, 2, ctx); },
      {"[logprob_head_multi_backward]", "must not overlap"});
}

}  // namespace
}  // namespace r1kit::kernels
