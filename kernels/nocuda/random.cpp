// CUDA entry points of kernels/random.h in a build without CUDA.
#include "kernels/random.h"

namespace r1kit::kernels::cuda {
void random_uniform(const TensorView&, double, double, uint64_t, uint64_t, Context&) {
  throw_no_cuda("random_uniform");
}
void random_normal(const TensorView&, double, double, uint64_t, uint64_t, Context&) {
  throw_no_cuda("random_normal");
}
}  // namespace r1kit::kernels::cuda
