// CUDA entry points of kernels/logprob.h in a build without CUDA.
#include "kernels/logprob.h"

namespace r1kit::kernels::cuda {
void logprob_forward(const TensorView&, const TensorView&, const TensorView&, const TensorView&,
                     const TensorView&, double, Context&) {
  throw_no_cuda("logprob");
}
void logprob_backward(const TensorView&, const TensorView&, const TensorView&, const TensorView&,
                      const TensorView&, const TensorView&, double, Context&) {
  throw_no_cuda("logprob_backward");
}
void logprob_head_forward(const TensorView&, const TensorView&, const TensorView&,
                          const TensorView&, const TensorView&, const TensorView&, double, int64_t,
                          Context&) {
  throw_no_cuda("logprob_head");
}
void logprob_head_backward(const TensorView&, const TensorView&, const TensorView&,
                           const TensorView&, const TensorView&, const TensorView&,
                           const TensorView&, const TensorView&, double, int64_t, Context&) {
  throw_no_cuda("logprob_head_backward");
}
}  // namespace r1kit::kernels::cuda
