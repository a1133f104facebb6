// CUDA entry points of kernels/grad_norm.h in a build without CUDA.
#include "kernels/grad_norm.h"

namespace r1kit::kernels::cuda {
double grad_sum_squares(const std::vector<TensorView>&, Context&) {
  throw_no_cuda("grad_global_norm");
}
void grad_scale(const std::vector<TensorView>&, double, Context&) {
  throw_no_cuda("clip_grad_norm");
}
}  // namespace r1kit::kernels::cuda
