// SwiGLU on the GPU: a flat grid-stride loop over (row, unit) of row-strided (N, H) views (unit
// column stride, any row stride: the two column halves of a packed gate_up buffer work as they
// are). A unit is a 16-byte pack when every pointer and row stride is 16-byte aligned and H is a
// multiple of the pack, else one element. Computed in acc_t; σ uses the full-precision expf for
// f32/f64 data and the fast __expf for bf16/f16 (whose rounding is 2^-8 / 2^-11, far above its
// error), and 1 − σ(g) is formed without cancellation. Mixed dtypes (never with f64) run on f32
// stand-ins, as the CPU reference does.
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/vec.cuh"
#include "kernels/swiglu.h"

#include <vector>

namespace r1kit::kernels::cuda {

namespace {

constexpr int kThreads = 256;

// e^−g in the accumulator type of T: expf/exp for f32/f64, the fast __expf for bf16/f16.
template <class T>
__device__ __forceinline__ acc_t<T> exp_neg(acc_t<T> g) {
  if constexpr (std::is_same_v<T, double>) {
    return exp(-g);
  } else if constexpr (std::is_same_v<T, float>) {
    return expf(-g);
  } else {
    return __expf(-g);
  }
}
template <class T>
__device__ __forceinline__ acc_t<T> recip(acc_t<T> v) {
  if constexpr (std::is_same_v<T, double> || std::is_same_v<T, float>) {
    return acc_t<T>(1) / v;
  } else {
    return __frcp_rn(v);
  }
}

// Row geometry shared by forward and backward: up to five views, each with its row stride.
struct Rows {
  int64_t n;
  int units;  // units per row (H / V)
  bool flat32;
  int64_t stride[5];
};

__device__ __forceinline__ void locate(const Rows& r, int64_t i, int64_t& row, int& k) {
  if (r.flat32) {
    const uint32_t ii = static_cast<uint32_t>(i), u = static_cast<uint32_t>(r.units);
    row = ii / u;
    k = static_cast<int>(ii - static_cast<uint32_t>(row) * u);
  } else {
    row = i / r.units;
    k = static_cast<int>(i - row * r.units);
  }
}

// Units per thread per iteration, all loads issued first: two forward (two loads each), one
// backward (three loads each; more would cost occupancy in registers).
constexpr int kUnroll = 2, kUnrollBackward = 1;

// out = g · σ(g) · u.   Views: 0 out, 1 gate, 2 up.
template <class T, int V>
__global__ void __launch_bounds__(kThreads)
    forward_kernel(T* out, const T* gate, const T* up, Rows r) {
  using A = acc_t<T>;
  const int64_t total = r.n * r.units;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t base = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; base < total;
       base += stride * kUnroll) {
    Vec<T, V> g[kUnroll], u[kUnroll];
    int64_t row[kUnroll], col[kUnroll];
#pragma unroll
    for (int q = 0; q < kUnroll; ++q) {
      const int64_t i = base + q * stride;
      if (i >= total) continue;
      int k;
      locate(r, i, row[q], k);
      col[q] = static_cast<int64_t>(k) * V;
      g[q] = load_vec<T, V>(gate + row[q] * r.stride[1] + col[q]);
      u[q] = load_vec<T, V>(up + row[q] * r.stride[2] + col[q]);
    }
#pragma unroll
    for (int q = 0; q < kUnroll; ++q) {
      if (base + q * stride >= total) continue;
      Vec<T, V> o;
#pragma unroll
      for (int j = 0; j < V; ++j) {
        const A gj = to_acc(g[q].v[j]);
        o.v[j] = from_acc<T>(gj * recip<T>(A(1) + exp_neg<T>(gj)) * to_acc(u[q].v[j]));
      }
      store_vec<T, V>(out + row[q] * r.stride[0] + col[q], o);
    }
  }
}

// dgate = dout · u · σ(g) · (1 + g·(1 − σ(g))),  dup = dout · g · σ(g).
// Views: 0 dgate, 1 dup, 2 dout, 3 gate, 4 up.
template <class T, int V>
__global__ void __launch_bounds__(kThreads)
    backward_kernel(T* dgate, T* dup, const T* dout, const T* gate, const T* up, Rows r) {
  using A = acc_t<T>;
  const int64_t total = r.n * r.units;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t base = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; base < total;
       base += stride * kUnrollBackward) {
    Vec<T, V> dy[kUnrollBackward], g[kUnrollBackward], u[kUnrollBackward];
    int64_t row[kUnrollBackward], col[kUnrollBackward];
#pragma unroll
    for (int q = 0; q < kUnrollBackward; ++q) {
      const int64_t i = base + q * stride;
      if (i >= total) continue;
      int k;
      locate(r, i, row[q], k);
      col[q] = static_cast<int64_t>(k) * V;
      dy[q] = load_vec<T, V>(dout + row[q] * r.stride[2] + col[q]);
      g[q] = load_vec<T, V>(gate + row[q] * r.stride[3] + col[q]);
      u[q] = load_vec<T, V>(up + row[q] * r.stride[4] + col[q]);
    }
#pragma unroll
    for (int q = 0; q < kUnrollBackward; ++q) {
      if (base + q * stride >= total) continue;
      Vec<T, V> og, ou;
#pragma unroll
      for (int j = 0; j < V; ++j) {
        const A gj = to_acc(g[q].v[j]), dyj = to_acc(dy[q].v[j]), e = exp_neg<T>(gj);
        const A s = recip<T>(A(1) + e);
        // 1 − σ(g) = e^−g·σ(g) without the cancellation of 1 − s for g > 0 (e^−g finite there).
        const A oms = gj > A(0) ? e * s : A(1) - s;
        og.v[j] = from_acc<T>(dyj * to_acc(u[q].v[j]) * s * (A(1) + gj * oms));
        ou.v[j] = from_acc<T>(dyj * gj * s);
      }
      store_vec<T, V>(dgate + row[q] * r.stride[0] + col[q], og);
      store_vec<T, V>(dup + row[q] * r.stride[1] + col[q], ou);
    }
  }
}

// Geometry for views (first one sets N, H); vec when all allow 16-byte packs of T.
template <class T>
Rows make_rows(std::initializer_list<const TensorView*> views, bool& vec) {
  const TensorView& first = **views.begin();
  const int64_t n = first.shape[0], h = first.shape[1];
  vec = h % kPack<T> == 0;
  Rows r{};
  r.n = n;
  int i = 0;
  for (const TensorView* v : views) {
    r.stride[i++] = v->stride[0];
    vec = vec && rows_aligned16(v->data, n > 1 ? v->stride[0] : 0, sizeof(T));
  }
  r.units = static_cast<int>(vec ? h / kPack<T> : h);
  r.flat32 = n * r.units < (int64_t{1} << 32);
  return r;
}

void forward_typed(const TensorView& out, const TensorView& gate, const TensorView& up,
                   Context& ctx) {
  dispatch_float(gate.dtype, "swiglu", [&](auto tag) {
    using T = decltype(tag);
    bool vec = false;
    const Rows r = make_rows<T>({&out, &gate, &up}, vec);
    const int64_t total = r.n * r.units;
    auto kernel = vec ? forward_kernel<T, kPack<T>> : forward_kernel<T, 1>;
    kernel<<<grid_for(ctx, total, kThreads, kUnroll), kThreads, 0, stream_of(ctx)>>>(
        out.ptr<T>(), gate.ptr<T>(), up.ptr<T>(), r);
    R1_CUDA_CHECK_LAUNCH();
  });
}

void backward_typed(const TensorView& dgate, const TensorView& dup, const TensorView& dout,
                    const TensorView& gate, const TensorView& up, Context& ctx) {
  dispatch_float(gate.dtype, "swiglu_backward", [&](auto tag) {
    using T = decltype(tag);
    bool vec = false;
    const Rows r = make_rows<T>({&dgate, &dup, &dout, &gate, &up}, vec);
    const int64_t total = r.n * r.units;
    auto kernel = vec ? backward_kernel<T, kPack<T>> : backward_kernel<T, 1>;
    kernel<<<grid_for(ctx, total, kThreads, kUnrollBackward), kThreads, 0, stream_of(ctx)>>>(
        dgate.ptr<T>(), dup.ptr<T>(), dout.ptr<T>(), gate.ptr<T>(), up.ptr<T>(), r);
    R1_CUDA_CHECK_LAUNCH();
  });
}

// f32 stand-ins for a mixed-dtype call: in() converts, out() is scratch written back by finish().
// f32 views pass through.
class F32Stage {
 public:
  explicit F32Stage(Context& ctx) : ctx_(ctx) {}
  TensorView in(const TensorView& v) { return make(v, true, false); }
  TensorView out(const TensorView& v) { return make(v, false, true); }
  void finish() {
    for (auto& [orig, s] : back_) convert_views(orig, s, ctx_);
  }

 private:
  TensorView make(const TensorView& v, bool copy_in, bool write_back) {
    if (v.dtype == DType::f32) return v;
    keep_.push_back(ctx_.empty(v.dims(), DType::f32, v.name));
    TensorView s = keep_.back().view();
    if (copy_in) convert_views(s, v, ctx_);
    if (write_back) back_.emplace_back(v, s);
    return s;
  }
  Context& ctx_;
  std::vector<Tensor> keep_;
  std::vector<std::pair<TensorView, TensorView>> back_;
};

}  // namespace

void swiglu_forward(const TensorView& out, const TensorView& gate, const TensorView& up,
                    Context& ctx) {
  if (gate.numel() == 0) return;
  if (out.dtype == gate.dtype && up.dtype == gate.dtype) return forward_typed(out, gate, up, ctx);
  F32Stage st(ctx);
  const TensorView o = st.out(out), g = st.in(gate), u = st.in(up);
  forward_typed(o, g, u, ctx);
  st.finish();
}

void swiglu_backward(const TensorView& dgate, const TensorView& dup, const TensorView& dout,
                     const TensorView& gate, const TensorView& up, Context& ctx) {
  if (gate.numel() == 0) return;
  const DType t = gate.dtype;
  if (dgate.dtype == t && dup.dtype == t && dout.dtype == t && up.dtype == t)
    return backward_typed(dgate, dup, dout, gate, up, ctx);
  F32Stage st(ctx);
  const TensorView dg = st.out(dgate), du = st.out(dup);
  const TensorView dy = st.in(dout), g = st.in(gate), u = st.in(up);
  backward_typed(dg, du, dy, g, u, ctx);
  st.finish();
}

}  // namespace r1kit::kernels::cuda
