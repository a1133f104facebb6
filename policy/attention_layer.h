// GQA self-attention of the dense models (Llama, Qwen2), forward and backward through kernels/:
//   q = x·Wqᵀ + bq,  k = x·Wkᵀ + bk,  v = x·Wvᵀ + bv       (biases: Qwen2 q/k/v, Llama optional)
//   q, k ← RoPE (half-split, from config.rope) at each token's position
//   o = causal attention over each packed sequence, scale 1/sqrt(D), GQA (H query heads share Hkv)
//   y = o·Woᵀ + bo                                          (bo: Llama attention_bias only)
// Legend: T packed tokens, C hidden, H query heads, Hkv key/value heads, D head dim.
#pragma once

#include <functional>
#include <string>

#include "core/context.h"
#include "core/tensor.h"
#include "policy/batch.h"
#include "policy/config.h"

namespace r1kit::policy {

// Weights (or their gradients) by HF name under "model.layers.{i}.self_attn."; biases are
// undefined views when the model has none.
struct AttentionWeights {
  TensorView q_proj, k_proj, v_proj, o_proj;  // (H·D, C), (Hkv·D, C), (Hkv·D, C), (C, H·D)
  TensorView q_bias, k_bias, v_bias, o_bias;  // (H·D), (Hkv·D), (Hkv·D), (C)
};
AttentionWeights attention_weights(const std::function<TensorView(const std::string&)>& lookup,
                                   const std::string& prefix, const ModelConfig& cfg);

// What the backward needs (all in the working dtype; lse in the statistics dtype).
struct AttentionSaved {
  TensorView x;  // (T, C) the layer input (a view: owned by the caller, e.g. the norm output)
  Tensor q;      // (T, H, D) after RoPE
  Tensor k;      // (T, Hkv, D) after RoPE
  Tensor v;      // (T, Hkv, D)
  Tensor out;    // (T, H, D) attention output, the o_proj input
  Tensor lse;    // (H, T) log-sum-exp of the scaled scores
};

// y (T, C) = attention(x). saved == nullptr keeps nothing (inference). rope tables must cover
// batch.max_position() rows and have the statistics dtype (f64 for f64 activations, else f32).
void gqa_forward(const TensorView& y, AttentionSaved* saved, const TensorView& x,
                 const AttentionWeights& w, const ModelConfig& cfg, const TokenBatch& batch,
                 const RopeTables& rope, Context& ctx);

// Gradient write rule: parameter gradients accumulate (+=), activation gradients overwrite (=),
// except the residual stream, which accumulates. dx (T, C) is overwritten (=: the input is a norm
// output, not the residual); dw += for every defined weight of dw; dy (T, C).
void gqa_backward(const TensorView& dx, const AttentionWeights& dw, const TensorView& dy,
                  const AttentionSaved& saved, const AttentionWeights& w, const ModelConfig& cfg,
                  const TokenBatch& batch, const RopeTables& rope, Context& ctx);

}  // namespace r1kit::policy
