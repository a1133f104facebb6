// CUDA entry points of kernels/attention.h (and kernels/cuda/attention_entry.cuh) in a build
// without CUDA.
#include "kernels/attention.h"
#include "kernels/cuda/attention_entry.cuh"

namespace r1kit::kernels::cuda {
void attention_forward(const TensorView&, const TensorView&, const TensorView&, const TensorView&,
                       const TensorView&, const TensorView&, double, Context&) {
  throw_no_cuda("attention");
}
void attention_backward(const TensorView&, const TensorView&, const TensorView&, const TensorView&,
                        const TensorView&, const TensorView&, const TensorView&, const TensorView&,
                        const TensorView&, const TensorView&, double, Context&) {
  throw_no_cuda("attention_backward");
}
void attention_forward(const TensorView&, const TensorView&, const TensorView&, const TensorView&,
                       const TensorView&, const TensorView&, const int32_t*, double, Context&) {
  throw_no_cuda("attention");
}
void attention_backward(const TensorView&, const TensorView&, const TensorView&, const TensorView&,
                        const TensorView&, const TensorView&, const TensorView&, const TensorView&,
                        const TensorView&, const TensorView&, const int32_t*, double, Context&) {
  throw_no_cuda("attention_backward");
}
}  // namespace r1kit::kernels::cuda
