// CUDA entry points for embedding until kernels/cuda/embedding.cu exists (the CUDA backend issue).
#include "kernels/embedding.h"

namespace r1kit::kernels::cuda {
void embedding_forward(const TensorView&, const TensorView&, const TensorView&, Context&) {
  throw_no_cuda("embedding");
}
void embedding_backward(const TensorView&, const TensorView&, const TensorView&, Context&) {
  throw_no_cuda("embedding_backward");
}
}  // namespace r1kit::kernels::cuda
