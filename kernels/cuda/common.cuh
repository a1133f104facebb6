// Helpers shared by the CUDA kernels: dtype dispatch, scalar loads/stores that compute in the
// accumulator type (float for f32/bf16/f16, double for f64, as the CPU reference does), 16-byte
// packs for memory-bound loops, warp/block reductions, launch sizing, and the device error sink
// through which kernels report data-dependent errors (ids out of range, NaN logits).
//
// Keep fmt/spdlog out of anything that includes this (nvcc cannot compile fmt's consteval checks);
// core/error.h formats with a small "{}" formatter in CUDA sources.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <type_traits>

#include "core/context.h"
#include "core/cuda_check.h"
#include "core/tensor.h"

namespace r1kit::kernels::cuda {

using bf16 = __nv_bfloat16;
using f16 = __half;

inline cudaStream_t stream_of(const Context& ctx) {
  return static_cast<cudaStream_t>(ctx.stream());
}

// ---- scalar types ------------------------------------------------------------------------------

// The type a kernel computes in for storage type T: double for double, float otherwise.
template <class T>
struct AccOf {
  using type = float;
};
template <>
struct AccOf<double> {
  using type = double;
};
template <class T>
using acc_t = typename AccOf<T>::type;

template <class T>
__device__ __forceinline__ acc_t<T> to_acc(T v) {
  return static_cast<acc_t<T>>(v);
}
template <>
__device__ __forceinline__ float to_acc<bf16>(bf16 v) {
  return __bfloat162float(v);
}
template <>
__device__ __forceinline__ float to_acc<f16>(f16 v) {
  return __half2float(v);
}

// Rounds to T (round to nearest even, like the CPU reference's conversions).
template <class T, class A>
__device__ __forceinline__ T from_acc(A v) {
  if constexpr (std::is_same_v<T, bf16>) {
    return __float2bfloat16_rn(static_cast<float>(v));
  } else if constexpr (std::is_same_v<T, f16>) {
    return __float2half_rn(static_cast<float>(v));
  } else {
    return static_cast<T>(v);
  }
}

template <class T>
__device__ __forceinline__ acc_t<T> load(const T* p) {
  return to_acc(*p);
}
template <class T, class A>
__device__ __forceinline__ void store(T* p, A v) {
  *p = from_acc<T>(v);
}

// Calls fn(T{}) for the float storage types: f32, f64, bf16, f16. Throws for others (front-ends
// have already validated dtypes, so this is a backstop naming the op).
template <class F>
void dispatch_float(DType t, const char* op, F&& fn) {
  switch (t) {
    case DType::f32:
      fn(float{});
      break;
    case DType::f64:
      fn(double{});
      break;
    case DType::bf16:
      fn(bf16{});
      break;
    case DType::f16:
      fn(f16{});
      break;
    default:
      R1_THROW("[{}] unsupported dtype {} on CUDA", op, dtype_name(t));
  }
}

// f32 or f64 (per-row statistics such as lse and rstd).
template <class F>
void dispatch_f32_f64(DType t, const char* op, F&& fn) {
  if (t == DType::f64) {
    fn(double{});
  } else if (t == DType::f32) {
    fn(float{});
  } else {
    R1_THROW("[{}] expected f32 or f64, got {} on CUDA", op, dtype_name(t));
  }
}

// ---- 16-byte packs -----------------------------------------------------------------------------

// kPack<T> elements of T fill 16 bytes (8 bf16/f16, 4 f32, 2 f64).
// a·b rounded once, never contracted into an FMA with a later add: where a value is both stored
// and recomputed (a scaled logit z = x/τ against the row max of the same z), both must round alike.
__device__ __forceinline__ float mul_rn(float a, float b) {
  return __fmul_rn(a, b);
}
__device__ __forceinline__ double mul_rn(double a, double b) {
  return __dmul_rn(a, b);
}

template <class T>
inline constexpr int kPack = 16 / static_cast<int>(sizeof(T));

template <class T>
struct alignas(16) Pack {
  T v[kPack<T>];
};

template <class T>
__device__ __forceinline__ Pack<T> load_pack(const T* p) {
  Pack<T> r;
  *reinterpret_cast<uint4*>(&r) = *reinterpret_cast<const uint4*>(p);
  return r;
}
// Read-only path, not kept in L1 (streams through once).
template <class T>
__device__ __forceinline__ Pack<T> load_pack_stream(const T* p) {
  Pack<T> r;
  *reinterpret_cast<uint4*>(&r) = __ldcs(reinterpret_cast<const uint4*>(p));
  return r;
}
template <class T>
__device__ __forceinline__ void store_pack(T* p, const Pack<T>& v) {
  *reinterpret_cast<uint4*>(p) = *reinterpret_cast<const uint4*>(&v);
}

// True when p is 16-byte aligned (a pointer to a pack).
inline bool aligned16(const void* p) {
  return (reinterpret_cast<uintptr_t>(p) & 15u) == 0;
}
// True when every row start of a row-pitched view (pointer + row stride in elements) is 16-byte
// aligned, so a row can be walked in packs.
inline bool rows_aligned16(const void* p, int64_t row_stride, size_t elem) {
  return aligned16(p) && (static_cast<uint64_t>(row_stride) * elem) % 16 == 0;
}

// ---- reductions --------------------------------------------------------------------------------

template <class A>
__device__ __forceinline__ A warp_sum(A v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
template <class A>
__device__ __forceinline__ A warp_max(A v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = max(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Sum over the block (blockDim.x a multiple of 32, at most 1024); every thread gets the result.
// `scratch` is __shared__ A[32]. Contains barriers: call from every thread of the block.
template <class A>
__device__ A block_sum(A v, A* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
  v = warp_sum(v);
  __syncthreads();  // scratch may still be read by a previous call
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = lane < nw ? scratch[lane] : A(0);
  return warp_sum(v);
}
template <class A>
__device__ A block_max(A v, A* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
  v = warp_max(v);
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = lane < nw ? scratch[lane] : A(-INFINITY);
  return warp_max(v);
}

// ---- launch sizing -----------------------------------------------------------------------------

// Number of multiprocessors of the context's device.
int sm_count(const Context& ctx);

// Blocks for a grid-stride loop over n items with `threads` threads per block, each thread taking
// `per_thread` items per iteration: enough to fill the device (a few waves), never more than the
// work needs, at least 1.
unsigned grid_for(const Context& ctx, int64_t n, int threads, int per_thread = 1);

// ---- device-side errors ------------------------------------------------------------------------

// Where a kernel reports a data-dependent error. `what` is a host string literal with up to three
// "{}" (see DeviceErrorRecord); the device only stores the pointer. The first report wins; the
// host throws it at the next Context::synchronize() or device-to-host copy.
struct ErrorSink {
  DeviceErrorRecord* rec = nullptr;
  const char* what = nullptr;

  __device__ void report(int64_t a, int64_t b = 0, int64_t c = 0) const {
    if (rec == nullptr) return;
    if (atomicCAS(&rec->flag, 0, 2) == 0) {  // 2: being written
      rec->what = what;
      rec->a = a;
      rec->b = b;
      rec->c = c;
      __threadfence_system();
      atomicExch(&rec->flag, 1);
    }
  }
};

inline ErrorSink error_sink(const Context& ctx, const char* what) {
  return ErrorSink{ctx.device_error_record(), what};
}

}  // namespace r1kit::kernels::cuda
