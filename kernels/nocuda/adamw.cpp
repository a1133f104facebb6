// CUDA entry points of kernels/adamw.h in a build without CUDA.
#include "kernels/adamw.h"

namespace r1kit::kernels::cuda {
void adamw_update(const TensorView&, const TensorView&, const TensorView&, const TensorView&,
                  const TensorView&, const AdamWParams&, Context&) {
  throw_no_cuda("adamw");
}
}  // namespace r1kit::kernels::cuda
