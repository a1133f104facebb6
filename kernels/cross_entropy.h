// Token-level cross-entropy over a vocabulary:  loss_n = lse_n − logits[n, t_n],
// lse_n = log Σ_v exp(logits[n, v]). Shapes: logits (N, V) with N = tokens, V = vocab;
// targets (N) i32; loss (N) and lse (N, saved for backward) f32 or f64.
#pragma once

#include "core/context.h"
#include "kernels/validate.h"

namespace r1kit::kernels {

// Targets equal to the ignore index give loss 0 and no gradient (the Hugging Face default).
constexpr int32_t kCrossEntropyIgnoreIndex = -100;

// Targets outside [0, V) that are not ignore_index are an error naming the position and value
// (checked on the CPU; the CUDA path will check on the device). lse is written for every row.
void cross_entropy_forward(const TensorView& loss, const TensorView& lse, const TensorView& logits,
                           const TensorView& targets, int32_t ignore_index, Context& ctx);
void cross_entropy_forward(const TensorView& loss, const TensorView& lse, const TensorView& logits,
                           const TensorView& targets, Context& ctx);  // kCrossEntropyIgnoreIndex

// dlogits = (softmax(logits) − onehot(t)) · dloss per row, softmax = exp(logits − lse); ignored
// rows get 0. dlogits is an activation gradient and overwrites (=); the write rule: parameter
// gradients accumulate (+=), activation gradients overwrite (=), except the residual stream, which
// accumulates. dlogits may be logits itself (in place, saving an (N, V) buffer).
void cross_entropy_backward(const TensorView& dlogits, const TensorView& dloss,
                            const TensorView& logits, const TensorView& targets,
                            const TensorView& lse, int32_t ignore_index, Context& ctx);
void cross_entropy_backward(const TensorView& dlogits, const TensorView& dloss,
                            const TensorView& logits, const TensorView& targets,
                            const TensorView& lse, Context& ctx);  // kCrossEntropyIgnoreIndex

namespace cpu {
void cross_entropy_forward(const TensorView& loss, const TensorView& lse, const TensorView& logits,
                           const TensorView& targets, int32_t ignore_index, Context& ctx);
void cross_entropy_backward(const TensorView& dlogits, const TensorView& dloss,
                            const TensorView& logits, const TensorView& targets,
                            const TensorView& lse, int32_t ignore_index, Context& ctx);
}  // namespace cpu
namespace cuda {
void cross_entropy_forward(const TensorView& loss, const TensorView& lse, const TensorView& logits,
                           const TensorView& targets, int32_t ignore_index, Context& ctx);
void cross_entropy_backward(const TensorView& dlogits, const TensorView& dloss,
                            const TensorView& logits, const TensorView& targets,
                            const TensorView& lse, int32_t ignore_index, Context& ctx);
}  // namespace cuda

}  // namespace r1kit::kernels
