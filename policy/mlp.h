// The SwiGLU MLP of dense layers and of DeepSeekMoE's shared experts, forward and backward:
//   y = (silu(x·Wgᵀ) · (x·Wuᵀ)) · Wdᵀ
// Two GEMMs for gate and up (their weights are separate tensors of the arena), then the packed
// kernels::swiglu and the down projection.
// Legend: T tokens, C hidden, I intermediate (n_shared_experts · moe_intermediate_size for shared
// experts).
#pragma once

#include <functional>
#include <string>

#include "core/context.h"
#include "core/tensor.h"
#include "kernels/validate.h"

namespace r1kit::policy {

// Weights (or their gradients) under `prefix`, e.g. "model.layers.0.mlp." or
// "model.layers.3.mlp.shared_experts.".
struct MlpWeights {
  TensorView gate_proj, up_proj;  // (I, C)
  TensorView down_proj;           // (C, I)
};
MlpWeights mlp_weights(const std::function<TensorView(const std::string&)>& lookup,
                       const std::string& prefix);

struct MlpSaved {
  TensorView x;  // (T, C) the input (a view: owned by the caller, e.g. the norm output)
  Tensor gate;   // (T, I) x·Wgᵀ
  Tensor up;     // (T, I) x·Wuᵀ
  Tensor act;    // (T, I) silu(gate)·up, the down_proj input
};

// y (T, C) = mlp(x). saved == nullptr keeps nothing.
void mlp_forward(const TensorView& y, MlpSaved* saved, const TensorView& x, const MlpWeights& w,
                 Context& ctx);

// Gradient write rule: parameter gradients accumulate (+=), activation gradients overwrite (=),
// except the residual stream, which accumulates. dx (T, C) overwritten (=), or added to (+=) with
// dx_write = accumulate (a shared expert summing into the MoE layer's input gradient); dw +=
// (undefined views are skipped); dy (T, C).
void mlp_backward(const TensorView& dx, const MlpWeights& dw, const TensorView& dy,
                  const MlpSaved& saved, const MlpWeights& w, kernels::GradWrite dx_write,
                  Context& ctx);

}  // namespace r1kit::policy
