// CUDA entry points of kernels/rmsnorm.h in a build without CUDA.
#include "kernels/rmsnorm.h"

namespace r1kit::kernels::cuda {
void rmsnorm_forward(const TensorView&, const TensorView&, const TensorView&, const TensorView&,
                     double, Context&) {
  throw_no_cuda("rmsnorm");
}
void rmsnorm_backward(const TensorView&, const TensorView&, const TensorView&, const TensorView&,
                      const TensorView&, const TensorView&, GradWrite, Context&) {
  throw_no_cuda("rmsnorm_backward");
}
}  // namespace r1kit::kernels::cuda
