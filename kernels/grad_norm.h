// Global gradient norm and clipping over many gradient tensors (or one flat buffer), with
// torch.nn.utils.clip_grad_norm_ semantics (L2 norm, foreach over all grads as one vector).
// Not differentiable: there is no backward. Shapes: any; the grads are treated as one vector.
#pragma once

#include <vector>

#include "core/context.h"
#include "kernels/validate.h"

namespace r1kit::kernels {

// ‖g‖ = sqrt(Σ_tensors Σ_i g_i²), accumulated in double in a fixed order (tensor by tensor, in
// blocks of fixed size) so the result does not depend on the thread count. grads: f32, f64, bf16
// or f16, non-overlapping. An empty list has norm 0.
double grad_global_norm(const std::vector<TensorView>& grads, Context& ctx);
double grad_global_norm(const TensorView& grad, Context& ctx);

// Returns the pre-clip norm ‖g‖ and, as PyTorch does, multiplies every gradient by
//   coef = max_norm / (‖g‖ + 1e-6)   when coef < 1 (i.e. ‖g‖ > max_norm − 1e-6),
// rounding once per element to the gradient's dtype. A non-finite norm (a NaN or inf gradient,
// or an overflowing sum) is returned as is and leaves every gradient untouched, so the caller
// sees it and can skip the optimizer step; PyTorch would instead scale everything to NaN (or
// throw with error_if_nonfinite). max_norm must be finite and > 0.
double clip_grad_norm(const std::vector<TensorView>& grads, double max_norm, Context& ctx);
double clip_grad_norm(const TensorView& grad, double max_norm, Context& ctx);

// Backend primitives the front-ends compose: Σ g² in double, and g ← g·coef in place.
namespace cpu {
double grad_sum_squares(const std::vector<TensorView>& grads, Context& ctx);
void grad_scale(const std::vector<TensorView>& grads, double coef, Context& ctx);
}  // namespace cpu
namespace cuda {
double grad_sum_squares(const std::vector<TensorView>& grads, Context& ctx);
void grad_scale(const std::vector<TensorView>& grads, double coef, Context& ctx);
}  // namespace cuda

}  // namespace r1kit::kernels
