// CUDA entry points of kernels/paged_attention.h in a build without CUDA.
#include "kernels/paged_attention.h"

namespace r1kit::kernels::cuda {
void paged_attention_forward(const TensorView&, const TensorView&, const TensorView&,
                             const TensorView&, const TensorView&, const TensorView&,
                             const TensorView&, const PagedIndexHost&, double, Context&) {
  throw_no_cuda("paged_attention");
}
void paged_cache_write(const TensorView&, const TensorView&, const TensorView&, Context&) {
  throw_no_cuda("paged_cache_write");
}
}  // namespace r1kit::kernels::cuda
