// Elementwise ops on the GPU: flat grid-stride loops over contiguous tensors, 16-byte packs when
// every pointer is 16-byte aligned (a scalar loop takes the tail, or everything when a view starts
// unaligned), two packs per thread per iteration so several loads are in flight. All tensors of one
// dtype run the typed kernels; mixed dtypes (bf16 y with f32 a, ...; never with f64, the front-end
// forbids it) run a scalar kernel that reads each tensor through its dtype. Each result is
// computed in acc_t (float, double for f64) and rounded once to the output dtype.
//
// cast reproduces the CPU's conversions bit for bit, NaN payloads included: the CPU converts
// through double (load_as_double/store_from_double) except for its direct f32 <-> bf16 loops, and
// x86 quiets a NaN and keeps the top payload bits on each float <-> double step.
//
// convert_views (strided, any float dtypes) is also used by the f32 stand-ins of the other kernels
// of this group (rmsnorm.cu, rope.cu, swiglu.cu) for mixed-dtype calls.
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/vec.cuh"
#include "kernels/elementwise.h"

#include <cstring>

namespace r1kit::kernels::cuda {

namespace {

constexpr int kThreads = 256;
constexpr int kUnroll = 2;  // packs per thread per iteration

// ---- exact conversions (the CPU's, including NaN bits) ----------------------------------------

__device__ __forceinline__ uint16_t bits_of(bf16 v) {
  return __bfloat16_as_ushort(v);
}
__device__ __forceinline__ uint16_t bits_of(f16 v) {
  return __half_as_ushort(v);
}

// core/dtype.cpp f16_bits_to_f32 (NaN payload kept).
__device__ __forceinline__ float f16_bits_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu;
  if (exp == 0) {
    const float v = static_cast<float>(mant) * 5.9604644775390625e-08f;  // mant · 2^-24, exact
    return sign ? -v : v;
  }
  if (exp == 31) return __uint_as_float(sign | 0x7f800000u | (mant << 13));
  return __uint_as_float(sign | ((exp - 15 + 127) << 23) | (mant << 13));
}

// core/dtype.cpp f32_to_f16_bits: round to nearest even, subnormals, overflow to inf, NaN 0x7e00.
__device__ __forceinline__ uint16_t float_to_f16_bits(float f) {
  const uint32_t x = __float_as_uint(f);
  const uint32_t sign = (x >> 16) & 0x8000u, mag = x & 0x7fffffffu;
  if (mag > 0x7f800000u) return static_cast<uint16_t>(sign | 0x7e00u);
  if (mag >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);
  if (mag < 0x38800000u) {
    const float r = rintf(__uint_as_float(mag) * 16777216.0f);  // exact scaling, then RNE
    return static_cast<uint16_t>(sign | static_cast<uint32_t>(r));
  }
  const uint32_t mant = mag & 0x7fffffu;
  uint32_t h = ((((mag >> 23) - 127 + 15) << 10)) | (mant >> 13);
  const uint32_t rest = mant & 0x1fffu;
  if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) h += 1;
  return static_cast<uint16_t>(sign | h);
}

// (double)f as x86 does it: exact, a NaN comes out quiet with its payload shifted up.
__device__ __forceinline__ double float_to_double_cpu(float f) {
  const uint32_t u = __float_as_uint(f);
  if ((u & 0x7fffffffu) > 0x7f800000u)
    return __longlong_as_double(
        static_cast<long long>((static_cast<uint64_t>(u >> 31) << 63) | 0x7ff8000000000000ull |
                               (static_cast<uint64_t>(u & 0x7fffffu) << 29)));
  return static_cast<double>(f);
}
// (float)d as x86 does it: round to nearest even, a NaN comes out quiet with its top payload bits.
__device__ __forceinline__ float double_to_float_cpu(double d) {
  const uint64_t b = static_cast<uint64_t>(__double_as_longlong(d));
  if ((b & 0x7fffffffffffffffull) > 0x7ff0000000000000ull)
    return __uint_as_float((static_cast<uint32_t>(b >> 63) << 31) | 0x7fc00000u |
                           static_cast<uint32_t>((b >> 29) & 0x3fffffu));
  return __double2float_rn(d);
}

// Element value as float, bits kept (bf16: the upper half of an f32; f16 as core/dtype.cpp).
template <class S>
__device__ __forceinline__ float src_float(S v) {
  if constexpr (std::is_same_v<S, bf16>) {
    return __uint_as_float(static_cast<uint32_t>(bits_of(v)) << 16);
  } else if constexpr (std::is_same_v<S, f16>) {
    return f16_bits_to_float(bits_of(v));
  } else {
    return static_cast<float>(v);  // S = float
  }
}
// load_as_double.
template <class S>
__device__ __forceinline__ double src_double(S v) {
  if constexpr (std::is_same_v<S, double>) {
    return v;
  } else {
    return float_to_double_cpu(src_float(v));
  }
}
// store_from_double.
template <class D>
__device__ __forceinline__ D dst_from_double(double d) {
  if constexpr (std::is_same_v<D, double>) {
    return d;
  } else {
    const float f = double_to_float_cpu(d);
    if constexpr (std::is_same_v<D, bf16>) {
      return __ushort_as_bfloat16(f32_to_bf16_bits(f));
    } else if constexpr (std::is_same_v<D, f16>) {
      return __ushort_as_half(float_to_f16_bits(f));
    } else {
      return f;
    }
  }
}
// cpu::convert for one element (a copy when the dtypes are the same).
template <class S, class D>
__device__ __forceinline__ D convert_value(S v) {
  if constexpr (std::is_same_v<S, D>) {
    return v;
  } else if constexpr (std::is_same_v<S, bf16> && std::is_same_v<D, float>) {
    return src_float(v);  // the CPU's direct loop: a shift, no NaN quieting
  } else if constexpr (std::is_same_v<S, float> && std::is_same_v<D, bf16>) {
    return __ushort_as_bfloat16(f32_to_bf16_bits(v));  // the CPU's direct loop
  } else {
    return dst_from_double<D>(src_double(v));
  }
}

// ---- raw vectors -------------------------------------------------------------------------------

// ---- the arithmetic ops ------------------------------------------------------------------------

// add:       o0 = i0 + i1                   mul:       o0 = i0 · i1
// axpy:      o0 = o0 + alpha · i0           scale:     o0 = alpha · i0
// grads:     o0 (=|+=) i0, o1 (=|+=) i0     (add_backward: i0 = dy; o0 = da, o1 = db)
// mul_grads: o0 = i0 · i2, o1 = i0 · i1     (mul_backward: i0 = dy, i1 = a, i2 = b)
enum class Op : int { add, mul, axpy, scale, grads, mul_grads };

template <Op kOp>
constexpr int kInputs = kOp == Op::mul_grads                 ? 3
                        : (kOp == Op::add || kOp == Op::mul) ? 2
                                                             : 1;
template <Op kOp>
constexpr bool kTwoOutputs = kOp == Op::grads || kOp == Op::mul_grads;

struct Args {
  void* out0 = nullptr;  // null: skipped (grads, mul_grads)
  void* out1 = nullptr;
  const void* in0 = nullptr;
  const void* in1 = nullptr;
  const void* in2 = nullptr;
  bool acc0 = false, acc1 = false;  // the output's old value is an operand (+=)
};

template <Op kOp, class A>
__device__ __forceinline__ void apply(A i0, A i1, A i2, A& o0, A& o1, A alpha, bool acc0,
                                      bool acc1) {
  if constexpr (kOp == Op::add) {
    o0 = i0 + i1;
  } else if constexpr (kOp == Op::mul) {
    o0 = i0 * i1;
  } else if constexpr (kOp == Op::axpy) {
    o0 = o0 + alpha * i0;
  } else if constexpr (kOp == Op::scale) {
    o0 = alpha * i0;
  } else if constexpr (kOp == Op::grads) {
    o0 = acc0 ? o0 + i0 : i0;
    o1 = acc1 ? o1 + i0 : i0;
  } else {
    o0 = i0 * i2;
    o1 = i0 * i1;
  }
}

// All tensors of dtype T. Packs [0, npacks) first (npacks = 0 when a pointer is unaligned), then
// elements [npacks·V, n) one by one.
template <class T, Op kOp>
__global__ void __launch_bounds__(kThreads)
    typed_kernel(Args p, int64_t n, int64_t npacks, acc_t<T> alpha) {
  using A = acc_t<T>;
  constexpr int V = kPack<T>;
  constexpr int K = kInputs<kOp>;
  T* o0p = static_cast<T*>(p.out0);
  T* o1p = static_cast<T*>(p.out1);
  const T* i0p = static_cast<const T*>(p.in0);
  const T* i1p = static_cast<const T*>(p.in1);
  const T* i2p = static_cast<const T*>(p.in2);
  const bool has0 = o0p != nullptr, has1 = kTwoOutputs<kOp> && o1p != nullptr;
  const bool read0 = has0 && (kOp == Op::axpy || p.acc0), read1 = has1 && p.acc1;
  const int64_t tid = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t base = tid; base < npacks; base += stride * kUnroll) {
    Vec<T, V> a[kUnroll], b[kUnroll], c[kUnroll], r0[kUnroll], r1[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t q = base + u * stride;
      if (q >= npacks) continue;
      a[u] = load_vec<T, V>(i0p + q * V);
      if constexpr (K >= 2) b[u] = load_vec<T, V>(i1p + q * V);
      if constexpr (K >= 3) c[u] = load_vec<T, V>(i2p + q * V);
      if (read0) r0[u] = load_vec<T, V>(o0p + q * V);
      if (read1) r1[u] = load_vec<T, V>(o1p + q * V);
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t q = base + u * stride;
      if (q >= npacks) continue;
#pragma unroll
      for (int k = 0; k < V; ++k) {
        const A x0 = to_acc(a[u].v[k]);
        const A x1 = K >= 2 ? to_acc(b[u].v[k]) : A(0);
        const A x2 = K >= 3 ? to_acc(c[u].v[k]) : A(0);
        A y0 = read0 ? to_acc(r0[u].v[k]) : A(0);
        A y1 = read1 ? to_acc(r1[u].v[k]) : A(0);
        apply<kOp>(x0, x1, x2, y0, y1, alpha, p.acc0, p.acc1);
        r0[u].v[k] = from_acc<T>(y0);
        r1[u].v[k] = from_acc<T>(y1);
      }
      if (has0) store_vec<T, V>(o0p + q * V, r0[u]);
      if (has1) store_vec<T, V>(o1p + q * V, r1[u]);
    }
  }
  for (int64_t i = npacks * V + tid; i < n; i += stride) {
    const A x0 = to_acc(i0p[i]);
    const A x1 = K >= 2 ? to_acc(i1p[i]) : A(0);
    const A x2 = K >= 3 ? to_acc(i2p[i]) : A(0);
    A y0 = read0 ? to_acc(o0p[i]) : A(0);
    A y1 = read1 ? to_acc(o1p[i]) : A(0);
    apply<kOp>(x0, x1, x2, y0, y1, alpha, p.acc0, p.acc1);
    if (has0) o0p[i] = from_acc<T>(y0);
    if (has1) o1p[i] = from_acc<T>(y1);
  }
}

// Mixed dtypes (f32, bf16, f16; f64 never mixes): element by element, each tensor read and written
// through its own dtype, computed in float.
__device__ __forceinline__ float load_dyn(const void* p, DType t, int64_t i) {
  switch (t) {
    case DType::bf16:
      return __bfloat162float(static_cast<const bf16*>(p)[i]);
    case DType::f16:
      return __half2float(static_cast<const f16*>(p)[i]);
    default:
      return static_cast<const float*>(p)[i];
  }
}
__device__ __forceinline__ void store_dyn(void* p, DType t, int64_t i, float v) {
  switch (t) {
    case DType::bf16:
      static_cast<bf16*>(p)[i] = __float2bfloat16_rn(v);
      break;
    case DType::f16:
      static_cast<f16*>(p)[i] = __float2half_rn(v);
      break;
    default:
      static_cast<float*>(p)[i] = v;
  }
}

struct DynTypes {
  DType out0, out1, in0, in1, in2;
};

template <Op kOp>
__global__ void __launch_bounds__(kThreads)
    mixed_kernel(Args p, DynTypes t, int64_t n, float alpha) {
  constexpr int K = kInputs<kOp>;
  const bool has0 = p.out0 != nullptr, has1 = kTwoOutputs<kOp> && p.out1 != nullptr;
  const bool read0 = has0 && (kOp == Op::axpy || p.acc0), read1 = has1 && p.acc1;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride) {
    const float x0 = load_dyn(p.in0, t.in0, i);
    const float x1 = K >= 2 ? load_dyn(p.in1, t.in1, i) : 0.f;
    const float x2 = K >= 3 ? load_dyn(p.in2, t.in2, i) : 0.f;
    float y0 = read0 ? load_dyn(p.out0, t.out0, i) : 0.f;
    float y1 = read1 ? load_dyn(p.out1, t.out1, i) : 0.f;
    apply<kOp>(x0, x1, x2, y0, y1, alpha, p.acc0, p.acc1);
    if (has0) store_dyn(p.out0, t.out0, i, y0);
    if (has1) store_dyn(p.out1, t.out1, i, y1);
  }
}

// Runs op kOp over n elements. out0/out1/in* are views or nullptr (absent); alpha for axpy/scale.
template <Op kOp>
void run(const TensorView* out0, const TensorView* out1, const TensorView* in0,
         const TensorView* in1, const TensorView* in2, double alpha, bool acc0, bool acc1,
         Context& ctx) {
  const int64_t n = in0->numel();
  if (n == 0) return;
  const TensorView* all[] = {out0, out1, in0, in1, in2};
  Args p;
  p.out0 = out0 ? out0->data : nullptr;
  p.out1 = out1 ? out1->data : nullptr;
  p.in0 = in0->data;
  p.in1 = in1 ? in1->data : nullptr;
  p.in2 = in2 ? in2->data : nullptr;
  p.acc0 = acc0;
  p.acc1 = acc1;
  bool same = true, aligned = true;
  for (const TensorView* v : all) {
    if (!v) continue;
    same = same && v->dtype == in0->dtype;
    aligned = aligned && aligned16(v->data);
  }
  cudaStream_t stream = stream_of(ctx);
  if (!same) {
    DynTypes t{out0 ? out0->dtype : DType::f32, out1 ? out1->dtype : DType::f32, in0->dtype,
               in1 ? in1->dtype : DType::f32, in2 ? in2->dtype : DType::f32};
    mixed_kernel<kOp>
        <<<grid_for(ctx, n, kThreads), kThreads, 0, stream>>>(p, t, n, static_cast<float>(alpha));
    R1_CUDA_CHECK_LAUNCH();
    return;
  }
  dispatch_float(in0->dtype, "elementwise", [&](auto tag) {
    using T = decltype(tag);
    const int64_t npacks = aligned ? n / kPack<T> : 0;
    const unsigned grid =
        npacks > 0 ? grid_for(ctx, npacks, kThreads, kUnroll) : grid_for(ctx, n, kThreads);
    typed_kernel<T, kOp><<<grid, kThreads, 0, stream>>>(p, n, npacks, static_cast<acc_t<T>>(alpha));
    R1_CUDA_CHECK_LAUNCH();
  });
}

const TensorView* opt(const TensorView& v) {
  return v.defined() ? &v : nullptr;
}

// ---- cast --------------------------------------------------------------------------------------

constexpr int kCastVec = 8;  // elements per vector: 16 bytes of the narrowest dtype

template <class S, class D>
__global__ void __launch_bounds__(kThreads)
    cast_kernel(D* dst, const S* src, int64_t n, int64_t nvec) {
  const int64_t tid = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t q = tid; q < nvec; q += stride) {
    const Vec<S, kCastVec> a = load_vec<S, kCastVec>(src + q * kCastVec);
    Vec<D, kCastVec> r;
#pragma unroll
    for (int k = 0; k < kCastVec; ++k) r.v[k] = convert_value<S, D>(a.v[k]);
    store_vec<D, kCastVec>(dst + q * kCastVec, r);
  }
  for (int64_t i = nvec * kCastVec + tid; i < n; i += stride) dst[i] = convert_value<S, D>(src[i]);
}

// Calls fn(S{}, D{}) for a pair of float dtypes.
template <class F>
void dispatch_pair(DType s, DType d, F&& fn) {
  dispatch_float(s, "cast",
                 [&](auto st) { dispatch_float(d, "cast", [&](auto dt) { fn(st, dt); }); });
}

// Strided conversion of views of up to 4 dims (same shape).
struct Strided {
  int64_t shape[kMaxDims];
  int64_t dst_stride[kMaxDims];
  int64_t src_stride[kMaxDims];
  int ndim;
};

template <class S, class D>
__global__ void __launch_bounds__(kThreads)
    convert_strided_kernel(D* dst, const S* src, Strided g, int64_t n) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride) {
    int64_t rem = i, od = 0, os = 0;
    for (int d = g.ndim - 1; d >= 0; --d) {
      const int64_t k = rem % g.shape[d];
      rem /= g.shape[d];
      od += k * g.dst_stride[d];
      os += k * g.src_stride[d];
    }
    dst[od] = convert_value<S, D>(src[os]);
  }
}

// ---- fill --------------------------------------------------------------------------------------

template <class U>
__global__ void __launch_bounds__(kThreads) fill_kernel(U* y, U bits, int64_t n, int64_t nvec) {
  constexpr int V = 16 / sizeof(U);
  Vec<U, V> r;
#pragma unroll
  for (int k = 0; k < V; ++k) r.v[k] = bits;
  const int64_t tid = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t q = tid; q < nvec; q += stride) store_vec<U, V>(y + q * V, r);
  for (int64_t i = nvec * V + tid; i < n; i += stride) y[i] = bits;
}

template <class U>
void launch_fill(const TensorView& y, const unsigned char* bits, Context& ctx) {
  U b;
  std::memcpy(&b, bits, sizeof(U));
  const int64_t n = y.numel();
  const int64_t nvec = aligned16(y.data) ? n / static_cast<int64_t>(16 / sizeof(U)) : 0;
  fill_kernel<U><<<grid_for(ctx, nvec > 0 ? nvec : n, kThreads), kThreads, 0, stream_of(ctx)>>>(
      static_cast<U*>(y.data), b, n, nvec);
  R1_CUDA_CHECK_LAUNCH();
}

}  // namespace

void add_forward(const TensorView& y, const TensorView& a, const TensorView& b, Context& ctx) {
  run<Op::add>(&y, nullptr, &a, &b, nullptr, 0, false, false, ctx);
}

void add_backward(const TensorView& da, const TensorView& db, const TensorView& dy,
                  GradWrite da_write, GradWrite db_write, Context& ctx) {
  if (!da.defined() && !db.defined()) return;
  run<Op::grads>(opt(da), opt(db), &dy, nullptr, nullptr, 0, da_write == GradWrite::accumulate,
                 db_write == GradWrite::accumulate, ctx);
}

void axpy(const TensorView& y, double alpha, const TensorView& x, Context& ctx) {
  run<Op::axpy>(&y, nullptr, &x, nullptr, nullptr, alpha, true, false, ctx);
}

void mul_forward(const TensorView& y, const TensorView& a, const TensorView& b, Context& ctx) {
  run<Op::mul>(&y, nullptr, &a, &b, nullptr, 0, false, false, ctx);
}

void mul_backward(const TensorView& da, const TensorView& db, const TensorView& dy,
                  const TensorView& a, const TensorView& b, Context& ctx) {
  if (!da.defined() && !db.defined()) return;
  run<Op::mul_grads>(opt(da), opt(db), &dy, &a, &b, 0, false, false, ctx);
}

void scale(const TensorView& y, double alpha, const TensorView& x, Context& ctx) {
  run<Op::scale>(&y, nullptr, &x, nullptr, nullptr, alpha, false, false, ctx);
}

void cast(const TensorView& dst, const TensorView& src, Context& ctx) {
  const int64_t n = src.numel();
  if (n == 0) return;
  if (dst.dtype == src.dtype) {  // the CPU copies the bytes
    R1_CUDA_CHECK(cudaMemcpyAsync(dst.data, src.data, src.nbytes(), cudaMemcpyDeviceToDevice,
                                  stream_of(ctx)));
    return;
  }
  const int64_t nvec = aligned16(dst.data) && aligned16(src.data) ? n / kCastVec : 0;
  dispatch_pair(src.dtype, dst.dtype, [&](auto st, auto dt) {
    using S = decltype(st);
    using D = decltype(dt);
    if constexpr (!std::is_same_v<S, D>) {
      cast_kernel<S, D>
          <<<grid_for(ctx, nvec > 0 ? nvec : n, kThreads), kThreads, 0, stream_of(ctx)>>>(
              dst.ptr<D>(), src.ptr<S>(), n, nvec);
      R1_CUDA_CHECK_LAUNCH();
    }
  });
}

void fill(const TensorView& y, double value, Context& ctx) {
  if (y.numel() == 0) return;
  unsigned char bits[8] = {};
  store_from_double(bits, y.dtype, 0, value);  // the CPU's rounding, then copied bit for bit
  switch (dtype_size(y.dtype)) {
    case 8:
      return launch_fill<uint64_t>(y, bits, ctx);
    case 4:
      return launch_fill<uint32_t>(y, bits, ctx);
    default:
      return launch_fill<uint16_t>(y, bits, ctx);
  }
}

// dst = src for two views of one shape (up to 4 dims, any strides), rounding as cast does.
void convert_views(const TensorView& dst, const TensorView& src, Context& ctx) {
  const int64_t n = src.numel();
  if (n == 0) return;
  if (dst.is_contiguous() && src.is_contiguous()) return cast(dst, src, ctx);
  Strided g{};
  g.ndim = src.ndim;
  for (int d = 0; d < src.ndim; ++d) {
    g.shape[d] = src.shape[d];
    g.dst_stride[d] = dst.stride[d];
    g.src_stride[d] = src.stride[d];
  }
  dispatch_pair(src.dtype, dst.dtype, [&](auto st, auto dt) {
    using S = decltype(st);
    using D = decltype(dt);
    convert_strided_kernel<S, D><<<grid_for(ctx, n, kThreads), kThreads, 0, stream_of(ctx)>>>(
        dst.ptr<D>(), src.ptr<S>(), g, n);
    R1_CUDA_CHECK_LAUNCH();
  });
}

void copy(const TensorView& dst, const TensorView& src, Context& ctx) {
  convert_views(dst, src, ctx);
}

}  // namespace r1kit::kernels::cuda
