// CUDA entry points of kernels/cross_entropy.h in a build without CUDA.
#include "kernels/cross_entropy.h"

namespace r1kit::kernels::cuda {
void cross_entropy_forward(const TensorView&, const TensorView&, const TensorView&,
                           const TensorView&, int32_t, Context&) {
  throw_no_cuda("cross_entropy");
}
void cross_entropy_backward(const TensorView&, const TensorView&, const TensorView&,
                            const TensorView&, const TensorView&, int32_t, Context&) {
  throw_no_cuda("cross_entropy_backward");
}
}  // namespace r1kit::kernels::cuda
