// CUDA entry points of kernels/embedding.h in a build without CUDA.
#include "kernels/embedding.h"

namespace r1kit::kernels::cuda {
void embedding_forward(const TensorView&, const TensorView&, const TensorView&, Context&) {
  throw_no_cuda("embedding");
}
void embedding_backward(const TensorView&, const TensorView&, const TensorView&, Context&) {
  throw_no_cuda("embedding_backward");
}
}  // namespace r1kit::kernels::cuda
