// Small vectors for the memory-bound CUDA kernels (elementwise, rmsnorm, swiglu, rope): Vec<T, V>
// holds V elements of T in registers; load_vec / store_vec move it with 16-byte accesses when
// kWide (by default: when V·sizeof(T) is a multiple of 16; the pointer must then be 16-byte
// aligned), else element by element. Also declares convert_views (elementwise.cu), which the
// kernels with mixed-dtype fallbacks use for their f32 stand-ins.
#pragma once

#include "kernels/cuda/common.cuh"

namespace r1kit::kernels::cuda {

// elementwise.cu: dst = src for views of one shape and any strides, rounding like cast.
void convert_views(const TensorView& dst, const TensorView& src, Context& ctx);

// V elements of T, aligned for 16-byte (or, for 8-byte vectors, 8-byte) accesses.
template <class T, int V>
struct alignas((V * sizeof(T)) % 16 == 0 ? 16 : (V * sizeof(T) == 8 ? 8 : alignof(T))) Vec {
  T v[V];
};

template <class T, int V, bool kWide = (V * sizeof(T)) % 16 == 0>
__device__ __forceinline__ Vec<T, V> load_vec(const T* p) {
  Vec<T, V> r;
  if constexpr (kWide) {
    static_assert((V * sizeof(T)) % 16 == 0);
#pragma unroll
    for (int c = 0; c < static_cast<int>(V * sizeof(T) / 16); ++c)
      reinterpret_cast<uint4*>(&r)[c] = reinterpret_cast<const uint4*>(p)[c];
  } else {
#pragma unroll
    for (int k = 0; k < V; ++k) r.v[k] = p[k];
  }
  return r;
}

template <class T, int V, bool kWide = (V * sizeof(T)) % 16 == 0>
__device__ __forceinline__ void store_vec(T* p, const Vec<T, V>& r) {
  if constexpr (kWide) {
    static_assert((V * sizeof(T)) % 16 == 0);
#pragma unroll
    for (int c = 0; c < static_cast<int>(V * sizeof(T) / 16); ++c)
      reinterpret_cast<uint4*>(p)[c] = reinterpret_cast<const uint4*>(&r)[c];
  } else {
#pragma unroll
    for (int k = 0; k < V; ++k) p[k] = r.v[k];
  }
}

}  // namespace r1kit::kernels::cuda
