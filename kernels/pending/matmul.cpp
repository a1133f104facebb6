// CUDA entry points for matmul and linear until kernels/cuda/matmul.cu (cuBLAS/cuBLASLt) exists.
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
}  // namespace r1kit::kernels::cuda
