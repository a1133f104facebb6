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
    : config_(config), opts_(opts), params_(config, opts.dtype, ctx.allocator()) {
  R1_CHECK(opts.dtype == DType::f32 || opts.dtype == DType::f64 || opts.dtype == DType::bf16,
           "[policy] working dtype {} is not supported (f32, f64 or bf16)", dtype_name(opts.dtype));
  R1_CHECK(opts.logprob_chunk_tokens >= 1, "[policy] logprob_chunk_tokens {} must be >= 1",
           opts.logprob_chunk_tokens);
}

Policy Policy::load(const std::string& dir, Context& ctx, const PolicyOptions& opts) {
  const Checkpoint ck = Checkpoint::open(dir);
  Policy p(ck.config(), opts, ctx);
  load_params(p.params_, ck, ctx);
  return p;
}

Policy Policy::init(const ModelConfig& config, uint64_t seed, Context& ctx,
                    const PolicyOptions& opts) {
  config.validate("Policy::init");
  Policy p(config, opts, ctx);
  init_params(p.params_, seed, ctx);
  return p;
}

void Policy::check_supported() const {
  R1_CHECK(!config_.is_mla() && !config_.is_moe(),
           "[policy] {} models (MLA attention / MoE layers) are not supported by this build of "
           "the policy forward yet",
           model_arch_name(config_.arch));
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

// One dense decoder layer from s.x into `out`; with keep, everything backward needs stays in s.
void Policy::layer_forward(LayerSaved& s, const TensorView& out, int64_t layer,
                           const TokenBatch& batch, bool keep, Context& ctx) {
  const std::string p = layer_prefix(layer);
  const auto lk = params_.lookup();
  const AttentionWeights aw = attention_weights(lk, p + "self_attn.", config_);
  const MlpWeights mw = mlp_weights(lk, p + "mlp.");
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
  gqa_forward(attn_out, keep ? &s.attn : nullptr, s.ln1, aw, config_, batch, rope, ctx);
  kernels::add_forward(attn_out, attn_out, s.x, ctx);
  s.mid = std::move(attn_out);
  kernels::rmsnorm_forward(s.ln2, s.ln2_rstd, s.mid,
                           params_.get(p + "post_attention_layernorm.weight"), eps, ctx);
  mlp_forward(out, keep ? &s.mlp : nullptr, s.ln2, mw, ctx);
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
                            const TokenBatch& batch, Context& ctx) {
  const std::string p = layer_prefix(layer);
  const auto lk = params_.lookup(), gk = grads_.lookup();
  const AttentionWeights aw = attention_weights(lk, p + "self_attn.", config_);
  const AttentionWeights daw = attention_weights(gk, p + "self_attn.", config_);
  const MlpWeights mw = mlp_weights(lk, p + "mlp."), dmw = mlp_weights(gk, p + "mlp.");
  const RopeTables& rope = rope_for(batch.max_position(), ctx);
  const int64_t T = batch.num_tokens(), C = config_.hidden_size;
  Tensor dln = ctx.empty({T, C}, opts_.dtype, "dln");  // (T, C) gradient at a norm output

  mlp_backward(dln, dmw, dresid, s.mlp, mw, GradWrite::overwrite, ctx);
  kernels::rmsnorm_backward(dresid, grads_.get(p + "post_attention_layernorm.weight"), dln, s.mid,
                            params_.get(p + "post_attention_layernorm.weight"), s.ln2_rstd,
                            GradWrite::accumulate, ctx);
  gqa_backward(dln, daw, dresid, s.attn, aw, config_, batch, rope, ctx);
  kernels::rmsnorm_backward(dresid, grads_.get(p + "input_layernorm.weight"), dln, s.x,
                            params_.get(p + "input_layernorm.weight"), s.ln1_rstd,
                            GradWrite::accumulate, ctx);
}

ForwardContext Policy::forward(const TokenBatch& batch, const ForwardOptions& opt, Context& ctx) {
  check_supported();
  const int64_t T = batch.num_tokens(), C = config_.hidden_size, V = config_.vocab_size;
  const int64_t L = config_.num_hidden_layers;
  const DType dt = opts_.dtype, st = stats_dtype(dt);
  R1_CHECK(opt.targets.defined() || opt.logits,
           "[policy] forward needs targets (for log-probs) or logits = true");
  R1_CHECK(!opt.entropy || opt.targets.defined(), "[policy] entropy needs targets");

  ForwardContext f;
  f.batch = &batch;
  f.for_backward = opt.for_backward;
  f.temperature = opt.temperature;
  if (opt.targets.defined()) {
    R1_CHECK(opt.targets.dtype == DType::i32 && opt.targets.dims() == Shape{T},
             "[policy] targets {} must be ({}) i32 to match the batch", opt.targets.describe(), T);
    f.targets = ctx.empty({T}, DType::i32, "targets");
    ctx.copy(f.targets, opt.targets);
  }
  rope_for(batch.max_position(), ctx);

  Tensor x = ctx.empty({T, C}, dt, "embed");  // (T, C) residual stream
  kernels::embedding_forward(x, batch.tokens, params_.get("model.embed_tokens.weight"), ctx);
  f.layers.resize(static_cast<size_t>(L));
  const bool keep = opt.for_backward && !opts_.recompute;
  for (int64_t l = 0; l < L; ++l) {
    LayerSaved& s = f.layers[static_cast<size_t>(l)];
    s.x = std::move(x);
    Tensor out = ctx.empty({T, C}, dt, "resid");
    layer_forward(s, out, l, batch, keep, ctx);
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
  if (opt.logits) {
    f.logits = ctx.empty({T, V}, dt, "logits");
    kernels::linear_forward(f.logits, f.h, head, TensorView{}, ctx);
  }
  return f;
}

void Policy::backward(ForwardContext& fwd, const TensorView& dlogprob, Context& ctx,
                      const TensorView& dentropy) {
  R1_CHECK(fwd.for_backward,
           "[policy] backward needs a forward made with for_backward = true "
           "(and not consumed by an earlier backward)");
  R1_CHECK(fwd.logprob.defined(), "[policy] backward needs a forward with targets");
  R1_CHECK(!dentropy.defined() || fwd.entropy.defined(),
           "[policy] dentropy given but the forward did not compute the entropy");
  const TokenBatch& batch = *fwd.batch;
  const int64_t T = batch.num_tokens(), C = config_.hidden_size;
  const int64_t L = config_.num_hidden_layers;
  const DType dt = opts_.dtype;
  ensure_grads(ctx);

  Tensor dh = ctx.empty({T, C}, dt, "dh");          // (T, C) gradient at the final-norm output
  Tensor dresid = ctx.empty({T, C}, dt, "dresid");  // (T, C) the residual stream's gradient
  kernels::logprob_head_backward(
      dh, head_weight(grads_), dlogprob, dentropy.defined() ? dentropy : TensorView{}, fwd.h,
      head_weight(params_), fwd.targets, fwd.lse, fwd.temperature, opts_.logprob_chunk_tokens, ctx);
  kernels::rmsnorm_backward(dresid, grads_.get("model.norm.weight"), dh, fwd.x_final,
                            params_.get("model.norm.weight"), fwd.h_rstd, GradWrite::overwrite,
                            ctx);
  dh = Tensor{};
  for (int64_t l = L - 1; l >= 0; --l) {
    LayerSaved& s = fwd.layers[static_cast<size_t>(l)];
    if (!s.complete) {
      Tensor scratch = ctx.empty({T, C}, dt, "resid");
      layer_forward(s, scratch, l, batch, true, ctx);
    }
    layer_backward(s, dresid, l, batch, ctx);
    s.release();
  }
  kernels::embedding_backward(grads_.get("model.embed_tokens.weight"), dresid, batch.tokens, ctx);
  fwd.for_backward = false;
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

Json Policy::save(const std::string& dir, Context& ctx, const SaveOptions& opts) const {
  return save_params(dir, master_.defined() ? master_ : params_, opts, ctx);
}

}  // namespace r1kit::policy
