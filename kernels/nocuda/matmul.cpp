// CUDA entry points of kernels/matmul.h in a build without CUDA.
#include "kernels/matmul.h"

namespace r1kit::kernels::cuda {
void matmul_forward(const TensorView&, const TensorView&, const TensorView&, const MatmulOptions&,
                    Context&) {
  throw_no_cuda("matmul");
}
void matmul_backward(const TensorView&, const TensorView&, const TensorView&, const TensorView&,
                     const TensorView&, const MatmulOptions&, GradWrite, GradWrite, Context&) {
  throw_no_cuda("matmul_backward");
}
void linear_forward(const TensorView&, const TensorView&, const TensorView&, const TensorView&,
                    Context&) {
  throw_no_cuda("linear");
}
void linear_backward(const TensorView&, const TensorView&, const TensorView&, const TensorView&,
                     const TensorView&, const TensorView&, GradWrite, Context&) {
  throw_no_cuda("linear_backward");
}
void grouped_linear_forward(const TensorView&, const TensorView&, const TensorView&,
                            const TensorView&, Context&) {
  throw_no_cuda("grouped_linear");
}
void grouped_linear_backward(const TensorView&, const TensorView&, const TensorView&,
                             const TensorView&, const TensorView&, const TensorView&, Context&) {
  throw_no_cuda("grouped_linear_backward");
}
}  // namespace r1kit::kernels::cuda
