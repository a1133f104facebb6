// RoPE rotation on the GPU over (T, H, D) views with unit last stride and any token/head strides
// (so the rope part of a wider MLA head is rotated in place as a view). Blocks take tokens; a
// thread keeps one unit of the head (a 16-byte pack of x — interleaved: kPack/2 adjacent pairs;
// half_split: a pack of first halves and the matching pack D/2 further on — when the pointers,
// strides and D allow it, else one pair) and rotates it in several heads of the token, so each
// cos/sin entry is read once per thread and token, not once per head. Each unit reads its elements
// before writing them, so y may be exactly x. A position outside [0, P) is reported through the
// context's error sink (thrown at the next synchronisation, worded like the CPU front-end's check)
// and its token is left unwritten; the table is never read out of bounds.
//
// Dtypes: x and y of one dtype run the typed kernels (cos/sin f32, or f64 with f64 data), computed
// in acc_t; a bf16/f32 mix of x and y runs on f32 stand-ins, as the CPU reference does.
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/vec.cuh"
#include "kernels/rope.h"

#include <algorithm>
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
  int units_per_head;  // U: interleaved D / V; half_split (D/2) / V
  int64_t xs0, xs1;    // x token/head strides (elements)
  int64_t ys0, ys1;    // y token/head strides
  int32_t table_rows;  // P
};

// Units per thread per batch (all their loads issued before any use) on the fixed-unit path: heads
// of one token, or tokens when a thread has one head per token. A half_split unit holds two packs
// of x and twice the table entries, so it is not batched (registers, hence occupancy: the
// launch bounds keep every variant at <= 64 registers without spills).
template <bool kInterleaved>
constexpr int kHeadBatch = kInterleaved ? 4 : 1;
template <bool kInterleaved>
constexpr int kTokenBatch = kInterleaved ? 2 : 1;

// One unit: rotate V elements (interleaved: V/2 pairs) or V pairs (half_split) by (c, s).
template <class T, class C, int V, bool kWide, bool kInterleaved>
struct Unit {
  static constexpr int kPairs = kInterleaved ? V / 2 : V;
  using A = acc_t<T>;
  Vec<T, V> a, b;

  __device__ __forceinline__ void load(const T* xr, int half) {
    a = load_vec<T, V, kWide>(xr);
    if constexpr (!kInterleaved) b = load_vec<T, V, kWide>(xr + half);
  }
  // (a, b) -> (a·cos − b·sin, a·sin + b·cos) with sin already multiplied by the sign.
  __device__ __forceinline__ void rotate_store(T* yr, int half, const Vec<C, kPairs>& cv,
                                               const Vec<C, kPairs>& sv, A sign) const {
    Vec<T, V> oa, ob;
#pragma unroll
    for (int q = 0; q < kPairs; ++q) {
      const A c = static_cast<A>(cv.v[q]), s = sign * static_cast<A>(sv.v[q]);
      if constexpr (kInterleaved) {
        const A av = to_acc(a.v[2 * q]), bv = to_acc(a.v[2 * q + 1]);
        oa.v[2 * q] = from_acc<T>(av * c - bv * s);
        oa.v[2 * q + 1] = from_acc<T>(av * s + bv * c);
      } else {
        const A av = to_acc(a.v[q]), bv = to_acc(b.v[q]);
        oa.v[q] = from_acc<T>(av * c - bv * s);
        ob.v[q] = from_acc<T>(av * s + bv * c);
      }
    }
    store_vec<T, V, kWide>(yr, oa);
    if constexpr (!kInterleaved) store_vec<T, V, kWide>(yr + half, ob);
  }
};

// Tokens grid-stride over blockIdx.x; the (head, unit) pairs of a token over the block's threads
// and blockIdx.y. When U divides the block size (U a power of two, as head dims are), thread q
// keeps unit k = q mod U in every head it visits (heads q / U, + kThreads / U, ...), so it reads
// its cos/sin entries once per token and then streams a batch of heads at a time; otherwise
// (U = 24 for a 192-wide scalar head, say) each (head, unit) pair is looked up on its own. The
// position is read once per token; one out of [0, P) is reported by thread 0 and the token left
// unwritten.
template <class T, class C, int V, bool kWide, bool kInterleaved>
__global__ void __launch_bounds__(kThreads, 4)  // 4 blocks (1024 threads) per SM: <= 64 registers
    rope_kernel(T* y, const T* x, const C* cos, const C* sin, const int32_t* positions, RopeArgs a,
                acc_t<T> sign, ErrorSink sink) {
  using U = Unit<T, C, V, kWide, kInterleaved>;
  constexpr int kPairs = U::kPairs;
  constexpr int kHB = kHeadBatch<kInterleaved>, kTB = kTokenBatch<kInterleaved>;
  const int upr = a.units_per_head;
  // A token whose position is outside the table: thread 0 of its first block reports it.
  auto position = [&](int64_t t, int32_t& p) {
    p = positions[t];
    if (p >= 0 && p < a.table_rows) return true;
    if (threadIdx.x == 0 && blockIdx.y == 0)
      sink.report(t, p, static_cast<int64_t>(a.table_rows) - 1);
    return false;
  };
  if (kThreads % upr == 0) {
    const int k = static_cast<int>(threadIdx.x) % upr, lane_h = static_cast<int>(threadIdx.x) / upr;
    const int hstep = (kThreads / upr) * static_cast<int>(gridDim.y);
    const int h0 = lane_h + (kThreads / upr) * static_cast<int>(blockIdx.y);
    if (h0 >= a.heads) return;
    const int e0 = k * V, i0 = kInterleaved ? e0 / 2 : e0;
    if (h0 + hstep < a.heads) {
      // Several heads per token for this thread: the token's cos/sin once, kHB heads at a
      // time.
      for (int64_t t = blockIdx.x; t < a.tokens; t += gridDim.x) {
        int32_t p;
        if (!position(t, p)) continue;
        const Vec<C, kPairs> cv = load_table<C, kPairs, kWide>(cos + int64_t{p} * a.half + i0);
        const Vec<C, kPairs> sv = load_table<C, kPairs, kWide>(sin + int64_t{p} * a.half + i0);
        const T* xt = x + t * a.xs0 + e0;
        T* yt = y + t * a.ys0 + e0;
        for (int hb = h0; hb < a.heads; hb += hstep * kHB) {
          U u[kHB];
#pragma unroll
          for (int i = 0; i < kHB; ++i) {
            const int h = hb + i * hstep;
            if (h < a.heads) u[i].load(xt + h * a.xs1, a.half);
          }
#pragma unroll
          for (int i = 0; i < kHB; ++i) {
            const int h = hb + i * hstep;
            if (h < a.heads) u[i].rotate_store(yt + h * a.ys1, a.half, cv, sv, sign);
          }
        }
      }
    } else {
      // One head per token (few heads): kTB tokens at a time instead.
      const int64_t ts = gridDim.x;
      for (int64_t tb = blockIdx.x; tb < a.tokens; tb += ts * kTB) {
        U u[kTB];
        Vec<C, kPairs> cv[kTB], sv[kTB];
        bool ok[kTB];
#pragma unroll
        for (int i = 0; i < kTB; ++i) {
          const int64_t t = tb + i * ts;
          int32_t p = 0;
          ok[i] = t < a.tokens && position(t, p);
          if (!ok[i]) continue;
          cv[i] = load_table<C, kPairs, kWide>(cos + int64_t{p} * a.half + i0);
          sv[i] = load_table<C, kPairs, kWide>(sin + int64_t{p} * a.half + i0);
          u[i].load(x + t * a.xs0 + h0 * a.xs1 + e0, a.half);
        }
#pragma unroll
        for (int i = 0; i < kTB; ++i)
          if (ok[i])
            u[i].rotate_store(y + (tb + i * ts) * a.ys0 + h0 * a.ys1 + e0, a.half, cv[i], sv[i],
                              sign);
      }
    }
  } else {
    const int per_token = a.heads * upr;
    for (int64_t t = blockIdx.x; t < a.tokens; t += gridDim.x) {
      int32_t p;
      if (!position(t, p)) continue;
      const C* ct = cos + int64_t{p} * a.half;
      const C* st = sin + int64_t{p} * a.half;
      for (int j = static_cast<int>(blockIdx.y * kThreads + threadIdx.x); j < per_token;
           j += static_cast<int>(gridDim.y) * kThreads) {
        const int h = j / upr, k = j - h * upr;
        const int e0 = k * V, i0 = kInterleaved ? e0 / 2 : e0;
        U u;
        u.load(x + t * a.xs0 + h * a.xs1 + e0, a.half);
        u.rotate_store(y + t * a.ys0 + h * a.ys1 + e0, a.half,
                       load_table<C, kPairs, kWide>(ct + i0), load_table<C, kPairs, kWide>(st + i0),
                       sign);
      }
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
  // Enough blocks to fill the GPU: one per token, and when tokens are few (decoding), the heads
  // of a token spread over blockIdx.y too.
  const int64_t per_block_heads =
      kThreads % a.units_per_head == 0 ? kThreads / a.units_per_head : 1;
  const int64_t head_groups =
      kThreads % a.units_per_head == 0
          ? (a.heads + per_block_heads - 1) / per_block_heads
          : (static_cast<int64_t>(a.heads) * a.units_per_head + kThreads - 1) / kThreads;
  // One resident wave of blocks, tokens grid-stride (short-lived blocks cost more than they do).
  const int64_t want = static_cast<int64_t>(sm_count(ctx)) * (2048 / kThreads);
  dim3 grid(static_cast<unsigned>(std::min<int64_t>(a.tokens, want)), 1, 1);
  if (a.tokens < want)
    grid.y = static_cast<unsigned>(std::clamp<int64_t>((want + a.tokens - 1) / a.tokens, 1,
                                                       std::min<int64_t>(head_groups, 65535)));
  rope_kernel<T, C, V, kWide, kInterleaved><<<grid, kThreads, 0, stream_of(ctx)>>>(
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
