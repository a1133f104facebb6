// AdamW on the GPU: one memory-bound pass over the flat buffers (reads p, g, m, v; writes p, m, v
// and the optional bf16 copy). Each thread takes kE = 16 / sizeof(param) consecutive elements per
// grid-stride step, loaded and stored as one 16-byte vector for p, m, v (and a 16- or 8-byte one
// for g and the bf16 copy) when every buffer is aligned to its vector; otherwise, and for the
// n % kE tail, element by element.
//
// The arithmetic is the CPU reference's, in double, in the same order, with round-to-nearest
// intrinsics (no FMA contraction) and the bias corrections computed on the host with std::pow, so
// every stored value is bit-identical to the CPU's. Double math costs nothing here: the kernel is
// bound by the 30 bytes per element it moves (f32 state, f32 grads, bf16 copy).
#include "kernels/adamw.h"
#include "kernels/cuda/common.cuh"

#include <cmath>

namespace r1kit::kernels::cuda {
namespace {

struct Hyper {
  double lr, beta1, one_minus_beta1, beta2, one_minus_beta2, bc1, bc2, eps, decay;
};

// One element: returns the new (p, m, v) as stored values of P.
template <class P>
__device__ __forceinline__ void adamw_element(P& p, P& m, P& v, double g, const Hyper& h) {
  // m ← β1·m + (1 − β1)·g;  v ← β2·v + (1 − β2)·g·g
  const double mi =
      __dadd_rn(__dmul_rn(h.beta1, static_cast<double>(m)), __dmul_rn(h.one_minus_beta1, g));
  const double vi = __dadd_rn(__dmul_rn(h.beta2, static_cast<double>(v)),
                              __dmul_rn(__dmul_rn(h.one_minus_beta2, g), g));
  // p ← p·(1 − lr·wd) − (lr·(m / bc1)) / (sqrt(v / bc2) + eps)
  const double step = __ddiv_rn(__dmul_rn(h.lr, __ddiv_rn(mi, h.bc1)),
                                __dadd_rn(__dsqrt_rn(__ddiv_rn(vi, h.bc2)), h.eps));
  const double pi = __dsub_rn(__dmul_rn(static_cast<double>(p), h.decay), step);
  m = static_cast<P>(mi);
  v = static_cast<P>(vi);
  p = static_cast<P>(pi);
}

template <class G>
__device__ __forceinline__ double grad_value(G g) {
  return static_cast<double>(to_acc(g));
}

// A naturally aligned vector of K elements of T (K·sizeof(T) = 4, 8 or 16 bytes).
template <class T, int K>
struct alignas(sizeof(T) * K) Vec {
  T v[K];
};
template <int Bytes>
struct RawOf;
template <>
struct RawOf<4> {
  using type = unsigned;
};
template <>
struct RawOf<8> {
  using type = uint2;
};
template <>
struct RawOf<16> {
  using type = uint4;
};

template <class T, int K>
__device__ __forceinline__ Vec<T, K> load_vec(const T* p) {
  using R = typename RawOf<sizeof(T) * K>::type;
  Vec<T, K> r;
  *reinterpret_cast<R*>(&r) = __ldcs(reinterpret_cast<const R*>(p));
  return r;
}
template <class T, int K>
__device__ __forceinline__ void store_vec(T* p, const Vec<T, K>& x) {
  using R = typename RawOf<sizeof(T) * K>::type;
  __stcs(reinterpret_cast<R*>(p), *reinterpret_cast<const R*>(&x));
}

template <class P, class G, bool kVec>
__global__ void adamw_kernel(P* __restrict__ param, const G* __restrict__ grad, P* __restrict__ m,
                             P* __restrict__ v, bf16* __restrict__ copy, int64_t n, Hyper h) {
  constexpr int kE = 16 / static_cast<int>(sizeof(P));
  const int64_t tid = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  int64_t scalar_begin = 0;
  if constexpr (kVec) {
    const int64_t groups = n / kE;
    for (int64_t q = tid; q < groups; q += stride) {
      const int64_t i = q * kE;
      Vec<P, kE> p = load_vec<P, kE>(param + i);
      Vec<P, kE> mm = load_vec<P, kE>(m + i);
      Vec<P, kE> vv = load_vec<P, kE>(v + i);
      const Vec<G, kE> g = load_vec<G, kE>(grad + i);
#pragma unroll
      for (int k = 0; k < kE; ++k) adamw_element(p.v[k], mm.v[k], vv.v[k], grad_value(g.v[k]), h);
      store_vec<P, kE>(param + i, p);
      store_vec<P, kE>(m + i, mm);
      store_vec<P, kE>(v + i, vv);
      if (copy != nullptr) {
        Vec<bf16, kE> c;
#pragma unroll
        for (int k = 0; k < kE; ++k) c.v[k] = __float2bfloat16_rn(static_cast<float>(p.v[k]));
        store_vec<bf16, kE>(copy + i, c);
      }
    }
    scalar_begin = groups * kE;
  }
  for (int64_t i = scalar_begin + tid; i < n; i += stride) {
    P p = param[i], mm = m[i], vv = v[i];
    adamw_element(p, mm, vv, grad_value(grad[i]), h);
    param[i] = p;
    m[i] = mm;
    v[i] = vv;
    // The bf16 working copy is rounded from the stored master value.
    if (copy != nullptr) copy[i] = __float2bfloat16_rn(static_cast<float>(p));
  }
}

bool aligned_to(const void* p, size_t bytes) {
  return reinterpret_cast<uintptr_t>(p) % bytes == 0;
}

template <class P, class G>
void launch(const TensorView& param, const TensorView& grad, const TensorView& m,
            const TensorView& v, const TensorView& param_bf16, const Hyper& h, Context& ctx) {
  constexpr int kE = 16 / static_cast<int>(sizeof(P));
  const int64_t n = param.numel();
  bf16* copy = param_bf16.defined() ? param_bf16.ptr<bf16>() : nullptr;
  const bool vec = aligned16(param.data) && aligned16(m.data) && aligned16(v.data) &&
                   aligned_to(grad.data, sizeof(G) * kE) &&
                   (copy == nullptr || aligned_to(copy, sizeof(bf16) * kE));
  const int threads = 256;
  const unsigned grid = grid_for(ctx, vec ? (n + kE - 1) / kE : n, threads);
  if (vec) {
    adamw_kernel<P, G, true><<<grid, threads, 0, stream_of(ctx)>>>(
        param.ptr<P>(), grad.ptr<G>(), m.ptr<P>(), v.ptr<P>(), copy, n, h);
  } else {
    adamw_kernel<P, G, false><<<grid, threads, 0, stream_of(ctx)>>>(
        param.ptr<P>(), grad.ptr<G>(), m.ptr<P>(), v.ptr<P>(), copy, n, h);
  }
  R1_CUDA_CHECK_LAUNCH();
}

}  // namespace

void adamw_update(const TensorView& param, const TensorView& grad, const TensorView& m,
                  const TensorView& v, const TensorView& param_bf16, const AdamWParams& hp,
                  Context& ctx) {
  if (param.numel() == 0) return;
  const auto t = static_cast<double>(hp.step);
  // Host-side constants exactly as the CPU reference forms them.
  const Hyper h{hp.lr,
                hp.beta1,
                1.0 - hp.beta1,
                hp.beta2,
                1.0 - hp.beta2,
                1.0 - std::pow(hp.beta1, t),
                1.0 - std::pow(hp.beta2, t),
                hp.eps,
                1.0 - hp.lr * hp.weight_decay};
  dispatch_f32_f64(param.dtype, "adamw", [&](auto ptag) {
    using P = decltype(ptag);
    dispatch_float(grad.dtype, "adamw", [&](auto gtag) {
      using G = decltype(gtag);
      // f64 params take f64 grads only, f32 params f32/bf16/f16 (the front-end's same_precision).
      if constexpr (std::is_same_v<P, double> == std::is_same_v<G, double>) {
        launch<P, G>(param, grad, m, v, param_bf16, h, ctx);
      } else {
        R1_THROW("[adamw] param {} and grad {} mix f64 with another dtype", param.describe(),
                 grad.describe());
      }
    });
  });
}

}  // namespace r1kit::kernels::cuda
