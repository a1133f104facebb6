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
// DeepSeek-V3/V2 layers are the same list with self_attn = MLA (policy/mla.h) and, on the MoE
// layers (config.is_moe_layer: layer >= first_k_dense_replace and on moe_layer_freq), mlp =
// DeepSeekMoE (policy/moe_layer.h); the others keep the dense SwiGLU MLP.
//
// MTP modules (DeepSeek-V3), depth k = 1..D, module k stored as model.layers.{L + k − 1}:
//   h_0     = model.norm(x_L)                        the main model's head input (T, C)
//   e       = embed(t_{i+k})                         the token k ahead of position i
//   x       = eh_proj([enorm(e) ‖ hnorm(h_{k−1})])   (T, 2C) → (T, C)
//   h_k     = shared_head.norm(block_{L+k−1}(x))     one decoder block, then the shared head's norm
//   logprob = log softmax(h_k · headᵀ)[t_{i+k+1}]   head = lm_head (or the tied embedding)
// h_0 is the normalised main output and each depth hands its normalised output to the next, as
// transformers' MtpModel, Megatron and vLLM do (DeepSeek published no MTP code). The loss weight:
// backward scales depth k's log-prob gradients by λ/D (PolicyOptions::mtp_loss_weight), so a
// trainer passes for each depth the gradient of the same loss it uses for the main head (the
// DeepSeek-V3 paper's L = L_main + λ/D Σ_k L_k).
//
// Legend: T packed tokens of the batch, C hidden, V vocab, L decoder layers, D MTP depths,
// K experts per token, E routed experts.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
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
#include "policy/mla.h"
#include "policy/mlp.h"
#include "policy/model.h"
#include "policy/moe_layer.h"

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
  // λ of the MTP loss: backward multiplies each depth's log-prob gradient by λ/D.
  double mtp_loss_weight = 0.3;
  // α of DeepSeekMoE's sequence-wise balance loss (policy/moe_layer.h), 0 = off; its gradient is
  // added by every MoE layer's backward.
  double balance_loss_alpha = 0.0;
};

struct ForwardOptions {
  // (T) i32 on any device: the token whose log-prob each position yields, e.g. the next token
  // (shifted_targets with shift 1). Undefined: no log-probs (then `logits` must be set).
  TensorView targets;
  double temperature = 1.0;  // log-probs (and entropy) of softmax(logits / temperature)
  bool entropy = false;      // also the entropy of each position's distribution
  bool logits = false;       // also the (T, V) logits: small batches only (tests, debugging)
  bool for_backward = true;  // false: inference, nothing is kept for a backward
  // Router replay: per main decoder layer (size L, or empty for none), the (T, K) i32 experts
  // recorded at sampling time for MoE layers (undefined views for dense layers). The views must
  // stay valid until the backward (a recompute reruns the routing with them).
  std::vector<TensorView> replay_topk_idx;
  // MTP depths to run (at most num_nextn_predict_layers): per depth k = 1.., the (T) i32 input
  // token t_{i+k} of each position and the target t_{i+k+1} (shifted_targets(seqs, k) and
  // shifted_targets(seqs, k + 1); give positions without a target zero weight).
  std::vector<TensorView> mtp_inputs, mtp_targets;
  // Distillation outputs of the main head, both at `temperature`:
  //   topk > 0: the k most likely tokens of each position and their log-probs (a teacher's
  //             sparse distribution; k = 1 is the argmax), forward only;
  //   multi_targets (T, K) i32: the log-probs of K given tokens per position (a student scored on
  //             a teacher's top-k), differentiable through HeadGrads::dmulti_logprob.
  int64_t topk = 0;
  TensorView multi_targets;
};

// What backward needs from one decoder layer (activations in the working dtype, statistics in
// stats_dtype()). With recompute only `x` is kept between forward and backward.
struct LayerSaved {
  Tensor x;               // (T, C) residual stream entering the layer
  Tensor ln1;             // (T, C) input_layernorm(x)
  Tensor ln1_rstd;        // (T)
  AttentionSaved attn;    // GQA layers (Llama, Qwen2)
  MlaSaved mla;           // MLA layers (DeepSeek)
  Tensor mid;             // (T, C) x + self_attn(ln1)
  Tensor ln2;             // (T, C) post_attention_layernorm(mid)
  Tensor ln2_rstd;        // (T)
  MlpSaved mlp;           // dense MLP layers
  MoeSaved moe;           // MoE layers
  bool complete = false;  // everything above is held (false after a recompute forward)
  void release();         // frees everything (x included)
};

// Routing of one MoE layer in a forward, kept whatever is saved (metrics, router replay).
struct MoeLayerStats {
  int64_t layer = -1;       // decoder block (L + k − 1 for MTP depth k)
  Tensor topk_idx;          // (T, K) i32 experts chosen for each token
  Tensor expert_counts;     // (E) i32 tokens routed to each expert
  double balance_loss = 0;  // α·Σ f·P of this layer (host value; 0 when α = 0)
};

// One MTP depth.
struct MtpSaved {
  Tensor inputs;     // (T) i32 t_{i+k}
  Tensor targets;    // (T) i32 t_{i+k+1}
  Tensor e;          // (T, C) embed(inputs)
  Tensor stack;      // (2T, C) rows [0, T) enorm(e), rows [T, 2T) hnorm(h_{k−1})
  Tensor e_rstd;     // (T)
  Tensor h_rstd_in;  // (T) hnorm's statistic
  Tensor cat;        // (T, 2C) [enorm(e) ‖ hnorm(h_{k−1})], the eh_proj input
  LayerSaved block;  // the decoder block; block.x = eh_proj(cat)
  Tensor x_out;      // (T, C) block output
  Tensor h;          // (T, C) shared_head.norm(x_out): the head input and h_k for depth k + 1
  Tensor h_rstd;     // (T)
  Tensor logprob;    // (T) stats dtype: log softmax(h·headᵀ)[targets]
  Tensor lse;        // (T)
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
  Tensor topk_logprob, topk_idx;  // (T, k) stats dtype / i32, when ForwardOptions::topk > 0
  Tensor multi_targets;           // (T, K) i32 on the device (a copy of the option's)
  Tensor multi_logprob;           // (T, K) stats dtype: log softmax(logits / τ)[multi_targets]
  Tensor multi_lse;               // (T) saved for its backward
  // DeepSeek: routing of every MoE layer run (main layers, then MTP blocks), the total balance
  // loss (host; 0 when α = 0), and the MTP depths (mtp[k − 1] for depth k).
  std::vector<MoeLayerStats> moe;
  double balance_loss = 0;
  std::vector<MtpSaved> mtp;
  Tensor mtp_concat_ids;  // (2T) i32 row gather that interleaves the two halves of `stack`
  std::vector<TensorView> replay_topk_idx;  // ForwardOptions' replay views (for recompute)
};

// Gradients on the forward's outputs (stats dtype, (T) each). Undefined: zero.
struct HeadGrads {
  TensorView dlogprob;                   // main head
  TensorView dentropy;                   // only when the forward computed the entropy
  std::vector<TensorView> mtp_dlogprob;  // per MTP depth run (scaled by λ/D in backward)
  TensorView dmulti_logprob;             // (T, K): on ForwardContext::multi_logprob
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
  // The same from an open checkpoint under `config`, which must describe the same tensors as
  // ck.config() (for run-time choices stored in the config, e.g. routing.masked_fill).
  static Policy load(const Checkpoint& ck, const ModelConfig& config, Context& ctx,
                     const PolicyOptions& opts = {});
  // Random initialisation, with the values init_checkpoint writes for (config, seed).
  static Policy init(const ModelConfig& config, uint64_t seed, Context& ctx,
                     const PolicyOptions& opts = {});

  Policy(Policy&&) = default;
  Policy& operator=(Policy&&) = default;

  const ModelConfig& config() const { return config_; }
  const PolicyOptions& options() const { return opts_; }
  void set_recompute(bool on) { opts_.recompute = on; }

  // Forward over a packed batch.
  ForwardContext forward(const TokenBatch& batch, const ForwardOptions& opt, Context& ctx);

  // Backward from dL/dlogprob (T) (stats dtype) and optionally dL/dentropy (T) (only when the
  // forward computed entropy). Gradients accumulate (+=) into grads(); call zero_grad() between
  // optimizer steps. Consumes the context's saved activations (layers are freed as they are done).
  void backward(ForwardContext& fwd, const TensorView& dlogprob, Context& ctx,
                const TensorView& dentropy = TensorView{});
  // The same with MTP gradients.
  void backward(ForwardContext& fwd, const HeadGrads& grads, Context& ctx);

  // Sets every gradient to zero (allocating the gradient arena on first use).
  void zero_grad(Context& ctx);

  // fn(name, parameter, gradient) for every parameter (fused experts under their fused names; not
  // the correction biases, which are buffers); the gradient is undefined until the gradient arena
  // exists (zero_grad/backward).
  void for_each_parameter(const std::function<void(const std::string&, const TensorView&,
                                                   const TensorView&)>& fn) const;

  // One AdamW step over the flat buffers (kernels::adamw_update): hp.step is ignored, the policy
  // counts its steps (step() after the call is the one just taken). On fp32/f64 working dtypes
  // the parameters are the master weights; otherwise fp32 masters and the working copy is
  // rewritten from them. Weight decay applies to every tensor alike.
  void adamw_step(const kernels::AdamWParams& hp, Context& ctx);
  int64_t step() const { return step_; }

  // Aux-loss-free balancing (DeepSeek-V3): the expert loads of every MoE layer summed over the
  // training forwards (for_backward) since the last update, by decoder block (E counts each).
  const std::map<int64_t, std::vector<int64_t>>& expert_load() const { return expert_load_; }
  // b_i += γ·sign(mean load − load_i) for every MoE layer with a correction bias, from
  // expert_load(), which is then cleared. Call after the optimizer step; γ = 0 only clears.
  void update_expert_bias(double gamma, Context& ctx);

  ModelParams& params() { return params_; }
  const ModelParams& params() const { return params_; }
  // The correction biases (ParamSet::buffers; empty for dense models).
  ModelParams& buffers() { return buffers_; }
  const ModelParams& buffers() const { return buffers_; }
  // The fp32 master weights AdamW updates: a separate arena for bf16 working dtypes (after the
  // first step), else the parameters themselves.
  const ModelParams& masters() const { return master_.defined() ? master_ : params_; }
  // The AdamW moments (undefined before the first step), for training checkpoints.
  const ModelParams& adam_m() const { return adam_m_; }
  const ModelParams& adam_v() const { return adam_v_; }
  // Restores the optimizer state a training checkpoint saved: m and v flat (host or device) with
  // the arena's element count in the state dtype (f32; f64 for f64 policies), `master` (working
  // dtypes other than f32/f64: the fp32 masters; undefined rebuilds them from the parameters) and
  // the number of steps taken. The parameters themselves are loaded with the checkpoint.
  void restore_optimizer(const TensorView& m, const TensorView& v, const TensorView& master,
                         int64_t step, Context& ctx);
  ModelParams& grads() { return grads_; }
  const ModelParams& grads() const { return grads_; }

  // Writes the model as an HF checkpoint directory (save_params).
  Json save(const std::string& dir, Context& ctx, const SaveOptions& opts = {}) const;

 private:
  Policy(const ModelConfig& config, const PolicyOptions& opts, Context& ctx);
  void ensure_grads(Context& ctx);
  const RopeTables& rope_for(int64_t rows, Context& ctx);
  TensorView head_weight(const ModelParams& p) const;
  std::function<TensorView(const std::string&)> weight_lookup() const;
  MoeOptions moe_options(const ForwardContext& f, int64_t layer) const;
  void layer_forward(LayerSaved& s, const TensorView& out, int64_t layer, const TokenBatch& batch,
                     const MoeOptions& mo, bool keep, MoeLayerStats* stats, Context& ctx);
  void layer_backward(LayerSaved& s, const TensorView& dresid, int64_t layer,
                      const TokenBatch& batch, const MoeOptions& mo, Context& ctx);
  void mtp_forward(ForwardContext& f, const ForwardOptions& opt, Context& ctx);
  void mtp_backward(ForwardContext& f, const HeadGrads& g, const TensorView& dh, Context& ctx);

  ModelConfig config_;
  PolicyOptions opts_;
  ModelParams params_;
  ModelParams buffers_;
  ModelParams grads_;
  // AdamW state (allocated at the first step): moments, and masters when the working dtype is
  // neither f32 nor f64.
  ModelParams adam_m_, adam_v_, master_;
  int64_t step_ = 0;
  std::unique_ptr<RopeTables> rope_;
  std::map<int64_t, std::vector<int64_t>> expert_load_;
};

}  // namespace r1kit::policy
