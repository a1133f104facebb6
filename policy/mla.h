// Multi-head Latent Attention (DeepSeek-V2/V3) as a standalone layer: the training form with an
// explicit forward and backward over packed sequences, and the absorbed decode form that caches
// only the normalised latent and the roped shared key of each token.
//
// Legend: T packed tokens, B sequences, C hidden size, H heads, Dn qk_nope_head_dim, Dr
// qk_rope_head_dim, Dqk = Dn + Dr, Dv v_head_dim, Rq q_lora_rank, Rkv kv_lora_rank, S cached
// tokens of one sequence.
//
// Training form (HF DeepseekV3Attention, DeepSeek-V3 inference/model.py with attn_impl "naive"):
//   q        = q_b(rmsnorm(q_a(x)))  or  q_proj(x)              (T, H, Dqk) = [q_nope ‖ q_pe]
//   c_raw    = x · W_kva[:Rkv]ᵀ (+ b),  k_pe_raw = x · W_kva[Rkv:]ᵀ (+ b)    kv_a_proj_with_mqa
//   c        = rmsnorm(c_raw)                                   (T, Rkv)   kv_a_layernorm
//   kv       = c · W_kvbᵀ                                       (T, H, Dn + Dv) = [k_nope ‖ v]
//   q_pe     = rope(q_pe),  k_pe = rope(k_pe_raw), shared by all heads (interleaved pairs,
//              config.rope.layout, YaRN tables from RopeTables)
//   k        = [k_nope ‖ k_pe]                                  (T, H, Dqk)
//   o        = attention(q, k, v), causal within each sequence, scale 1/sqrt(Dqk) · mscale²
//   y        = o · W_oᵀ (+ b)
// The two norms inside MLA use eps 1e-6 whatever rms_norm_eps says: transformers and DeepSeek build
// them with the RMSNorm default.
//
// Absorbed decode form (one new token per sequence): with W_UK[h] (Dn, Rkv) and W_UV[h] (Dv, Rkv)
// the rows of kv_b_proj for head h, q_nope·k_nope = (q_nope·W_UK[h])·c, so
//   q_lat[h] = q_nope[h] · W_UK[h]                              (H, Rkv)  a query in latent space
//   s[h, j]  = scale · (q_lat[h] · c_j + q_pe[h] · k_pe_j)      over the cached tokens j
//   o_lat[h] = softmax(s[h]) · c                                (H, Rkv)
//   o[h]     = o_lat[h] · W_UV[h]ᵀ                              (H, Dv)
// which equals the training form's output for the newest token.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "core/context.h"
#include "core/tensor.h"
#include "policy/batch.h"
#include "policy/config.h"

namespace r1kit::policy {

// Views of one layer's MLA weights (HF names under model.layers.{i}.self_attn.); undefined views
// for tensors the config does not have (q_a_* and q_b_proj without q-LoRA, q_proj with it, biases
// without attention_bias).
struct MlaWeights {
  TensorView q_a_proj;            // (Rq, C)
  TensorView q_a_layernorm;       // (Rq)
  TensorView q_b_proj;            // (H·Dqk, Rq)
  TensorView q_proj;              // (H·Dqk, C)
  TensorView kv_a_proj_with_mqa;  // (Rkv + Dr, C): rows [0, Rkv) latent, [Rkv, Rkv+Dr) rope key
  TensorView kv_a_layernorm;      // (Rkv)
  TensorView kv_b_proj;           // (H·(Dn + Dv), Rkv): per head [W_UK (Dn rows) ‖ W_UV (Dv)]
  TensorView o_proj;              // (C, H·Dv)
  TensorView q_a_proj_bias;       // (Rq)
  TensorView kv_a_proj_with_mqa_bias;  // (Rkv + Dr)
  TensorView o_proj_bias;              // (C)
};

// Looks up every tensor the config has as prefix + "<module>.weight" / ".bias", e.g. prefix
// "model.layers.3.self_attn."; checks the shapes (errors name the tensor).
MlaWeights mla_weights(const std::function<TensorView(const std::string&)>& lookup,
                       const std::string& prefix, const ModelConfig& cfg);

// What mla_backward needs from mla_forward. Statistics (rstd, lse) are f64 for f64 activations and
// f32 otherwise; everything else has the input's dtype.
struct MlaSaved {
  TensorView x;     // (T, C) the input: not owned, the caller keeps it alive until backward
  Tensor q_a;       // (T, Rq) q_a_proj output (q-LoRA only)
  Tensor q_a_rstd;  // (T) its rmsnorm statistic
  Tensor q_a_norm;  // (T, Rq) q_a_layernorm output, the input of q_b_proj
  Tensor q;         // (T, H, Dqk) the query after RoPE on its q_pe part
  Tensor c_raw;     // (T, Rkv) latent before kv_a_layernorm
  Tensor c_rstd;    // (T)
  Tensor c;         // (T, Rkv) normalised latent, the input of kv_b_proj
  Tensor kv;        // (T, H, Dn + Dv) kv_b_proj output [k_nope ‖ v]; v is read from it
  Tensor k;         // (T, H, Dqk) [k_nope ‖ roped k_pe broadcast over heads]
  Tensor attn;      // (T, H, Dv) attention output, the input of o_proj
  Tensor lse;       // (H, T) attention log-sum-exp
};

// y (T, C) overwritten (must not alias x); x (T, C) the (normed) hidden states of `batch`'s tokens.
// saved: nullptr keeps nothing. rope: tables of the f32 type for f32/bf16 activations, f64 for
// f64 ones (gradient checks), with rows beyond the batch's largest position.
void mla_forward(const TensorView& y, MlaSaved* saved, const TensorView& x, const MlaWeights& w,
                 const ModelConfig& cfg, const TokenBatch& batch, const RopeTables& rope,
                 Context& ctx);

// Gradient write rule: parameter gradients accumulate (+=), activation gradients overwrite (=),
// except the residual stream, which accumulates. dx (T, C) overwritten (=); the views of dw
// (gradients of the same shapes as w) accumulate (+=); an undefined dw view skips that gradient.
// dy (T, C). saved from mla_forward (its temporaries are reused).
void mla_backward(const TensorView& dx, const MlaWeights& dw, const TensorView& dy, MlaSaved& saved,
                  const MlaWeights& w, const ModelConfig& cfg, const TokenBatch& batch,
                  const RopeTables& rope, Context& ctx);

// ---- Absorbed decode
// -------------------------------------------------------------------------------

// One layer's decode cache for B sequences: per sequence, the latent after kv_a_layernorm and the
// roped shared key of every token appended so far (Rkv + Dr values per token, instead of the
// H·(Dqk + Dv) of a full KV cache).
struct MlaCache {
  std::vector<Tensor> latent;   // [b] (capacity, Rkv): rows [0, length[b]) are filled
  std::vector<Tensor> k_pe;     // [b] (capacity, Dr)
  std::vector<int64_t> length;  // [b] tokens held
  int64_t num_sequences() const { return static_cast<int64_t>(length.size()); }
  int64_t capacity() const { return latent.empty() ? 0 : latent[0].size(0); }
  // Empty caches of `capacity` tokens per sequence, in `dtype` (the activations' dtype).
  static MlaCache make(int64_t num_sequences, int64_t capacity, const ModelConfig& cfg, DType dtype,
                       Context& ctx);
};

// kv_b_proj split per head into contiguous blocks for the absorbed products; rebuild after the
// weights change.
struct MlaAbsorbed {
  Tensor w_uk;  // (H, Dn, Rkv)
  Tensor w_uv;  // (H, Dv, Rkv)
};
MlaAbsorbed mla_absorb(const MlaWeights& w, const ModelConfig& cfg, Context& ctx);

// Appends the latent and roped key of every token of `batch` (x (T, C) its hidden states) to the
// cache: sequence b's tokens go after the cache's length[b] rows (prefill). batch has
// cache.num_sequences() sequences (empty ones allowed); positions come from batch.positions.
void mla_cache_append(MlaCache& cache, const TensorView& x, const MlaWeights& w,
                      const ModelConfig& cfg, const TokenBatch& batch, const RopeTables& rope,
                      Context& ctx);

// The projections the absorbed forms share (the paged cache of policy/decode.h uses them too):
// the query (T, H, Dqk) with RoPE on its q_pe part, and each token's normalised latent c (T, Rkv)
// and roped shared key k_pe (T, Dr), what a decode cache holds. positions (T) i32 on the device.
Tensor mla_query(const TensorView& x, const MlaWeights& w, const ModelConfig& cfg,
                 const TensorView& positions, const RopeTables& rope, Context& ctx);
void mla_latent(Tensor& c, Tensor& k_pe, const TensorView& x, const MlaWeights& w,
                const ModelConfig& cfg, const TensorView& positions, const RopeTables& rope,
                Context& ctx);

// One decode step: batch holds exactly one new token per sequence (x (B, C) their hidden states,
// positions in batch.positions). Appends each token to the cache, then attends in the absorbed
// form over everything the sequence's cache holds. y (B, C) overwritten. Saves nothing.
void mla_decode(const TensorView& y, MlaCache& cache, const TensorView& x, const MlaWeights& w,
                const MlaAbsorbed& absorbed, const ModelConfig& cfg, const TokenBatch& batch,
                const RopeTables& rope, Context& ctx);

// The softmax scale: 1/sqrt(Dqk) · kernels::yarn_softmax_mscale(cfg.rope).
double mla_softmax_scale(const ModelConfig& cfg);

}  // namespace r1kit::policy
