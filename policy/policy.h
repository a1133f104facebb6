// The policy model the trainers drive: parameters (one arena), gradients (a second arena of the
// same layout), forward to per-token log-probs of given targets (and optionally logits), backward
// from a gradient on those log-probs, AdamW with fp32 master weights, optional activation
// recompute, and saving in the HF layout.
//
// Dense models (Llama, Qwen2), per decoder layer (llm.c style: one line per op, the backward the
// same list reversed):
//   a   = input_layernorm(x)                    rmsnorm
//   mid = x + self_attn(a)                      GQA attention (policy/attention_layer.h), add
//   b   = post_attention_layernorm(mid)         rmsnorm
//   out = mid + mlp(b)                          SwiGLU (policy/mlp.h), add
// then h = model.norm(x_L) and the log-prob head over lm_head.weight (or the tied embedding) in
// chunks of tokens, never materialising (T, V) for the whole batch. The residual stream's gradient
// is one (T, C) buffer that every branch's backward adds into.
//
// Legend: T packed tokens of the batch, C hidden, V vocab, L decoder layers.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/context.h"
#include "core/json.h"
#include "core/tensor.h"
#include "kernels/adamw.h"
#include "policy/attention_layer.h"
#include "policy/batch.h"
#include "policy/checkpoint.h"
#include "policy/config.h"
#include "policy/mlp.h"
#include "policy/model.h"

namespace r1kit::policy {

struct PolicyOptions {
  // Working dtype of parameters, gradients and activations: f32 on the CPU (the params are then
  // the fp32 masters themselves), f64 for gradient checks; bf16 on a GPU keeps separate fp32
  // masters for AdamW.
  DType dtype = DType::f32;
  // Activation recompute: forward keeps only each layer's input residual (T, C); backward reruns
  // each layer's forward just before its backward and frees it right after.
  bool recompute = false;
  // Rows of logits the log-prob head computes at a time ((chunk, V) scratch).
  int64_t logprob_chunk_tokens = 256;
};

struct ForwardOptions {
  // (T) i32 on any device: the token whose log-prob each position yields (next_token_targets()).
  // Undefined: no log-probs (then `logits` must be set).
  TensorView targets;
  double temperature = 1.0;  // log-probs (and entropy) of softmax(logits / temperature)
  bool entropy = false;      // also the entropy of each position's distribution
  bool logits = false;       // also the (T, V) logits: small batches only (tests, debugging)
  bool for_backward = true;  // false: inference, nothing is kept for a backward
};

// What backward needs from one decoder layer (activations in the working dtype, statistics in
// stats_dtype()). With recompute only `x` is kept between forward and backward.
struct LayerSaved {
  Tensor x;         // (T, C) residual stream entering the layer
  Tensor ln1;       // (T, C) input_layernorm(x)
  Tensor ln1_rstd;  // (T)
  AttentionSaved attn;
  Tensor mid;       // (T, C) x + self_attn(ln1)
  Tensor ln2;       // (T, C) post_attention_layernorm(mid)
  Tensor ln2_rstd;  // (T)
  MlpSaved mlp;
  bool complete = false;  // everything above is held (false after a recompute forward)
  void release();         // frees everything (x included)
};

// The result of Policy::forward: outputs and every saved activation, per layer. Move-only; the
// TokenBatch it was made from must outlive it.
struct ForwardContext {
  const TokenBatch* batch = nullptr;
  bool for_backward = false;
  double temperature = 1.0;
  Tensor targets;  // (T) i32 on the context's device (a copy of ForwardOptions::targets)
  std::vector<LayerSaved> layers;  // (L)
  Tensor x_final;                  // (T, C) residual stream after the last layer
  Tensor h;                        // (T, C) model.norm(x_final): the head input
  Tensor h_rstd;                   // (T)
  // Outputs.
  Tensor logprob;  // (T) stats dtype: log softmax(logits / τ)[targets]; undefined without targets
  Tensor entropy;  // (T) stats dtype, when asked
  Tensor lse;      // (T) stats dtype, log-sum-exp of logits / τ (saved for the head's backward)
  Tensor logits;   // (T, V) working dtype, when asked
};

// targets[t] = tokens[t + shift] of the same sequence, 0 where t + shift runs past its end (give
// those positions zero weight). shift 1: next-token targets. An (T) i32 host tensor.
Tensor shifted_targets(const std::vector<std::vector<int32_t>>& seqs, int64_t shift,
                       Allocator& alloc);
// 1 where shifted_targets holds a real token, 0 past each sequence's end: (T) f32 host.
Tensor shifted_mask(const std::vector<std::vector<int32_t>>& seqs, int64_t shift, Allocator& alloc);

class Policy {
 public:
  // Reads config.json and the weights of an HF checkpoint directory onto ctx's device.
  static Policy load(const std::string& dir, Context& ctx, const PolicyOptions& opts = {});
  // Random initialisation, with the values init_checkpoint writes for (config, seed).
  static Policy init(const ModelConfig& config, uint64_t seed, Context& ctx,
                     const PolicyOptions& opts = {});

  Policy(Policy&&) = default;
  Policy& operator=(Policy&&) = default;

  const ModelConfig& config() const { return config_; }
  const PolicyOptions& options() const { return opts_; }
  void set_recompute(bool on) { opts_.recompute = on; }

  // Forward over a packed batch. Throws for a config this build cannot run yet (MLA / MoE until
  // their layers exist).
  ForwardContext forward(const TokenBatch& batch, const ForwardOptions& opt, Context& ctx);

  // Backward from dL/dlogprob (T) (stats dtype) and optionally dL/dentropy (T) (only when the
  // forward computed entropy). Gradients accumulate (+=) into grads(); call zero_grad() between
  // optimizer steps. Consumes the context's saved activations (layers are freed as they are done).
  void backward(ForwardContext& fwd, const TensorView& dlogprob, Context& ctx,
                const TensorView& dentropy = TensorView{});

  // Sets every gradient to zero (allocating the gradient arena on first use).
  void zero_grad(Context& ctx);

  // fn(name, parameter, gradient) for every tensor of the arena (fused experts under their fused
  // names); the gradient is undefined until the gradient arena exists (zero_grad/backward).
  void for_each_parameter(const std::function<void(const std::string&, const TensorView&,
                                                   const TensorView&)>& fn) const;

  // One AdamW step over the flat buffers (kernels::adamw_update): hp.step is ignored, the policy
  // counts its steps (step() after the call is the one just taken). On fp32/f64 working dtypes
  // the parameters are the master weights; otherwise fp32 masters and the working copy is
  // rewritten from them. Weight decay applies to every tensor alike.
  void adamw_step(const kernels::AdamWParams& hp, Context& ctx);
  int64_t step() const { return step_; }

  ModelParams& params() { return params_; }
  const ModelParams& params() const { return params_; }
  ModelParams& grads() { return grads_; }
  const ModelParams& grads() const { return grads_; }

  // Writes the model as an HF checkpoint directory (save_params).
  Json save(const std::string& dir, Context& ctx, const SaveOptions& opts = {}) const;

 private:
  Policy(const ModelConfig& config, const PolicyOptions& opts, Context& ctx);
  void check_supported() const;
  void ensure_grads(Context& ctx);
  const RopeTables& rope_for(int64_t rows, Context& ctx);
  TensorView head_weight(const ModelParams& p) const;
  void layer_forward(LayerSaved& s, const TensorView& out, int64_t layer, const TokenBatch& batch,
                     bool keep, Context& ctx);
  void layer_backward(LayerSaved& s, const TensorView& dresid, int64_t layer,
                      const TokenBatch& batch, Context& ctx);

  ModelConfig config_;
  PolicyOptions opts_;
  ModelParams params_;
  ModelParams grads_;
  // AdamW state (allocated at the first step): moments, and masters when the working dtype is
  // neither f32 nor f64.
  ModelParams adam_m_, adam_v_, master_;
  int64_t step_ = 0;
  std::unique_ptr<RopeTables> rope_;
};

}  // namespace r1kit::policy
