// Helpers shared by the CPU reference kernels.
//
// Precision: the CPU reference computes in T = double for f64 tensors and T = float otherwise,
// with reductions accumulated in double. bf16/f16 tensors are upcast to f32 copies before the op
// (so it sees exactly the values the GPU sees) and outputs are rounded back after it: CpuUpcast.
#pragma once

#include <vector>

#include "core/context.h"
#include "core/tensor.h"

namespace r1kit::kernels::cpu {

// Calls fn(T{}) with T = double when dtype is f64, else T = float.
template <class F>
void dispatch_float(DType dtype, F&& fn) {
  if (dtype == DType::f64) {
    fn(double{});
  } else {
    fn(float{});
  }
}

// Makes f32 stand-ins for bf16/f16 tensors. in(): a rounded-up copy; out(): scratch written back
// (rounded) by finish(); inout(): both. f32/f64 tensors pass through untouched.
class CpuUpcast {
 public:
  explicit CpuUpcast(Context& ctx) : ctx_(ctx) {}
  TensorView in(const TensorView& v);
  TensorView out(const TensorView& v);
  TensorView inout(const TensorView& v);
  void finish();  // writes the out()/inout() scratch back to the original tensors

 private:
  TensorView make(const TensorView& v, bool copy_in, bool write_back);
  Context& ctx_;
  std::vector<Tensor> scratch_;
  std::vector<std::pair<TensorView, TensorView>> write_back_;  // (original, scratch)
};

// Converts a whole contiguous tensor between float dtypes (f64/f32/bf16/f16), rounding.
void convert(const TensorView& dst, const TensorView& src);

}  // namespace r1kit::kernels::cpu
