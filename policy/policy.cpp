// The Policy: forward to log-probs, backward from their gradient, AdamW, recompute, save.
// The layer list and the gradient write rule are in policy/policy.h.
#include "policy/policy.h"

#include <algorithm>

#include "core/error.h"
#include "kernels/elementwise.h"
#include "kernels/embedding.h"
#include "kernels/logprob.h"
#include "kernels/matmul.h"
#include "kernels/rmsnorm.h"
#include "kernels/rope.h"
#include "kernels/topk_head.h"

namespace r1kit::policy {
namespace {

using kernels::GradWrite;

std::string layer_prefix(int64_t layer) {
  return fmt::format("model.layers.{}.", layer);
}

}  // namespace

void LayerSaved::release() {
  *this = LayerSaved{};
}

Tensor shifted_targets(const std::vector<std::vector<int32_t>>& seqs, int64_t shift,
                       Allocator& alloc) {
  R1_CHECK(shift >= 0, "[targets] shift {} must be >= 0", shift);
  int64_t total = 0;
  for (const auto& s : seqs) total += static_cast<int64_t>(s.size());
  Tensor t({total}, DType::i32, alloc, "targets");
  int32_t* p = t.ptr<int32_t>();
  for (const auto& s : seqs) {
    const int64_t n = static_cast<int64_t>(s.size());
    for (int64_t i = 0; i < n; ++i) *p++ = i + shift < n ? s[i + shift] : 0;
  }
  return t;
}

Tensor shifted_mask(const std::vector<std::vector<int32_t>>& seqs, int64_t shift,
                    Allocator& alloc) {
  int64_t total = 0;
  for (const auto& s : seqs) total += static_cast<int64_t>(s.size());
  Tensor m({total}, DType::f32, alloc, "target_mask");
  float* p = m.ptr<float>();
  for (const auto& s : seqs) {
    const int64_t n = static_cast<int64_t>(s.size());
    for (int64_t i = 0; i < n; ++i) *p++ = i + shift < n ? 1.0f : 0.0f;
  }
  return m;
}

Policy::Policy(const ModelConfig& config, const PolicyOptions& opts, Context& ctx)
    : config_(config),
      opts_(opts),
      params_(config, opts.dtype, ctx.allocator()),
      buffers_(config, stats_dtype(opts.dtype), ctx.allocator(), ParamSet::buffers) {
  R1_CHECK(opts.dtype == DType::f32 || opts.dtype == DType::f64 || opts.dtype == DType::bf16,
           "[policy] working dtype {} is not supported (f32, f64 or bf16)", dtype_name(opts.dtype));
  R1_CHECK(opts.logprob_chunk_tokens >= 1, "[policy] logprob_chunk_tokens {} must be >= 1",
           opts.logprob_chunk_tokens);
  R1_CHECK(opts.balance_loss_alpha >= 0, "[policy] balance_loss_alpha {} must be >= 0",
           opts.balance_loss_alpha);
}

Policy Policy::load(const std::string& dir, Context& ctx, const PolicyOptions& opts) {
  const Checkpoint ck = Checkpoint::open(dir);
  return load(ck, ck.config(), ctx, opts);
}

Policy Policy::load(const Checkpoint& ck, const ModelConfig& config, Context& ctx,
                    const PolicyOptions& opts) {
  const auto a = parameter_manifest(config, true), b = ck.manifest();
  bool same = a.size() == b.size();
  for (size_t i = 0; same && i < a.size(); ++i)
    same = a[i].name == b[i].name && a[i].shape == b[i].shape;
  R1_CHECK(same, "[policy] {}: the config given describes other tensors than the checkpoint's",
           ck.dir());
  Policy p(config, opts, ctx);
  load_params(p.params_, ck, ctx);
  load_params(p.buffers_, ck, ctx);
  return p;
}

Policy Policy::init(const ModelConfig& config, uint64_t seed, Context& ctx,
                    const PolicyOptions& opts) {
  config.validate("Policy::init");
  Policy p(config, opts, ctx);
  init_params(p.params_, seed, ctx);
  init_params(p.buffers_, seed, ctx);
  return p;
}

void Policy::ensure_grads(Context& ctx) {
  if (!grads_.defined()) grads_ = ModelParams::like(params_, params_.dtype(), ctx.allocator());
}

void Policy::zero_grad(Context& ctx) {
  if (!grads_.defined()) {
    ensure_grads(ctx);  // allocated zero-filled
    return;
  }
  kernels::fill(grads_.flat(), 0.0, ctx);
}

const RopeTables& Policy::rope_for(int64_t rows, Context& ctx) {
  rows = std::max<int64_t>(rows, 1);
  if (rope_ && rope_->rows() >= rows) return *rope_;
  // Grow geometrically so a run of slightly longer batches does not rebuild every time.
  const int64_t n = std::max<int64_t>(rows, rope_ ? 2 * rope_->rows() : rows);
  auto t = std::make_unique<RopeTables>();
  t->config = config_.rope;
  const int64_t half = config_.rope.dim / 2;
  Tensor pos_host({n}, DType::i32, ctx.host_allocator(), "positions");
  for (int64_t i = 0; i < n; ++i) pos_host.ptr<int32_t>()[i] = static_cast<int32_t>(i);
  Tensor pos = ctx.empty({n}, DType::i32, "positions");
  ctx.copy(pos, pos_host);
  const DType st = stats_dtype(opts_.dtype);
  t->cos = ctx.empty({n, half}, st, "rope.cos");
  t->sin = ctx.empty({n, half}, st, "rope.sin");
  kernels::rope_tables(t->cos, t->sin, pos, config_.rope, ctx);
  rope_ = std::move(t);
  return *rope_;
}

TensorView Policy::head_weight(const ModelParams& p) const {
  return config_.tie_word_embeddings ? p.get("model.embed_tokens.weight") : p.get("lm_head.weight");
}

std::function<TensorView(const std::string&)> Policy::weight_lookup() const {
  return [this](const std::string& name) {
    const TensorView v = params_.find(name);
    return v.defined() ? v : buffers_.find(name);
  };
}

MoeOptions Policy::moe_options(const ForwardContext& f, int64_t layer) const {
  MoeOptions mo;
  mo.balance_loss_alpha = opts_.balance_loss_alpha;
  const auto l = static_cast<size_t>(layer);
  if (l < f.replay_topk_idx.size() && f.replay_topk_idx[l].defined())
    mo.replay_topk_idx = &f.replay_topk_idx[l];
  return mo;
}

// One decoder layer from s.x into `out`; with keep, everything backward needs stays in s. MoE
// layers record their routing in *stats whatever is kept.
void Policy::layer_forward(LayerSaved& s, const TensorView& out, int64_t layer,
                           const TokenBatch& batch, const MoeOptions& mo, bool keep,
                           MoeLayerStats* stats, Context& ctx) {
  const std::string p = layer_prefix(layer);
  const auto lk = weight_lookup();
  const RopeTables& rope = rope_for(batch.max_position(), ctx);
  const int64_t T = batch.num_tokens(), C = config_.hidden_size;
  const DType dt = opts_.dtype, st = stats_dtype(dt);
  const double eps = config_.rms_norm_eps;

  s.ln1 = ctx.empty({T, C}, dt, "ln1");
  s.ln1_rstd = ctx.empty({T}, st, "ln1.rstd");
  s.ln2 = ctx.empty({T, C}, dt, "ln2");
  s.ln2_rstd = ctx.empty({T}, st, "ln2.rstd");
  Tensor attn_out = ctx.empty({T, C}, dt, "attn_out");  // becomes s.mid

  kernels::rmsnorm_forward(s.ln1, s.ln1_rstd, s.x, params_.get(p + "input_layernorm.weight"), eps,
                           ctx);
  if (config_.is_mla()) {
    mla_forward(attn_out, keep ? &s.mla : nullptr, s.ln1,
                mla_weights(lk, p + "self_attn.", config_), config_, batch, rope, ctx);
  } else {
    gqa_forward(attn_out, keep ? &s.attn : nullptr, s.ln1,
                attention_weights(lk, p + "self_attn.", config_), config_, batch, rope, ctx);
  }
  kernels::add_forward(attn_out, attn_out, s.x, ctx);
  s.mid = std::move(attn_out);
  kernels::rmsnorm_forward(s.ln2, s.ln2_rstd, s.mid,
                           params_.get(p + "post_attention_layernorm.weight"), eps, ctx);
  if (config_.is_moe_layer(layer)) {
    MoeSaved local;
    MoeSaved& ms = keep ? s.moe : local;
    moe_forward(out, &ms, s.ln2, moe_weights(lk, p + "mlp.", config_), config_, mo, batch, ctx);
    if (stats) {
      stats->layer = layer;
      stats->topk_idx = ctx.empty(ms.topk_idx.view().dims(), DType::i32, "topk_idx");
      ctx.copy(stats->topk_idx, ms.topk_idx);
      stats->expert_counts = ctx.empty(ms.expert_counts.view().dims(), DType::i32, "counts");
      ctx.copy(stats->expert_counts, ms.expert_counts);
      stats->balance_loss = moe_balance_loss(ms, ctx);
    }
  } else {
    mlp_forward(out, keep ? &s.mlp : nullptr, s.ln2, mlp_weights(lk, p + "mlp."), ctx);
  }
  kernels::add_forward(out, out, s.mid, ctx);

  s.complete = keep;
  if (!keep) {
    Tensor x = std::move(s.x);
    s.release();
    s.x = std::move(x);
  }
}

// The same list reversed; dresid (T, C) is the residual stream's gradient at the layer output on
// entry and at its input on return (each branch adds its input gradient into it).
void Policy::layer_backward(LayerSaved& s, const TensorView& dresid, int64_t layer,
                            const TokenBatch& batch, const MoeOptions& mo, Context& ctx) {
  const std::string p = layer_prefix(layer);
  const auto lk = weight_lookup(), gk = grads_.lookup();
  const RopeTables& rope = rope_for(batch.max_position(), ctx);
  const int64_t T = batch.num_tokens(), C = config_.hidden_size;
  Tensor dln = ctx.empty({T, C}, opts_.dtype, "dln");  // (T, C) gradient at a norm output

  if (config_.is_moe_layer(layer)) {
    // The correction bias has no gradient: look it up among the buffers, then drop it.
    MoeWeights dw = moe_weights(
        [&](const std::string& n) {
          const TensorView g = gk(n);
          return g.defined() ? g : buffers_.find(n);
        },
        p + "mlp.", config_);
    dw.correction_bias = TensorView{};
    moe_backward(dln, dw, dresid, s.moe, moe_weights(lk, p + "mlp.", config_), config_, mo, batch,
                 ctx);
  } else {
    mlp_backward(dln, mlp_weights(gk, p + "mlp."), dresid, s.mlp, mlp_weights(lk, p + "mlp."),
                 GradWrite::overwrite, ctx);
  }
  kernels::rmsnorm_backward(dresid, grads_.get(p + "post_attention_layernorm.weight"), dln, s.mid,
                            params_.get(p + "post_attention_layernorm.weight"), s.ln2_rstd,
                            GradWrite::accumulate, ctx);
  if (config_.is_mla()) {
    mla_backward(dln, mla_weights(gk, p + "self_attn.", config_), dresid, s.mla,
                 mla_weights(lk, p + "self_attn.", config_), config_, batch, rope, ctx);
  } else {
    gqa_backward(dln, attention_weights(gk, p + "self_attn.", config_), dresid, s.attn,
                 attention_weights(lk, p + "self_attn.", config_), config_, batch, rope, ctx);
  }
  kernels::rmsnorm_backward(dresid, grads_.get(p + "input_layernorm.weight"), dln, s.x,
                            params_.get(p + "input_layernorm.weight"), s.ln1_rstd,
                            GradWrite::accumulate, ctx);
}

ForwardContext Policy::forward(const TokenBatch& batch, const ForwardOptions& opt, Context& ctx) {
  const int64_t T = batch.num_tokens(), C = config_.hidden_size, V = config_.vocab_size;
  const int64_t L = config_.num_hidden_layers;
  const DType dt = opts_.dtype, st = stats_dtype(dt);
  R1_CHECK(opt.targets.defined() || opt.logits || opt.topk > 0,
           "[policy] forward needs targets (for log-probs) or logits = true");
  R1_CHECK(!opt.entropy || opt.targets.defined(), "[policy] entropy needs targets");
  R1_CHECK(opt.replay_topk_idx.empty() || static_cast<int64_t>(opt.replay_topk_idx.size()) == L,
           "[policy] replay_topk_idx has {} entries; give one per decoder layer ({}) or none",
           opt.replay_topk_idx.size(), L);
  for (int64_t l = 0; l < static_cast<int64_t>(opt.replay_topk_idx.size()); ++l)
    R1_CHECK(!opt.replay_topk_idx[static_cast<size_t>(l)].defined() || config_.is_moe_layer(l),
             "[policy] replay_topk_idx[{}] given for a dense layer", l);

  ForwardContext f;
  f.batch = &batch;
  f.for_backward = opt.for_backward;
  f.temperature = opt.temperature;
  f.replay_topk_idx = opt.replay_topk_idx;
  auto device_ids = [&](const TensorView& ids, const char* what) {
    R1_CHECK(ids.dtype == DType::i32 && ids.dims() == Shape{T} && ids.is_contiguous(),
             "[policy] {} {} must be a contiguous ({}) i32 tensor to match the batch", what,
             ids.describe(), T);
    Tensor t = ctx.empty({T}, DType::i32, what);
    ctx.copy(t, ids);
    return t;
  };
  if (opt.targets.defined()) f.targets = device_ids(opt.targets, "targets");
  rope_for(batch.max_position(), ctx);

  Tensor x = ctx.empty({T, C}, dt, "embed");  // (T, C) residual stream
  kernels::embedding_forward(x, batch.tokens, params_.get("model.embed_tokens.weight"), ctx);
  f.layers.resize(static_cast<size_t>(L));
  const bool keep = opt.for_backward && !opts_.recompute;
  for (int64_t l = 0; l < L; ++l) {
    LayerSaved& s = f.layers[static_cast<size_t>(l)];
    s.x = std::move(x);
    Tensor out = ctx.empty({T, C}, dt, "resid");
    MoeLayerStats stats;
    layer_forward(s, out, l, batch, moe_options(f, l), keep, &stats, ctx);
    if (stats.layer >= 0) f.moe.push_back(std::move(stats));
    if (!opt.for_backward) s.release();
    x = std::move(out);
  }
  f.x_final = std::move(x);
  f.h = ctx.empty({T, C}, dt, "h");
  f.h_rstd = ctx.empty({T}, st, "h.rstd");
  kernels::rmsnorm_forward(f.h, f.h_rstd, f.x_final, params_.get("model.norm.weight"),
                           config_.rms_norm_eps, ctx);
  const TensorView head = head_weight(params_);
  if (f.targets.defined()) {
    f.logprob = ctx.empty({T}, st, "logprob");
    f.lse = ctx.empty({T}, st, "lse");
    if (opt.entropy) f.entropy = ctx.empty({T}, st, "entropy");
    kernels::logprob_head_forward(f.logprob, f.entropy, f.lse, f.h, head, f.targets,
                                  opt.temperature, opts_.logprob_chunk_tokens, ctx);
  }
  if (opt.topk > 0) {
    f.topk_logprob = ctx.empty({T, opt.topk}, st, "topk_logprob");
    f.topk_idx = ctx.empty({T, opt.topk}, DType::i32, "topk_idx");
    Tensor lse = ctx.empty({T}, st, "topk.lse");
    kernels::logprob_head_topk(f.topk_logprob, f.topk_idx, lse, f.h, head, opt.temperature,
                               opts_.logprob_chunk_tokens, ctx);
  }
  if (opt.multi_targets.defined()) {
    const TensorView& mt = opt.multi_targets;
    R1_CHECK(mt.dtype == DType::i32 && mt.ndim == 2 && mt.shape[0] == T && mt.is_contiguous(),
             "[policy] multi_targets {} must be a contiguous (T = {}, K) i32 tensor", mt.describe(),
             T);
    f.multi_targets = ctx.empty(mt.dims(), DType::i32, "multi_targets");
    ctx.copy(f.multi_targets, mt);
    f.multi_logprob = ctx.empty(mt.dims(), st, "multi_logprob");
    f.multi_lse = ctx.empty({T}, st, "multi_lse");
    kernels::logprob_head_multi_forward(f.multi_logprob, f.multi_lse, f.h, head, f.multi_targets,
                                        opt.temperature, opts_.logprob_chunk_tokens, ctx);
  }
  if (opt.logits) {
    f.logits = ctx.empty({T, V}, dt, "logits");
    kernels::linear_forward(f.logits, f.h, head, TensorView{}, ctx);
  }
  mtp_forward(f, opt, ctx);

  for (const MoeLayerStats& m : f.moe) f.balance_loss += m.balance_loss;
  if (opt.for_backward && !f.moe.empty()) {
    // Loads for the aux-loss-free update (a small device → host copy per MoE layer).
    for (const MoeLayerStats& m : f.moe) {
      Tensor h(m.expert_counts.view().dims(), DType::i32, ctx.host_allocator(), "counts");
      ctx.copy(h, m.expert_counts);
      auto& load = expert_load_[m.layer];
      load.resize(static_cast<size_t>(h.numel()), 0);
      for (int64_t e = 0; e < h.numel(); ++e) load[static_cast<size_t>(e)] += h.ptr<int32_t>()[e];
    }
  }
  return f;
}

// MTP depths (see policy.h): each depth's decoder block is model.layers.{L + k − 1}.
void Policy::mtp_forward(ForwardContext& f, const ForwardOptions& opt, Context& ctx) {
  const TokenBatch& batch = *f.batch;
  const int64_t D = static_cast<int64_t>(opt.mtp_inputs.size());
  if (D == 0 && opt.mtp_targets.empty()) return;
  R1_CHECK(opt.mtp_targets.size() == opt.mtp_inputs.size(),
           "[policy] {} MTP input lists but {} target lists", opt.mtp_inputs.size(),
           opt.mtp_targets.size());
  R1_CHECK(D <= config_.num_mtp_modules(), "[policy] {} MTP depths asked, the model has {}", D,
           config_.num_mtp_modules());
  const int64_t T = batch.num_tokens(), C = config_.hidden_size, L = config_.num_hidden_layers;
  const DType dt = opts_.dtype, st = stats_dtype(dt);
  const double eps = config_.rms_norm_eps;
  const bool keep = opt.for_backward && !opts_.recompute;
  const TensorView embed = params_.get("model.embed_tokens.weight");
  const TensorView head = head_weight(params_);
  // cat (T, 2C) viewed as (2T, C) is stack (2T, C) with its halves interleaved row by row:
  // row 2t is stack row t (enorm), row 2t + 1 is stack row T + t (hnorm).
  {
    Tensor ids({2 * T}, DType::i32, ctx.host_allocator(), "mtp_concat_ids");
    for (int64_t t = 0; t < T; ++t) {
      ids.ptr<int32_t>()[2 * t] = static_cast<int32_t>(t);
      ids.ptr<int32_t>()[2 * t + 1] = static_cast<int32_t>(T + t);
    }
    f.mtp_concat_ids = ctx.empty({2 * T}, DType::i32, "mtp_concat_ids");
    ctx.copy(f.mtp_concat_ids, ids);
  }
  f.mtp.resize(static_cast<size_t>(D));
  for (int64_t k = 1; k <= D; ++k) {
    MtpSaved& m = f.mtp[static_cast<size_t>(k - 1)];
    const TensorView h_prev = k == 1 ? f.h.view() : f.mtp[static_cast<size_t>(k - 2)].h.view();
    const int64_t layer = L + k - 1;
    const std::string p = layer_prefix(layer);
    auto device_ids = [&](const TensorView& ids, const char* what) {
      R1_CHECK(ids.dtype == DType::i32 && ids.dims() == Shape{T} && ids.is_contiguous(),
               "[policy] MTP depth {} {} {} must be a contiguous ({}) i32 tensor", k, what,
               ids.describe(), T);
      Tensor t = ctx.empty({T}, DType::i32, what);
      ctx.copy(t, ids);
      return t;
    };
    m.inputs = device_ids(opt.mtp_inputs[static_cast<size_t>(k - 1)], "inputs");
    m.targets = device_ids(opt.mtp_targets[static_cast<size_t>(k - 1)], "targets");
    m.e = ctx.empty({T, C}, dt, "mtp.e");
    m.stack = ctx.empty({2 * T, C}, dt, "mtp.stack");
    m.e_rstd = ctx.empty({T}, st, "mtp.e_rstd");
    m.h_rstd_in = ctx.empty({T}, st, "mtp.h_rstd_in");
    m.cat = ctx.empty({T, 2 * C}, dt, "mtp.cat");
    m.block.x = ctx.empty({T, C}, dt, "mtp.x");
    m.x_out = ctx.empty({T, C}, dt, "mtp.x_out");
    m.h = ctx.empty({T, C}, dt, "mtp.h");
    m.h_rstd = ctx.empty({T}, st, "mtp.h_rstd");
    m.logprob = ctx.empty({T}, st, "mtp.logprob");
    m.lse = ctx.empty({T}, st, "mtp.lse");

    kernels::embedding_forward(m.e, m.inputs, embed, ctx);
    kernels::rmsnorm_forward(m.stack.view().slice(0, T), m.e_rstd, m.e,
                             params_.get(p + "enorm.weight"), eps, ctx);
    kernels::rmsnorm_forward(m.stack.view().slice(T, 2 * T), m.h_rstd_in, h_prev,
                             params_.get(p + "hnorm.weight"), eps, ctx);
    kernels::embedding_forward(m.cat.view().reshape({2 * T, C}), f.mtp_concat_ids, m.stack, ctx);
    kernels::linear_forward(m.block.x, m.cat, params_.get(p + "eh_proj.weight"), TensorView{}, ctx);
    MoeLayerStats stats;
    MoeOptions mo;
    mo.balance_loss_alpha = opts_.balance_loss_alpha;
    layer_forward(m.block, m.x_out, layer, batch, mo, keep, &stats, ctx);
    if (stats.layer >= 0) f.moe.push_back(std::move(stats));
    kernels::rmsnorm_forward(m.h, m.h_rstd, m.x_out, params_.get(p + "shared_head.norm.weight"),
                             eps, ctx);
    kernels::logprob_head_forward(m.logprob, TensorView{}, m.lse, m.h, head, m.targets, 1.0,
                                  opts_.logprob_chunk_tokens, ctx);
  }
  if (!opt.for_backward)
    for (MtpSaved& m : f.mtp) {
      Tensor logprob = std::move(m.logprob), h = std::move(m.h);
      m = MtpSaved{};
      m.logprob = std::move(logprob);
      m.h = std::move(h);
    }
}

// MTP backward, depth D down to 1: each depth's head gradient, its block, eh_proj and the two
// norms; hnorm's input gradient flows into the previous depth's h (depth 1: the main head input,
// dh).
void Policy::mtp_backward(ForwardContext& f, const HeadGrads& g, const TensorView& dh,
                          Context& ctx) {
  const int64_t D = static_cast<int64_t>(f.mtp.size());
  if (D == 0) return;
  R1_CHECK(g.mtp_dlogprob.empty() || static_cast<int64_t>(g.mtp_dlogprob.size()) == D,
           "[policy] {} MTP gradients given for {} MTP depths", g.mtp_dlogprob.size(), D);
  const TokenBatch& batch = *f.batch;
  const int64_t T = batch.num_tokens(), C = config_.hidden_size, L = config_.num_hidden_layers;
  const DType dt = opts_.dtype, st = stats_dtype(dt);
  const double weight = opts_.mtp_loss_weight / static_cast<double>(config_.num_mtp_modules());
  const TensorView head = head_weight(params_), dhead = head_weight(grads_);
  // Each depth's head gradient first (dh_k overwritten), then the chain adds into them.
  std::vector<Tensor> dhs(static_cast<size_t>(D));
  for (int64_t k = 1; k <= D; ++k) {
    MtpSaved& m = f.mtp[static_cast<size_t>(k - 1)];
    Tensor& dhk = dhs[static_cast<size_t>(k - 1)];
    dhk = ctx.empty({T, C}, dt, "mtp.dh");
    const TensorView given =
        g.mtp_dlogprob.empty() ? TensorView{} : g.mtp_dlogprob[static_cast<size_t>(k - 1)];
    Tensor scaled = ctx.zeros({T}, st, "mtp.dlogprob");
    if (given.defined()) kernels::scale(scaled, weight, given, ctx);
    kernels::logprob_head_backward(dhk, dhead, scaled, TensorView{}, m.h, head, m.targets, m.lse,
                                   1.0, opts_.logprob_chunk_tokens, ctx);
  }
  for (int64_t k = D; k >= 1; --k) {
    MtpSaved& m = f.mtp[static_cast<size_t>(k - 1)];
    const int64_t layer = L + k - 1;
    const std::string p = layer_prefix(layer);
    const TensorView h_prev = k == 1 ? f.h.view() : f.mtp[static_cast<size_t>(k - 2)].h.view();
    const TensorView dh_prev = k == 1 ? dh : dhs[static_cast<size_t>(k - 2)].view();
    Tensor dresid = ctx.empty({T, C}, dt, "mtp.dresid");
    kernels::rmsnorm_backward(
        dresid, grads_.get(p + "shared_head.norm.weight"), dhs[static_cast<size_t>(k - 1)], m.x_out,
        params_.get(p + "shared_head.norm.weight"), m.h_rstd, GradWrite::overwrite, ctx);
    if (!m.block.complete) {
      Tensor scratch = ctx.empty({T, C}, dt, "resid");
      MoeOptions mo;
      mo.balance_loss_alpha = opts_.balance_loss_alpha;
      layer_forward(m.block, scratch, layer, batch, mo, true, nullptr, ctx);
    }
    MoeOptions mo;
    mo.balance_loss_alpha = opts_.balance_loss_alpha;
    layer_backward(m.block, dresid, layer, batch, mo, ctx);
    Tensor dcat = ctx.empty({T, 2 * C}, dt, "mtp.dcat");
    kernels::linear_backward(dcat, grads_.get(p + "eh_proj.weight"), TensorView{}, dresid, m.cat,
                             params_.get(p + "eh_proj.weight"), GradWrite::overwrite, ctx);
    Tensor dstack = ctx.zeros({2 * T, C}, dt, "mtp.dstack");  // scatter-add target
    kernels::embedding_backward(dstack, dcat.view().reshape({2 * T, C}), f.mtp_concat_ids, ctx);
    Tensor de = ctx.empty({T, C}, dt, "mtp.de");
    kernels::rmsnorm_backward(de, grads_.get(p + "enorm.weight"), dstack.view().slice(0, T), m.e,
                              params_.get(p + "enorm.weight"), m.e_rstd, GradWrite::overwrite, ctx);
    kernels::embedding_backward(grads_.get("model.embed_tokens.weight"), de, m.inputs, ctx);
    kernels::rmsnorm_backward(
        dh_prev, grads_.get(p + "hnorm.weight"), dstack.view().slice(T, 2 * T), h_prev,
        params_.get(p + "hnorm.weight"), m.h_rstd_in, GradWrite::accumulate, ctx);
    m.block.release();
  }
}

void Policy::backward(ForwardContext& fwd, const TensorView& dlogprob, Context& ctx,
                      const TensorView& dentropy) {
  HeadGrads g;
  g.dlogprob = dlogprob;
  g.dentropy = dentropy;
  backward(fwd, g, ctx);
}

void Policy::backward(ForwardContext& fwd, const HeadGrads& g, Context& ctx) {
  R1_CHECK(fwd.for_backward,
           "[policy] backward needs a forward made with for_backward = true "
           "(and not consumed by an earlier backward)");
  R1_CHECK(fwd.logprob.defined(), "[policy] backward needs a forward with targets");
  R1_CHECK(!g.dentropy.defined() || fwd.entropy.defined(),
           "[policy] dentropy given but the forward did not compute the entropy");
  const TokenBatch& batch = *fwd.batch;
  const int64_t T = batch.num_tokens(), C = config_.hidden_size;
  const int64_t L = config_.num_hidden_layers;
  const DType dt = opts_.dtype, st = stats_dtype(dt);
  ensure_grads(ctx);

  Tensor dh = ctx.empty({T, C}, dt, "dh");          // (T, C) gradient at the final-norm output
  Tensor dresid = ctx.empty({T, C}, dt, "dresid");  // (T, C) the residual stream's gradient
  Tensor zero;
  if (!g.dlogprob.defined()) zero = ctx.zeros({T}, st, "dlogprob");
  kernels::logprob_head_backward(dh, head_weight(grads_), g.dlogprob.defined() ? g.dlogprob : zero,
                                 g.dentropy, fwd.h, head_weight(params_), fwd.targets, fwd.lse,
                                 fwd.temperature, opts_.logprob_chunk_tokens, ctx);
  if (g.dmulti_logprob.defined()) {
    R1_CHECK(fwd.multi_logprob.defined(),
             "[policy] dmulti_logprob given but the forward had no multi_targets");
    Tensor dh2 = ctx.empty({T, C}, dt, "dh.multi");
    kernels::logprob_head_multi_backward(dh2, head_weight(grads_), g.dmulti_logprob, fwd.h,
                                         head_weight(params_), fwd.multi_targets, fwd.multi_lse,
                                         fwd.temperature, opts_.logprob_chunk_tokens, ctx);
    kernels::add_forward(dh, dh, dh2, ctx);
  }
  mtp_backward(fwd, g, dh, ctx);
  kernels::rmsnorm_backward(dresid, grads_.get("model.norm.weight"), dh, fwd.x_final,
                            params_.get("model.norm.weight"), fwd.h_rstd, GradWrite::overwrite,
                            ctx);
  dh = Tensor{};
  for (int64_t l = L - 1; l >= 0; --l) {
    LayerSaved& s = fwd.layers[static_cast<size_t>(l)];
    const MoeOptions mo = moe_options(fwd, l);
    if (!s.complete) {
      Tensor scratch = ctx.empty({T, C}, dt, "resid");
      layer_forward(s, scratch, l, batch, mo, true, nullptr, ctx);
    }
    layer_backward(s, dresid, l, batch, mo, ctx);
    s.release();
  }
  kernels::embedding_backward(grads_.get("model.embed_tokens.weight"), dresid, batch.tokens, ctx);
  fwd.for_backward = false;
}

void Policy::update_expert_bias(double gamma, Context& ctx) {
  for (const auto& [layer, load] : expert_load_) {
    const TensorView bias = buffers_.find(layer_prefix(layer) + "mlp.gate.e_score_correction_bias");
    if (!bias.defined() || gamma == 0) continue;
    Tensor counts({static_cast<int64_t>(load.size())}, DType::i64, ctx.host_allocator(), "load");
    for (size_t e = 0; e < load.size(); ++e) counts.ptr<int64_t>()[e] = load[e];
    moe_update_bias(bias, counts, gamma, ctx);
  }
  expert_load_.clear();
}

void Policy::for_each_parameter(
    const std::function<void(const std::string&, const TensorView&, const TensorView&)>& fn) const {
  for (size_t i = 0; i < params_.size(); ++i)
    fn(params_.entries()[i].name, params_.view(i),
       grads_.defined() ? grads_.view(i) : TensorView{});
}

void Policy::adamw_step(const kernels::AdamWParams& hp, Context& ctx) {
  ensure_grads(ctx);
  const bool own_masters = opts_.dtype != DType::f32 && opts_.dtype != DType::f64;
  const DType state = opts_.dtype == DType::f64 ? DType::f64 : DType::f32;
  if (!adam_m_.defined()) {
    adam_m_ = ModelParams::like(params_, state, ctx.allocator());
    adam_v_ = ModelParams::like(params_, state, ctx.allocator());
    if (own_masters) {
      master_ = ModelParams::like(params_, DType::f32, ctx.allocator());
      kernels::cast(master_.flat(), params_.flat(), ctx);
    }
  }
  kernels::AdamWParams h = hp;
  h.step = ++step_;
  if (own_masters) {
    kernels::adamw_update(master_.flat(), grads_.flat(), adam_m_.flat(), adam_v_.flat(),
                          params_.flat(), h, ctx);
  } else {
    kernels::adamw_update(params_.flat(), grads_.flat(), adam_m_.flat(), adam_v_.flat(),
                          TensorView{}, h, ctx);
  }
}

void Policy::restore_optimizer(const TensorView& m, const TensorView& v, const TensorView& master,
                               int64_t step, Context& ctx) {
  const bool own_masters = opts_.dtype != DType::f32 && opts_.dtype != DType::f64;
  const DType state = opts_.dtype == DType::f64 ? DType::f64 : DType::f32;
  const int64_t n = params_.flat().numel();
  R1_CHECK(step >= 0, "[policy] restore_optimizer: step {} must be >= 0", step);
  for (const auto& [t, what] : {std::pair{&m, "m"}, {&v, "v"}})
    R1_CHECK(t->dtype == state && t->numel() == n && t->is_contiguous(),
             "[policy] restore_optimizer: {} must be a contiguous {} tensor of {} elements (the "
             "model's parameters), got {}",
             what, dtype_name(state), n, t->describe());
  adam_m_ = ModelParams::like(params_, state, ctx.allocator());
  adam_v_ = ModelParams::like(params_, state, ctx.allocator());
  ctx.copy(adam_m_.flat(), m);
  ctx.copy(adam_v_.flat(), v);
  if (own_masters) {
    master_ = ModelParams::like(params_, DType::f32, ctx.allocator());
    if (master.defined()) {
      R1_CHECK(master.dtype == DType::f32 && master.numel() == n && master.is_contiguous(),
               "[policy] restore_optimizer: master must be a contiguous f32 tensor of {} "
               "elements, got {}",
               n, master.describe());
      ctx.copy(master_.flat(), master);
    } else {
      kernels::cast(master_.flat(), params_.flat(), ctx);
    }
  }
  step_ = step;
}

Json Policy::save(const std::string& dir, Context& ctx, const SaveOptions& opts) const {
  return save_params(dir, {master_.defined() ? &master_ : &params_, &buffers_}, opts, ctx);
}

}  // namespace r1kit::policy
