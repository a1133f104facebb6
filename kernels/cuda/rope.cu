// RoPE rotation on the GPU: a flat grid-stride loop over (token, head, unit) of (T, H, D) views
// with unit last stride and any token/head strides (so the rope part of a wider MLA head is rotated
// in place as a view). A unit is a 16-byte pack of x (interleaved: kPack/2 adjacent pairs;
// half_split: a pack of first halves and the matching pack D/2 further on) when the pointers,
// strides and D allow it, else one pair. cos/sin rows are gathered by position (they stay in L1/L2:
// every head of a token reads the same row). Each unit reads its elements before writing them, so y
// may be exactly x. A position outside [0, P) is reported through the context's error sink (thrown
// at the next synchronisation, worded like the CPU front-end's check) and its token is left
// unwritten; the table is never read out of bounds.
//
// Dtypes: x and y of one dtype run the typed kernels (cos/sin f32, or f64 with f64 data), computed
// in acc_t; a bf16/f32 mix of x and y runs on f32 stand-ins, as the CPU reference does.
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/vec.cuh"
#include "kernels/rope.h"

#include <vector>

namespace r1kit::kernels::cuda {

namespace {

constexpr int kThreads = 256;

// N table entries (cos or sin) from a row of the table, through the read-only path: 16- or 8-byte
// loads when kWide (the launch checks that the tables and their rows are aligned for it).
template <class C, int N, bool kWide>
__device__ __forceinline__ Vec<C, N> load_table(const C* p) {
  Vec<C, N> r;
  if constexpr (kWide && (N * sizeof(C)) % 16 == 0) {
#pragma unroll
    for (int c = 0; c < static_cast<int>(N * sizeof(C) / 16); ++c)
      reinterpret_cast<uint4*>(&r)[c] = __ldg(reinterpret_cast<const uint4*>(p) + c);
  } else if constexpr (kWide && N * sizeof(C) == 8) {
    *reinterpret_cast<uint2*>(&r) = __ldg(reinterpret_cast<const uint2*>(p));
  } else {
#pragma unroll
    for (int k = 0; k < N; ++k) r.v[k] = __ldg(p + k);
  }
  return r;
}

struct RopeArgs {
  int64_t tokens;
  int heads, half;     // H, D/2
  int units_per_head;  // interleaved: D / V; half_split: (D/2) / V
  int64_t xs0, xs1;    // x token/head strides (elements)
  int64_t ys0, ys1;    // y token/head strides
  int32_t table_rows;  // P
  bool flat32;         // tokens · heads · units_per_head fits 32 bits
};

// Units per thread per iteration, all loads issued first: two for interleaved (one 16-byte load of
// x each), one for half_split (already two loads of x, and twice the table entries, per unit).
template <bool kInterleaved>
constexpr int kUnroll = kInterleaved ? 2 : 1;

// (a, b) → (a·cos − b·sin, a·sin + b·cos) with sin already multiplied by sign (−1: backward).
template <class T, class C, int V, bool kWide, bool kInterleaved>
__global__ void __launch_bounds__(kThreads)
    rope_kernel(T* y, const T* x, const C* cos, const C* sin, const int32_t* positions, RopeArgs a,
                acc_t<T> sign, ErrorSink sink) {
  using A = acc_t<T>;
  // A unit: interleaved, V elements = V/2 pairs (2i, 2i+1) from pair k·V/2; half_split, V pairs
  // (i, i + D/2) from i = k·V.
  constexpr int kPairs = kInterleaved ? V / 2 : V;
  constexpr int kU = kUnroll<kInterleaved>;
  const int64_t per_token = static_cast<int64_t>(a.heads) * a.units_per_head;
  const int64_t total = a.tokens * per_token;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t base = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; base < total;
       base += stride * kU) {
    Vec<T, V> va[kU], vb[kU];
    Vec<C, kPairs> cv[kU], sv[kU];
    T* yr[kU];
    bool ok[kU];
#pragma unroll
    for (int u = 0; u < kU; ++u) {
      const int64_t i = base + u * stride;
      ok[u] = false;
      if (i >= total) continue;
      int64_t t;
      int j;
      if (a.flat32) {
        const uint32_t ii = static_cast<uint32_t>(i), pt = static_cast<uint32_t>(per_token);
        t = ii / pt;
        j = static_cast<int>(ii - static_cast<uint32_t>(t) * pt);
      } else {
        t = i / per_token;
        j = static_cast<int>(i - t * per_token);
      }
      const int h = j / a.units_per_head, k = j - h * a.units_per_head;
      const int32_t p = positions[t];
      if (p < 0 || p >= a.table_rows) {
        sink.report(t, p, static_cast<int64_t>(a.table_rows) - 1);
        continue;
      }
      ok[u] = true;
      const int e0 = k * V, i0 = kInterleaved ? e0 / 2 : e0;
      const T* xr = x + t * a.xs0 + h * a.xs1 + e0;
      yr[u] = y + t * a.ys0 + h * a.ys1 + e0;
      va[u] = load_vec<T, V, kWide>(xr);
      if constexpr (!kInterleaved) vb[u] = load_vec<T, V, kWide>(xr + a.half);
      cv[u] = load_table<C, kPairs, kWide>(cos + static_cast<int64_t>(p) * a.half + i0);
      sv[u] = load_table<C, kPairs, kWide>(sin + static_cast<int64_t>(p) * a.half + i0);
    }
#pragma unroll
    for (int u = 0; u < kU; ++u) {
      if (!ok[u]) continue;
      Vec<T, V> oa, ob;
#pragma unroll
      for (int q = 0; q < kPairs; ++q) {
        const A c = static_cast<A>(cv[u].v[q]), s = sign * static_cast<A>(sv[u].v[q]);
        if constexpr (kInterleaved) {
          const A av = to_acc(va[u].v[2 * q]), bv = to_acc(va[u].v[2 * q + 1]);
          oa.v[2 * q] = from_acc<T>(av * c - bv * s);
          oa.v[2 * q + 1] = from_acc<T>(av * s + bv * c);
        } else {
          const A av = to_acc(va[u].v[q]), bv = to_acc(vb[u].v[q]);
          oa.v[q] = from_acc<T>(av * c - bv * s);
          ob.v[q] = from_acc<T>(av * s + bv * c);
        }
      }
      store_vec<T, V, kWide>(yr[u], oa);
      if constexpr (!kInterleaved) store_vec<T, V, kWide>(yr[u] + a.half, ob);
    }
  }
}

// A stride that matters (its dim has more than one index) is a multiple of m elements.
bool stride_multiple(const TensorView& v, int d, int64_t m) {
  return v.shape[d] <= 1 || v.stride[d] % m == 0;
}

template <class T, class C, int V, bool kWide, bool kInterleaved>
void launch(const TensorView& out, const TensorView& in, const TensorView& cos,
            const TensorView& sin, const TensorView& positions, double sign, const char* what,
            Context& ctx) {
  RopeArgs a{};
  a.tokens = in.shape[0];
  a.heads = static_cast<int>(in.shape[1]);
  a.half = static_cast<int>(in.shape[2] / 2);
  a.units_per_head = kInterleaved ? static_cast<int>(in.shape[2] / V) : a.half / V;
  a.xs0 = in.stride[0];
  a.xs1 = in.stride[1];
  a.ys0 = out.stride[0];
  a.ys1 = out.stride[1];
  a.table_rows = static_cast<int32_t>(cos.shape[0]);
  const int64_t total = a.tokens * a.heads * a.units_per_head;
  a.flat32 = total < (int64_t{1} << 32);
  rope_kernel<T, C, V, kWide, kInterleaved>
      <<<grid_for(ctx, total, kThreads, kUnroll<kInterleaved>), kThreads, 0, stream_of(ctx)>>>(
          out.ptr<T>(), in.ptr<T>(), cos.ptr<C>(), sin.ptr<C>(), positions.ptr<int32_t>(), a,
          static_cast<acc_t<T>>(sign), error_sink(ctx, what));
  R1_CUDA_CHECK_LAUNCH();
}

void rotate_typed(const TensorView& out, const TensorView& in, const TensorView& cos,
                  const TensorView& sin, const TensorView& positions, RopeLayout layout,
                  bool backward, Context& ctx) {
  const bool interleaved = layout == RopeLayout::interleaved;
  const double sign = backward ? -1.0 : 1.0;
  const char* what =
      backward ? "[rope_backward] positions[{}] = {} is outside the cos/sin table (rows 0..{})"
               : "[rope] positions[{}] = {} is outside the cos/sin table (rows 0..{})";
  dispatch_float(in.dtype, backward ? "rope_backward" : "rope", [&](auto tag) {
    using T = decltype(tag);
    using C = acc_t<T>;  // the front-end makes tables f64 exactly when the data is f64
    constexpr int P = kPack<T>;
    const int64_t d = in.shape[2], half = d / 2;
    // Packs of x also align the table loads: D/2 is then a multiple of the table chunk, so only
    // the tables' base pointers remain to check.
    const bool vec = aligned16(in.data) && aligned16(out.data) && aligned16(cos.data) &&
                     aligned16(sin.data) && (interleaved ? d : half) % P == 0 &&
                     stride_multiple(in, 0, P) && stride_multiple(in, 1, P) &&
                     stride_multiple(out, 0, P) && stride_multiple(out, 1, P);
    if (interleaved) {
      if (vec) {
        launch<T, C, P, true, true>(out, in, cos, sin, positions, sign, what, ctx);
      } else {
        launch<T, C, 2, false, true>(out, in, cos, sin, positions, sign, what, ctx);
      }
    } else {
      if (vec) {
        launch<T, C, P, true, false>(out, in, cos, sin, positions, sign, what, ctx);
      } else {
        launch<T, C, 1, false, false>(out, in, cos, sin, positions, sign, what, ctx);
      }
    }
  });
}

// out = rotation of in by +angle (forward) or −angle (backward).
void rotate(const TensorView& out, const TensorView& in, const TensorView& cos,
            const TensorView& sin, const TensorView& positions, RopeLayout layout, bool backward,
            Context& ctx) {
  if (in.numel() == 0) return;
  if (out.dtype == in.dtype)
    return rotate_typed(out, in, cos, sin, positions, layout, backward, ctx);
  // Mixed dtypes (never f64, and never in place): f32 stand-ins for the non-f32 side.
  Tensor ins, outs;
  TensorView iv = in, ov = out;
  if (in.dtype != DType::f32) {
    ins = ctx.empty(in.dims(), DType::f32, in.name);
    convert_views(ins, in, ctx);
    iv = ins.view();
  }
  if (out.dtype != DType::f32) {
    outs = ctx.empty(out.dims(), DType::f32, out.name);
    ov = outs.view();
  }
  rotate_typed(ov, iv, cos, sin, positions, layout, backward, ctx);
  if (outs.defined()) convert_views(out, outs, ctx);
}

}  // namespace

void rope_forward(const TensorView& y, const TensorView& x, const TensorView& cos,
                  const TensorView& sin, const TensorView& positions, RopeLayout layout,
                  Context& ctx) {
  rotate(y, x, cos, sin, positions, layout, false, ctx);
}

void rope_backward(const TensorView& dx, const TensorView& dy, const TensorView& cos,
                   const TensorView& sin, const TensorView& positions, RopeLayout layout,
                   Context& ctx) {
  rotate(dx, dy, cos, sin, positions, layout, true, ctx);
}

}  // namespace r1kit::kernels::cuda
