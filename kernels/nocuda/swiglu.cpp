// CUDA entry points of kernels/swiglu.h in a build without CUDA.
#include "kernels/swiglu.h"

namespace r1kit::kernels::cuda {
void swiglu_forward(const TensorView&, const TensorView&, const TensorView&, Context&) {
  throw_no_cuda("swiglu");
}
void swiglu_backward(const TensorView&, const TensorView&, const TensorView&, const TensorView&,
                     const TensorView&, Context&) {
  throw_no_cuda("swiglu_backward");
}
}  // namespace r1kit::kernels::cuda
