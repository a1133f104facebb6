// SwiGLU CPU reference: row-parallel, computed in double per element. Arguments may be
// row-strided, so bf16/f16 ones are upcast row by row here instead of through CpuUpcast (which
// needs contiguous tensors).
#include "kernels/swiglu.h"

#include <cmath>
#include <vector>

#include "kernels/cpu/common.h"

namespace r1kit::kernels::cpu {
namespace {

// Row-strided counterpart of CpuUpcast: f32 contiguous stand-ins for bf16/f16 views.
class RowUpcast {
 public:
  explicit RowUpcast(Context& ctx) : ctx_(ctx) {}
  TensorView in(const TensorView& v) { return make(v, true, false); }
  TensorView out(const TensorView& v) { return make(v, false, true); }
  void finish() {
    for (auto& [orig, s] : write_back_) copy_rows(orig, s);
    write_back_.clear();
  }

 private:
  static TensorView row(const TensorView& v, int64_t i) {
    return TensorView(
        static_cast<char*>(v.data) + i * v.stride[0] * static_cast<int64_t>(dtype_size(v.dtype)),
        v.dtype, v.device, {v.shape[1]});
  }
  static void copy_rows(const TensorView& dst, const TensorView& src) {
    for (int64_t i = 0; i < src.shape[0]; ++i) convert(row(dst, i), row(src, i));
  }
  TensorView make(const TensorView& v, bool copy_in, bool write_back) {
    if (v.dtype != DType::bf16 && v.dtype != DType::f16) return v;
    scratch_.emplace_back(v.dims(), DType::f32, ctx_.host_allocator(), v.name);
    TensorView s = scratch_.back().view();
    if (copy_in) copy_rows(s, v);
    if (write_back) write_back_.emplace_back(v, s);
    return s;
  }
  Context& ctx_;
  std::vector<Tensor> scratch_;
  std::vector<std::pair<TensorView, TensorView>> write_back_;
};

double sigmoid(double g) {
  return 1.0 / (1.0 + std::exp(-g));
}

}  // namespace

void swiglu_forward(const TensorView& out_, const TensorView& gate_, const TensorView& up_,
                    Context& ctx) {
  RowUpcast cast(ctx);
  TensorView gate = cast.in(gate_), up = cast.in(up_), out = cast.out(out_);
  const int64_t n = gate.shape[0], h = gate.shape[1];
  dispatch_float(gate.dtype, [&](auto tag) {
    using T = decltype(tag);
    ctx.pool().parallel_for(n, 16, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        const T* g = gate.ptr<T>() + i * gate.stride[0];
        const T* u = up.ptr<T>() + i * up.stride[0];
        T* o = out.ptr<T>() + i * out.stride[0];
        // out = g · σ(g) · u
        for (int64_t j = 0; j < h; ++j) {
          const double gj = g[j];
          o[j] = static_cast<T>(gj * sigmoid(gj) * u[j]);
        }
      }
    });
  });
  cast.finish();
}

void swiglu_backward(const TensorView& dgate_, const TensorView& dup_, const TensorView& dout_,
                     const TensorView& gate_, const TensorView& up_, Context& ctx) {
  RowUpcast cast(ctx);
  TensorView gate = cast.in(gate_), up = cast.in(up_), dout = cast.in(dout_);
  TensorView dgate = cast.out(dgate_), dup = cast.out(dup_);
  const int64_t n = gate.shape[0], h = gate.shape[1];
  dispatch_float(gate.dtype, [&](auto tag) {
    using T = decltype(tag);
    ctx.pool().parallel_for(n, 16, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        const T* g = gate.ptr<T>() + i * gate.stride[0];
        const T* u = up.ptr<T>() + i * up.stride[0];
        const T* dy = dout.ptr<T>() + i * dout.stride[0];
        T* dg = dgate.ptr<T>() + i * dgate.stride[0];
        T* du = dup.ptr<T>() + i * dup.stride[0];
        for (int64_t j = 0; j < h; ++j) {
          const double gj = g[j], s = sigmoid(gj), dyj = dy[j];
          // d silu(g)/dg = σ(g) + g·σ(g)·(1 − σ(g)) = σ(g)·(1 + g·(1 − σ(g)))
          dg[j] = static_cast<T>(dyj * u[j] * s * (1.0 + gj * (1.0 - s)));
          du[j] = static_cast<T>(dyj * gj * s);
        }
      }
    });
  });
  cast.finish();
}

}  // namespace r1kit::kernels::cpu
