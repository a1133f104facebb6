// AdamW over flat buffers (Loshchilov & Hutter, "Decoupled Weight Decay Regularization"), with
// torch.optim.AdamW semantics (amsgrad off, maximize off), on fp32 master weights and fp32 state.
// An optimizer update, not a differentiable op: there is no backward and no gradient check.
// Shapes: param, grad, m, v (and param_bf16) all of one shape, usually a FlatArena's flat() (n).
#pragma once

#include <cstdint>

#include "core/context.h"
#include "kernels/validate.h"

namespace r1kit::kernels {

struct AdamWParams {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 1e-2;
  int64_t step = 1;  // 1-based: the first update uses t = 1 in the bias corrections
};

// One step, in place on param, m, v. Per element, computed in double with t = step:
//   p ← p·(1 − lr·wd)                                  decoupled decay: never enters m or v
//   m ← β1·m + (1 − β1)·g
//   v ← β2·v + (1 − β2)·g²
//   p ← p − lr·(m / (1 − β1^t)) / (sqrt(v / (1 − β2^t)) + eps)
// param f32 (the GPU's master weights) or f64 (tests); m and v have param's dtype; grad is f32,
// f64, bf16 or f16 (matching param's precision: f64 with f64). param_bf16 is TensorView{} or a
// bf16 tensor that receives round_to_bf16(updated p): the bf16 working copy the GPU keeps beside
// its fp32 masters. Non-finite gradients propagate into param; clip_grad_norm reports them first
// (kernels/grad_norm.h) so the trainer can skip the step.
void adamw_update(const TensorView& param, const TensorView& grad, const TensorView& m,
                  const TensorView& v, const TensorView& param_bf16, const AdamWParams& hp,
                  Context& ctx);

namespace cpu {
void adamw_update(const TensorView& param, const TensorView& grad, const TensorView& m,
                  const TensorView& v, const TensorView& param_bf16, const AdamWParams& hp,
                  Context& ctx);
}  // namespace cpu
namespace cuda {
void adamw_update(const TensorView& param, const TensorView& grad, const TensorView& m,
                  const TensorView& v, const TensorView& param_bf16, const AdamWParams& hp,
                  Context& ctx);
}  // namespace cuda

}  // namespace r1kit::kernels
