// Helpers shared by the CPU reference kernels.
//
// Precision: the CPU reference computes in T = double for f64 tensors and T = float otherwise,
// with reductions accumulated in double. bf16/f16 tensors are upcast to f32 copies before the op
// (so it sees exactly the values the GPU sees) and outputs are rounded back after it: CpuUpcast.
#pragma once

#include <array>
#include <tuple>
#include <vector>

#include "core/context.h"
#include "core/tensor.h"
#include "kernels/validate.h"

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

// Makes f32 stand-ins for bf16/f16 views of any strides. in(): a contiguous, rounded-up copy;
// out(): contiguous scratch written back (rounded, through the original strides) by finish();
// inout(): both. f32/f64 views pass through untouched, strides included, so kernels that accept
// strided views index through v.stride either way. Views that are not defined() (an absent
// optional argument) pass through too.
class CpuUpcast {
 public:
  explicit CpuUpcast(Context& ctx) : ctx_(ctx) {}
  TensorView in(const TensorView& v);
  TensorView out(const TensorView& v);
  TensorView inout(const TensorView& v);
  // A gradient written by the rule `w`: inout() when it accumulates (+=), out() when it
  // overwrites (=).
  TensorView grad(const TensorView& v, GradWrite w);
  void finish();  // writes the out()/inout() scratch back to the original tensors

 private:
  TensorView make(const TensorView& v, bool copy_in, bool write_back);
  Context& ctx_;
  std::vector<Tensor> scratch_;
  std::vector<std::pair<TensorView, TensorView>> write_back_;  // (original, scratch)
};

// For every row i of 2-D (N, W) views with unit column stride and any row stride, over the thread
// pool in chunks of `grain` rows: row(out_i..., in_i..., W) with a T* to row i of each output and
// each input, T = double for f64 and float otherwise (bf16/f16 go through CpuUpcast). An output may
// be an input (in place) when row reads each element before writing it.
template <size_t O, size_t I, class F>
void map_rows(Context& ctx, int64_t grain, const TensorView (&outs)[O], const TensorView (&ins)[I],
              F&& row) {
  CpuUpcast up(ctx);
  std::array<TensorView, O + I> v;  // outputs, then inputs
  for (size_t k = 0; k < I; ++k) v[O + k] = up.in(ins[k]);
  for (size_t k = 0; k < O; ++k) v[k] = up.out(outs[k]);
  const int64_t n = v[0].shape[0], width = v[0].shape[1];
  dispatch_float(v[0].dtype, [&](auto tag) {
    using T = decltype(tag);
    ctx.pool().parallel_for(n, grain, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i)
        std::apply([&](const auto&... x) { row(x.template ptr<T>() + i * x.stride[0]..., width); },
                   v);
    });
  });
  up.finish();
}

// dst[i] = src[i] for two views of one shape and any strides, between float dtypes
// (f64/f32/bf16/f16), rounding. Contiguous pairs run as one flat loop, others row by row.
void convert(const TensorView& dst, const TensorView& src);

}  // namespace r1kit::kernels::cpu
