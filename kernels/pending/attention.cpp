// CUDA entry points for attention until kernels/cuda/attention.cu exists (the CUDA backend issue).
#include "kernels/attention.h"

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
}  // namespace r1kit::kernels::cuda
