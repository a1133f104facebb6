// DeepSeekMoE layer (policy/moe_layer.h):
//  - the forward equals a direct per-token computation (router scores, experts, shared experts);
//  - f64 finite differences for the input and every weight: sigmoid + correction bias with
//    n_group > 1 (noaux_tc), softmax greedy and softmax group-limited, shared experts, the
//    sequence-wise balance loss on, and router replay of experts the router would not pick;
//  - golden: transformers' DeepseekV3MoE (tests/golden/make_layer_goldens.py,
//    tests/policy/data/golden_layers/moe_groups) with masked_fill = neg_inf, forward and gradients;
//  - router replay of the recorded choice reproduces the forward and backward bit for bit;
//  - the balance loss against its formula, expert counts, and the auxiliary-loss-free bias update.
#include "policy/moe_layer.h"

#include <cmath>
#include <map>
#include <random>
#include <set>

#include "core/json.h"
#include "core/safetensors.h"
#include "policy/presets.h"
#include "tests/common/test_util.h"

namespace r1kit::policy {
namespace {

using testing::cpu_ctx;
using testing::normalized_error;
using testing::to_double;

std::string layer_golden(const std::string& file) {
  return std::string(R1KIT_SOURCE_DIR) + "/tests/policy/data/golden_layers/" + file;
}

TokenBatch make_batch(const std::vector<int64_t>& lengths, Context& ctx) {
  std::vector<std::vector<int32_t>> seqs;
  for (int64_t n : lengths) seqs.emplace_back(static_cast<size_t>(n), 3);
  return TokenBatch::from_sequences(seqs, ctx);
}

struct Params {
  std::map<std::string, Tensor> t;
  std::function<TensorView(const std::string&)> lookup() const {
    return [this](const std::string& n) {
      auto it = t.find(n);
      R1_CHECK(it != t.end(), "no tensor {}", n);
      return it->second.view();
    };
  }
};

Params random_moe(const ModelConfig& c, DType dtype, std::mt19937_64& rng, Context& ctx) {
  const int64_t C = c.hidden_size, E = c.n_routed_experts, I = c.moe_intermediate_size;
  const int64_t Is = c.n_shared_experts * I;
  Params p;
  auto add = [&](const std::string& n, const Shape& s, double lo, double hi) {
    p.t.emplace(n, testing::random_tensor(ctx, s, dtype, rng, lo, hi, n));
  };
  add("gate.weight", {E, C}, -0.5, 0.5);
  if (c.routing.topk_method == kernels::MoeTopkMethod::noaux_tc)
    add("gate.e_score_correction_bias", {E}, -0.3, 0.3);
  add("experts.gate_up_proj", {E, 2 * I, C}, -0.5, 0.5);
  add("experts.down_proj", {E, C, I}, -0.5, 0.5);
  if (Is > 0) {
    add("shared_experts.gate_proj.weight", {Is, C}, -0.5, 0.5);
    add("shared_experts.up_proj.weight", {Is, C}, -0.5, 0.5);
    add("shared_experts.down_proj.weight", {C, Is}, -0.5, 0.5);
  }
  return p;
}

Params zeros_like(const Params& p, Context& ctx) {
  Params g;
  for (const auto& [name, t] : p.t) g.t.emplace(name, ctx.zeros(t.view().dims(), t.dtype(), name));
  return g;
}

// dsv3 tiny's MoE (C 32, I 16), changed per case.
ModelConfig sigmoid_groups() {  // V3: sigmoid, bias, 4 groups keep 2, top-3, 2 shared experts
  ModelConfig c = preset_config(ModelArch::deepseek_v3, "tiny");
  c.n_shared_experts = 2;
  c.routing.num_experts_per_tok = 3;
  c.routing.n_group = 4;
  c.routing.topk_group = 2;
  return c;
}
ModelConfig softmax_greedy() {  // V2-style: softmax, no bias, no renormalisation, 1 shared
  ModelConfig c = preset_config(ModelArch::deepseek_v3, "tiny");
  c.routing.scoring = kernels::MoeScoring::softmax;
  c.routing.topk_method = kernels::MoeTopkMethod::greedy;
  c.routing.norm_topk_prob = false;
  c.routing.routed_scaling_factor = 1.0;
  return c;
}
ModelConfig softmax_grouped() {  // softmax, group max over 2 groups, renormalised, scaled
  ModelConfig c = softmax_greedy();
  c.routing.topk_method = kernels::MoeTopkMethod::group_limited_greedy;
  c.routing.n_group = 2;
  c.routing.topk_group = 1;
  c.routing.norm_topk_prob = true;
  c.routing.routed_scaling_factor = 1.5;
  c.n_shared_experts = 0;
  return c;
}

ModelConfig sigmoid_top1() {  // K = 1 with norm_topk_prob: DeepSeek keeps the score (no renorm)
  ModelConfig c = sigmoid_groups();
  c.routing.num_experts_per_tok = 1;
  return c;
}

double silu(double g) {
  return g / (1 + std::exp(-g));
}

// y[t] = Σ_k w[t, k] · down_e(silu(gate_e x) · up_e x) + shared(x), every sum in double.
std::vector<double> direct_moe(const std::vector<double>& x, const Params& p, const ModelConfig& c,
                               const std::vector<double>& idx, const std::vector<double>& weight) {
  const int64_t C = c.hidden_size, I = c.moe_intermediate_size, K = c.num_experts_per_tok();
  const int64_t T = static_cast<int64_t>(x.size()) / C;
  const auto gu = to_double(p.t.at("experts.gate_up_proj"));
  const auto dn = to_double(p.t.at("experts.down_proj"));
  std::vector<double> y(x.size(), 0.0);
  // One SwiGLU MLP of width w: gate rows g[r·C ..], up rows u[r·C ..], down (C, w).
  auto mlp = [&](int64_t t, const double* g, const double* u, const double* d, int64_t w,
                 double scale) {
    std::vector<double> a(static_cast<size_t>(w));
    for (int64_t r = 0; r < w; ++r) {
      double gs = 0, us = 0;
      for (int64_t j = 0; j < C; ++j) {
        gs += g[r * C + j] * x[t * C + j];
        us += u[r * C + j] * x[t * C + j];
      }
      a[r] = silu(gs) * us;
    }
    for (int64_t o = 0; o < C; ++o) {
      double s = 0;
      for (int64_t r = 0; r < w; ++r) s += d[o * w + r] * a[r];
      y[t * C + o] += scale * s;
    }
  };
  for (int64_t t = 0; t < T; ++t)
    for (int64_t k = 0; k < K; ++k) {
      const auto e = static_cast<int64_t>(idx[t * K + k]);
      const double* g = gu.data() + e * 2 * I * C;
      mlp(t, g, g + I * C, dn.data() + e * C * I, I, weight[t * K + k]);
    }
  if (c.n_shared_experts > 0) {
    const auto sg = to_double(p.t.at("shared_experts.gate_proj.weight"));
    const auto su = to_double(p.t.at("shared_experts.up_proj.weight"));
    const auto sd = to_double(p.t.at("shared_experts.down_proj.weight"));
    for (int64_t t = 0; t < T; ++t)
      mlp(t, sg.data(), su.data(), sd.data(), c.n_shared_experts * I, 1.0);
  }
  return y;
}

// Router scores s = sigmoid/softmax(x · gateᵀ), per token, in double.
std::vector<double> direct_scores(const std::vector<double>& x, const Params& p,
                                  const ModelConfig& c) {
  const int64_t C = c.hidden_size, E = c.n_routed_experts;
  const int64_t T = static_cast<int64_t>(x.size()) / C;
  const auto gw = to_double(p.t.at("gate.weight"));
  std::vector<double> s(static_cast<size_t>(T * E));
  for (int64_t t = 0; t < T; ++t) {
    double mx = -INFINITY, sum = 0;
    for (int64_t e = 0; e < E; ++e) {
      double l = 0;
      for (int64_t j = 0; j < C; ++j) l += gw[e * C + j] * x[t * C + j];
      s[t * E + e] = l;
      mx = std::max(mx, l);
    }
    for (int64_t e = 0; e < E; ++e) {
      double& v = s[t * E + e];
      if (c.routing.scoring == kernels::MoeScoring::sigmoid) {
        v = 1 / (1 + std::exp(-v));
      } else {
        v = std::exp(v - mx);
        sum += v;
      }
    }
    if (c.routing.scoring == kernels::MoeScoring::softmax)
      for (int64_t e = 0; e < E; ++e) s[t * E + e] /= sum;
  }
  return s;
}

// w = s[idx] (renormalised over the K when norm_topk_prob and K > 1) · routed_scaling_factor.
std::vector<double> direct_weights(const std::vector<double>& s, const std::vector<double>& idx,
                                   const ModelConfig& c) {
  const int64_t E = c.n_routed_experts, K = c.num_experts_per_tok();
  const int64_t T = static_cast<int64_t>(idx.size()) / K;
  std::vector<double> w(idx.size());
  for (int64_t t = 0; t < T; ++t) {
    double sum = 0;
    for (int64_t k = 0; k < K; ++k) sum += s[t * E + static_cast<int64_t>(idx[t * K + k])];
    for (int64_t k = 0; k < K; ++k) {
      double v = s[t * E + static_cast<int64_t>(idx[t * K + k])];
      if (c.routing.norm_topk_prob && K > 1) v /= sum + 1e-20;
      w[t * K + k] = v * c.routing.routed_scaling_factor;
    }
  }
  return w;
}

// α/B Σ_b Σ_i f_b,i P_b,i with f_b,i = E/(K T_b) count_b,i, P_b,i = mean_t s_t,i / Σ_e s_t,e.
double direct_balance_loss(const std::vector<double>& s, const std::vector<double>& idx,
                           const std::vector<int64_t>& lengths, const ModelConfig& c,
                           double alpha) {
  const int64_t E = c.n_routed_experts, K = c.num_experts_per_tok();
  int64_t start = 0, sequences = 0;
  for (int64_t n : lengths) sequences += n > 0;
  double loss = 0;
  for (int64_t n : lengths) {
    std::vector<double> f(static_cast<size_t>(E), 0.0), P(static_cast<size_t>(E), 0.0);
    for (int64_t t = start; t < start + n; ++t) {
      for (int64_t k = 0; k < K; ++k) f[static_cast<size_t>(idx[t * K + k])] += 1.0 * E / (K * n);
      double sum = 0;
      for (int64_t e = 0; e < E; ++e) sum += s[t * E + e];
      for (int64_t e = 0; e < E; ++e) P[e] += s[t * E + e] / sum / n;
    }
    for (int64_t e = 0; e < E; ++e) loss += alpha / sequences * f[e] * P[e];
    start += n;
  }
  return loss;
}

struct MoeRun {
  Tensor y, dx;
  MoeSaved saved;
};

MoeRun run_moe(const TensorView& x, const Params& w, const Params& dw, const ModelConfig& cfg,
               const MoeOptions& opt, const TokenBatch& batch, const TensorView& dy, Context& ctx) {
  MoeRun r;
  r.y = ctx.empty(x.dims(), x.dtype, "y");
  r.dx = ctx.empty(x.dims(), x.dtype, "dx");
  const MoeWeights mw = moe_weights(w.lookup(), "", cfg), mdw = moe_weights(dw.lookup(), "", cfg);
  moe_forward(r.y, &r.saved, x, mw, cfg, opt, batch, ctx);
  if (dy.defined()) moe_backward(r.dx, mdw, dy, r.saved, mw, cfg, opt, batch, ctx);
  return r;
}

TEST(MoeLayer, ForwardMatchesDirectComputation) {
  Context& ctx = cpu_ctx();
  for (const ModelConfig& cfg :
       {sigmoid_groups(), softmax_greedy(), softmax_grouped(), sigmoid_top1()}) {
    std::mt19937_64 rng(21);
    const Params w = random_moe(cfg, DType::f64, rng, ctx);
    const TokenBatch batch = make_batch({4, 6}, ctx);
    Tensor x = testing::random_tensor(ctx, {10, cfg.hidden_size}, DType::f64, rng, -1, 1, "x");
    MoeRun r = run_moe(x, w, w, cfg, {}, batch, {}, ctx);
    const auto s = direct_scores(to_double(x), w, cfg);
    EXPECT_LT(normalized_error(to_double(r.saved.scores), s), 1e-14);
    const auto idx = to_double(r.saved.topk_idx);
    const auto wt = direct_weights(s, idx, cfg);
    EXPECT_LT(normalized_error(to_double(r.saved.topk_weight), wt), 1e-14);
    EXPECT_LT(normalized_error(to_double(r.y), direct_moe(to_double(x), w, cfg, idx, wt)), 1e-13);
    // Loads: a histogram of topk_idx; every token gets K distinct experts.
    std::vector<double> hist(static_cast<size_t>(cfg.n_routed_experts), 0.0);
    for (double e : idx) hist[static_cast<size_t>(e)] += 1;
    EXPECT_EQ(to_double(r.saved.expert_counts), hist);
    const int64_t K = cfg.num_experts_per_tok();
    for (int64_t t = 0; t < 10; ++t)
      EXPECT_EQ(std::set<double>(idx.begin() + t * K, idx.begin() + (t + 1) * K).size(),
                static_cast<size_t>(K));
    // saved == nullptr computes the same output.
    Tensor y2 = ctx.empty({10, cfg.hidden_size}, DType::f64, "y2");
    moe_forward(y2, nullptr, x, moe_weights(w.lookup(), "", cfg), cfg, {}, batch, ctx);
    EXPECT_EQ(to_double(y2), to_double(r.y));
  }
}

// Finite differences of Σ y·g + L_bal for the input and every weight. The selection is piecewise
// constant: every loss evaluation checks that no top-k decision moved.
void check_moe_gradients(const ModelConfig& cfg, double alpha, bool replay, uint64_t seed) {
  Context& ctx = cpu_ctx();
  std::mt19937_64 rng(seed);
  Params w = random_moe(cfg, DType::f64, rng, ctx);
  Params dw = zeros_like(w, ctx);
  const std::vector<int64_t> lengths = {5, 2, 4};
  const TokenBatch batch = make_batch(lengths, ctx);
  const int64_t T = batch.num_tokens(), K = cfg.num_experts_per_tok();
  Tensor x = testing::random_tensor(ctx, {T, cfg.hidden_size}, DType::f64, rng, -1, 1, "x");
  Tensor g = testing::random_tensor(ctx, {T, cfg.hidden_size}, DType::f64, rng, -1, 1, "g");
  // Replay: experts (t, t+1, ...) mod E, which the router would mostly not choose.
  std::vector<double> forced;
  for (int64_t t = 0; t < T; ++t)
    for (int64_t k = 0; k < K; ++k)
      forced.push_back(static_cast<double>((t + k) % cfg.n_routed_experts));
  Tensor replay_idx = testing::tensor_from(ctx, {T, K}, DType::i32, forced, "replay");
  MoeOptions opt;
  opt.balance_loss_alpha = alpha;
  if (replay) opt.replay_topk_idx = &replay_idx.view();
  MoeRun r = run_moe(x, w, dw, cfg, opt, batch, g, ctx);
  const auto chosen = to_double(r.saved.topk_idx);
  if (replay) {
    EXPECT_EQ(chosen, forced);
  }
  if (alpha > 0) {
    EXPECT_GT(moe_balance_loss(r.saved, ctx), 0.0);
  }
  const MoeWeights mw = moe_weights(w.lookup(), "", cfg);
  Tensor y = ctx.empty({T, cfg.hidden_size}, DType::f64, "y");
  int moved = 0;
  auto loss = [&] {
    MoeSaved s;
    moe_forward(y, &s, x, mw, cfg, opt, batch, ctx);
    if (to_double(s.topk_idx) != chosen) ++moved;
    return testing::dot(y, g) + moe_balance_loss(s, ctx);
  };
  std::vector<std::pair<TensorView, TensorView>> checks = {{x, r.dx}};
  for (auto& [name, tensor] : w.t)
    if (name != "gate.e_score_correction_bias")
      checks.emplace_back(tensor.view(), dw.t.at(name).view());
  EXPECT_EQ(checks.size(), cfg.n_shared_experts > 0 ? 7u : 4u);
  testing::GradCheckOptions o;
  o.max_elements = 80;
  testing::expect_gradients_match(loss, checks, o);
  EXPECT_EQ(moved, 0) << "a top-k decision moved within the finite-difference step";
  // The bias has no gradient.
  if (dw.t.count("gate.e_score_correction_bias")) {
    for (double v : to_double(dw.t.at("gate.e_score_correction_bias"))) EXPECT_EQ(v, 0.0);
  }
}

TEST(MoeLayer, FiniteDifferencesSigmoidBiasGroups) {
  check_moe_gradients(sigmoid_groups(), 0, false, 1);
}
TEST(MoeLayer, FiniteDifferencesSigmoidBiasGroupsBalanceLoss) {
  check_moe_gradients(sigmoid_groups(), 0.3, false, 2);
}
TEST(MoeLayer, FiniteDifferencesSoftmaxGreedyBalanceLoss) {
  check_moe_gradients(softmax_greedy(), 0.3, false, 3);
}
TEST(MoeLayer, FiniteDifferencesSoftmaxGroupedBalanceLoss) {
  check_moe_gradients(softmax_grouped(), 0.3, false, 4);
}
TEST(MoeLayer, FiniteDifferencesReplayedExperts) {
  check_moe_gradients(sigmoid_groups(), 0.3, true, 5);
  check_moe_gradients(softmax_greedy(), 0, true, 6);
}

TEST(MoeLayer, BalanceLossMatchesFormula) {
  Context& ctx = cpu_ctx();
  for (const ModelConfig& cfg : {sigmoid_groups(), softmax_greedy()}) {
    std::mt19937_64 rng(8);
    const Params w = random_moe(cfg, DType::f64, rng, ctx);
    const std::vector<int64_t> lengths = {3, 0, 7, 1};  // an empty sequence does not count
    const TokenBatch batch = make_batch(lengths, ctx);
    Tensor x = testing::random_tensor(ctx, {11, cfg.hidden_size}, DType::f64, rng, -1, 1, "x");
    MoeOptions opt;
    opt.balance_loss_alpha = 0.25;
    MoeRun r = run_moe(x, w, w, cfg, opt, batch, {}, ctx);
    const double expect = direct_balance_loss(to_double(r.saved.scores),
                                              to_double(r.saved.topk_idx), lengths, cfg, 0.25);
    EXPECT_NEAR(moe_balance_loss(r.saved, ctx), expect, 1e-14 * expect);
    // The output does not depend on the balance loss; without it the value is 0.
    MoeRun r0 = run_moe(x, w, w, cfg, {}, batch, {}, ctx);
    EXPECT_EQ(to_double(r0.y), to_double(r.y));
    EXPECT_EQ(moe_balance_loss(r0.saved, ctx), 0.0);
  }
}

// ---- Router replay
// ------------------------------------------------------------------------------

TEST(MoeLayer, ReplayOfRecordedChoiceIsExact) {
  Context& ctx = cpu_ctx();
  for (const ModelConfig& cfg : {sigmoid_groups(), softmax_grouped()}) {
    std::mt19937_64 rng(9);
    const Params w = random_moe(cfg, DType::f32, rng, ctx);
    const Params dw1 = zeros_like(w, ctx), dw2 = zeros_like(w, ctx);
    const TokenBatch batch = make_batch({7, 5}, ctx);
    Tensor x = testing::random_tensor(ctx, {12, cfg.hidden_size}, DType::f32, rng, -1, 1, "x");
    Tensor dy = testing::random_tensor(ctx, {12, cfg.hidden_size}, DType::f32, rng, -1, 1, "dy");
    MoeOptions opt;
    opt.balance_loss_alpha = 0.1;
    MoeRun a = run_moe(x, w, dw1, cfg, opt, batch, dy, ctx);
    Tensor recorded = ctx.empty({12, cfg.num_experts_per_tok()}, DType::i32, "recorded");
    ctx.copy(recorded, a.saved.topk_idx);
    opt.replay_topk_idx = &recorded.view();
    MoeRun b = run_moe(x, w, dw2, cfg, opt, batch, dy, ctx);
    EXPECT_EQ(to_double(b.saved.topk_idx), to_double(a.saved.topk_idx));
    EXPECT_EQ(to_double(b.saved.topk_weight), to_double(a.saved.topk_weight));
    EXPECT_EQ(to_double(b.y), to_double(a.y));
    EXPECT_EQ(to_double(b.dx), to_double(a.dx));
    EXPECT_EQ(moe_balance_loss(b.saved, ctx), moe_balance_loss(a.saved, ctx));
    for (const auto& [name, t] : dw1.t) EXPECT_EQ(to_double(dw2.t.at(name)), to_double(t)) << name;
  }
}

TEST(MoeLayer, ReplayOfOtherExpertsRecomputesWeights) {
  Context& ctx = cpu_ctx();
  const ModelConfig cfg = sigmoid_groups();
  std::mt19937_64 rng(10);
  const Params w = random_moe(cfg, DType::f64, rng, ctx);
  const TokenBatch batch = make_batch({6}, ctx);
  Tensor x = testing::random_tensor(ctx, {6, cfg.hidden_size}, DType::f64, rng, -1, 1, "x");
  const std::vector<double> forced = {7, 0, 1, 6, 5, 4, 3, 2, 1, 0, 2, 4, 6, 1, 3, 5, 7, 0};
  Tensor replay = testing::tensor_from(ctx, {6, 3}, DType::i32, forced, "replay");
  MoeOptions opt;
  opt.replay_topk_idx = &replay.view();
  MoeRun r = run_moe(x, w, w, cfg, opt, batch, {}, ctx);
  EXPECT_EQ(to_double(r.saved.topk_idx), forced);
  const auto s = direct_scores(to_double(x), w, cfg);
  const auto wt = direct_weights(s, forced, cfg);
  EXPECT_LT(normalized_error(to_double(r.saved.topk_weight), wt), 1e-14);
  EXPECT_LT(normalized_error(to_double(r.y), direct_moe(to_double(x), w, cfg, forced, wt)), 1e-13);
  // Bad replays.
  Tensor bad = testing::tensor_from(ctx, {6, 3}, DType::i32, std::vector<double>(18, 1.0), "bad");
  opt.replay_topk_idx = &bad.view();
  testing::expect_error_contains([&] { run_moe(x, w, w, cfg, opt, batch, {}, ctx); },
                                 {"[moe]", "token 0 replays expert 1 twice"});
  std::vector<double> out_of_range = forced;
  out_of_range[4] = 8;
  Tensor far = testing::tensor_from(ctx, {6, 3}, DType::i32, out_of_range, "far");
  opt.replay_topk_idx = &far.view();
  testing::expect_error_contains([&] { run_moe(x, w, w, cfg, opt, batch, {}, ctx); },
                                 {"[moe]", "expert 8 of token 1", "outside [0, 8)"});
  Tensor wrong = ctx.zeros({6, 2}, DType::i32, "wrong");
  opt.replay_topk_idx = &wrong.view();
  testing::expect_error_contains([&] { run_moe(x, w, w, cfg, opt, batch, {}, ctx); },
                                 {"replay_topk_idx", "(T, K) = (6, 3)"});
}

// ---- Golden vs transformers' DeepseekV3MoE
// ------------------------------------------------------------------------------

void check_moe_golden(DType dtype) {
  SCOPED_TRACE(dtype_name(dtype));
  Context& ctx = cpu_ctx();
  const Json j = read_json_file(layer_golden("moe_groups.json"));
  ModelConfig cfg = ModelConfig::from_json(j.at("config"), "moe_groups.json");
  ASSERT_EQ(cfg.routing.scoring, kernels::MoeScoring::sigmoid);
  ASSERT_EQ(cfg.routing.topk_method, kernels::MoeTopkMethod::noaux_tc);
  ASSERT_GT(cfg.routing.n_group, 1);
  cfg.routing.masked_fill = kernels::MoeGroupMaskFill::neg_inf;  // transformers 5.24
  const SafetensorsFile ref = SafetensorsFile::open(layer_golden("moe_groups.safetensors"));
  const TokenBatch batch = make_batch(j.at("seqlens").get<std::vector<int64_t>>(), ctx);
  auto copy_as = [&](const std::string& n) {
    return testing::tensor_from(ctx, ref.view(n).dims(), dtype, to_double(ref.view(n)), n);
  };
  Params w;
  for (const char* n : {"gate.weight", "gate.e_score_correction_bias", "experts.gate_up_proj",
                        "experts.down_proj", "shared_experts.gate_proj.weight",
                        "shared_experts.up_proj.weight", "shared_experts.down_proj.weight"})
    w.t.emplace(n, copy_as(n));
  Params dw = zeros_like(w, ctx);
  Tensor x = copy_as("input.x"), dy = copy_as("cotangent.dy");
  MoeRun r = run_moe(x, w, dw, cfg, {}, batch, dy, ctx);
  // Same experts (transformers' topk(sorted=False) order is unspecified: compare sets).
  const auto idx = to_double(r.saved.topk_idx);
  const auto expect_sets = j.at("topk_idx_sorted").get<std::vector<std::vector<int>>>();
  const int64_t K = cfg.num_experts_per_tok();
  for (size_t t = 0; t < expect_sets.size(); ++t) {
    std::vector<int> got(idx.begin() + t * K, idx.begin() + (t + 1) * K);
    std::sort(got.begin(), got.end());
    EXPECT_EQ(got, expect_sets[t]) << "token " << t;
  }
  // transformers' router runs in f32 even in its f64 module: f64 agrees to ~1e-7.
  const double fwd_tol = dtype == DType::f64 ? 1e-6 : 1e-4;
  const double grad_tol = dtype == DType::f64 ? 1e-6 : 1e-3;
  EXPECT_LT(normalized_error(to_double(r.y), to_double(ref.view("output.y"))), fwd_tol);
  EXPECT_LT(normalized_error(to_double(r.dx), to_double(ref.view("grad.x"))), grad_tol);
  for (const auto& [n, t] : dw.t) {
    if (n == "gate.e_score_correction_bias") continue;  // a buffer in transformers, no gradient
    EXPECT_LT(normalized_error(to_double(t), to_double(ref.view("grad." + n))), grad_tol) << n;
  }
  // The fixture is sensitive to the fill: with transformers' older 0 fill (r1kit's default) some
  // token takes an expert of a dropped group.
  cfg.routing.masked_fill = kernels::MoeGroupMaskFill::zero;
  MoeRun z = run_moe(x, w, w, cfg, {}, batch, {}, ctx);
  EXPECT_NE(to_double(z.saved.topk_idx), idx);
}

TEST(MoeLayer, GoldenTransformersF64) {
  check_moe_golden(DType::f64);
}
TEST(MoeLayer, GoldenTransformersF32) {
  check_moe_golden(DType::f32);
}

// ---- Aux-loss-free bias update
// ------------------------------------------------------------------------------

TEST(MoeLayer, BiasUpdate) {
  Context& ctx = cpu_ctx();
  const std::vector<double> b0 = {0.1, -0.2, 0.0, 0.3, 0.05, -0.1, 0.2, 0.0};
  const std::vector<double> loads = {5, 1, 3, 3, 0, 8, 3, 1};  // mean 3
  const std::vector<double> expect = {0.1 - 0.01,  -0.2 + 0.01, 0.0, 0.3,
                                      0.05 + 0.01, -0.1 - 0.01, 0.2, 0.0 + 0.01};
  for (DType cd : {DType::i32, DType::i64}) {
    for (DType bd : {DType::f32, DType::f64}) {
      Tensor bias = testing::tensor_from(ctx, {8}, bd, b0, "bias");
      Tensor counts = testing::tensor_from(ctx, {8}, cd, loads, "counts");
      moe_update_bias(bias, counts, 0.01, ctx);
      const auto got = to_double(bias);
      for (size_t i = 0; i < 8; ++i) EXPECT_NEAR(got[i], expect[i], 1e-7) << i;
      moe_update_bias(bias, counts, 0.0, ctx);  // γ = 0: the default for post-training
      EXPECT_EQ(to_double(bias), got);
    }
  }
  // With a layer's counts: an over-loaded expert's bias goes down.
  const ModelConfig cfg = sigmoid_groups();
  std::mt19937_64 rng(12);
  const Params w = random_moe(cfg, DType::f32, rng, ctx);
  const TokenBatch batch = make_batch({16}, ctx);
  Tensor x = testing::random_tensor(ctx, {16, cfg.hidden_size}, DType::f32, rng, -1, 1, "x");
  MoeRun r = run_moe(x, w, w, cfg, {}, batch, {}, ctx);
  const auto counts = to_double(r.saved.expert_counts);
  const auto before = to_double(w.t.at("gate.e_score_correction_bias"));
  moe_update_bias(w.t.at("gate.e_score_correction_bias"), r.saved.expert_counts, 0.001, ctx);
  const auto after = to_double(w.t.at("gate.e_score_correction_bias"));
  const double mean = 16.0 * 3 / 8;
  for (size_t i = 0; i < 8; ++i)
    EXPECT_NEAR(after[i] - before[i], 0.001 * ((mean > counts[i]) - (mean < counts[i])), 1e-7);
  testing::expect_error_contains(
      [&] { moe_update_bias(w.t.at("gate.weight"), r.saved.expert_counts, 0.1, ctx); },
      {"[moe_update_bias]", "correction_bias"});
}

TEST(MoeLayer, WeightNamesAndShapes) {
  Context& ctx = cpu_ctx();
  const ModelConfig cfg = sigmoid_groups();
  std::mt19937_64 rng(13);
  Params w = random_moe(cfg, DType::f32, rng, ctx);
  const MoeWeights mw = moe_weights(w.lookup(), "", cfg);
  EXPECT_TRUE(mw.correction_bias.defined());
  EXPECT_EQ(mw.shared_down.dims(), Shape({32, 32}));
  EXPECT_FALSE(moe_weights(random_moe(softmax_grouped(), DType::f32, rng, ctx).lookup(), "",
                           softmax_grouped())
                   .shared_gate.defined());
  w.t.erase("experts.down_proj");
  w.t.emplace("experts.down_proj", ctx.zeros({8, 16, 32}, DType::f32, "experts.down_proj"));
  testing::expect_error_contains([&] { moe_weights(w.lookup(), "", cfg); },
                                 {"[moe]", "experts.down_proj", "expected (8, 32, 16)"});
}

}  // namespace
}  // namespace r1kit::policy
