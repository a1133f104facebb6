// RMSNorm over the last dim:  y = x · rstd · w,  rstd = 1 / sqrt(mean(x²) + eps).
// Shapes: x, y (N, C) with N = tokens; w (C); rstd (N) f32/f64, saved for backward.
#pragma once

#include "core/context.h"
#include "kernels/validate.h"

namespace r1kit::kernels {

void rmsnorm_forward(const TensorView& y, const TensorView& rstd, const TensorView& x,
                     const TensorView& w, double eps, Context& ctx);

// dx (=, or += with GradWrite::accumulate for the residual stream), dw (+=). With overwrite, dx
// may be exactly dy (in place); y may be exactly x in the forward.
// dx_j = rstd · (w_j dy_j − x_j · rstd² · mean_i(w_i dy_i x_i));  dw_j += Σ_n dy_j x_j rstd.
void rmsnorm_backward(const TensorView& dx, const TensorView& dw, const TensorView& dy,
                      const TensorView& x, const TensorView& w, const TensorView& rstd,
                      GradWrite dx_write, Context& ctx);

namespace cpu {
void rmsnorm_forward(const TensorView& y, const TensorView& rstd, const TensorView& x,
                     const TensorView& w, double eps, Context& ctx);
void rmsnorm_backward(const TensorView& dx, const TensorView& dw, const TensorView& dy,
                      const TensorView& x, const TensorView& w, const TensorView& rstd,
                      GradWrite dx_write, Context& ctx);
}  // namespace cpu
namespace cuda {
void rmsnorm_forward(const TensorView& y, const TensorView& rstd, const TensorView& x,
                     const TensorView& w, double eps, Context& ctx);
void rmsnorm_backward(const TensorView& dx, const TensorView& dw, const TensorView& dy,
                      const TensorView& x, const TensorView& w, const TensorView& rstd,
                      GradWrite dx_write, Context& ctx);
}  // namespace cuda

}  // namespace r1kit::kernels
