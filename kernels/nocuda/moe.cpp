// CUDA entry points of kernels/moe.h in a build without CUDA.
#include "kernels/moe.h"

namespace r1kit::kernels::cuda {
void moe_route_forward(const TensorView&, const TensorView&, const TensorView&, const TensorView&,
                       const TensorView&, const MoeRouting&, Context&) {
  throw_no_cuda("moe_route");
}
void moe_route_backward(const TensorView&, const TensorView&, const TensorView&, const TensorView&,
                        const MoeRouting&, Context&) {
  throw_no_cuda("moe_route_backward");
}
void moe_expert_counts(const TensorView&, const TensorView&, Context&) {
  throw_no_cuda("moe_expert_counts");
}
void moe_permute(const TensorView&, const TensorView&, const TensorView&, const TensorView&,
                 const TensorView&, Context&) {
  throw_no_cuda("moe_permute");
}
void moe_permute_backward(const TensorView&, const TensorView&, const TensorView&, Context&) {
  throw_no_cuda("moe_permute_backward");
}
void moe_unpermute(const TensorView&, const TensorView&, const TensorView&, const TensorView&,
                   Context&) {
  throw_no_cuda("moe_unpermute");
}
void moe_unpermute_backward(const TensorView&, const TensorView&, const TensorView&,
                            const TensorView&, const TensorView&, const TensorView&, Context&) {
  throw_no_cuda("moe_unpermute_backward");
}
}  // namespace r1kit::kernels::cuda
