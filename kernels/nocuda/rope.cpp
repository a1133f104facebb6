// CUDA entry points of kernels/rope.h in a build without CUDA.
// rope_tables needs none: its front-end computes on the host and copies.
#include "kernels/rope.h"

namespace r1kit::kernels::cuda {
void rope_forward(const TensorView&, const TensorView&, const TensorView&, const TensorView&,
                  const TensorView&, RopeLayout, Context&) {
  throw_no_cuda("rope");
}
void rope_backward(const TensorView&, const TensorView&, const TensorView&, const TensorView&,
                   const TensorView&, RopeLayout, Context&) {
  throw_no_cuda("rope_backward");
}
}  // namespace r1kit::kernels::cuda
