// CUDA entry points of kernels/elementwise.h in a build without CUDA.
#include "kernels/elementwise.h"

namespace r1kit::kernels::cuda {
void add_forward(const TensorView&, const TensorView&, const TensorView&, Context&) {
  throw_no_cuda("add");
}
void add_backward(const TensorView&, const TensorView&, const TensorView&, GradWrite, GradWrite,
                  Context&) {
  throw_no_cuda("add_backward");
}
void axpy(const TensorView&, double, const TensorView&, Context&) {
  throw_no_cuda("axpy");
}
void mul_forward(const TensorView&, const TensorView&, const TensorView&, Context&) {
  throw_no_cuda("mul");
}
void mul_backward(const TensorView&, const TensorView&, const TensorView&, const TensorView&,
                  const TensorView&, Context&) {
  throw_no_cuda("mul_backward");
}
void scale(const TensorView&, double, const TensorView&, Context&) {
  throw_no_cuda("scale");
}
void cast(const TensorView&, const TensorView&, Context&) {
  throw_no_cuda("cast");
}
void fill(const TensorView&, double, Context&) {
  throw_no_cuda("fill");
}
void copy(const TensorView&, const TensorView&, Context&) {
  throw_no_cuda("copy");
}
}  // namespace r1kit::kernels::cuda
