// CUDA entry points of kernels/softmax.h in a build without CUDA.
#include "kernels/softmax.h"

namespace r1kit::kernels::cuda {
void softmax_forward(const TensorView&, const TensorView&, Context&) {
  throw_no_cuda("softmax");
}
void log_softmax_forward(const TensorView&, const TensorView&, Context&) {
  throw_no_cuda("log_softmax");
}
void softmax_backward(const TensorView&, const TensorView&, const TensorView&, Context&) {
  throw_no_cuda("softmax_backward");
}
void log_softmax_backward(const TensorView&, const TensorView&, const TensorView&, Context&) {
  throw_no_cuda("log_softmax_backward");
}
}  // namespace r1kit::kernels::cuda
