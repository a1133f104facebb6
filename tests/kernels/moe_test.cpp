// moe: routing against a straightforward reference (V3 sigmoid + bias + noaux_tc, V2 softmax
// group_limited_greedy, plain softmax top-k, K = 1, ties, the masked fill), backward of the weights
// and of the permutation against finite differences, permutation order, and validation errors.
#include "kernels/moe.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>

#include "tests/common/test_util.h"

namespace r1kit::kernels {
namespace {
using testing::cpu_ctx;

// ---- A straightforward reference, one token at a time, in double
// ---------------------------------

struct RefRoute {
  std::vector<double> scores;  // (E)
  std::vector<int> idx;        // (K) in descending choice, lowest index first on ties
  std::vector<double> weight;  // (K)
  std::vector<int> kept_groups;
  // Smallest gap at a decision boundary (K-th vs next expert, topk_group-th vs next group):
  // perturbations well below it cannot change the selection.
  double margin = INFINITY;
};

// The index of the largest value not yet taken; strict '>' keeps the lowest index on ties.
int argmax_untaken(const std::vector<double>& v, const std::vector<bool>& taken) {
  int best = -1;
  for (size_t i = 0; i < v.size(); ++i)
    if (!taken[i] && (best < 0 || v[i] > v[best])) best = static_cast<int>(i);
  return best;
}

RefRoute ref_route(const std::vector<double>& logits, const std::vector<double>& bias,
                   const MoeRouting& cfg) {
  const int e = static_cast<int>(cfg.n_routed_experts),
            k = static_cast<int>(cfg.num_experts_per_tok);
  RefRoute r;
  r.scores.resize(e);
  if (cfg.scoring == MoeScoring::softmax) {
    const double mx = *std::max_element(logits.begin(), logits.end());
    double z = 0;
    for (double l : logits) z += std::exp(l - mx);
    for (int j = 0; j < e; ++j) r.scores[j] = std::exp(logits[j] - mx) / z;
  } else {
    for (int j = 0; j < e; ++j) r.scores[j] = 1 / (1 + std::exp(-logits[j]));
  }
  std::vector<double> choice = r.scores;
  if (!bias.empty())
    for (int j = 0; j < e; ++j) choice[j] += bias[j];
  const int groups = cfg.topk_method == MoeTopkMethod::greedy ? 1 : static_cast<int>(cfg.n_group);
  const int gsize = e / groups;
  if (groups > 1) {
    std::vector<double> gs(groups);
    for (int g = 0; g < groups; ++g) {
      std::vector<double> members(choice.begin() + g * gsize, choice.begin() + (g + 1) * gsize);
      std::sort(members.rbegin(), members.rend());
      gs[g] = cfg.topk_method == MoeTopkMethod::noaux_tc ? members[0] + members[1] : members[0];
    }
    std::vector<bool> taken(groups, false);
    for (int i = 0; i < cfg.topk_group; ++i) {
      int g = argmax_untaken(gs, taken);
      taken[g] = true;
      r.kept_groups.push_back(g);
    }
    double worst_kept = INFINITY, best_dropped = -INFINITY;
    for (int g = 0; g < groups; ++g) {
      if (taken[g])
        worst_kept = std::min(worst_kept, gs[g]);
      else
        best_dropped = std::max(best_dropped, gs[g]);
    }
    r.margin = std::min(r.margin, worst_kept - best_dropped);
    const double fill = cfg.masked_fill == MoeGroupMaskFill::zero ? 0.0 : -INFINITY;
    for (int j = 0; j < e; ++j)
      if (!taken[j / gsize]) choice[j] = fill;
  } else {
    r.kept_groups.push_back(0);
  }
  std::vector<bool> taken(e, false);
  for (int i = 0; i < k; ++i) {
    int j = argmax_untaken(choice, taken);
    taken[j] = true;
    r.idx.push_back(j);
  }
  if (k < e) {
    int next = argmax_untaken(choice, taken);
    r.margin = std::min(r.margin, choice[r.idx.back()] - choice[next]);
  }
  double sum = 0;
  for (int j : r.idx) sum += r.scores[j];
  for (int j : r.idx) {
    double w = r.scores[j];
    if (cfg.norm_topk_prob && k > 1) w /= sum + 1e-20;
    r.weight.push_back(w * cfg.routed_scaling_factor);
  }
  return r;
}

std::vector<double> row(const std::vector<double>& v, int64_t i, int64_t width) {
  return {v.begin() + i * width, v.begin() + (i + 1) * width};
}

struct RouteOut {
  Tensor idx, weight, scores;
};

// Runs the op with NaN / -1 poisoned outputs of dtype `out`.
RouteOut run_route(const TensorView& logits, const TensorView& bias, const MoeRouting& cfg,
                   DType out) {
  auto& ctx = cpu_ctx();
  const int64_t n = logits.shape[0];
  RouteOut r{ctx.empty({n, cfg.num_experts_per_tok}, DType::i32, "topk_idx"),
             ctx.empty({n, cfg.num_experts_per_tok}, out, "topk_weight"),
             ctx.empty({n, cfg.n_routed_experts}, out, "scores")};
  testing::fill_constant(r.idx, -1);
  testing::fill_constant(r.weight, NAN);
  testing::fill_constant(r.scores, NAN);
  moe_route_forward(r.idx, r.weight, r.scores, logits, bias, cfg, ctx);
  return r;
}

// Compares the op (f64) with the reference for every token; returns the references.
std::vector<RefRoute> expect_route_matches_reference(const Tensor& logits, const Tensor* bias,
                                                     const MoeRouting& cfg) {
  const int64_t n = logits.size(0), e = cfg.n_routed_experts, k = cfg.num_experts_per_tok;
  RouteOut out = run_route(logits, bias ? bias->view() : TensorView(), cfg, DType::f64);
  auto lv = testing::to_double(logits), iv = testing::to_double(out.idx);
  auto wv = testing::to_double(out.weight), sv = testing::to_double(out.scores);
  std::vector<double> bv = bias ? testing::to_double(*bias) : std::vector<double>();
  std::vector<RefRoute> refs;
  for (int64_t t = 0; t < n; ++t) {
    RefRoute r = ref_route(row(lv, t, e), bv, cfg);
    for (int64_t j = 0; j < e; ++j)
      EXPECT_NEAR(sv[t * e + j], r.scores[j], 1e-15) << "token " << t << " expert " << j;
    for (int64_t i = 0; i < k; ++i) {
      EXPECT_EQ(iv[t * k + i], r.idx[i]) << "token " << t << " slot " << i;
      // Weights are O(routed_scaling_factor); double rounding of a few operations.
      EXPECT_NEAR(wv[t * k + i], r.weight[i], 1e-14 * std::max(1.0, cfg.routed_scaling_factor))
          << "token " << t << " slot " << i;
    }
    refs.push_back(std::move(r));
  }
  return refs;
}

MoeRouting v3_config() {
  return {.n_routed_experts = 16,
          .num_experts_per_tok = 4,
          .scoring = MoeScoring::sigmoid,
          .n_group = 4,
          .topk_group = 2,
          .topk_method = MoeTopkMethod::noaux_tc,
          .norm_topk_prob = true,
          .routed_scaling_factor = 2.5};
}

MoeRouting v2_config() {
  return {.n_routed_experts = 15,
          .num_experts_per_tok = 3,
          .scoring = MoeScoring::softmax,
          .n_group = 5,
          .topk_group = 2,
          .topk_method = MoeTopkMethod::group_limited_greedy,
          .norm_topk_prob = false,
          .routed_scaling_factor = 16.0};  // DeepSeek-V2's value
}

MoeRouting softmax_topk_config(int64_t e, int64_t k) {
  return {.n_routed_experts = e,
          .num_experts_per_tok = k,
          .scoring = MoeScoring::softmax,
          .topk_method = MoeTopkMethod::greedy,
          .norm_topk_prob = true};
}

TEST(MoeRoute, V3SigmoidBiasNoauxTc) {
  std::mt19937_64 rng(11);
  auto& ctx = cpu_ctx();
  const MoeRouting cfg = v3_config();
  const int64_t n = 9, e = 16, k = 4;
  auto logits = testing::random_tensor(ctx, {n, e}, DType::f64, rng, -3, 3, "router_logits");
  // sigmoid(-3) = 0.047 > 0.04, so every c = s + b stays positive and the fill never matters.
  auto bias = testing::random_tensor(ctx, {e}, DType::f64, rng, -0.04, 0.4, "bias");
  auto zero_bias = testing::tensor_from(ctx, {e}, DType::f64, std::vector<double>(e, 0.0), "bias");
  auto refs = expect_route_matches_reference(logits, &bias, cfg);
  expect_route_matches_reference(logits, &zero_bias, cfg);

  RouteOut out = run_route(logits, bias, cfg, DType::f64);
  RouteOut out0 = run_route(logits, zero_bias, cfg, DType::f64);
  auto iv = testing::to_double(out.idx), wv = testing::to_double(out.weight);
  auto sv = testing::to_double(out.scores), iv0 = testing::to_double(out0.idx);
  auto wv0 = testing::to_double(out0.weight);
  // The bias steers the choice only: the scores do not see it.
  EXPECT_EQ(sv, testing::to_double(out0.scores));
  int changed = 0;
  for (int64_t t = 0; t < n; ++t) {
    double sum_w = 0, sum_s = 0;
    std::set<int> groups;
    for (int64_t i = 0; i < k; ++i) {
      const int j = static_cast<int>(iv[t * k + i]);
      sum_w += wv[t * k + i];
      sum_s += sv[t * e + j];
      groups.insert(j / 4);
    }
    // Renormalised and scaled: the weights sum to routed_scaling_factor.
    EXPECT_NEAR(sum_w, 2.5, 1e-14);
    // Weights are the UNBIASED scores of the chosen experts, renormalised and scaled.
    for (int64_t i = 0; i < k; ++i) {
      const int j = static_cast<int>(iv[t * k + i]);
      EXPECT_NEAR(wv[t * k + i], 2.5 * sv[t * e + j] / sum_s, 1e-14);
    }
    // Chosen experts lie only in the kept groups (at most topk_group = 2 of them).
    const auto& kept = refs[t].kept_groups;
    EXPECT_LE(groups.size(), 2u);
    for (int g : groups) EXPECT_NE(std::find(kept.begin(), kept.end(), g), kept.end()) << t;
    // Where the bias leaves the chosen set alone, it leaves the weights alone too.
    std::vector<std::pair<double, double>> a, b;
    for (int64_t i = 0; i < k; ++i) {
      a.emplace_back(iv[t * k + i], wv[t * k + i]);
      b.emplace_back(iv0[t * k + i], wv0[t * k + i]);
    }
    std::sort(a.begin(), a.end());
    std::sort(b.begin(), b.end());
    bool same_set = true;
    for (int64_t i = 0; i < k; ++i) same_set = same_set && a[i].first == b[i].first;
    if (same_set) {
      for (int64_t i = 0; i < k; ++i)  // the sum may run in another order: 1e-14
        EXPECT_NEAR(a[i].second, b[i].second, 1e-14);
    } else {
      ++changed;
    }
  }
  // The test must exercise the bias: it changes the selection of some tokens.
  EXPECT_GT(changed, 0);
}

TEST(MoeRoute, MaskedFillZeroFollowsTransformersNegInfStaysInGroups) {
  auto& ctx = cpu_ctx();
  MoeRouting cfg;
  cfg.n_routed_experts = 8;
  cfg.num_experts_per_tok = 2;
  cfg.scoring = MoeScoring::sigmoid;
  cfg.n_group = 4;
  cfg.topk_group = 1;
  cfg.topk_method = MoeTopkMethod::noaux_tc;
  cfg.norm_topk_prob = true;
  // s = 0.5 everywhere; c = (0.9, -0.05 | 0.4, 0.4 | ...): group 0 wins (0.85 > 0.8), but its
  // second expert has c < 0, so a masked expert's fill of 0 beats it.
  auto logits = testing::tensor_from(ctx, {1, 8}, DType::f64, std::vector<double>(8, 0.0));
  auto bias = testing::tensor_from(ctx, {8}, DType::f64,
                                   {0.4, -0.55, -0.1, -0.1, -0.1, -0.1, -0.1, -0.1}, "bias");
  cfg.masked_fill = MoeGroupMaskFill::zero;
  expect_route_matches_reference(logits, &bias, cfg);
  auto zero = testing::to_double(run_route(logits, bias, cfg, DType::f64).idx);
  EXPECT_EQ(zero, (std::vector<double>{0, 2}));  // expert 2: lowest index among the masked zeros
  cfg.masked_fill = MoeGroupMaskFill::neg_inf;
  expect_route_matches_reference(logits, &bias, cfg);
  auto neg_inf = testing::to_double(run_route(logits, bias, cfg, DType::f64).idx);
  EXPECT_EQ(neg_inf, (std::vector<double>{0, 1}));
}

TEST(MoeRoute, V2SoftmaxGroupLimitedGreedyNoRenormalisation) {
  std::mt19937_64 rng(12);
  auto& ctx = cpu_ctx();
  const MoeRouting cfg = v2_config();
  const int64_t n = 9, e = 15, k = 3;
  auto logits = testing::random_tensor(ctx, {n, e}, DType::f64, rng, -2, 2, "router_logits");
  auto refs = expect_route_matches_reference(logits, nullptr, cfg);
  RouteOut out = run_route(logits, TensorView(), cfg, DType::f64);
  auto iv = testing::to_double(out.idx), wv = testing::to_double(out.weight);
  auto sv = testing::to_double(out.scores);
  for (int64_t t = 0; t < n; ++t) {
    double sum_s = 0, sum_w = 0;
    for (int64_t j = 0; j < e; ++j) sum_s += sv[t * e + j];
    EXPECT_NEAR(sum_s, 1.0, 1e-14);  // a softmax over all experts
    for (int64_t i = 0; i < k; ++i) {
      const int j = static_cast<int>(iv[t * k + i]);
      // No renormalisation: w = 16 · softmax at the chosen expert.
      EXPECT_NEAR(wv[t * k + i], 16.0 * sv[t * e + j], 1e-13);
      sum_w += wv[t * k + i];
      const auto& kept = refs[t].kept_groups;
      EXPECT_NE(std::find(kept.begin(), kept.end(), j / 3), kept.end()) << t;
    }
    EXPECT_LT(sum_w, 16.0);
  }
}

TEST(MoeRoute, SoftmaxTopkRenormalisedInF32AndBf16) {
  std::mt19937_64 rng(13);
  auto& ctx = cpu_ctx();
  const MoeRouting cfg = softmax_topk_config(11, 3);
  const int64_t n = 7, e = 11, k = 3;
  auto logits = testing::random_tensor(ctx, {n, e}, DType::f64, rng, -2, 2, "router_logits");
  expect_route_matches_reference(logits, nullptr, cfg);
  RouteOut out = run_route(logits, TensorView(), cfg, DType::f64);
  auto wv = testing::to_double(out.weight);
  for (int64_t t = 0; t < n; ++t)
    EXPECT_NEAR(wv[t * k] + wv[t * k + 1] + wv[t * k + 2], 1.0, 1e-15);

  // f32 and bf16 logits: the reference on the rounded logits. Scores are rounded once to f32
  // (relative 2^-24); a weight s / Σ s carries at most ~4 such roundings: 1e-6 is ample.
  for (DType dt : {DType::f32, DType::bf16}) {
    auto lowp = testing::tensor_from(ctx, {n, e}, dt, testing::to_double(logits), "router_logits");
    RouteOut o = run_route(lowp, TensorView(), cfg, DType::f32);
    auto lv = testing::to_double(lowp), iv = testing::to_double(o.idx);
    auto w32 = testing::to_double(o.weight);
    for (int64_t t = 0; t < n; ++t) {
      RefRoute r = ref_route(row(lv, t, e), {}, cfg);
      for (int64_t i = 0; i < k; ++i) {
        EXPECT_EQ(iv[t * k + i], r.idx[i]) << dtype_name(dt);
        EXPECT_NEAR(w32[t * k + i], r.weight[i], 1e-6) << dtype_name(dt);
      }
    }
  }
}

TEST(MoeRoute, TopOneKeepsTheScoreEvenWithNormTopkProb) {
  std::mt19937_64 rng(14);
  auto& ctx = cpu_ctx();
  MoeRouting cfg = softmax_topk_config(7, 1);
  cfg.routed_scaling_factor = 1.5;
  const int64_t n = 5, e = 7;
  auto logits = testing::random_tensor(ctx, {n, e}, DType::f64, rng, -2, 2, "router_logits");
  expect_route_matches_reference(logits, nullptr, cfg);
  RouteOut out = run_route(logits, TensorView(), cfg, DType::f64);
  auto lv = testing::to_double(logits), iv = testing::to_double(out.idx);
  auto wv = testing::to_double(out.weight), sv = testing::to_double(out.scores);
  for (int64_t t = 0; t < n; ++t) {
    auto r = row(lv, t, e);
    const auto best = std::max_element(r.begin(), r.end()) - r.begin();
    EXPECT_EQ(iv[t], best);
    // K = 1 skips the renormalisation (DeepSeek's rule): the weight is γ·s, not γ.
    EXPECT_NEAR(wv[t], 1.5 * sv[t * e + best], 1e-15);
    EXPECT_LT(wv[t], 1.5);
  }
}

TEST(MoeRoute, TiesGoToTheLowestIndex) {
  auto& ctx = cpu_ctx();
  auto logits = testing::tensor_from(ctx, {2, 8}, DType::f64, std::vector<double>(16, 0.25));
  MoeRouting cfg = softmax_topk_config(8, 3);
  EXPECT_EQ(testing::to_double(run_route(logits, TensorView(), cfg, DType::f64).idx),
            (std::vector<double>{0, 1, 2, 0, 1, 2}));
  // Equal group scores keep the lowest groups: groups 0 and 1 of 4, i.e. experts 0..3.
  cfg.topk_method = MoeTopkMethod::noaux_tc;
  cfg.scoring = MoeScoring::sigmoid;
  cfg.n_group = 4;
  cfg.topk_group = 2;
  cfg.num_experts_per_tok = 4;
  cfg.masked_fill = MoeGroupMaskFill::neg_inf;
  EXPECT_EQ(testing::to_double(run_route(logits, TensorView(), cfg, DType::f64).idx),
            (std::vector<double>{0, 1, 2, 3, 0, 1, 2, 3}));
}

// ---- Backward of the routing weights ------------------------------------------------------------

// Random logits (and bias) for n tokens, redrawn per token until every decision boundary has a
// margin of at least 1e-3 in choice space; finite differences move scores by < 1e-6.
void check_route_backward(const MoeRouting& cfg, bool with_bias, uint64_t seed) {
  std::mt19937_64 rng(seed);
  auto& ctx = cpu_ctx();
  const int64_t n = 5, e = cfg.n_routed_experts, k = cfg.num_experts_per_tok;
  auto bias = testing::random_tensor(ctx, {e}, DType::f64, rng, -0.1, 0.1, "bias");
  std::vector<double> bv = with_bias ? testing::to_double(bias) : std::vector<double>();
  std::uniform_real_distribution<double> dist(-2.5, 2.5);
  std::vector<double> lv;
  for (int64_t t = 0; t < n; ++t) {
    std::vector<double> r(e);
    do {
      for (auto& v : r) v = dist(rng);
    } while (ref_route(r, bv, cfg).margin < 1e-3);
    lv.insert(lv.end(), r.begin(), r.end());
  }
  auto logits = testing::tensor_from(ctx, {n, e}, DType::f64, lv, "router_logits");
  auto g = testing::random_tensor(ctx, {n, k}, DType::f64, rng, -1, 1, "dtopk_weight");
  const TensorView bias_view = with_bias ? bias.view() : TensorView();
  RouteOut out = run_route(logits, bias_view, cfg, DType::f64);
  const auto chosen = testing::to_double(out.idx);
  bool selection_changed = false;
  auto loss = [&] {
    moe_route_forward(out.idx, out.weight, out.scores, logits, bias_view, cfg, ctx);
    selection_changed = selection_changed || testing::to_double(out.idx) != chosen;
    return testing::dot(out.weight, g);
  };
  loss();
  auto dlogits = ctx.empty({n, e}, DType::f64, "dlogits");
  testing::fill_constant(dlogits, NAN);  // overwrite must write every element
  moe_route_backward(dlogits, g, out.idx, out.scores, cfg, ctx);
  testing::expect_gradients_match(loss, {{logits.view(), dlogits.view()}});
  EXPECT_FALSE(selection_changed) << "finite differences changed the selection";
}

TEST(MoeRoute, BackwardV3SigmoidNoauxTcMatchesFiniteDifferences) {
  check_route_backward(v3_config(), true, 21);
}

TEST(MoeRoute, BackwardV2SoftmaxGroupLimitedMatchesFiniteDifferences) {
  MoeRouting cfg = v2_config();
  cfg.routed_scaling_factor = 1.5;
  check_route_backward(cfg, false, 22);
}

TEST(MoeRoute, BackwardSoftmaxTopkRenormalisedMatchesFiniteDifferences) {
  MoeRouting cfg = softmax_topk_config(9, 3);
  cfg.routed_scaling_factor = 0.7;
  check_route_backward(cfg, false, 23);
}

TEST(MoeRoute, BackwardTopOneMatchesFiniteDifferences) {
  check_route_backward(softmax_topk_config(7, 1), false, 24);
  MoeRouting cfg = softmax_topk_config(7, 1);
  cfg.scoring = MoeScoring::sigmoid;
  check_route_backward(cfg, true, 25);
}

TEST(MoeRoute, BackwardSigmoidGreedyWithoutRenormalisation) {
  MoeRouting cfg = softmax_topk_config(9, 2);
  cfg.scoring = MoeScoring::sigmoid;
  cfg.norm_topk_prob = false;
  cfg.routed_scaling_factor = 2.0;
  check_route_backward(cfg, true, 26);
}

TEST(MoeExpertCounts, CountsEveryEntry) {
  std::mt19937_64 rng(31);
  auto& ctx = cpu_ctx();
  const int64_t n = 13, k = 3, e = 6;
  auto ids = testing::random_ints(ctx, {n, k}, rng, 0, static_cast<int>(e) - 2, "topk_idx");
  std::vector<double> want(e, 0.0);
  for (double id : testing::to_double(ids)) want[id] += 1;
  EXPECT_EQ(want[e - 1], 0.0);  // one expert gets no tokens
  for (DType dt : {DType::i32, DType::i64}) {
    auto counts = ctx.empty({e}, dt, "counts");
    testing::fill_constant(counts, -7);
    moe_expert_counts(counts, ids, ctx);
    EXPECT_EQ(testing::to_double(counts), want) << dtype_name(dt);
  }
}

// ---- Permutation
// ----------------------------------------------------------------------------------

struct Permuted {
  Tensor x_perm, perm, offsets;
};

Permuted run_permute(const TensorView& x, const TensorView& ids, int64_t e) {
  auto& ctx = cpu_ctx();
  const int64_t m = ids.numel();
  Permuted p{ctx.empty({m, x.shape[1]}, x.dtype, "x_perm"),
             ctx.empty({m}, DType::i32, "perm_index"),
             ctx.empty({e + 1}, DType::i32, "expert_offsets")};
  testing::fill_constant(p.x_perm, NAN);
  testing::fill_constant(p.perm, -1);
  testing::fill_constant(p.offsets, -1);
  moe_permute(p.x_perm, p.perm, p.offsets, x, ids, ctx);
  return p;
}

TEST(MoePermute, StableGroupingOffsetsAndRows) {
  std::mt19937_64 rng(41);
  auto& ctx = cpu_ctx();
  const int64_t n = 11, k = 3, e = 7, ch = 5;
  // Ids may repeat within a token; expert 6 gets no tokens.
  auto ids = testing::random_ints(ctx, {n, k}, rng, 0, static_cast<int>(e) - 2, "topk_idx");
  auto counts = ctx.empty({e}, DType::i32, "counts");
  moe_expert_counts(counts, ids, ctx);
  auto cv = testing::to_double(counts), idv = testing::to_double(ids);
  for (DType dt : {DType::f64, DType::bf16}) {
    auto x = testing::random_tensor(ctx, {n, ch}, dt, rng, -1, 1, "x");
    Permuted p = run_permute(x, ids, e);
    auto off = testing::to_double(p.offsets), perm = testing::to_double(p.perm);
    auto xv = testing::to_double(x), xp = testing::to_double(p.x_perm);
    ASSERT_EQ(off[0], 0);
    for (int64_t j = 0; j < e; ++j) {
      EXPECT_EQ(off[j + 1] - off[j], cv[j]) << j;
      for (auto q = static_cast<int64_t>(off[j]); q < off[j + 1]; ++q) {
        EXPECT_EQ(idv[static_cast<int64_t>(perm[q])], j) << "row " << q;
        if (q > off[j]) {
          EXPECT_LT(perm[q - 1], perm[q]) << "stable order";
        }
      }
    }
    EXPECT_EQ(off[e], n * k);
    std::vector<double> sorted = perm;
    std::sort(sorted.begin(), sorted.end());
    for (int64_t f = 0; f < n * k; ++f) EXPECT_EQ(sorted[f], f);
    for (int64_t q = 0; q < n * k; ++q)
      for (int64_t c = 0; c < ch; ++c)
        EXPECT_EQ(xp[q * ch + c], xv[static_cast<int64_t>(perm[q]) / k * ch + c]);
  }
}

TEST(MoePermute, PermuteExpertUnpermuteEqualsWeightedSum) {
  std::mt19937_64 rng(42);
  auto& ctx = cpu_ctx();
  const int64_t n = 9, k = 4, e = 6, ch = 7;
  auto ids = testing::random_ints(ctx, {n, k}, rng, 0, static_cast<int>(e) - 1, "topk_idx");
  auto x = testing::random_tensor(ctx, {n, ch}, DType::f64, rng, -1, 1, "x");
  auto w = testing::random_tensor(ctx, {n, k}, DType::f64, rng, 0, 1, "topk_weight");
  Permuted p = run_permute(x, ids, e);
  auto off = testing::to_double(p.offsets);
  // Two expert functions: identity, and "expert e multiplies by e + 1" (checks the segments).
  for (bool scaled : {false, true}) {
    auto y_perm =
        testing::tensor_from(ctx, {n * k, ch}, DType::f64, testing::to_double(p.x_perm), "y_perm");
    if (scaled)
      for (int64_t j = 0; j < e; ++j)
        for (auto q = static_cast<int64_t>(off[j]); q < off[j + 1]; ++q)
          for (int64_t c = 0; c < ch; ++c)
            y_perm.ptr<double>()[q * ch + c] *= static_cast<double>(j + 1);
    auto y = ctx.empty({n, ch}, DType::f64, "y");
    testing::fill_constant(y, NAN);
    moe_unpermute(y, y_perm, p.perm, w, ctx);
    auto yv = testing::to_double(y), xv = testing::to_double(x), wv = testing::to_double(w);
    auto iv = testing::to_double(ids);
    for (int64_t t = 0; t < n; ++t) {
      double sw = 0;
      for (int64_t i = 0; i < k; ++i) sw += wv[t * k + i] * (scaled ? iv[t * k + i] + 1 : 1.0);
      for (int64_t c = 0; c < ch; ++c) EXPECT_NEAR(yv[t * ch + c], sw * xv[t * ch + c], 1e-14) << t;
    }
  }
}

TEST(MoePermute, BackwardsMatchFiniteDifferences) {
  std::mt19937_64 rng(43);
  auto& ctx = cpu_ctx();
  const int64_t n = 5, k = 3, e = 4, ch = 7;
  auto ids = testing::random_ints(ctx, {n, k}, rng, 0, static_cast<int>(e) - 1, "topk_idx");
  auto x = testing::random_tensor(ctx, {n, ch}, DType::f64, rng, -1, 1, "x");
  Permuted p = run_permute(x, ids, e);

  // moe_permute: loss = <x_perm, g>.
  auto gp = testing::random_tensor(ctx, {n * k, ch}, DType::f64, rng, -1, 1, "dx_perm");
  auto loss_permute = [&] {
    moe_permute(p.x_perm, p.perm, p.offsets, x, ids, ctx);
    return testing::dot(p.x_perm, gp);
  };
  auto dx = ctx.empty({n, ch}, DType::f64, "dx");
  testing::fill_constant(dx, NAN);
  moe_permute_backward(dx, gp, p.perm, ctx);
  testing::expect_gradients_match(loss_permute, {{x.view(), dx.view()}});

  // moe_unpermute: loss = <y, g> w.r.t. y_perm and topk_weight.
  auto y_perm = testing::random_tensor(ctx, {n * k, ch}, DType::f64, rng, -1, 1, "y_perm");
  auto w = testing::random_tensor(ctx, {n, k}, DType::f64, rng, 0, 1, "topk_weight");
  auto gy = testing::random_tensor(ctx, {n, ch}, DType::f64, rng, -1, 1, "dy");
  auto y = ctx.empty({n, ch}, DType::f64, "y");
  auto loss_unpermute = [&] {
    moe_unpermute(y, y_perm, p.perm, w, ctx);
    return testing::dot(y, gy);
  };
  auto dy_perm = ctx.empty({n * k, ch}, DType::f64, "dy_perm");
  auto dw = ctx.empty({n, k}, DType::f64, "dtopk_weight");
  testing::fill_constant(dy_perm, NAN);
  testing::fill_constant(dw, NAN);
  moe_unpermute_backward(dy_perm, dw, gy, y_perm, p.perm, w, ctx);
  testing::expect_gradients_match(loss_unpermute,
                                  {{y_perm.view(), dy_perm.view()}, {w.view(), dw.view()}});
}

// The ops chained as a layer uses them: route → permute → expert (×(e+1)) → unpermute; the
// gradient of the output w.r.t. the router logits goes unpermute_backward → route_backward.
TEST(MoePermute, RouteAndUnpermuteChainMatchesFiniteDifferences) {
  std::mt19937_64 rng(44);
  auto& ctx = cpu_ctx();
  MoeRouting cfg = v3_config();
  const int64_t n = 3, e = cfg.n_routed_experts, k = cfg.num_experts_per_tok, ch = 5;
  std::uniform_real_distribution<double> dist(-2.5, 2.5);
  std::vector<double> lv;
  for (int64_t t = 0; t < n; ++t) {
    std::vector<double> r(e);
    do {
      for (auto& v : r) v = dist(rng);
    } while (ref_route(r, {}, cfg).margin < 1e-3);
    lv.insert(lv.end(), r.begin(), r.end());
  }
  auto logits = testing::tensor_from(ctx, {n, e}, DType::f64, lv, "router_logits");
  auto x = testing::random_tensor(ctx, {n, ch}, DType::f64, rng, -1, 1, "x");
  auto gy = testing::random_tensor(ctx, {n, ch}, DType::f64, rng, -1, 1, "dy");
  RouteOut r = run_route(logits, TensorView(), cfg, DType::f64);
  Permuted p = run_permute(x, r.idx, e);
  auto off = testing::to_double(p.offsets);
  auto y_perm = ctx.empty({n * k, ch}, DType::f64, "y_perm");
  auto y = ctx.empty({n, ch}, DType::f64, "y");
  auto loss = [&] {
    moe_route_forward(r.idx, r.weight, r.scores, logits, TensorView(), cfg, ctx);
    moe_permute(p.x_perm, p.perm, p.offsets, x, r.idx, ctx);
    for (int64_t j = 0; j < e; ++j)
      for (auto q = static_cast<int64_t>(off[j]); q < off[j + 1]; ++q)
        for (int64_t c = 0; c < ch; ++c)
          y_perm.ptr<double>()[q * ch + c] =
              static_cast<double>(j + 1) * p.x_perm.ptr<double>()[q * ch + c];
    moe_unpermute(y, y_perm, p.perm, r.weight, ctx);
    return testing::dot(y, gy);
  };
  loss();
  auto dy_perm = ctx.empty({n * k, ch}, DType::f64, "dy_perm");
  auto dw = ctx.empty({n, k}, DType::f64, "dtopk_weight");
  auto dlogits = ctx.empty({n, e}, DType::f64, "dlogits");
  moe_unpermute_backward(dy_perm, dw, gy, y_perm, p.perm, r.weight, ctx);
  moe_route_backward(dlogits, dw, r.idx, r.scores, cfg, ctx);
  testing::expect_gradients_match(loss, {{logits.view(), dlogits.view()}});
}

// ---- Validation ---------------------------------------------------------------------------------

TEST(MoeRoute, ValidationNamesOpAndShapes) {
  auto& ctx = cpu_ctx();
  MoeRouting cfg = v3_config();
  auto idx = ctx.empty({4, 4}, DType::i32, "topk_idx");
  auto w = ctx.empty({4, 4}, DType::f32, "topk_weight");
  auto s = ctx.empty({4, 16}, DType::f32, "scores");
  auto l = ctx.empty({4, 16}, DType::f32, "router_logits");
  auto l15 = ctx.empty({4, 15}, DType::f32, "gate_logits");
  testing::expect_error_contains([&] { moe_route_forward(idx, w, s, l15, TensorView(), cfg, ctx); },
                                 {"[moe_route]", "gate_logits", "(4, 15)", "(4, 16)"});
  auto b15 = ctx.empty({15}, DType::f32, "e_score_correction_bias");
  testing::expect_error_contains([&] { moe_route_forward(idx, w, s, l, b15, cfg, ctx); },
                                 {"[moe_route]", "e_score_correction_bias", "(15)", "(16)"});
  auto l64 = ctx.empty({4, 16}, DType::f64, "l64");
  testing::expect_error_contains([&] { moe_route_forward(idx, w, s, l64, TensorView(), cfg, ctx); },
                                 {"[moe_route]", "f64"});
  auto s16 = ctx.empty({4, 16}, DType::bf16, "scores16");
  testing::expect_error_contains([&] { moe_route_forward(idx, w, s16, l, TensorView(), cfg, ctx); },
                                 {"[moe_route]", "scores16", "f32 or f64"});
  auto idx3 = ctx.empty({4, 3}, DType::i32, "idx3");
  testing::expect_error_contains([&] { moe_route_forward(idx3, w, s, l, TensorView(), cfg, ctx); },
                                 {"[moe_route]", "idx3", "(4, 3)", "(4, 4)"});

  auto bad = [&](MoeRouting c, std::vector<std::string> needles) {
    testing::expect_error_contains([&] { moe_route_forward(idx, w, s, l, TensorView(), c, ctx); },
                                   needles);
  };
  MoeRouting c1 = cfg;
  c1.n_group = 3;
  bad(c1, {"[moe_route]", "n_routed_experts 16", "n_group 3"});
  MoeRouting c2 = cfg;
  c2.topk_group = 5;
  bad(c2, {"[moe_route]", "topk_group 5"});
  MoeRouting c3 = cfg;
  c3.num_experts_per_tok = 17;
  bad(c3, {"[moe_route]", "num_experts_per_tok 17"});
  MoeRouting c4 = cfg;
  c4.n_group = 16;
  c4.topk_group = 4;
  bad(c4, {"[moe_route]", "noaux_tc", "top-2"});
  MoeRouting c5 = cfg;
  c5.topk_group = 1;
  c5.num_experts_per_tok = 5;
  bad(c5, {"[moe_route]", "num_experts_per_tok 5", "4 experts"});
  MoeRouting c6 = cfg;
  c6.routed_scaling_factor = NAN;
  bad(c6, {"[moe_route]", "routed_scaling_factor"});

  // Backward: ids are checked as they are read.
  auto dl = ctx.empty({4, 16}, DType::f32, "dlogits");
  auto dw = ctx.zeros({4, 4}, DType::f32, "dtopk_weight");
  auto s0 = ctx.zeros({4, 16}, DType::f32, "scores");
  auto ids = testing::tensor_from(ctx, {4, 4}, DType::i32,
                                  {0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 16, 3}, "topk_idx");
  testing::expect_error_contains([&] { moe_route_backward(dl, dw, ids, s0, cfg, ctx); },
                                 {"[moe_route_backward]", "[3, 2]", "expert 16", "[0, 16)"});
  auto dl15 = ctx.empty({4, 15}, DType::f32, "dl15");
  testing::expect_error_contains([&] { moe_route_backward(dl15, dw, ids, s0, cfg, ctx); },
                                 {"[moe_route_backward]", "dl15", "(4, 15)", "(4, 16)"});
}

TEST(MoePermute, ValidationNamesOpPositionAndShapes) {
  auto& ctx = cpu_ctx();
  const int64_t n = 3, k = 2, ch = 4, e = 5;
  auto ids = testing::tensor_from(ctx, {n, k}, DType::i32, {0, 4, 1, 2, -1, 3}, "topk_idx");
  auto x = ctx.zeros({n, ch}, DType::f32, "x");
  auto x_perm = ctx.empty({n * k, ch}, DType::f32, "x_perm");
  auto perm = ctx.empty({n * k}, DType::i32, "perm_index");
  auto off = ctx.empty({e + 1}, DType::i32, "expert_offsets");
  testing::expect_error_contains([&] { moe_permute(x_perm, perm, off, x, ids, ctx); },
                                 {"[moe_permute]", "topk_idx", "[2, 0]", "expert -1"});
  auto counts = ctx.empty({e}, DType::i32, "counts");
  testing::expect_error_contains([&] { moe_expert_counts(counts, ids, ctx); },
                                 {"[moe_expert_counts]", "[2, 0]", "expert -1", "[0, 5)"});
  auto counts16 = ctx.empty({e}, DType::f32, "counts16");
  testing::expect_error_contains([&] { moe_expert_counts(counts16, ids, ctx); },
                                 {"[moe_expert_counts]", "counts16", "i32 or i64"});
  auto x_perm5 = ctx.empty({5, ch}, DType::f32, "x_perm5");
  testing::expect_error_contains([&] { moe_permute(x_perm5, perm, off, x, ids, ctx); },
                                 {"[moe_permute]", "x_perm5", "(5, 4)", "(6, 4)"});
  auto x_perm64 = ctx.empty({n * k, ch}, DType::f64, "x_perm64");
  testing::expect_error_contains([&] { moe_permute(x_perm64, perm, off, x, ids, ctx); },
                                 {"[moe_permute]", "x_perm64", "same dtype"});

  // perm_index must be a permutation of [0, N·K).
  auto dup = testing::tensor_from(ctx, {n * k}, DType::i32, {0, 1, 2, 1, 4, 5}, "perm_index");
  auto y = ctx.empty({n, ch}, DType::f32, "y");
  auto w = ctx.zeros({n, k}, DType::f32, "topk_weight");
  auto yp = ctx.zeros({n * k, ch}, DType::f32, "y_perm");
  testing::expect_error_contains([&] { moe_unpermute(y, yp, dup, w, ctx); },
                                 {"[moe_unpermute]", "not a permutation", "entry 3 is 1 again"});
  auto big = testing::tensor_from(ctx, {n * k}, DType::i32, {0, 1, 2, 3, 4, 6}, "perm_index");
  auto dx = ctx.empty({n, ch}, DType::f32, "dx");
  testing::expect_error_contains([&] { moe_permute_backward(dx, yp, big, ctx); },
                                 {"[moe_permute_backward]", "entry 5 is 6"});
  auto perm7 = ctx.zeros({7}, DType::i32, "perm7");
  auto dxp7 = ctx.zeros({7, ch}, DType::f32, "dxp7");
  testing::expect_error_contains([&] { moe_permute_backward(dx, dxp7, perm7, ctx); },
                                 {"[moe_permute_backward]", "perm7", "(7)", "N = 3"});
  auto w3 = ctx.zeros({n, 3}, DType::f32, "w3");
  testing::expect_error_contains([&] { moe_unpermute(y, yp, perm, w3, ctx); },
                                 {"[moe_unpermute]", "perm_index", "(6)", "(9)"});
  auto dyp = ctx.empty({n * k, ch}, DType::f32, "dy_perm");
  auto dw = ctx.empty({n, k}, DType::f32, "dtopk_weight");
  auto dy5 = ctx.zeros({n, 5}, DType::f32, "dy5");
  testing::expect_error_contains([&] { moe_unpermute_backward(dyp, dw, dy5, yp, perm, w, ctx); },
                                 {"[moe_unpermute_backward]", "y_perm", "(6, 4)", "(6, 5)"});
}

}  // namespace
}  // namespace r1kit::kernels
