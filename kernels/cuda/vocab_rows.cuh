// Building blocks of the row kernels over a vocabulary (softmax, cross-entropy, the token log-prob
// head), shared by kernels/cuda/{softmax,cross_entropy,logprob}.cu.
//
// Layout: rows of a contiguous (N, V) tensor, one warp per row for short rows (8 rows per block of
// 256 threads) or one block per row otherwise; rows are visited grid-stride so any N fits the grid.
// Each row is walked as a scalar head up to the first 16-byte boundary, 16-byte packs, and a scalar
// tail (the vector path; every array of a call must then share its address modulo 16, which the
// host checks), or element by element (the scalar path). kUnroll packs per thread are loaded
// before any is used, so several 16-byte loads are in flight per thread.
//
// Statistics: the online max / sum-exp (m, s) and, for the entropy, sd = Σ e_j·(z_j − m), folded
// one pack at a time (one rescale when the pack raises the max) and merged across the group in a
// fixed tree order, so results are deterministic and every thread of a group sees the same values.
// −inf entries contribute 0 (never exp(−inf − (−inf))); a row with no entry above −inf has s = NaN,
// like the CPU reference (whose sum there is Σ exp(NaN)).
//
// Row cache: kernels that need a second pass over a row (softmax and log_softmax forward, the
// softmax backward, the log-prob backward with entropy) keep the row, or as much of it as fits,
// in shared memory (plan_rows decides); each element's slot belongs to the thread that reads it in
// both passes, so no barrier guards the cache.
#pragma once

#include <cmath>
#include <cstdint>

#include "kernels/cuda/common.cuh"

namespace r1kit::kernels::cuda::vocab {

inline constexpr int kUnroll = 4;            // packs in flight per thread
inline constexpr int kWarpRowThreads = 256;  // warp-per-row blocks: 8 rows each
// Block-per-row blocks have at most this many threads (the launch bounds: <= 64 registers).
inline constexpr int kMaxThreads = 1024;
// Rows of up to this many packs per lane go warp-per-row (4096 bf16, 2048 f32, 1024 f64).
inline constexpr int64_t kWarpRowMaxPacksPerLane = 16;
// Largest dynamic shared memory a block caching whole rows uses (two 512-thread blocks per SM).
inline constexpr int64_t kMaxCacheBytes = 100 * 1024;

// ---- math in the accumulator type ------------------------------------------------------------

// exp: __expf (ex2.approx; error grows with |x|, and the terms with large |x| are the tiny ones) in
// float, exp in double.
template <class A>
__device__ __forceinline__ A vexp(A x) {
  if constexpr (std::is_same_v<A, float>) {
    return __expf(x);
  } else {
    return exp(x);
  }
}
// 2^x: ex2.approx (what __expf runs after its multiply by log2 e) in float, exp2 in double.
template <class A>
__device__ __forceinline__ A vexp2(A x) {
  if constexpr (std::is_same_v<A, float>) {
    float r;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(r) : "f"(x));
    return r;
  } else {
    return exp2(x);
  }
}
template <class A>
__device__ __forceinline__ A vlog(A x) {
  if constexpr (std::is_same_v<A, float>) {
    return logf(x);
  } else {
    return log(x);
  }
}
template <class A>
__device__ __forceinline__ A vmax(A a, A b) {
  if constexpr (std::is_same_v<A, float>) {
    return fmaxf(a, b);
  } else {
    return fmax(a, b);
  }
}
template <class A>
__device__ __forceinline__ A neg_inf() {
  return -static_cast<A>(INFINITY);
}
template <class A>
__device__ __forceinline__ A nan_of() {
  return static_cast<A>(NAN);
}

// A per-row scalar (loss, lse, dloss, ...) of dtype dt (f32, f64, bf16 or f16), read or written
// once per row, so a runtime switch costs nothing.
template <class A>
__device__ __forceinline__ A load_stat(const void* p, DType dt, int64_t i) {
  switch (dt) {
    case DType::f64:
      return static_cast<A>(static_cast<const double*>(p)[i]);
    case DType::bf16:
      return static_cast<A>(__bfloat162float(static_cast<const bf16*>(p)[i]));
    case DType::f16:
      return static_cast<A>(__half2float(static_cast<const f16*>(p)[i]));
    default:
      return static_cast<A>(static_cast<const float*>(p)[i]);
  }
}
template <class A>
__device__ __forceinline__ void store_stat(void* p, DType dt, int64_t i, A v) {
  switch (dt) {
    case DType::f64:
      static_cast<double*>(p)[i] = static_cast<double>(v);
      break;
    case DType::bf16:
      static_cast<bf16*>(p)[i] = __float2bfloat16_rn(static_cast<float>(v));
      break;
    case DType::f16:
      static_cast<f16*>(p)[i] = __float2half_rn(static_cast<float>(v));
      break;
    default:
      static_cast<float*>(p)[i] = static_cast<float>(v);
  }
}

// ---- the online max / sum-exp ------------------------------------------------------------------

// m = max z, s = Σ exp(z − m), and with kEnt sd = Σ exp(z − m)·(z − m). No default member
// initialisers (it lives in __shared__ too): start from Stats::empty(). kBase2: the z are in log2
// units (z·log2 e given, 2^(z − m) summed): a caller that scales its logits anyway (by 1/τ) folds
// log2 e into that product and saves the multiply inside every exp.
template <class A, bool kEnt, bool kBase2 = false>
struct Stats {
  A m, s, sd;
  static constexpr bool kEntropy = kEnt;

  __device__ __forceinline__ static A ex(A x) {
    if constexpr (kBase2) {
      return vexp2(x);
    } else {
      return vexp(x);
    }
  }

  __device__ __forceinline__ static Stats empty() {
    Stats r;
    r.m = neg_inf<A>();
    r.s = A(0);
    r.sd = A(0);
    return r;
  }

  // Moves the reference point to mn > m.
  __device__ __forceinline__ void rescale_to(A mn) {
    const A delta = m - mn;  // −inf when m is (nothing seen yet)
    const A a = ex(delta);
    if constexpr (kEnt) sd = a > A(0) ? a * (sd + delta * s) : A(0);
    s *= a;  // keeps a NaN
    m = mn;
  }

  // Folds in n values (one pack, or one scalar).
  template <int N>
  __device__ __forceinline__ void add(const A (&z)[N]) {
    A pm = z[0];
#pragma unroll
    for (int i = 1; i < N; ++i) pm = vmax(pm, z[i]);
    if (pm > m) rescale_to(pm);
    // m is −inf only while every value seen is −inf (or NaN): then use 0 so that exp(−inf) = 0.
    const A base = m == neg_inf<A>() ? A(0) : m;
#pragma unroll
    for (int i = 0; i < N; ++i) {
      const A d = z[i] - base;
      const A e = ex(d);
      s += e;
      if constexpr (kEnt) sd += e > A(0) ? e * d : A(0);  // 0·(−inf) is 0 here, not NaN
    }
  }

  __device__ __forceinline__ static Stats merge(const Stats& a, const Stats& b) {
    Stats r;
    r.m = vmax(a.m, b.m);
    if (r.m == neg_inf<A>()) {  // neither has seen a value above −inf: s are 0 (or NaN)
      r.s = a.s + b.s;
      r.sd = A(0);
      return r;
    }
    const A da = a.m - r.m, db = b.m - r.m;
    const A ea = ex(da), eb = ex(db);
    r.s = a.s * ea + b.s * eb;
    if constexpr (kEnt) {
      r.sd =
          (ea > A(0) ? ea * (a.sd + da * a.s) : A(0)) + (eb > A(0) ? eb * (b.sd + db * b.s) : A(0));
    } else {
      r.sd = A(0);
    }
    return r;
  }

  // After the group merge: a row of v >= 1 entries with no entry above −inf gets s = NaN (as the
  // CPU reference does), so everything derived from it is NaN.
  __device__ __forceinline__ void finish(int v) {
    if (m == neg_inf<A>() && v > 0) s = nan_of<A>();
  }
};

template <class St>
__device__ __forceinline__ St shfl_down(const St& st, int o) {
  St r;
  r.m = __shfl_down_sync(0xffffffffu, st.m, o);
  r.s = __shfl_down_sync(0xffffffffu, st.s, o);
  r.sd = St::kEntropy ? __shfl_down_sync(0xffffffffu, st.sd, o) : decltype(st.sd)(0);
  return r;
}
template <class St>
__device__ __forceinline__ St shfl_bcast(const St& st) {
  St r;
  r.m = __shfl_sync(0xffffffffu, st.m, 0);
  r.s = __shfl_sync(0xffffffffu, st.s, 0);
  r.sd = St::kEntropy ? __shfl_sync(0xffffffffu, st.sd, 0) : decltype(st.sd)(0);
  return r;
}

// Tree merge to lane 0, then broadcast: every lane gets lane 0's value (a butterfly would let FMA
// contraction give lanes results that differ in the last bit).
template <class St>
__device__ __forceinline__ St warp_merge(St st) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) st = St::merge(st, shfl_down(st, o));
  return shfl_bcast(st);
}

// ---- groups: a warp or a block per row ---------------------------------------------------------

template <bool kWarp>
struct Group {
  int tid, nt;  // this thread's index in the group, the group's size
  int slot;     // the group's index in the block (its row-cache region)
  int per_block;

  __device__ __forceinline__ Group() {
    if constexpr (kWarp) {
      tid = static_cast<int>(threadIdx.x & 31);
      nt = 32;
      slot = static_cast<int>(threadIdx.x >> 5);
      per_block = static_cast<int>(blockDim.x >> 5);
    } else {
      tid = static_cast<int>(threadIdx.x);
      nt = static_cast<int>(blockDim.x);
      slot = 0;
      per_block = 1;
    }
  }
  __device__ __forceinline__ int64_t first_row() const {
    return static_cast<int64_t>(blockIdx.x) * per_block + slot;
  }
  __device__ __forceinline__ int64_t row_stride() const {
    return static_cast<int64_t>(gridDim.x) * per_block;
  }
};

// Every thread of the group gets the merged statistics. `red` is __shared__ Stats[32] (block
// groups only). Block groups: contains barriers, call from every thread of the block.
template <bool kWarp, class St>
__device__ __forceinline__ St group_merge(St st, St* red) {
  st = warp_merge(st);
  if constexpr (!kWarp) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    __syncthreads();  // red may still be read by the previous row's merge
    if (lane == 0) red[warp] = st;
    __syncthreads();
    st = warp_merge(lane < nw ? red[lane] : St::empty());
  }
  return st;
}

// Sum over the group; every thread gets the result. `red` is __shared__ A[32] (block groups).
template <bool kWarp, class A>
__device__ __forceinline__ A group_sum(A v, A* red) {
  if constexpr (kWarp) {
    return warp_sum(v);
  } else {
    return block_sum(v, red);
  }
}

// ---- walking a row -----------------------------------------------------------------------------

// Elements [0, head) and [tail, v) are scalars; [head, tail) are npack 16-byte packs. Indices
// within a row are int (the host checks v < 2^30): fewer registers than int64_t.
struct RowSpan {
  int head, npack, tail;
};

template <class T>
__device__ __forceinline__ RowSpan row_span(const T* row, int v, bool vec) {
  if (!vec) return {0, 0, 0};
  constexpr int P = kPack<T>;
  const int mis = static_cast<int>(reinterpret_cast<uintptr_t>(row) & 15u);
  int head = mis == 0 ? 0 : (16 - mis) / static_cast<int>(sizeof(T));
  head = head < v ? head : v;
  const int np = (v - head) / P;
  return {head, np, head + np * P};
}

// Calls fs(j, slot) for this thread's scalar elements (slot: its row-cache slot, owned by this
// thread whatever the row) and fp(k0) for each batch of packs k0, k0 + nt, ... (kUnroll of them,
// those < npack).
template <int P, class FS, class FP>
__device__ __forceinline__ void walk(const RowSpan& sp, int v, int tid, int nt, FS&& fs, FP&& fp) {
  // (unroll 1: the batches already hold kUnroll packs; more would only cost registers)
#pragma unroll 1
  for (int j = tid; j < sp.head; j += nt) fs(j, j);
#pragma unroll 1
  for (int k0 = tid; k0 < sp.npack; k0 += nt * kUnroll) fp(k0);
#pragma unroll 1
  for (int j = sp.tail + tid; j < v; j += nt) fs(j, P + (j - sp.tail));
}

// Loads the packs k0, k0 + stride, ... (U of them, those < npack; load(k) -> B) before using any
// (use(k, b)): the loads are in flight together, and a use that stores over what it loaded (in
// place) is still correct. U <= kUnroll (walk's batches hold kUnroll packs: U < kUnroll takes
// several calls, see batches()).
template <int U, class L, class F>
__device__ __forceinline__ void batch(int k0, int stride, int npack, L&& load, F&& use) {
  using B = decltype(load(k0));
  B b[U];
#pragma unroll
  for (int u = 0; u < U; ++u)
    if (k0 + u * stride < npack) b[u] = load(k0 + u * stride);
#pragma unroll
  for (int u = 0; u < U; ++u)
    if (k0 + u * stride < npack) use(k0 + u * stride, b[u]);
}

// One walk batch (kUnroll packs from k0, stride apart) as kUnroll / U batches of U packs each:
// U = kUnroll / (arrays loaded per pack) keeps the bytes in flight, and the registers, constant.
template <int U, class L, class F>
__device__ __forceinline__ void batches(int k0, int stride, int npack, L&& load, F&& use) {
  static_assert(kUnroll % U == 0);
#pragma unroll
  for (int b = 0; b < kUnroll / U; ++b) batch<U>(k0 + b * U * stride, stride, npack, load, use);
}

// A pack to the accumulator type and back (bf16: bit shifts, and one cvt per pair back; f16: one
// cvt per pair each way).
template <class T>
__device__ __forceinline__ void unpack(const Pack<T>& p, acc_t<T> (&z)[kPack<T>]) {
  if constexpr (std::is_same_v<T, bf16>) {
    const uint4 u = *reinterpret_cast<const uint4*>(&p);
    const uint32_t w[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      z[2 * i] = __uint_as_float(w[i] << 16);
      z[2 * i + 1] = __uint_as_float(w[i] & 0xffff0000u);
    }
  } else if constexpr (std::is_same_v<T, f16>) {
    const __half2* h = reinterpret_cast<const __half2*>(&p);
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const float2 f = __half22float2(h[i]);
      z[2 * i] = f.x;
      z[2 * i + 1] = f.y;
    }
  } else {
#pragma unroll
    for (int i = 0; i < kPack<T>; ++i) z[i] = to_acc(p.v[i]);
  }
}
template <class T>
__device__ __forceinline__ Pack<T> pack(const acc_t<T> (&z)[kPack<T>]) {
  Pack<T> p;
  if constexpr (std::is_same_v<T, bf16>) {
    __nv_bfloat162* q = reinterpret_cast<__nv_bfloat162*>(&p);
#pragma unroll
    for (int i = 0; i < 4; ++i) q[i] = __floats2bfloat162_rn(z[2 * i], z[2 * i + 1]);
  } else if constexpr (std::is_same_v<T, f16>) {
    __half2* q = reinterpret_cast<__half2*>(&p);
#pragma unroll
    for (int i = 0; i < 4; ++i) q[i] = __floats2half2_rn(z[2 * i], z[2 * i + 1]);
  } else {
#pragma unroll
    for (int i = 0; i < kPack<T>; ++i) p.v[i] = from_acc<T>(z[i]);
  }
  return p;
}

// ---- the row cache -----------------------------------------------------------------------------

// One cached row: packs [0, cap) of the row (cap = v / P holds any row whole), then the scalar
// slots ([0, P) the head, P + i the tail's element i; the scalar path has head = tail = 0 and
// caches every element, slot P + j, with cap = 0). Packs >= cap are re-read from global memory.
__host__ __device__ inline int64_t cache_row_bytes(int64_t v, int64_t elem, bool vec, int64_t cap) {
  const int64_t p = 16 / elem;
  if (vec) return cap * 16 + 2 * p * elem;
  return ((p + v) * elem + 15) / 16 * 16;
}

template <class T>
struct RowCache {
  Pack<T>* packs = nullptr;
  T* scalars = nullptr;
  int cap = 0;  // packs [0, cap) are cached

  __device__ __forceinline__ RowCache() = default;
  // Region `index` of the dynamic shared memory, each cache_row_bytes(v, .., cap) long.
  __device__ __forceinline__ RowCache(unsigned char* smem, int index, int v, bool vec, int cap_) {
    cap = vec ? cap_ : 0;
    const int64_t bytes = cache_row_bytes(v, sizeof(T), vec, cap);
    unsigned char* base = smem + index * bytes;
    packs = reinterpret_cast<Pack<T>*>(base);
    scalars = reinterpret_cast<T*>(base + static_cast<int64_t>(cap) * 16);
  }
  __device__ __forceinline__ bool has(int k) const { return k < cap; }
};

// ---- launch planning ---------------------------------------------------------------------------

inline constexpr int kBlockThreads = 512;  // block per row, the usual size

struct RowPlan {
  bool warp = false;    // warp per row (else block per row)
  int threads = 0;      // per block
  unsigned blocks = 0;  // grid (rows visited grid-stride)
  bool cache = false;   // the row cache is on
  int cap = 0;          // packs of each cached row kept in shared memory
  size_t smem = 0;      // dynamic shared memory per block (the row caches)
};

// n rows of v elements of `elem` bytes; cached_rows: how many arrays of a row the kernel caches
// when it can (0: it needs no second pass). A row cache that fits in kMaxCacheBytes per block keeps
// whole rows (several blocks per SM); a longer row (block per row, vector path) keeps as many
// packs as one 1024-thread block per SM can hold in shared memory, so the second pass re-reads
// only the rest (a few MB over all SMs: L2 hits).
inline RowPlan plan_rows(const Context& ctx, int64_t n, int64_t v, int64_t elem, bool vec,
                         int cached_rows) {
  RowPlan p;
  const int64_t pack = 16 / elem;
  const int64_t packs = (v + pack - 1) / pack;
  p.warp = packs <= 32 * kWarpRowMaxPacksPerLane;
  int64_t groups_per_block = 1;
  if (p.warp) {
    p.threads = kWarpRowThreads;
    groups_per_block = kWarpRowThreads / 32;
  } else {
    p.threads = packs >= 8 * kBlockThreads ? kBlockThreads : 256;
  }
  const int64_t need = (n + groups_per_block - 1) / groups_per_block;
  p.blocks = static_cast<unsigned>(need < 1 ? 1 : (need > 0x7fffffff ? 0x7fffffff : need));
  if (cached_rows > 0) {
    const int64_t whole = v / pack;
    const int64_t bytes = groups_per_block * cached_rows * cache_row_bytes(v, elem, vec, whole);
    if (bytes <= kMaxCacheBytes) {
      p.cache = true;
      p.cap = static_cast<int>(vec ? whole : 0);
      p.smem = static_cast<size_t>(bytes);
    } else if (!p.warp && vec) {
      int optin = 0;
      R1_CUDA_CHECK(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin,
                                           ctx.device().index));
      const int64_t budget = static_cast<int64_t>(optin) - 2048;  // the static reduction scratch
      const int64_t cap = (budget / cached_rows - 2 * pack * elem) / 16;
      if (cap > 0) {
        p.threads = kMaxThreads;
        p.cache = true;
        p.cap = static_cast<int>(cap < whole ? cap : whole);
        p.smem = static_cast<size_t>(cached_rows * cache_row_bytes(v, elem, vec, p.cap));
      }
    }
  }
  return p;
}

// Allows `kernel` the plan's dynamic shared memory (needed above 48 KiB).
template <class K>
inline void allow_smem(K* kernel, const RowPlan& p) {
  if (p.smem > 48 * 1024)
    R1_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                       static_cast<int>(p.smem)));
}

// Row lengths are int inside the kernels; below 2^30 so that no loop index (j + blockDim.x, a pack
// batch's k0 + kUnroll·blockDim.x) can pass INT_MAX.
inline int row_len(int64_t v, const char* op) {
  R1_CHECK(v < (int64_t{1} << 30),
           "[{}] rows of {} elements are too long for the CUDA kernels (< 2^30)", op, v);
  return static_cast<int>(v);
}

// True when every pointer has the same address modulo 16 (so one row split fits them all).
inline bool same_alignment(std::initializer_list<const void*> ptrs) {
  uintptr_t first = 0;
  bool have = false;
  for (const void* q : ptrs) {
    const uintptr_t a = reinterpret_cast<uintptr_t>(q) & 15u;
    if (!have) {
      first = a;
      have = true;
    } else if (a != first) {
      return false;
    }
  }
  return true;
}

}  // namespace r1kit::kernels::cuda::vocab
