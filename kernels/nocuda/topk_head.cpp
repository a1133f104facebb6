// CUDA entry points of kernels/topk_head.h in a build without CUDA.
#include "kernels/topk_head.h"

namespace r1kit::kernels::cuda {
void logprob_head_topk(const TensorView&, const TensorView&, const TensorView&, const TensorView&,
                       const TensorView&, double, int64_t, Context&) {
  throw_no_cuda("logprob_head_topk");
}
void logprob_head_multi_forward(const TensorView&, const TensorView&, const TensorView&,
                                const TensorView&, const TensorView&, double, int64_t, Context&) {
  throw_no_cuda("logprob_head_multi");
}
void logprob_head_multi_backward(const TensorView&, const TensorView&, const TensorView&,
                                 const TensorView&, const TensorView&, const TensorView&,
                                 const TensorView&, double, int64_t, Context&) {
  throw_no_cuda("logprob_head_multi_backward");
}
}  // namespace r1kit::kernels::cuda
