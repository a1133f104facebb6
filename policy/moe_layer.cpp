// DeepSeekMoE forward/backward as lists of kernels/ calls (backward: the forward list reversed),
// router replay, the sequence-wise balance loss and the auxiliary-loss-free bias update.
#include "policy/moe_layer.h"

#include <cmath>
#include <vector>

#include "kernels/elementwise.h"
#include "kernels/embedding.h"
#include "kernels/matmul.h"
#include "kernels/moe.h"
#include "kernels/swiglu.h"

namespace r1kit::policy {
namespace {

namespace k = kernels;
using kernels::GradWrite;

// Router logits, scores and weights: f64 for f64 activations, else f32 (the routers of
// transformers and DeepSeek run in f32 whatever the model dtype).
DType route_dtype(const TensorView& x) {
  return x.dtype == DType::f64 ? DType::f64 : DType::f32;
}

// Routing over all E experts with the weights renormalised: all_weight[t, k] = s[t, j] /
// (Σ_e s[t, e] + 1e-20) for j = all_idx[t, k], the normalised scores s' of the balance loss (for
// softmax scoring Σ_e s = 1 and s' = s). moe_route_backward of this routing is the gradient of
// Σ g·s' with respect to the logits.
k::MoeRouting all_experts(const k::MoeRouting& r) {
  k::MoeRouting a;
  a.n_routed_experts = r.n_routed_experts;
  a.num_experts_per_tok = r.n_routed_experts;
  a.scoring = r.scoring;
  a.topk_method = k::MoeTopkMethod::greedy;
  a.norm_topk_prob = true;
  a.routed_scaling_factor = 1.0;
  return a;
}

// Router replay. kernels::moe_route_forward takes no given experts, so the recorded ids are
// copied in and their weights recomputed here with the kernel's formula (w = s[idx], divided by
// Σ_k w + 1e-20 summed in double in k order when norm_topk_prob and K > 1, times
// routed_scaling_factor), which makes a replay of the layer's own choice bit-identical on the CPU.
// This host step reads the (T, E) scores back, a stream sync on a GPU context; a replay input to
// moe_route_forward would remove it.
template <class T>
void replay_weights_host(T* weight, const int32_t* idx, const T* scores, int64_t tokens,
                         const k::MoeRouting& r) {
  const int64_t e = r.n_routed_experts, kk = r.num_experts_per_tok;
  for (int64_t t = 0; t < tokens; ++t) {
    const int32_t* it = idx + t * kk;
    const T* st = scores + t * e;
    for (int64_t i = 0; i < kk; ++i) {
      R1_CHECK(it[i] >= 0 && it[i] < e,
               "[moe] replayed expert {} of token {} (slot {}) is outside [0, {})", it[i], t, i, e);
      for (int64_t j = 0; j < i; ++j)
        R1_CHECK(it[j] != it[i], "[moe] token {} replays expert {} twice (slots {} and {})", t,
                 it[i], j, i);
    }
    double denom = 1.0;
    if (r.norm_topk_prob && kk > 1) {
      double sum = 0;
      for (int64_t i = 0; i < kk; ++i) sum += st[it[i]];
      denom = sum + 1e-20;
    }
    for (int64_t i = 0; i < kk; ++i)
      weight[t * kk + i] =
          static_cast<T>(static_cast<double>(st[it[i]]) / denom * r.routed_scaling_factor);
  }
}

void replay_routing(MoeSaved& s, const TensorView& replay, const k::MoeRouting& r, Context& ctx) {
  const int64_t t = s.topk_idx.size(0), kk = r.num_experts_per_tok;
  R1_CHECK(replay.dtype == DType::i32 && replay.dims() == Shape({t, kk}) && replay.is_contiguous(),
           "[moe] replay_topk_idx {} must be a contiguous (T, K) = ({}, {}) i32 tensor",
           replay.describe(), t, kk);
  Allocator& host = ctx.host_allocator();
  Tensor idx({t, kk}, DType::i32, host, "replay_topk_idx");
  Tensor scores(s.scores.view().dims(), s.scores.dtype(), host, "scores");
  Tensor weight(s.topk_weight.view().dims(), s.topk_weight.dtype(), host, "topk_weight");
  ctx.copy(idx, replay);
  ctx.copy(scores, s.scores);
  if (scores.dtype() == DType::f64)
    replay_weights_host(weight.ptr<double>(), idx.ptr<int32_t>(), scores.ptr<double>(), t, r);
  else
    replay_weights_host(weight.ptr<float>(), idx.ptr<int32_t>(), scores.ptr<float>(), t, r);
  ctx.copy(s.topk_idx, idx);
  ctx.copy(s.topk_weight, weight);
}

// The sequence-wise balance loss (MoeOptions::balance_loss_alpha): s.all_idx, s.all_weight (the
// normalised scores, sorted), s.balance_coef (its gradient) and s.balance_loss = Σ coef · weight.
// Per-sequence expert counts are a scatter-add of ones (embedding_backward), the coefficients a
// gather of the scaled counts at all_idx (embedding_forward), so everything stays on the device.
void balance_loss_forward(MoeSaved& s, const TensorView& logits, const ModelConfig& cfg,
                          double alpha, const TokenBatch& batch, Context& ctx) {
  const int64_t t = logits.shape[0], e = cfg.n_routed_experts, kk = cfg.num_experts_per_tok();
  const DType rd = logits.dtype;
  const k::MoeRouting all = all_experts(cfg.routing);
  s.all_idx = ctx.empty({t, e}, DType::i32, "moe.all_idx");
  s.all_weight = ctx.empty({t, e}, rd, "moe.all_weight");
  s.balance_coef = ctx.empty({t, e}, rd, "moe.balance_coef");
  s.balance_loss = ctx.empty({1, 1}, rd, "moe.balance_loss");
  Tensor all_scores = ctx.empty({t, e}, rd, "moe.all_scores");
  Tensor ones = ctx.empty({t * kk, 1}, rd, "ones");
  Tensor count = ctx.empty({e, 1}, rd, "moe.count"), coef = ctx.empty({e, 1}, rd, "moe.coef");
  const int32_t* cu = batch.cu_seqlens_host.ptr<int32_t>();
  int64_t sequences = 0;
  for (int64_t b = 0; b < batch.num_sequences(); ++b) sequences += cu[b + 1] > cu[b];

  k::moe_route_forward(s.all_idx, s.all_weight, all_scores, logits, {}, all, ctx);
  k::fill(ones, 1.0, ctx);
  for (int64_t b = 0; b < batch.num_sequences(); ++b) {
    const int64_t n = cu[b + 1] - cu[b];
    if (n == 0) continue;
    // coef_b,i = α E count_b,i / (B K T_b²) = α/B · f_b,i / T_b: the weight of each s'_t,i.
    k::fill(count, 0.0, ctx);
    k::embedding_backward(count, ones.view().slice(0, n * kk),
                          s.topk_idx.view().slice(cu[b], cu[b + 1]).reshape({n * kk}), ctx);
    k::scale(coef, alpha * e / (sequences * kk * static_cast<double>(n) * n), count, ctx);
    k::embedding_forward(s.balance_coef.view().slice(cu[b], cu[b + 1]).reshape({n * e, 1}),
                         s.all_idx.view().slice(cu[b], cu[b + 1]).reshape({n * e}), coef, ctx);
  }
  // L_bal = Σ_b Σ_{t in b} Σ_i coef_b,i · s'_t,i
  k::matmul_forward(s.balance_loss, s.balance_coef.view().reshape({1, t * e}),
                    s.all_weight.view().reshape({t * e, 1}), {}, ctx);
}

}  // namespace

MoeWeights moe_weights(const std::function<TensorView(const std::string&)>& lookup,
                       const std::string& prefix, const ModelConfig& cfg) {
  R1_CHECK(cfg.is_moe(), "[moe] the config has no routed experts");
  const int64_t c = cfg.hidden_size, e = cfg.n_routed_experts, i = cfg.moe_intermediate_size;
  const int64_t is = cfg.n_shared_experts * i;
  auto get = [&](const std::string& name, const Shape& shape) {
    TensorView v = lookup(prefix + name);
    R1_CHECK(v.dims() == shape, "[moe] {} is {}, expected {}", prefix + name, v.describe(),
             shape_str(shape));
    return v;
  };
  MoeWeights w;
  w.gate = get("gate.weight", {e, c});
  if (cfg.routing.topk_method == k::MoeTopkMethod::noaux_tc)
    w.correction_bias = get("gate.e_score_correction_bias", {e});
  w.experts_gate_up = get("experts.gate_up_proj", {e, 2 * i, c});
  w.experts_down = get("experts.down_proj", {e, c, i});
  if (is > 0) {
    w.shared_gate = get("shared_experts.gate_proj.weight", {is, c});
    w.shared_up = get("shared_experts.up_proj.weight", {is, c});
    w.shared_down = get("shared_experts.down_proj.weight", {c, is});
  }
  return w;
}

double moe_balance_loss(const MoeSaved& saved, Context& ctx) {
  if (!saved.balance_loss.defined()) return 0.0;
  Tensor h({1, 1}, saved.balance_loss.dtype(), ctx.host_allocator(), "balance_loss");
  ctx.copy(h, saved.balance_loss);
  return h.dtype() == DType::f64 ? h.ptr<double>()[0] : h.ptr<float>()[0];
}

void moe_forward(const TensorView& y, MoeSaved* saved, const TensorView& x, const MoeWeights& w,
                 const ModelConfig& cfg, const MoeOptions& opt, const TokenBatch& batch,
                 Context& ctx) {
  R1_CHECK(x.ndim == 2 && x.shape[0] == batch.num_tokens() && x.shape[1] == cfg.hidden_size,
           "[moe_forward] x {} must be (T, C) = ({}, {})", x.describe(), batch.num_tokens(),
           cfg.hidden_size);
  MoeSaved local;
  MoeSaved& s = saved ? *saved : local;
  const int64_t t = x.shape[0], c = x.shape[1], e = cfg.n_routed_experts;
  const int64_t kk = cfg.num_experts_per_tok(), i = cfg.moe_intermediate_size, m = t * kk;
  const DType rd = route_dtype(x);
  s = MoeSaved{};
  s.x = x;
  Tensor logits = ctx.empty({t, e}, rd, "moe.router_logits");
  s.scores = ctx.empty({t, e}, rd, "moe.scores");
  s.topk_idx = ctx.empty({t, kk}, DType::i32, "moe.topk_idx");
  s.topk_weight = ctx.empty({t, kk}, rd, "moe.topk_weight");
  s.expert_counts = ctx.empty({e}, DType::i32, "moe.expert_counts");
  s.perm_index = ctx.empty({m}, DType::i32, "moe.perm_index");
  s.expert_offsets = ctx.empty({e + 1}, DType::i32, "moe.expert_offsets");
  s.expert_offsets_host = Tensor({e + 1}, DType::i32, ctx.host_allocator(), "moe.expert_offsets");
  s.x_perm = ctx.empty({m, c}, x.dtype, "moe.x_perm");
  s.h = ctx.empty({m, 2 * i}, x.dtype, "moe.h");
  s.a = ctx.empty({m, i}, x.dtype, "moe.a");
  s.y_perm = ctx.empty({m, c}, x.dtype, "moe.y_perm");

  k::linear_forward(logits, x, w.gate, {}, ctx);
  k::moe_route_forward(s.topk_idx, s.topk_weight, s.scores, logits, w.correction_bias, cfg.routing,
                       ctx);
  if (opt.replay_topk_idx) replay_routing(s, *opt.replay_topk_idx, cfg.routing, ctx);
  k::moe_expert_counts(s.expert_counts, s.topk_idx, ctx);
  k::moe_permute(s.x_perm, s.perm_index, s.expert_offsets, x, s.topk_idx, ctx);
  ctx.copy(s.expert_offsets_host, s.expert_offsets);  // once per layer: the GEMMs' group sizes
  k::grouped_linear_forward(s.h, s.x_perm, w.experts_gate_up, s.expert_offsets_host, ctx);
  k::swiglu_forward(s.a, k::column_slice(s.h, 0, i), k::column_slice(s.h, i, 2 * i), ctx);
  k::grouped_linear_forward(s.y_perm, s.a, w.experts_down, s.expert_offsets_host, ctx);
  k::moe_unpermute(y, s.y_perm, s.perm_index, s.topk_weight, ctx);
  if (w.shared_gate.defined()) {
    const int64_t is = w.shared_gate.shape[0];
    s.shared_g = ctx.empty({t, is}, x.dtype, "moe.shared_g");
    s.shared_u = ctx.empty({t, is}, x.dtype, "moe.shared_u");
    s.shared_a = ctx.empty({t, is}, x.dtype, "moe.shared_a");
    k::MatmulOptions add_nt;  // y += shared_a · shared_downᵀ
    add_nt.trans_b = true;
    add_nt.beta = 1.0;
    k::linear_forward(s.shared_g, x, w.shared_gate, {}, ctx);
    k::linear_forward(s.shared_u, x, w.shared_up, {}, ctx);
    k::swiglu_forward(s.shared_a, s.shared_g, s.shared_u, ctx);
    k::matmul_forward(y, s.shared_a, w.shared_down, add_nt, ctx);
  }
  if (opt.balance_loss_alpha > 0)
    balance_loss_forward(s, logits, cfg, opt.balance_loss_alpha, batch, ctx);
}

void moe_backward(const TensorView& dx, const MoeWeights& dw, const TensorView& dy, MoeSaved& s,
                  const MoeWeights& w, const ModelConfig& cfg, const MoeOptions& opt,
                  const TokenBatch& batch, Context& ctx) {
  (void)batch;  // the balance loss's per-sequence coefficients were made by the forward
  const TensorView& x = s.x;
  const int64_t t = x.shape[0], c = x.shape[1], e = cfg.n_routed_experts;
  const int64_t kk = cfg.num_experts_per_tok(), i = cfg.moe_intermediate_size, m = t * kk;
  const DType rd = route_dtype(x);
  R1_CHECK(dy.ndim == 2 && dy.shape[0] == t && dy.shape[1] == c,
           "[moe_backward] dy {} must be (T, C) = ({}, {})", dy.describe(), t, c);
  Tensor dy_perm = ctx.empty({m, c}, x.dtype, "moe.dy_perm");
  Tensor dtopk_weight = ctx.empty({t, kk}, rd, "moe.dtopk_weight");
  Tensor da = ctx.empty({m, i}, x.dtype, "moe.da");
  Tensor dh = ctx.empty({m, 2 * i}, x.dtype, "moe.dh");
  Tensor dx_perm = ctx.empty({m, c}, x.dtype, "moe.dx_perm");
  Tensor dlogits = ctx.empty({t, e}, rd, "moe.dlogits");

  k::moe_unpermute_backward(dy_perm, dtopk_weight, dy, s.y_perm, s.perm_index, s.topk_weight, ctx);
  k::grouped_linear_backward(da, dw.experts_down, dy_perm, s.a, w.experts_down,
                             s.expert_offsets_host, ctx);
  k::swiglu_backward(k::column_slice(dh, 0, i), k::column_slice(dh, i, 2 * i), da,
                     k::column_slice(s.h, 0, i), k::column_slice(s.h, i, 2 * i), ctx);
  k::grouped_linear_backward(dx_perm, dw.experts_gate_up, dh, s.x_perm, w.experts_gate_up,
                             s.expert_offsets_host, ctx);
  k::moe_permute_backward(dx, dx_perm, s.perm_index, ctx);
  k::moe_route_backward(dlogits, dtopk_weight, s.topk_idx, s.scores, cfg.routing, ctx);
  if (opt.balance_loss_alpha > 0) {
    Tensor dlogits_bal = ctx.empty({t, e}, rd, "moe.dlogits_balance");
    k::moe_route_backward(dlogits_bal, s.balance_coef, s.all_idx, s.scores,
                          all_experts(cfg.routing), ctx);
    k::axpy(dlogits, 1.0, dlogits_bal, ctx);
  }
  k::linear_backward(dx, dw.gate, {}, dlogits, x, w.gate, GradWrite::accumulate, ctx);
  if (w.shared_gate.defined()) {
    const int64_t is = w.shared_gate.shape[0];
    Tensor dshared_a = ctx.empty({t, is}, x.dtype, "moe.dshared_a");
    Tensor dshared_g = ctx.empty({t, is}, x.dtype, "moe.dshared_g");
    Tensor dshared_u = ctx.empty({t, is}, x.dtype, "moe.dshared_u");
    k::linear_backward(dshared_a, dw.shared_down, {}, dy, s.shared_a, w.shared_down,
                       GradWrite::overwrite, ctx);
    k::swiglu_backward(dshared_g, dshared_u, dshared_a, s.shared_g, s.shared_u, ctx);
    k::linear_backward(dx, dw.shared_up, {}, dshared_u, x, w.shared_up, GradWrite::accumulate, ctx);
    k::linear_backward(dx, dw.shared_gate, {}, dshared_g, x, w.shared_gate, GradWrite::accumulate,
                       ctx);
  }
}

void moe_update_bias(const TensorView& correction_bias, const TensorView& expert_counts,
                     double gamma, Context& ctx) {
  const int64_t e = correction_bias.numel();
  R1_CHECK(correction_bias.ndim == 1 && correction_bias.is_contiguous(),
           "[moe_update_bias] correction_bias {} must be a contiguous (E) tensor",
           correction_bias.describe());
  R1_CHECK((expert_counts.dtype == DType::i32 || expert_counts.dtype == DType::i64) &&
               expert_counts.dims() == Shape({e}) && expert_counts.is_contiguous(),
           "[moe_update_bias] expert_counts {} must be a contiguous ({}) i32 or i64 tensor",
           expert_counts.describe(), e);
  if (gamma == 0 || e == 0) return;
  // The E loads are host bookkeeping: read them back, form the ±γ steps, add them on the device.
  Allocator& host = ctx.host_allocator();
  Tensor counts({e}, expert_counts.dtype, host, "expert_counts");
  ctx.copy(counts, expert_counts);
  std::vector<double> load(static_cast<size_t>(e));
  double mean = 0;
  for (int64_t j = 0; j < e; ++j) {
    load[j] = expert_counts.dtype == DType::i32 ? counts.ptr<int32_t>()[j]
                                                : static_cast<double>(counts.ptr<int64_t>()[j]);
    mean += load[j];
  }
  mean /= static_cast<double>(e);
  Tensor step_host({e}, DType::f64, host, "bias_step");
  for (int64_t j = 0; j < e; ++j)
    step_host.ptr<double>()[j] = gamma * ((mean > load[j]) - (mean < load[j]));
  Tensor step64 = ctx.empty({e}, DType::f64, "bias_step");
  ctx.copy(step64, step_host);
  if (correction_bias.dtype == DType::f64) {
    k::axpy(correction_bias, 1.0, step64, ctx);
  } else {
    Tensor step = ctx.empty({e}, correction_bias.dtype, "bias_step");
    k::cast(step, step64, ctx);
    k::axpy(correction_bias, 1.0, step, ctx);
  }
}

}  // namespace r1kit::policy
