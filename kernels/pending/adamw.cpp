// CUDA entry point for AdamW until kernels/cuda/adamw.cu exists (the CUDA backend issue).
#include "kernels/adamw.h"

namespace r1kit::kernels::cuda {
void adamw_update(const TensorView&, const TensorView&, const TensorView&, const TensorView&,
                  const TensorView&, const AdamWParams&, Context&) {
  throw_no_cuda("adamw");
}
}  // namespace r1kit::kernels::cuda
