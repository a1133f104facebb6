// Top-k and multi-target log-prob heads on the GPU (formulas in kernels/topk_head.h). Per chunk of
// chunk_tokens rows, logits = h_c · wᵀ through linear_forward into a (chunk, V) scratch of h's
// dtype (as kernels/cuda/logprob.cu), then a row kernel; math in fp32 (double for f64), the log-
// probs in log2 units as logprob.cu (z2 = x·log2(e)/τ, lse = ln2·m2 + log s,
// log p = ln2·(z2 − m2) − log s).
//   top-k: one block of kTopkThreads per row, every pass over the row in id order, tile by tile.
//          Each entry has an order key: an unsigned integer whose order is that of z (the stored
//          logit's own bits for f32/bf16/f16, since z = x/τ increases with x; the bits of
//          z = x/τ in double for f64, as the CPU computes it; −0 = +0), so (key descending,
//          id ascending) is the CPU's (z descending, id ascending).
//          Pass 1: the online max / sum-exp, and an integer histogram of the keys' top
//          kDigitBits bits in shared memory (warp-aggregated atomics: order-independent counts).
//          Radix select, most significant digit first: the digit at which the count from the top
//          reaches the K still wanted fixes the threshold key's next bits; the candidates with
//          those bits are histogrammed by their next digit (another pass), until the threshold
//          key is whole or every remaining candidate is taken.
//          Gather: a block scan ranks the entries above the threshold and those at it in id order;
//          all above are taken, and those at it until K are (ties: lowest id first), each into
//          the slot its rank gives. The K entries are bitonic-sorted in shared memory by (key
//          descending, id ascending) and written with log p = z − lse. K <= kTopkCudaMaxK.
//   multi forward: the logprob.cu forward's pass (warp or block per row: the same lse), then
//          each target's log-prob.
//   multi backward: from the saved lse, G = Σ_k dlogprob (a fixed-order tree sum); pass 1 writes
//          dlogits_j = −G·p_j/τ in place over the logits, a group barrier, then the group's first
//          thread adds dlogprob[i, k]/τ at targets[i, k] in k order (duplicates add one after
//          the other); linear_backward gives dh_c (=) = dlogits · w and dw += dlogitsᵀ · h_c.
// Targets live on the device, so the kernels check them: a target outside [0, V) is reported
// through the context's ErrorSink (thrown at the next synchronize) and its row gets NaN (in the
// forward that log-prob, in the backward the row's whole dlogits); nothing is read out of
// bounds. Deterministic: no float atomics, every sum in a fixed order.
#include <algorithm>
#include <climits>

#include "kernels/cuda/vocab_rows.cuh"
#include "kernels/matmul.h"
#include "kernels/topk_head.h"

namespace r1kit::kernels::cuda {
namespace {
using namespace vocab;

constexpr unsigned kFull = 0xffffffffu;
constexpr int kTopkThreads = 512;  // top-k block (a multiple of 32; the gather's tiles)
constexpr int kDigitBits = 11;     // radix digit: 3 passes for 32-bit keys, 2 for 16, 6 for 64
constexpr int kBins = 1 << kDigitBits;
constexpr int kMaxK = static_cast<int>(kTopkCudaMaxK);
constexpr double kLog2e = 1.4426950408889634073599246810018921;

constexpr const char* kMultiBadTarget =
    "[logprob_head_multi] targets at row {}, column {} holds {}, outside [0, V) set by w";
constexpr const char* kMultiBackwardBadTarget =
    "[logprob_head_multi_backward] targets at row {}, column {} holds {}, outside [0, V) set by w";

// ---- the top-k order key -------------------------------------------------------------------

// key(x): unsigned, ordered as z = x/τ (a larger z, a larger key); −0 and +0 share a key; NaNs
// sit above +inf (sign clear) or below −inf (sign set), by their bits.
template <class T>
struct KeyOf;
template <>
struct KeyOf<float> {
  using U = uint32_t;
  static constexpr int kBits = 32;
  __device__ __forceinline__ static U key(float x, double) {
    uint32_t u = __float_as_uint(x);
    if (u == 0x80000000u) u = 0;
    return (u >> 31) ? ~u : (u | 0x80000000u);
  }
};
// 16-bit floats (bf16, f16): the same mapping on their raw bits.
__device__ __forceinline__ uint32_t key16(uint32_t u) {
  if (u == 0x8000u) u = 0;
  return (u >> 15) ? (~u & 0xffffu) : (u | 0x8000u);
}
template <>
struct KeyOf<bf16> {
  using U = uint32_t;
  static constexpr int kBits = 16;
  __device__ __forceinline__ static U key(bf16 x, double) { return key16(__bfloat16_as_ushort(x)); }
};
template <>
struct KeyOf<f16> {
  using U = uint32_t;
  static constexpr int kBits = 16;
  __device__ __forceinline__ static U key(f16 x, double) { return key16(__half_as_ushort(x)); }
};
// f64: z = x/τ rounds, and distinct x may meet at one z; the key is that of z (IEEE division, as
// the CPU's), so such ties go by id as on the CPU.
template <>
struct KeyOf<double> {
  using U = uint64_t;
  static constexpr int kBits = 64;
  __device__ __forceinline__ static U key(double x, double tau) {
    uint64_t u = static_cast<uint64_t>(__double_as_longlong(x / tau));
    if (u == 0x8000000000000000ull) u = 0;
    return (u >> 63) ? ~u : (u | 0x8000000000000000ull);
  }
};

// The key's bits at and above bit `hi` (0 when hi is the key's width).
template <class U>
__device__ __forceinline__ U bits_from(U key, int hi) {
  return hi >= static_cast<int>(sizeof(U) * 8) ? U(0) : static_cast<U>(key >> hi);
}
// The digit of bits [lo, hi).
template <class U>
__device__ __forceinline__ int digit(U key, int lo, int hi) {
  return static_cast<int>((key >> lo) & ((U(1) << (hi - lo)) - 1));
}

__device__ __forceinline__ bool ranks_before(uint64_t ka, int32_t ia, uint64_t kb, int32_t ib) {
  return ka > kb || (ka == kb && ia < ib);
}

// hist[bin] += 1 for each lane with bin >= 0; lanes with one bin add once, together. Every lane
// of the warp calls it.
__device__ __forceinline__ void hist_add(uint32_t* hist, int bin) {
  const unsigned peers = __match_any_sync(kFull, bin);
  if (bin >= 0 && static_cast<int>(threadIdx.x & 31) == __ffs(peers) - 1)
    atomicAdd(&hist[bin], static_cast<uint32_t>(__popc(peers)));
}

// Inclusive sum of v over the block in thread order (blockDim.x a multiple of 32); every thread
// also gets the block total. `ws` is __shared__ int[32]. Contains barriers.
__device__ int block_scan(int v, int* ws, int& total) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
#pragma unroll
  for (int o = 1; o < 32; o <<= 1) {
    const int y = __shfl_up_sync(kFull, v, o);
    if (lane >= o) v += y;
  }
  __syncthreads();  // ws may still be read by the previous call
  if (lane == 31) ws[warp] = v;
  __syncthreads();
  if (warp == 0) {
    int s = lane < nw ? ws[lane] : 0;
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
      const int y = __shfl_up_sync(kFull, s, o);
      if (lane >= o) s += y;
    }
    if (lane < nw) ws[lane] = s;
  }
  __syncthreads();
  if (warp > 0) v += ws[warp - 1];
  total = ws[nw - 1];
  return v;
}

// The radix step: over the nb bins of hist from the top (bin nb − 1 first), the bin where the
// running count reaches `want` (>= 1), the count strictly above it, and its own count, into the
// block-shared sel[0..2]. Warp 0 works; call from every thread (ends with a barrier).
__device__ void find_digit(const uint32_t* hist, int nb, uint32_t want, uint32_t* sel) {
  if (threadIdx.x < 32) {
    const int lane = threadIdx.x;
    const int per = (nb + 31) / 32;
    const int q0 = min(lane * per, nb), q1 = min(q0 + per, nb);
    uint32_t sum = 0;
    for (int q = q0; q < q1; ++q) sum += hist[nb - 1 - q];
    uint32_t incl = sum;
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
      const uint32_t y = __shfl_up_sync(kFull, incl, o);
      if (lane >= o) incl += y;
    }
    const uint32_t excl = incl - sum;
    const unsigned hit = __ballot_sync(kFull, excl < want && want <= incl);
    if (hit == 0) {
      // Only if the counts were inconsistent (they are not): take nothing more.
      if (lane == 0) {
        sel[0] = 0;
        sel[1] = 0;
        sel[2] = want;
      }
    } else if (lane == __ffs(hit) - 1) {
      uint32_t cum = excl;
      for (int q = q0; q < q1; ++q) {
        const uint32_t c = hist[nb - 1 - q];
        if (cum + c >= want) {
          sel[0] = static_cast<uint32_t>(nb - 1 - q);
          sel[1] = cum;
          sel[2] = c;
          break;
        }
        cum += c;
      }
    }
  }
  __syncthreads();
}

// One row per block (grid-stride over rows); logits x (n, v) of dtype T, outputs (n, k).
template <class T>
__global__ void __launch_bounds__(kTopkThreads)
    topk_kernel(acc_t<T>* __restrict__ topk_lp, int32_t* __restrict__ topk_idx,
                acc_t<T>* __restrict__ lse, const T* __restrict__ x, int64_t n, int v, int k,
                acc_t<T> scale2, double tau) {
  using A = acc_t<T>;
  using Key = KeyOf<T>;
  using U = typename Key::U;
  using St = Stats<A, false, true>;  // in log2 units: z2 = x·log2(e)/τ
  constexpr A kLn2 = A(0.693147180559945309417232121458176568);
  __shared__ St red[32];
  __shared__ uint32_t hist[kBins];
  __shared__ U skey[kMaxK];
  __shared__ int32_t sid[kMaxK];
  __shared__ int ws[32];
  __shared__ uint32_t sel[3];
  const int tid = threadIdx.x, nt = blockDim.x;
  int size = 1;  // the sort's power of two
  while (size < k) size <<= 1;
  for (int64_t row = blockIdx.x; row < n; row += gridDim.x) {
    const T* xr = x + row * v;
    for (int b = tid; b < kBins; b += nt) hist[b] = 0;
    for (int i = tid; i < size; i += nt) {
      skey[i] = 0;  // padding (and any slot left empty): ranks after every entry
      sid[i] = INT_MAX;
    }
    __syncthreads();

    // Pass 1: the online max / sum-exp and the histogram of the keys' top digit.
    int hi = Key::kBits, lo = max(hi - kDigitBits, 0);
    St st = St::empty();
    for (int base = 0; base < v; base += nt) {  // uniform trip count: hist_add needs the warp
      const int j = base + tid;
      int bin = -1;
      if (j < v) {
        const T xv = xr[j];
        const A z[1] = {mul_rn(to_acc(xv), scale2)};
        st.add(z);
        bin = digit(Key::key(xv, tau), lo, hi);
      }
      hist_add(hist, bin);
    }
    st = group_merge<false>(st, red);  // (its barriers also complete the histogram)
    st.finish(v);

    // Radix select: the threshold key's bits at and above `hi` are prefix's; `want` entries are
    // still to come from the candidates (the keys with those bits).
    U prefix = 0;
    uint32_t want = static_cast<uint32_t>(k);
    for (;;) {
      find_digit(hist, 1 << (hi - lo), want, sel);
      const uint32_t bin = sel[0], above = sel[1], count = sel[2];
      prefix |= static_cast<U>(bin) << lo;
      want -= above;
      hi = lo;
      if (hi == 0 || count == want) break;  // the key is whole, or every candidate is taken
      lo = max(hi - kDigitBits, 0);
      __syncthreads();  // everyone has read sel and hist
      for (int b = tid; b < kBins; b += nt) hist[b] = 0;
      __syncthreads();
      const U ph = bits_from(prefix, hi);
      for (int base = 0; base < v; base += nt) {
        const int j = base + tid;
        int bin2 = -1;
        if (j < v) {
          const U key = Key::key(xr[j], tau);
          if (bits_from(key, hi) == ph) bin2 = digit(key, lo, hi);
        }
        hist_add(hist, bin2);
      }
      __syncthreads();
    }

    // Gather in id order: entries above the threshold class into slots [0, k − want) by rank,
    // entries in it into [k − want, k) by rank while the rank is below want.
    const U ph = bits_from(prefix, hi);
    const int n_above = k - static_cast<int>(want);
    int got_above = 0, got_tie = 0;  // running counts, the same in every thread
    for (int base = 0; base < v; base += nt) {
      const int j = base + tid;
      U key = 0;
      int flag = 0;  // 1: above; 1 << 16: at the threshold (a tile holds < 2^16 entries)
      if (j < v) {
        key = Key::key(xr[j], tau);
        const U kh = bits_from(key, hi);
        flag = kh > ph ? 1 : (kh == ph ? 1 << 16 : 0);
      }
      int total = 0;
      const int excl = block_scan(flag, ws, total) - flag;
      if (flag == 1) {
        const int slot = got_above + (excl & 0xffff);
        if (slot < n_above) {
          skey[slot] = key;
          sid[slot] = j;
        }
      } else if (flag != 0) {
        const int r = got_tie + (excl >> 16);
        if (r < static_cast<int>(want)) {
          skey[n_above + r] = key;
          sid[n_above + r] = j;
        }
      }
      got_above += total & 0xffff;
      got_tie += total >> 16;
      if (got_above >= n_above && got_tie >= static_cast<int>(want)) break;  // uniform
    }

    // Bitonic sort of the `size` slots by (key descending, id ascending).
    for (int len = 2; len <= size; len <<= 1)
      for (int stride = len >> 1; stride > 0; stride >>= 1) {
        __syncthreads();
        for (int i = tid; i < size; i += nt) {
          const int p = i ^ stride;
          if (p > i) {
            const bool in_order = ranks_before(skey[i], sid[i], skey[p], sid[p]);
            if (((i & len) == 0) != in_order) {
              const U tk = skey[i];
              skey[i] = skey[p];
              skey[p] = tk;
              const int32_t ti = sid[i];
              sid[i] = sid[p];
              sid[p] = ti;
            }
          }
        }
      }
    __syncthreads();

    const A log_s = vlog(st.s);
    for (int i = tid; i < k; i += nt) {
      const int32_t id = sid[i];
      const bool ok = id >= 0 && id < v;  // always (a slot left empty would hold INT_MAX)
      topk_idx[row * k + i] = ok ? id : 0;
      topk_lp[row * k + i] =
          ok ? kLn2 * (mul_rn(to_acc(xr[id]), scale2) - st.m) - log_s : nan_of<A>();
    }
    if (tid == 0) lse[row] = kLn2 * st.m + log_s;
    __syncthreads();  // the shared arrays serve the next row
  }
}

// The logprob.cu forward pass over each row, then logprob[row, q] = z[targets[row, q]] − lse.
template <class T, bool kWarp>
__global__ void __launch_bounds__(kMaxThreads)
    multi_fwd_kernel(acc_t<T>* __restrict__ logprob, acc_t<T>* __restrict__ lse,
                     const T* __restrict__ x, const int32_t* __restrict__ targets, int64_t n, int v,
                     int kt, acc_t<T> scale2, bool vec, ErrorSink sink, int64_t row0) {
  using A = acc_t<T>;
  using St = Stats<A, false, true>;  // in log2 units: z2 = x·log2(e)/τ
  constexpr A kLn2 = A(0.693147180559945309417232121458176568);
  constexpr int P = kPack<T>;
  __shared__ St red[32];
  const Group<kWarp> g;
  for (int64_t row = g.first_row(); row < n; row += g.row_stride()) {
    const T* xr = x + row * v;
    const RowSpan sp = row_span(xr, v, vec);
    St st = St::empty();
    walk<P>(
        sp, v, g.tid, g.nt,
        [&](int j, int) {
          const A z[1] = {mul_rn(to_acc(xr[j]), scale2)};
          st.add(z);
        },
        [&](int k0) {
          batches<kUnroll>(
              k0, g.nt, sp.npack, [&](int k) { return load_pack(xr + sp.head + k * P); },
              [&](int, const Pack<T>& p) {
                A z[P];
                unpack(p, z);
#pragma unroll
                for (int i = 0; i < P; ++i) z[i] = mul_rn(z[i], scale2);
                st.add(z);
              });
        });
    st = group_merge<kWarp>(st, red);
    st.finish(v);
    const A log_s = vlog(st.s);
    for (int q = g.tid; q < kt; q += g.nt) {
      const int32_t t = targets[row * kt + q];
      if (t < 0 || t >= v) {
        sink.report(row0 + row, q, t);
        logprob[row * kt + q] = nan_of<A>();
      } else {
        logprob[row * kt + q] = kLn2 * (mul_rn(to_acc(xr[t]), scale2) - st.m) - log_s;
      }
    }
    if (g.tid == 0) lse[row] = kLn2 * st.m + log_s;
  }
}

template <bool kWarp>
__device__ __forceinline__ void group_sync() {
  if constexpr (kWarp) {
    __syncwarp();
  } else {
    __syncthreads();
  }
}

// In place over the logits dx (n, v): dlogits_j = −G·p_j/τ, then += dlogprob[row, q]/τ at each
// target in q order. A row with a bad target: G = NaN (the whole row NaN), the first one reported.
template <class T, bool kWarp>
__global__ void __launch_bounds__(kMaxThreads)
    multi_bwd_kernel(T* dx, const int32_t* __restrict__ targets, const acc_t<T>* __restrict__ lse,
                     const acc_t<T>* __restrict__ dlogprob, int64_t n, int v, int kt,
                     acc_t<T> inv_tau, bool vec, ErrorSink sink, int64_t row0) {
  using A = acc_t<T>;
  constexpr int P = kPack<T>;
  __shared__ A red[32];
  const Group<kWarp> g;
  for (int64_t row = g.first_row(); row < n; row += g.row_stride()) {
    T* xr = dx + row * v;
    const int32_t* tr = targets + row * kt;
    const A* gr = dlogprob + row * kt;
    const RowSpan sp = row_span(xr, v, vec);
    A gpart = A(0), bad_part = A(0);
    for (int q = g.tid; q < kt; q += g.nt) {
      gpart += gr[q];
      if (tr[q] < 0 || tr[q] >= v) bad_part += A(1);
    }
    const A gsum = group_sum<kWarp>(gpart, red);  // the same value in every thread
    const bool bad = group_sum<kWarp>(bad_part, red) > A(0);
    const A G = bad ? nan_of<A>() : gsum;
    const A l = lse[row];
    auto grad = [&](A xv) { return -G * vexp(mul_rn(xv, inv_tau) - l) * inv_tau; };
    // Pass 1: dlogits = −G·p/τ over the whole row.
    walk<P>(
        sp, v, g.tid, g.nt, [&](int j, int) { xr[j] = from_acc<T>(grad(to_acc(xr[j]))); },
        [&](int k0) {
          batches<kUnroll>(
              k0, g.nt, sp.npack, [&](int k) { return load_pack(xr + sp.head + k * P); },
              [&](int k, const Pack<T>& p) {
                A z[P];
                unpack(p, z);
#pragma unroll
                for (int i = 0; i < P; ++i) z[i] = grad(z[i]);
                store_pack(xr + sp.head + k * P, pack<T>(z));
              });
        });
    group_sync<kWarp>();  // the row's pass-1 stores are visible to the first thread
    if (g.tid == 0) {
      bool reported = false;
      for (int q = 0; q < kt; ++q) {
        const int32_t t = tr[q];
        if (t < 0 || t >= v) {
          if (!reported) sink.report(row0 + row, q, t);
          reported = true;
          continue;
        }
        xr[t] = from_acc<T>(to_acc(xr[t]) + gr[q] * inv_tau);
      }
    }
  }
}

void launch_topk(const TensorView& topk_lp, const TensorView& topk_idx, const TensorView& lse,
                 const TensorView& logits, double temperature, Context& ctx) {
  const int64_t n = logits.shape[0];
  if (n == 0) return;
  const int v = row_len(logits.shape[1], "logprob_head_topk");
  const int k = static_cast<int>(topk_idx.shape[1]);
  dispatch_float(logits.dtype, "logprob_head_topk", [&](auto tag) {
    using T = decltype(tag);
    using A = acc_t<T>;
    const auto blocks = static_cast<unsigned>(std::min<int64_t>(n, int64_t{1} << 20));
    topk_kernel<T><<<blocks, kTopkThreads, 0, stream_of(ctx)>>>(
        topk_lp.ptr<A>(), topk_idx.ptr<int32_t>(), lse.ptr<A>(), logits.ptr<T>(), n, v, k,
        static_cast<A>(kLog2e / temperature), temperature);
    R1_CUDA_CHECK_LAUNCH();
  });
}

// The row kernels over (rows, V) logits whose row r is token row0 + r; the other views are the
// rows' own (already offset).
void launch_multi_forward(const TensorView& logprob, const TensorView& lse,
                          const TensorView& logits, const TensorView& targets, double temperature,
                          int64_t row0, Context& ctx) {
  const int64_t n = logits.shape[0];
  if (n == 0) return;
  const int v = row_len(logits.shape[1], "logprob_head_multi");
  const int kt = static_cast<int>(targets.shape[1]);
  dispatch_float(logits.dtype, "logprob_head_multi", [&](auto tag) {
    using T = decltype(tag);
    using A = acc_t<T>;
    const bool vec = true;  // one array of rows
    const RowPlan p = plan_rows(ctx, n, v, sizeof(T), vec, 0);
    auto* kernel = p.warp ? multi_fwd_kernel<T, true> : multi_fwd_kernel<T, false>;
    kernel<<<p.blocks, p.threads, 0, stream_of(ctx)>>>(
        logprob.ptr<A>(), lse.ptr<A>(), logits.ptr<T>(), targets.ptr<int32_t>(), n, v, kt,
        static_cast<A>(kLog2e / temperature), vec, error_sink(ctx, kMultiBadTarget), row0);
    R1_CUDA_CHECK_LAUNCH();
  });
}

void launch_multi_backward(const TensorView& dlogits, const TensorView& dlogprob,
                           const TensorView& targets, const TensorView& lse, double temperature,
                           int64_t row0, Context& ctx) {
  const int64_t n = dlogits.shape[0];
  if (n == 0) return;
  const int v = row_len(dlogits.shape[1], "logprob_head_multi_backward");
  const int kt = static_cast<int>(targets.shape[1]);
  dispatch_float(dlogits.dtype, "logprob_head_multi_backward", [&](auto tag) {
    using T = decltype(tag);
    using A = acc_t<T>;
    const bool vec = true;  // one array, in place
    const RowPlan p = plan_rows(ctx, n, v, sizeof(T), vec, 0);
    auto* kernel = p.warp ? multi_bwd_kernel<T, true> : multi_bwd_kernel<T, false>;
    kernel<<<p.blocks, p.threads, 0, stream_of(ctx)>>>(
        dlogits.ptr<T>(), targets.ptr<int32_t>(), lse.ptr<A>(), dlogprob.ptr<A>(), n, v, kt,
        static_cast<A>(1.0 / temperature), vec, error_sink(ctx, kMultiBackwardBadTarget), row0);
    R1_CUDA_CHECK_LAUNCH();
  });
}

}  // namespace

void logprob_head_topk(const TensorView& topk_logprob, const TensorView& topk_idx,
                       const TensorView& lse, const TensorView& h, const TensorView& w,
                       double temperature, int64_t chunk_tokens, Context& ctx) {
  const int64_t n = h.shape[0], vocab = w.shape[0];
  if (n == 0) return;
  const int64_t chunk = std::min(chunk_tokens, n);
  // (chunk, V) logits of one chunk of tokens, in h's dtype: the only vocabulary-wide buffer.
  Tensor scratch = ctx.empty({chunk, vocab}, h.dtype, "logprob_head_topk.logits");
  for (int64_t r0 = 0; r0 < n; r0 += chunk) {
    const int64_t rows = std::min(chunk, n - r0);
    const TensorView logits = scratch.view().slice(0, rows);
    kernels::linear_forward(logits, h.slice(r0, r0 + rows), w, TensorView{}, ctx);
    launch_topk(topk_logprob.slice(r0, r0 + rows), topk_idx.slice(r0, r0 + rows),
                lse.slice(r0, r0 + rows), logits, temperature, ctx);
  }
}

void logprob_head_multi_forward(const TensorView& logprob, const TensorView& lse,
                                const TensorView& h, const TensorView& w, const TensorView& targets,
                                double temperature, int64_t chunk_tokens, Context& ctx) {
  const int64_t n = h.shape[0], vocab = w.shape[0];
  if (n == 0) return;
  const int64_t chunk = std::min(chunk_tokens, n);
  Tensor scratch = ctx.empty({chunk, vocab}, h.dtype, "logprob_head_multi.logits");
  for (int64_t r0 = 0; r0 < n; r0 += chunk) {
    const int64_t rows = std::min(chunk, n - r0);
    const TensorView logits = scratch.view().slice(0, rows);
    kernels::linear_forward(logits, h.slice(r0, r0 + rows), w, TensorView{}, ctx);
    launch_multi_forward(logprob.slice(r0, r0 + rows), lse.slice(r0, r0 + rows), logits,
                         targets.slice(r0, r0 + rows), temperature, r0, ctx);
  }
}

void logprob_head_multi_backward(const TensorView& dh, const TensorView& dw,
                                 const TensorView& dlogprob, const TensorView& h,
                                 const TensorView& w, const TensorView& targets,
                                 const TensorView& lse, double temperature, int64_t chunk_tokens,
                                 Context& ctx) {
  const int64_t n = h.shape[0], vocab = w.shape[0];
  if (n == 0) return;
  const int64_t chunk = std::min(chunk_tokens, n);
  // (chunk, V): one chunk's logits, turned into its dlogits in place.
  Tensor scratch = ctx.empty({chunk, vocab}, h.dtype, "logprob_head_multi.dlogits");
  for (int64_t r0 = 0; r0 < n; r0 += chunk) {
    const int64_t rows = std::min(chunk, n - r0);
    const TensorView dl = scratch.view().slice(0, rows);
    const TensorView hc = h.slice(r0, r0 + rows);
    kernels::linear_forward(dl, hc, w, TensorView{}, ctx);  // recomputed rather than saved
    launch_multi_backward(dl, dlogprob.slice(r0, r0 + rows), targets.slice(r0, r0 + rows),
                          lse.slice(r0, r0 + rows), temperature, r0, ctx);
    // dh_c (rows, C) = dlogits · w (=);  dw (V, C) += dlogitsᵀ · h_c.
    kernels::linear_backward(dh.slice(r0, r0 + rows), dw, TensorView{}, dl, hc, w,
                             GradWrite::overwrite, ctx);
  }
}

}  // namespace r1kit::kernels::cuda
