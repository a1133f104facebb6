// Softmax and log-softmax over the last dim of (N, V) (N rows, V classes), max-subtracted for
// stability, with sums in double. The loss heads use log_softmax as the oracle of their fused form.
#pragma once

#include "core/context.h"
#include "kernels/validate.h"

namespace r1kit::kernels {

// y = exp(x − m) / Σ_j exp(x_j − m),  m = max_j x_j.  y may be x itself (in place).
void softmax_forward(const TensorView& y, const TensorView& x, Context& ctx);

// y = x − m − log Σ_j exp(x_j − m).  y may be x itself (in place).
void log_softmax_forward(const TensorView& y, const TensorView& x, Context& ctx);

// dx = y · (dy − Σ_j dy_j y_j), from the saved softmax output y. dx is an activation gradient
// and overwrites (=); the write rule: parameter gradients accumulate (+=), activation gradients
// overwrite (=), except the residual stream, which accumulates. dx may be dy itself.
void softmax_backward(const TensorView& dx, const TensorView& dy, const TensorView& y,
                      Context& ctx);

// dx = dy − exp(y) · Σ_j dy_j, from the saved log-softmax output y. dx overwrites (=) (same write
// rule as above). dx may be dy itself.
void log_softmax_backward(const TensorView& dx, const TensorView& dy, const TensorView& y,
                          Context& ctx);

namespace cpu {
void softmax_forward(const TensorView& y, const TensorView& x, Context& ctx);
void log_softmax_forward(const TensorView& y, const TensorView& x, Context& ctx);
void softmax_backward(const TensorView& dx, const TensorView& dy, const TensorView& y,
                      Context& ctx);
void log_softmax_backward(const TensorView& dx, const TensorView& dy, const TensorView& y,
                          Context& ctx);
}  // namespace cpu
namespace cuda {
void softmax_forward(const TensorView& y, const TensorView& x, Context& ctx);
void log_softmax_forward(const TensorView& y, const TensorView& x, Context& ctx);
void softmax_backward(const TensorView& dx, const TensorView& dy, const TensorView& y,
                      Context& ctx);
void log_softmax_backward(const TensorView& dx, const TensorView& dy, const TensorView& y,
                          Context& ctx);
}  // namespace cuda

}  // namespace r1kit::kernels
