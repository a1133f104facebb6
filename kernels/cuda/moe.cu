// MoE routing and permutation on the GPU, with the CPU reference's semantics (kernels/cpu/moe.cpp).
//
// Routing (forward): one warp per token, the token's scores, biased choice values and their rank
// keys in shared memory. Scores use the CPU's formulas in double (softmax: the max, then exp(l − m)
// summed by one lane in expert order — the CPU's summation order, so the sum is the same double —
// then rounded to the scores' dtype); c = s + b is rounded like the CPU, so every value the
// selection compares is the CPU's value. Selection is a strict total order (value descending, NaN
// after every number, lower index first on ties) on a 64-bit key per value (-0 folded into +0),
// taken one winner at a time by warp arg-max reductions: the group scores (top-1 or top-2 sum),
// the topk_group kept groups, then the K experts — so ties resolve exactly as on the CPU. Weights
// renormalise with the CPU's sequential double sum, so they are the CPU's bits too (up to the
// 1-ulp difference of CUDA's and glibc's exp on softmax scores).
// Routing (backward): one warp per token; the K slot terms in double, as the CPU does.
//
// Counts: integer atomics (warp-aggregated with __match_any_sync), deterministic.
//
// Permutation: a stable counting sort of the N·K (token, slot) pairs by expert, in three launches.
// (1) One warp per chunk of `ch` pairs (a multiple of 32) writes the chunk's count per expert;
// (2) a warp per expert turns its counts into per-chunk starting ranks, and the last block to
// finish scans the expert totals into expert_offsets; (3) one warp per chunk walks its pairs in
// order, 32 at a time, ranking equal experts with __match_any_sync (running ranks in shared
// memory), so each expert's rows are in increasing f = n·K + k — the CPU's order, with no
// order-dependent atomics. (1) and (3) load 8 groups of ids ahead.
// Step (3) also writes the inverse pos[f]; the rows are then copied one token at a time: each
// token's row is read once and stored to its K permuted rows, in 16-byte words when rows and
// pointers allow (the row copy is dtype-agnostic), so the copy moves N·C + N·K·C elements.
// perm_index consumers (permute backward, unpermute and its backward) invert perm_index first
// (atomicCAS on a -1-filled pos; a second writer is a repeated entry), then work one block per
// token, summing the K rows in k order (fixed order: deterministic) in acc_t<T>, in 16-byte packs
// when every row tensor shares a dtype and is 16-byte aligned.
//
// Expert ids outside [0, E) and a perm_index that is not a permutation are reported through the
// context's error sink with the CPU's wording (without the tensor description, which the record
// cannot carry; E is baked into an interned message); bad entries are skipped, never used as
// addresses. When several entries are bad, which one is named can differ from the CPU (the first
// report wins).
#include <algorithm>
#include <climits>
#include <mutex>
#include <set>
#include <string>

#include "kernels/cuda/common.cuh"
#include "kernels/moe.h"

namespace r1kit::kernels::cuda {
namespace {

constexpr double kNormEps = 1e-20;  // the references' renormalisation guard
constexpr unsigned kFull = 0xffffffffu;

// ---- messages
// ------------------------------------------------------------------------------------

// A stable copy of a message (the error record keeps only the pointer until the host reads it).
// One string per (op, E) or per op, so the set stays small.
const char* intern(const std::string& s) {
  static std::mutex mu;
  static std::set<std::string> pool;
  std::lock_guard<std::mutex> lock(mu);
  return pool.insert(s).first->c_str();
}

// "[op] topk_idx: entry [n, k] is expert id, outside [0, E)" (a = n, b = k, c = id).
const char* expert_id_message(const char* op, int64_t e) {
  return intern(std::string("[") + op + "] topk_idx: entry [{}, {}] is expert {}, outside [0, " +
                std::to_string(e) + ")");
}

struct PermMessages {
  ErrorSink range, again;  // a = M, b = entry, c = value
};
PermMessages perm_messages(const char* op, const Context& ctx) {
  const std::string head =
      std::string("[") + op + "] perm_index is not a permutation of [0, {}): entry {} is {}";
  return {error_sink(ctx, intern(head)), error_sink(ctx, intern(head + " again"))};
}

// ---- small helpers
// -------------------------------------------------------------------------------

__host__ __device__ inline size_t align16(size_t b) {
  return (b + 15) & ~size_t{15};
}

int round_up32(int64_t v) {
  return static_cast<int>(std::max<int64_t>(32, (v + 31) / 32 * 32));
}

// Threads for a block that walks `units` items of one row: a multiple of 32 in [32, 256].
int row_threads(int64_t units) {
  return std::min(256, round_up32(units));
}

// Opts a kernel into more than 48 KiB of dynamic shared memory when it needs it.
template <class Kernel>
void allow_smem(Kernel kernel, size_t bytes, const Context& ctx, const char* op) {
  if (bytes <= 48 * 1024) return;
  int optin = 0;
  R1_CUDA_CHECK(
      cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, ctx.device().index));
  if (bytes > static_cast<size_t>(optin))
    R1_THROW("[{}] needs {} bytes of shared memory per block; the device allows {}", op, bytes,
             optin);
  R1_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                     static_cast<int>(bytes)));
}

// One float element of any float dtype as double (weights, bias: a few per token).
__device__ __forceinline__ double load_any(const void* p, DType t, int64_t i) {
  switch (t) {
    case DType::f64:
      return static_cast<const double*>(p)[i];
    case DType::bf16:
      return static_cast<double>(__bfloat162float(static_cast<const bf16*>(p)[i]));
    case DType::f16:
      return static_cast<double>(__half2float(static_cast<const f16*>(p)[i]));
    default:
      return static_cast<double>(static_cast<const float*>(p)[i]);
  }
}
// Stores v rounded as the CPU rounds (double -> f32 -> bf16/f16; f64 directly).
__device__ __forceinline__ void store_any(void* p, DType t, int64_t i, double v) {
  switch (t) {
    case DType::f64:
      static_cast<double*>(p)[i] = v;
      break;
    case DType::bf16:
      static_cast<bf16*>(p)[i] = __float2bfloat16_rn(static_cast<float>(v));
      break;
    case DType::f16:
      static_cast<f16*>(p)[i] = __float2half_rn(static_cast<float>(v));
      break;
    default:
      static_cast<float*>(p)[i] = static_cast<float>(v);
      break;
  }
}

// ---- selection order
// -----------------------------------------------------------------------------

// A key whose unsigned order is the selection order of the values: larger first, every NaN after
// every number (key 1), -0 equal to +0. Key 0 marks an entry already taken. Numbers map to keys >=
// 0x007FFFFF (float) / 0x000FFFFFFFFFFFFF (double), so they never meet the markers.
__device__ __forceinline__ uint64_t rank_key(float v) {
  if (isnan(v)) return 1;
  uint32_t u = __float_as_uint(v);
  if (u == 0x80000000u) u = 0;
  return (u & 0x80000000u) ? static_cast<uint64_t>(~u) : static_cast<uint64_t>(u | 0x80000000u);
}
__device__ __forceinline__ uint64_t rank_key(double v) {
  if (isnan(v)) return 1;
  uint64_t u = static_cast<uint64_t>(__double_as_longlong(v));
  if (u == 0x8000000000000000ull) u = 0;
  return (u >> 63) ? ~u : (u | 0x8000000000000000ull);
}

// (k, i) ranks before (bk, bi): larger key, then lower index.
__device__ __forceinline__ bool ranks_before(uint64_t k, int i, uint64_t bk, int bi) {
  return k > bk || (k == bk && i < bi);
}

// The best (key, index) over the warp; every lane gets it.
__device__ __forceinline__ void warp_best(uint64_t& k, int& i) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const uint64_t ok = __shfl_xor_sync(kFull, k, o);
    const int oi = __shfl_xor_sync(kFull, i, o);
    if (ranks_before(ok, oi, k, i)) {
      k = ok;
      i = oi;
    }
  }
}

// ---- routing forward
// -----------------------------------------------------------------------------

struct RouteParams {
  int64_t n;
  int e, k, n_group, group_size, topk_group;
  bool softmax, grouped, noaux, renorm, neg_inf_fill;
  double gamma;
  int wpb;            // warps (tokens in flight) per block
  size_t bias_bytes;  // shared memory layout: bias, then per warp `warp_bytes`
  size_t warp_bytes, key_bytes, gkey_bytes, score_bytes;
};

// Shared memory per warp: key/exp (E × 8), group keys (G × 8), scores (E × T), winners (K × 4).
template <class T>
RouteParams route_layout(RouteParams p) {
  p.key_bytes = align16(static_cast<size_t>(p.e) * 8);
  p.gkey_bytes = align16(static_cast<size_t>(p.n_group) * 8);
  p.score_bytes = align16(static_cast<size_t>(p.e) * sizeof(T));
  p.warp_bytes = p.key_bytes + p.gkey_bytes + p.score_bytes + align16(static_cast<size_t>(p.k) * 4);
  p.bias_bytes = align16(static_cast<size_t>(p.e) * sizeof(T));
  return p;
}

// T: scores / weights / compute type (float or double, as the CPU's upcast); TL: logits.
template <class T, class TL>
__global__ void route_forward_kernel(int32_t* __restrict__ topk_idx, T* __restrict__ topk_w,
                                     T* __restrict__ scores, const TL* __restrict__ logits,
                                     const void* __restrict__ bias, DType bias_dtype,
                                     RouteParams p) {
  extern __shared__ __align__(16) unsigned char smem[];
  const int e = p.e, k = p.k;
  T* bias_s = reinterpret_cast<T*>(smem);
  const bool has_bias = bias != nullptr;
  if (has_bias)
    for (int j = threadIdx.x; j < e; j += blockDim.x)
      bias_s[j] = static_cast<T>(load_any(bias, bias_dtype, j));
  __syncthreads();

  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  unsigned char* base = smem + p.bias_bytes + warp * p.warp_bytes;
  uint64_t* key = reinterpret_cast<uint64_t*>(base);
  double* ex = reinterpret_cast<double*>(base);  // softmax exps, before the keys replace them
  uint64_t* gkey = reinterpret_cast<uint64_t*>(base + p.key_bytes);
  T* sc = reinterpret_cast<T*>(base + p.key_bytes + p.gkey_bytes);
  int* win = reinterpret_cast<int*>(base + p.key_bytes + p.gkey_bytes + p.score_bytes);
  // c = s + b, rounded to T like the CPU; the bias only steers the choice.
  auto choice = [&](int j) -> T { return has_bias ? static_cast<T>(sc[j] + bias_s[j]) : sc[j]; };
  const uint64_t fill_key =
      rank_key(p.neg_inf_fill ? static_cast<T>(-INFINITY) : static_cast<T>(0));

  for (int64_t t = static_cast<int64_t>(blockIdx.x) * p.wpb + warp; t < p.n;
       t += static_cast<int64_t>(gridDim.x) * p.wpb) {
    const TL* lt = logits + t * e;
    T* st = scores + t * e;
    // s = softmax(l) = exp(l − max l) / Σ exp(l − max l) (Σ in expert order), or 1 / (1 + exp(−l)).
    if (p.softmax) {
      double m = -INFINITY;
      for (int j = lane; j < e; j += 32) {
        const double l = static_cast<double>(to_acc(lt[j]));
        if (l > m) m = l;  // NaN never raises the max (std::max on the CPU)
      }
      m = warp_max(m);
      for (int j = lane; j < e; j += 32) ex[j] = exp(static_cast<double>(to_acc(lt[j])) - m);
      __syncwarp();
      double sum = 0;
      if (lane == 0)
        for (int j = 0; j < e; ++j) sum += ex[j];
      sum = __shfl_sync(kFull, sum, 0);
      for (int j = lane; j < e; j += 32) {
        const T s = static_cast<T>(ex[j] / sum);
        st[j] = s;
        sc[j] = s;
      }
    } else {
      for (int j = lane; j < e; j += 32) {
        const T s = static_cast<T>(1.0 / (1.0 + exp(-static_cast<double>(to_acc(lt[j])))));
        st[j] = s;
        sc[j] = s;
      }
    }
    __syncwarp();
    for (int j = lane; j < e; j += 32) key[j] = rank_key(choice(j));
    __syncwarp();

    if (p.grouped) {
      // Group score: max c (group_limited_greedy) or the sum of the top-2 c (noaux_tc).
      const int gs = p.group_size;
      for (int g = lane; g < p.n_group; g += 32) {
        uint64_t k1 = 0, k2 = 0;
        int i1 = INT_MAX, i2 = INT_MAX;
        for (int j = g * gs; j < (g + 1) * gs; ++j) {
          const uint64_t kj = key[j];
          if (ranks_before(kj, j, k1, i1)) {
            k2 = k1;
            i2 = i1;
            k1 = kj;
            i1 = j;
          } else if (ranks_before(kj, j, k2, i2)) {
            k2 = kj;
            i2 = j;
          }
        }
        const T v = p.noaux ? static_cast<T>(choice(i1) + choice(i2)) : choice(i1);
        gkey[g] = rank_key(v);
      }
      __syncwarp();
      // Keep the topk_group best groups (their keys become 0); the others get the fill value.
      for (int r = 0; r < p.topk_group; ++r) {
        uint64_t bk = 0;
        int bi = INT_MAX;
        for (int g = lane; g < p.n_group; g += 32)
          if (ranks_before(gkey[g], g, bk, bi)) {
            bk = gkey[g];
            bi = g;
          }
        warp_best(bk, bi);
        if (lane == (bi & 31)) gkey[bi] = 0;
        __syncwarp();
      }
      for (int j = lane; j < e; j += 32)
        if (gkey[j / gs] != 0) key[j] = fill_key;
      __syncwarp();
    }

    // The K best experts, in descending order.
    for (int r = 0; r < k; ++r) {
      uint64_t bk = 0;
      int bi = INT_MAX;
      for (int j = lane; j < e; j += 32) {
        const uint64_t kj = key[j];
        if (kj > bk) {  // j increases: the lowest index wins a tie within the lane
          bk = kj;
          bi = j;
        }
      }
      warp_best(bk, bi);
      if (lane == (bi & 31)) key[bi] = 0;
      if (lane == 0) win[r] = bi;
      __syncwarp();
    }

    // w_k = s[idx_k];  w_k /= Σ w + 1e-20 (summed in slot order) when renormalising;  w_k *= γ.
    double denom = 1.0;
    if (p.renorm) {
      double sum = 0;
      if (lane == 0)
        for (int r = 0; r < k; ++r) sum += static_cast<double>(sc[win[r]]);
      denom = __shfl_sync(kFull, sum, 0) + kNormEps;
    }
    for (int r = lane; r < k; r += 32) {
      const int j = win[r];
      topk_idx[t * k + r] = j;
      topk_w[t * k + r] = static_cast<T>(static_cast<double>(sc[j]) / denom * p.gamma);
    }
    __syncwarp();  // the next token reuses this warp's shared memory
  }
}

template <class T, class TL>
void launch_route_forward(const TensorView& topk_idx, const TensorView& topk_weight,
                          const TensorView& scores, const TensorView& logits,
                          const TensorView& bias, RouteParams p, Context& ctx) {
  p = route_layout<T>(p);
  auto kernel = route_forward_kernel<T, TL>;
  p.wpb = 8;
  while (p.wpb > 1 && p.bias_bytes + p.wpb * p.warp_bytes > 48 * 1024) p.wpb /= 2;
  const size_t smem = p.bias_bytes + p.wpb * p.warp_bytes;
  allow_smem(kernel, smem, ctx, "moe_route");
  const unsigned grid = grid_for(ctx, p.n, p.wpb);
  kernel<<<grid, p.wpb * 32, smem, stream_of(ctx)>>>(
      topk_idx.ptr<int32_t>(), topk_weight.ptr<T>(), scores.ptr<T>(), logits.ptr<TL>(),
      bias.defined() ? bias.data : nullptr, bias.defined() ? bias.dtype : DType::f32, p);
  R1_CUDA_CHECK_LAUNCH();
}

// ---- routing backward
// ----------------------------------------------------------------------------

struct RouteBwdParams {
  int64_t n;
  int e, k;
  bool softmax, renorm;
  double gamma;
  int wpb;
  size_t warp_bytes, ids_bytes;
};

// T: scores (float or double); TD: dlogits. dtopk_weight of any float dtype (same precision).
template <class T, class TD>
__global__ void route_backward_kernel(TD* __restrict__ dlogits, const void* __restrict__ dtw,
                                      DType dtw_dtype, const int32_t* __restrict__ topk_idx,
                                      const T* __restrict__ scores, RouteBwdParams p,
                                      ErrorSink sink) {
  extern __shared__ __align__(16) unsigned char smem[];
  const int e = p.e, k = p.k;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  unsigned char* base = smem + warp * p.warp_bytes;
  int* ids = reinterpret_cast<int*>(base);
  double* dw = reinterpret_cast<double*>(base + p.ids_bytes);
  for (int64_t t = static_cast<int64_t>(blockIdx.x) * p.wpb + warp; t < p.n;
       t += static_cast<int64_t>(gridDim.x) * p.wpb) {
    const T* st = scores + t * e;
    double s_sum = 0;
    for (int i = lane; i < k; i += 32) {
      int id = topk_idx[t * k + i];
      if (id < 0 || id >= e) {
        sink.report(t, i, id);
        id = -1;
      }
      ids[i] = id;
      dw[i] = load_any(dtw, dtw_dtype, t * k + i);  // g, replaced by dw below
      if (id >= 0) s_sum += static_cast<double>(st[id]);
    }
    // Renormalised: dw_k = γ (g_k − Σ_j g_j u_j) / D, D = Σ w + 1e-20, u_j = w_j / D;
    // otherwise dw_k = γ g_k.
    if (p.renorm) {
      const double denom = warp_sum(s_sum) + kNormEps;
      double gu = 0;
      for (int i = lane; i < k; i += 32)
        if (ids[i] >= 0) gu += dw[i] * static_cast<double>(st[ids[i]]) / denom;
      gu = warp_sum(gu);
      for (int i = lane; i < k; i += 32) dw[i] = p.gamma * (dw[i] - gu) / denom;
    } else {
      for (int i = lane; i < k; i += 32) dw[i] = p.gamma * dw[i];
    }
    double dot = 0;  // Σ_f s_f ds_f over the chosen experts
    for (int i = lane; i < k; i += 32)
      if (ids[i] >= 0) dot += static_cast<double>(st[ids[i]]) * dw[i];
    dot = warp_sum(dot);
    __syncwarp();
    TD* dlt = dlogits + t * e;
    for (int j = lane; j < e; j += 32) {
      double ds = 0;  // ds_e = Σ_{k: idx_k = e} dw_k, in slot order
      for (int i = 0; i < k; ++i)
        if (ids[i] == j) ds += dw[i];
      const double s = static_cast<double>(st[j]);
      // softmax: dl_e = s_e (ds_e − Σ_f s_f ds_f);  sigmoid: dl_e = ds_e s_e (1 − s_e).
      const double v = p.softmax ? s * (ds - dot) : ds * s * (1.0 - s);
      if constexpr (std::is_same_v<T, double>) {
        dlt[j] = static_cast<TD>(v);
      } else {
        dlt[j] = from_acc<TD>(static_cast<float>(v));
      }
    }
    __syncwarp();
  }
}

template <class T, class TD>
void launch_route_backward(const TensorView& dlogits, const TensorView& dtopk_weight,
                           const TensorView& topk_idx, const TensorView& scores, RouteBwdParams p,
                           Context& ctx) {
  p.ids_bytes = align16(static_cast<size_t>(p.k) * 4);
  p.warp_bytes = p.ids_bytes + align16(static_cast<size_t>(p.k) * 8);
  p.wpb = 8;
  while (p.wpb > 1 && p.wpb * p.warp_bytes > 48 * 1024) p.wpb /= 2;
  const size_t smem = p.wpb * p.warp_bytes;
  auto kernel = route_backward_kernel<T, TD>;
  allow_smem(kernel, smem, ctx, "moe_route_backward");
  const unsigned grid = grid_for(ctx, p.n, p.wpb);
  kernel<<<grid, p.wpb * 32, smem, stream_of(ctx)>>>(
      dlogits.ptr<TD>(), dtopk_weight.data, dtopk_weight.dtype, topk_idx.ptr<int32_t>(),
      scores.ptr<T>(), p, error_sink(ctx, expert_id_message("moe_route_backward", p.e)));
  R1_CUDA_CHECK_LAUNCH();
}

// ---- expert counts
// -------------------------------------------------------------------------------

__device__ __forceinline__ void add_count(int32_t* c, unsigned v) {
  atomicAdd(c, static_cast<int32_t>(v));
}
__device__ __forceinline__ void add_count(int64_t* c, unsigned v) {
  atomicAdd(reinterpret_cast<unsigned long long*>(c), static_cast<unsigned long long>(v));
}

// counts[id] += 1 for every valid id of ids (m entries, rows of k), warp-aggregated; bad ids are
// reported and skipped. With `chunk` > 0, counts is a (m / chunk, e) table of per-chunk counts
// (chunk a multiple of 32, so a warp's 32 entries share a chunk).
template <class C>
__global__ void count_kernel(C* __restrict__ counts, const int32_t* __restrict__ ids, int64_t m,
                             int64_t k, int e, int64_t chunk, ErrorSink sink) {
  const int lane = threadIdx.x & 31;
  const int64_t warps = static_cast<int64_t>(gridDim.x) * (blockDim.x >> 5);
  for (int64_t f0 =
           (static_cast<int64_t>(blockIdx.x) * (blockDim.x >> 5) + (threadIdx.x >> 5)) * 32;
       f0 < m; f0 += warps * 32) {
    const int64_t f = f0 + lane;
    int id = -1;
    if (f < m) {
      id = ids[f];
      if (id < 0 || id >= e) {
        sink.report(f / k, f % k, id);
        id = -1;
      }
    }
    const unsigned peers = __match_any_sync(kFull, id);
    if (id >= 0 && lane == __ffs(peers) - 1) {
      C* row = chunk > 0 ? counts + (f0 / chunk) * e : counts;
      add_count(row + id, static_cast<unsigned>(__popc(peers)));
    }
  }
}

// ---- permutation
// ---------------------------------------------------------------------------------

// Calls fn(f, id) for the pairs [begin, end) of a warp's chunk, 32 at a time in order (every lane
// of the warp, f >= end with id -1), loading kIdBatch groups of ids ahead so that their loads
// overlap. fn may use warp collectives.
constexpr int kIdBatch = 8;
template <class F>
__device__ __forceinline__ void walk_chunk(const int32_t* __restrict__ ids, int64_t begin,
                                           int64_t end, F&& fn) {
  const int lane = threadIdx.x & 31;
  for (int64_t g0 = begin; g0 < end; g0 += 32 * kIdBatch) {
    int v[kIdBatch];
#pragma unroll
    for (int b = 0; b < kIdBatch; ++b) {
      const int64_t f = g0 + b * 32 + lane;
      v[b] = f < end ? ids[f] : -1;
    }
#pragma unroll
    for (int b = 0; b < kIdBatch; ++b) {
      const int64_t f0 = g0 + b * 32;
      if (f0 >= end) break;  // the whole warp
      fn(f0 + lane, v[b]);
    }
  }
}

// hist (nch, e): one warp per chunk writes its row of per-expert counts (zeroing it first, so hist
// needs no memset); bad ids are reported and not counted. Also zeroes the scan's ticket.
__global__ void perm_count_kernel(int32_t* __restrict__ hist, int32_t* __restrict__ ticket,
                                  const int32_t* __restrict__ ids, int64_t m, int64_t k, int e,
                                  int64_t chunk, int64_t nch, ErrorSink sink) {
  const int lane = threadIdx.x & 31;
  const int64_t c = static_cast<int64_t>(blockIdx.x) * (blockDim.x >> 5) + (threadIdx.x >> 5);
  if (c == 0 && lane == 0) *ticket = 0;
  if (c >= nch) return;  // the whole warp
  int32_t* hc = hist + c * e;
  for (int x = lane; x < e; x += 32) hc[x] = 0;
  __syncwarp();  // the zeros are ordered before the other lanes' adds
  const int64_t end = min(m, (c + 1) * chunk);
  walk_chunk(ids, c * chunk, end, [&](int64_t f, int id) {
    if (f < end && (id < 0 || id >= e)) {
      sink.report(f / k, f % k, id);
      id = -1;
    }
    const unsigned peers = __match_any_sync(kFull, id);
    if (id >= 0 && lane == __ffs(peers) - 1) atomicAdd(hc + id, static_cast<int>(__popc(peers)));
  });
}

// offsets (e + 1): offsets[0] = 0 and offsets[1..e] (the expert totals) -> their inclusive scan,
// so offsets is the exclusive scan of the totals. Run by one whole block; reads the totals through
// L2 (other blocks wrote them).
__device__ void scan_offsets(int32_t* __restrict__ offsets, int e) {
  __shared__ int warp_total[32];
  __shared__ int carry;
  if (threadIdx.x == 0) {
    offsets[0] = 0;
    carry = 0;
  }
  __syncthreads();
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
  for (int b = 0; b < e; b += blockDim.x) {
    const int x = b + threadIdx.x;
    int v = x < e ? __ldcg(offsets + x + 1) : 0;
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
      const int y = __shfl_up_sync(kFull, v, o);
      if (lane >= o) v += y;
    }
    if (lane == 31) warp_total[warp] = v;
    __syncthreads();
    if (warp == 0) {
      int w = lane < nw ? warp_total[lane] : 0;
#pragma unroll
      for (int o = 1; o < 32; o <<= 1) {
        const int y = __shfl_up_sync(kFull, w, o);
        if (lane >= o) w += y;
      }
      warp_total[lane] = w;  // inclusive over warps
    }
    __syncthreads();
    const int incl = carry + (warp > 0 ? warp_total[warp - 1] : 0) + v;
    if (x < e) offsets[x + 1] = incl;
    __syncthreads();
    if (threadIdx.x == blockDim.x - 1) carry = incl;
    __syncthreads();
  }
}

// hist (nch, e): per-chunk counts -> per-chunk starting ranks within each expert (exclusive over
// chunks), one warp per expert scanning 32 chunks at a time; offsets[x + 1] = expert x's total.
// The last block to finish (a ticket, zeroed by perm_count_kernel) then scans the totals into
// expert_offsets; the result does not depend on which block that is.
__global__ void perm_chunk_scan_kernel(int32_t* __restrict__ hist, int32_t* __restrict__ offsets,
                                       int32_t* __restrict__ ticket, int nch, int e) {
  __shared__ bool last;
  const int lane = threadIdx.x & 31;
  const int x = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
  if (x < e) {  // the whole warp
    int carry = 0;
    for (int c0 = 0; c0 < nch; c0 += 32) {
      const int c = c0 + lane;
      const int v = c < nch ? hist[static_cast<int64_t>(c) * e + x] : 0;
      int incl = v;
#pragma unroll
      for (int o = 1; o < 32; o <<= 1) {
        const int y = __shfl_up_sync(kFull, incl, o);
        if (lane >= o) incl += y;
      }
      if (c < nch) hist[static_cast<int64_t>(c) * e + x] = carry + incl - v;
      carry += __shfl_sync(kFull, incl, 31);
    }
    if (lane == 0) offsets[x + 1] = carry;
  }
  __threadfence();  // this block's totals are visible before its ticket
  __syncthreads();
  if (threadIdx.x == 0) last = atomicAdd(ticket, 1) == static_cast<int>(gridDim.x) - 1;
  __syncthreads();
  if (!last) return;  // the whole block
  __threadfence();
  scan_offsets(offsets, e);
}

// One warp per chunk: walks the chunk's pairs in order, 32 at a time; equal experts in a group of
// 32 are ranked by lane (__match_any_sync), and the chunk's running rank per expert starts at its
// hist row. kShared: the running ranks (per warp) and the offsets (per block) live in shared
// memory, else in global memory (hist itself; very large E). perm[p] = f and pos[f] = p (-1 for a
// bad id).
template <bool kShared>
__global__ void perm_place_kernel(int32_t* __restrict__ perm, int32_t* __restrict__ pos,
                                  int32_t* __restrict__ hist, const int32_t* __restrict__ offsets,
                                  const int32_t* __restrict__ ids, int64_t m, int e, int64_t chunk,
                                  int64_t nch) {
  extern __shared__ __align__(16) unsigned char smem[];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t c = static_cast<int64_t>(blockIdx.x) * (blockDim.x >> 5) + warp;
  const int32_t* off = offsets;
  int32_t* hc = hist + c * e;
  if constexpr (kShared) {
    int32_t* off_s = reinterpret_cast<int32_t*>(smem);
    int32_t* hc_s = off_s + e + warp * e;
    for (int x = threadIdx.x; x < e; x += blockDim.x) off_s[x] = offsets[x];
    if (c < nch)
      for (int x = lane; x < e; x += 32) hc_s[x] = hc[x];
    __syncthreads();
    off = off_s;
    hc = hc_s;
  }
  if (c >= nch) return;  // the whole warp
  const int64_t end = min(m, (c + 1) * chunk);
  walk_chunk(ids, c * chunk, end, [&](int64_t f, int id) {
    if (f < end && (id < 0 || id >= e)) {
      id = -1;
      pos[f] = -1;
    }
    const unsigned peers = __match_any_sync(kFull, id);
    int rank = 0;
    if (id >= 0) {
      rank = hc[id];
      const int p = off[id] + rank + __popc(peers & ((1u << lane) - 1u));
      perm[p] = static_cast<int32_t>(f);
      pos[f] = p;
    }
    __syncwarp();
    if (id >= 0 && lane == __ffs(peers) - 1) hc[id] = rank + __popc(peers);
    __syncwarp();
  });
}

// out[pos[n·K + k]] = in[n] for every k: each row read once, written K times (pos < 0 skipped).
template <class W>
__global__ void perm_scatter_kernel(W* __restrict__ out, const W* __restrict__ in,
                                    const int32_t* __restrict__ pos, int64_t words, int k) {
  const int64_t n = blockIdx.x;
  const W* src = in + n * words;
  const int32_t* pn = pos + n * k;
  // The k destinations once per block (in shared memory when k is small), so no store waits on an
  // index load; the copies are written with streaming stores (written once, never read here).
  constexpr int kMaxShared = 64;
  __shared__ int32_t sp[kMaxShared];
  const bool shared_pos = k <= kMaxShared;
  if (shared_pos && static_cast<int>(threadIdx.x) < k) sp[threadIdx.x] = pn[threadIdx.x];
  __syncthreads();
  constexpr int U = 4;
  for (int64_t w0 = threadIdx.x; w0 < words; w0 += U * static_cast<int64_t>(blockDim.x)) {
    W v[U];
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int64_t w = w0 + static_cast<int64_t>(u) * blockDim.x;
      v[u] = w < words ? src[w] : W{};
    }
    for (int kk = 0; kk < k; ++kk) {
      const int p = shared_pos ? sp[kk] : pn[kk];
      if (p < 0) continue;
      W* dst = out + static_cast<int64_t>(p) * words;
#pragma unroll
      for (int u = 0; u < U; ++u) {
        const int64_t w = w0 + static_cast<int64_t>(u) * blockDim.x;
        if (w < words) __stcs(dst + w, v[u]);
      }
    }
  }
}

template <class W>
void launch_scatter(const TensorView& x_perm, const TensorView& x, const int32_t* pos, int64_t n,
                    int64_t row_bytes, int k, Context& ctx) {
  const int64_t words = row_bytes / static_cast<int64_t>(sizeof(W));
  const int threads = row_threads((words + 3) / 4);
  perm_scatter_kernel<W><<<static_cast<unsigned>(n), threads, 0, stream_of(ctx)>>>(
      static_cast<W*>(x_perm.data), static_cast<const W*>(x.data), pos, words, k);
  R1_CUDA_CHECK_LAUNCH();
}

// ---- inverse permutation and the per-token sums -----------------------------------------------

// pos[perm[p]] = p; entries out of [0, m) or repeated are reported (pos stays -1 where nothing
// lands, and the consumers skip those).
__global__ void perm_invert_kernel(int32_t* __restrict__ pos, const int32_t* __restrict__ perm,
                                   int64_t m, ErrorSink range, ErrorSink again) {
  for (int64_t p = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; p < m;
       p += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t f = perm[p];
    if (f < 0 || f >= m) {
      range.report(m, p, f);
      continue;
    }
    if (atomicCAS(&pos[f], -1, static_cast<int32_t>(p)) != -1) again.report(m, p, f);
  }
}

// Inverts perm_index (m entries) into a scratch tensor; reports errors with `op`'s wording.
Tensor invert_perm(const TensorView& perm_index, const char* op, Context& ctx) {
  const int64_t m = perm_index.numel();
  Tensor pos = ctx.empty({m}, DType::i32, "moe_pos");
  if (m == 0) return pos;  // K = 0 (unpermute of zero slots): nothing to invert, no launch
  R1_CUDA_CHECK(cudaMemsetAsync(pos.data(), 0xFF, static_cast<size_t>(m) * 4, stream_of(ctx)));
  const PermMessages msg = perm_messages(op, ctx);
  perm_invert_kernel<<<grid_for(ctx, m, 256), 256, 0, stream_of(ctx)>>>(
      pos.ptr<int32_t>(), perm_index.ptr<int32_t>(), m, msg.range, msg.again);
  R1_CUDA_CHECK_LAUNCH();
  return pos;
}

// Per-token slot table in shared memory: the K positions and weights (1 when w is null).
template <class A>
__device__ __forceinline__ void load_slots(int32_t* ps, A* ws, const int32_t* pos, const void* w,
                                           DType wt, int64_t n, int k) {
  for (int i = threadIdx.x; i < k; i += blockDim.x) {
    ps[i] = pos[n * k + i];
    ws[i] = w ? static_cast<A>(load_any(w, wt, n * k + i)) : A(1);
  }
  __syncthreads();
}

size_t slots_bytes(int k) {
  return align16(static_cast<size_t>(k) * 4) + static_cast<size_t>(k) * 8;
}

// out[n] = Σ_k w[n, k] · in[pos(n, k)] in k order; one block per token. Same dtype T for in and
// out; kVec: 16-byte packs (c a multiple of the pack, rows aligned).
template <class T, bool kVec>
__global__ void gather_sum_kernel(T* __restrict__ out, const T* __restrict__ in,
                                  const int32_t* __restrict__ pos, const void* __restrict__ w,
                                  DType wt, int64_t c, int k) {
  using A = acc_t<T>;
  constexpr int P = kVec ? kPack<T> : 1;
  extern __shared__ __align__(16) unsigned char smem[];
  int32_t* ps = reinterpret_cast<int32_t*>(smem);
  A* ws = reinterpret_cast<A*>(smem + align16(static_cast<size_t>(k) * 4));
  const int64_t n = blockIdx.x;
  load_slots(ps, ws, pos, w, wt, n, k);
  const int64_t units = c / P;
  for (int64_t q = threadIdx.x; q < units; q += blockDim.x) {
    A acc[P];
#pragma unroll
    for (int i = 0; i < P; ++i) acc[i] = A(0);
#pragma unroll 4
    for (int kk = 0; kk < k; ++kk) {
      const int p = ps[kk];
      if (p < 0) continue;  // perm_index was not a permutation (reported)
      const A wk = ws[kk];
      if constexpr (kVec) {
        const Pack<T> v = load_pack(in + static_cast<int64_t>(p) * c + q * P);
#pragma unroll
        for (int i = 0; i < P; ++i) acc[i] += wk * to_acc(v.v[i]);
      } else {
        acc[0] += wk * to_acc(in[static_cast<int64_t>(p) * c + q]);
      }
    }
    if constexpr (kVec) {
      Pack<T> o;
#pragma unroll
      for (int i = 0; i < P; ++i) o.v[i] = from_acc<T>(acc[i]);
      store_pack(out + n * c + q * P, o);
    } else {
      out[n * c + q] = from_acc<T>(acc[0]);
    }
  }
}

// The same with different dtypes for in and out (f32/bf16/f16, never f64: same precision).
__global__ void gather_sum_mixed_kernel(void* __restrict__ out, DType ot,
                                        const void* __restrict__ in, DType it,
                                        const int32_t* __restrict__ pos, const void* __restrict__ w,
                                        DType wt, int64_t c, int k) {
  extern __shared__ __align__(16) unsigned char smem[];
  int32_t* ps = reinterpret_cast<int32_t*>(smem);
  float* ws = reinterpret_cast<float*>(smem + align16(static_cast<size_t>(k) * 4));
  const int64_t n = blockIdx.x;
  load_slots(ps, ws, pos, w, wt, n, k);
  for (int64_t j = threadIdx.x; j < c; j += blockDim.x) {
    float acc = 0;
    for (int kk = 0; kk < k; ++kk) {
      const int p = ps[kk];
      if (p < 0) continue;
      acc += ws[kk] * static_cast<float>(load_any(in, it, static_cast<int64_t>(p) * c + j));
    }
    store_any(out, ot, n * c + j, acc);
  }
}

// out (N, C) = Σ_k w · in[pos] for in (N·K, C); w may be TensorView{} (all ones).
void gather_sum(const TensorView& out, const TensorView& in, const int32_t* pos,
                const TensorView& w, int k, const char* op, Context& ctx) {
  const int64_t n = out.shape[0], c = out.shape[1];
  const void* wp = w.defined() ? w.data : nullptr;
  const DType wt = w.defined() ? w.dtype : DType::f32;
  const size_t smem = slots_bytes(k);
  if (out.dtype != in.dtype) {
    allow_smem(gather_sum_mixed_kernel, smem, ctx, op);
    gather_sum_mixed_kernel<<<static_cast<unsigned>(n), row_threads(c), smem, stream_of(ctx)>>>(
        out.data, out.dtype, in.data, in.dtype, pos, wp, wt, c, k);
    R1_CUDA_CHECK_LAUNCH();
    return;
  }
  dispatch_float(out.dtype, op, [&](auto tag) {
    using T = decltype(tag);
    const bool vec = c % kPack<T> == 0 && aligned16(out.data) && aligned16(in.data);
    if (vec) {
      auto kernel = gather_sum_kernel<T, true>;
      allow_smem(kernel, smem, ctx, op);
      kernel<<<static_cast<unsigned>(n), row_threads(c / kPack<T>), smem, stream_of(ctx)>>>(
          out.ptr<T>(), in.ptr<T>(), pos, wp, wt, c, k);
    } else {
      auto kernel = gather_sum_kernel<T, false>;
      allow_smem(kernel, smem, ctx, op);
      kernel<<<static_cast<unsigned>(n), row_threads(c), smem, stream_of(ctx)>>>(
          out.ptr<T>(), in.ptr<T>(), pos, wp, wt, c, k);
    }
    R1_CUDA_CHECK_LAUNCH();
  });
}

// dy_perm[pos(n, k)] = w[n, k] · dy[n];  dtopk_weight[n, k] = Σ_c y_perm[pos(n, k), c] · dy[n, c].
// One block per token; the K dot products are block reductions (fixed tree). Same dtype T for the
// three row tensors.
template <class T, bool kVec>
__global__ void unpermute_bwd_kernel(T* __restrict__ dy_perm, void* __restrict__ dtw, DType dtwt,
                                     const T* __restrict__ dy, const T* __restrict__ y_perm,
                                     const int32_t* __restrict__ pos, const void* __restrict__ w,
                                     DType wt, int64_t c, int k) {
  using A = acc_t<T>;
  constexpr int P = kVec ? kPack<T> : 1;
  extern __shared__ __align__(16) unsigned char smem[];
  __shared__ A red[32];
  int32_t* ps = reinterpret_cast<int32_t*>(smem);
  A* ws = reinterpret_cast<A*>(smem + align16(static_cast<size_t>(k) * 4));
  const int64_t n = blockIdx.x;
  load_slots(ps, ws, pos, w, wt, n, k);
  const T* dyn = dy + n * c;
  const int64_t units = c / P;
  for (int kk = 0; kk < k; ++kk) {
    const int p = ps[kk];
    const A wk = ws[kk];
    A dot = 0;
    if (p >= 0) {
      const T* yp = y_perm + static_cast<int64_t>(p) * c;
      T* dp = dy_perm + static_cast<int64_t>(p) * c;
      for (int64_t q = threadIdx.x; q < units; q += blockDim.x) {
        if constexpr (kVec) {
          const Pack<T> g = load_pack(dyn + q * P), y = load_pack(yp + q * P);
          Pack<T> o;
#pragma unroll
          for (int i = 0; i < P; ++i) {
            const A gi = to_acc(g.v[i]);
            o.v[i] = from_acc<T>(wk * gi);
            dot += to_acc(y.v[i]) * gi;
          }
          store_pack(dp + q * P, o);
        } else {
          const A gi = to_acc(dyn[q]);
          dp[q] = from_acc<T>(wk * gi);
          dot += to_acc(yp[q]) * gi;
        }
      }
    }
    dot = block_sum(dot, red);
    if (threadIdx.x == 0) store_any(dtw, dtwt, n * k + kk, static_cast<double>(dot));
  }
}

// The same for mixed dtypes (f32/bf16/f16 only), element by element.
__global__ void unpermute_bwd_mixed_kernel(void* __restrict__ dy_perm, DType dpt,
                                           void* __restrict__ dtw, DType dtwt,
                                           const void* __restrict__ dy, DType dyt,
                                           const void* __restrict__ y_perm, DType ypt,
                                           const int32_t* __restrict__ pos,
                                           const void* __restrict__ w, DType wt, int64_t c, int k) {
  extern __shared__ __align__(16) unsigned char smem[];
  __shared__ float red[32];
  int32_t* ps = reinterpret_cast<int32_t*>(smem);
  float* ws = reinterpret_cast<float*>(smem + align16(static_cast<size_t>(k) * 4));
  const int64_t n = blockIdx.x;
  load_slots(ps, ws, pos, w, wt, n, k);
  for (int kk = 0; kk < k; ++kk) {
    const int p = ps[kk];
    float dot = 0;
    if (p >= 0)
      for (int64_t j = threadIdx.x; j < c; j += blockDim.x) {
        const float g = static_cast<float>(load_any(dy, dyt, n * c + j));
        store_any(dy_perm, dpt, static_cast<int64_t>(p) * c + j, ws[kk] * g);
        dot += static_cast<float>(load_any(y_perm, ypt, static_cast<int64_t>(p) * c + j)) * g;
      }
    dot = block_sum(dot, red);
    if (threadIdx.x == 0) store_any(dtw, dtwt, n * k + kk, static_cast<double>(dot));
  }
}

}  // namespace

// ---- entry points
// --------------------------------------------------------------------------------

void moe_route_forward(const TensorView& topk_idx, const TensorView& topk_weight,
                       const TensorView& scores, const TensorView& router_logits,
                       const TensorView& bias, const MoeRouting& cfg, Context& ctx) {
  const int64_t n = router_logits.shape[0];
  if (n == 0) return;
  RouteParams p{};
  p.n = n;
  p.e = static_cast<int>(cfg.n_routed_experts);
  p.k = static_cast<int>(cfg.num_experts_per_tok);
  p.grouped = cfg.topk_method != MoeTopkMethod::greedy && cfg.n_group > 1;
  p.n_group = p.grouped ? static_cast<int>(cfg.n_group) : 1;
  p.group_size = p.e / p.n_group;
  p.topk_group = static_cast<int>(cfg.topk_group);
  p.softmax = cfg.scoring == MoeScoring::softmax;
  p.noaux = cfg.topk_method == MoeTopkMethod::noaux_tc;
  p.renorm = cfg.norm_topk_prob && cfg.num_experts_per_tok > 1;
  p.neg_inf_fill = cfg.masked_fill == MoeGroupMaskFill::neg_inf;
  p.gamma = cfg.routed_scaling_factor;
  if (scores.dtype == DType::f64) {
    launch_route_forward<double, double>(topk_idx, topk_weight, scores, router_logits, bias, p,
                                         ctx);
    return;
  }
  switch (router_logits.dtype) {
    case DType::f32:
      launch_route_forward<float, float>(topk_idx, topk_weight, scores, router_logits, bias, p,
                                         ctx);
      break;
    case DType::bf16:
      launch_route_forward<float, bf16>(topk_idx, topk_weight, scores, router_logits, bias, p, ctx);
      break;
    case DType::f16:
      launch_route_forward<float, f16>(topk_idx, topk_weight, scores, router_logits, bias, p, ctx);
      break;
    default:
      R1_THROW("[moe_route] unsupported router_logits dtype {} on CUDA",
               dtype_name(router_logits.dtype));
  }
}

void moe_route_backward(const TensorView& dlogits, const TensorView& dtopk_weight,
                        const TensorView& topk_idx, const TensorView& scores, const MoeRouting& cfg,
                        Context& ctx) {
  const int64_t n = scores.shape[0];
  if (n == 0) return;
  RouteBwdParams p{};
  p.n = n;
  p.e = static_cast<int>(cfg.n_routed_experts);
  p.k = static_cast<int>(cfg.num_experts_per_tok);
  p.softmax = cfg.scoring == MoeScoring::softmax;
  p.renorm = cfg.norm_topk_prob && cfg.num_experts_per_tok > 1;
  p.gamma = cfg.routed_scaling_factor;
  if (scores.dtype == DType::f64) {
    launch_route_backward<double, double>(dlogits, dtopk_weight, topk_idx, scores, p, ctx);
    return;
  }
  switch (dlogits.dtype) {
    case DType::f32:
      launch_route_backward<float, float>(dlogits, dtopk_weight, topk_idx, scores, p, ctx);
      break;
    case DType::bf16:
      launch_route_backward<float, bf16>(dlogits, dtopk_weight, topk_idx, scores, p, ctx);
      break;
    case DType::f16:
      launch_route_backward<float, f16>(dlogits, dtopk_weight, topk_idx, scores, p, ctx);
      break;
    default:
      R1_THROW("[moe_route_backward] unsupported dlogits dtype {} on CUDA",
               dtype_name(dlogits.dtype));
  }
}

void moe_expert_counts(const TensorView& counts, const TensorView& topk_idx, Context& ctx) {
  const int64_t e = counts.shape[0], m = topk_idx.numel(), k = topk_idx.shape[1];
  R1_CUDA_CHECK(cudaMemsetAsync(counts.data, 0, counts.nbytes(), stream_of(ctx)));
  if (m == 0) return;
  const ErrorSink sink = error_sink(ctx, expert_id_message("moe_expert_counts", e));
  const unsigned grid = grid_for(ctx, m, 256);
  if (counts.dtype == DType::i64) {
    count_kernel<int64_t><<<grid, 256, 0, stream_of(ctx)>>>(
        counts.ptr<int64_t>(), topk_idx.ptr<int32_t>(), m, k, static_cast<int>(e), 0, sink);
  } else {
    count_kernel<int32_t><<<grid, 256, 0, stream_of(ctx)>>>(
        counts.ptr<int32_t>(), topk_idx.ptr<int32_t>(), m, k, static_cast<int>(e), 0, sink);
  }
  R1_CUDA_CHECK_LAUNCH();
}

void moe_permute(const TensorView& x_perm, const TensorView& perm_index,
                 const TensorView& expert_offsets, const TensorView& x, const TensorView& topk_idx,
                 Context& ctx) {
  const int64_t e = expert_offsets.shape[0] - 1, k = topk_idx.shape[1], m = topk_idx.numel();
  const int64_t n = x.shape[0];
  cudaStream_t stream = stream_of(ctx);
  if (m == 0) {
    R1_CUDA_CHECK(cudaMemsetAsync(expert_offsets.data, 0, expert_offsets.nbytes(), stream));
    return;
  }
  // Chunks of a multiple of 32 pairs (at least 256), at most ~1024 of them: each is walked by one
  // warp, and each expert's scan walks the chunks 32 at a time.
  const int64_t chunk = std::max<int64_t>(256, ((m + 1023) / 1024 + 31) / 32 * 32);
  const int64_t nch = (m + chunk - 1) / chunk;
  // hist (nch, e) and, after it, the chunk scan's ticket.
  Tensor hist = ctx.empty({nch * e + 1}, DType::i32, "moe_perm_hist");
  Tensor pos = ctx.empty({m}, DType::i32, "moe_pos");
  int32_t* ticket = hist.ptr<int32_t>() + nch * e;
  const ErrorSink sink = error_sink(ctx, expert_id_message("moe_permute", e));
  const int ei = static_cast<int>(e);
  constexpr int kCountWarps = 4;
  perm_count_kernel<<<static_cast<unsigned>((nch + kCountWarps - 1) / kCountWarps),
                      kCountWarps * 32, 0, stream>>>(
      hist.ptr<int32_t>(), ticket, topk_idx.ptr<int32_t>(), m, k, ei, chunk, nch, sink);
  R1_CUDA_CHECK_LAUNCH();
  perm_chunk_scan_kernel<<<static_cast<unsigned>((e + 7) / 8), 256, 0, stream>>>(
      hist.ptr<int32_t>(), expert_offsets.ptr<int32_t>(), ticket, static_cast<int>(nch), ei);
  R1_CUDA_CHECK_LAUNCH();
  // Shared running ranks when the block's (warps + 1) rows of E ints fit in 48 KiB.
  int wpb = 4;
  while (wpb > 1 && static_cast<size_t>(wpb + 1) * e * 4 > 48 * 1024) wpb /= 2;
  const size_t smem = static_cast<size_t>(wpb + 1) * e * 4;
  const unsigned grid = static_cast<unsigned>((nch + wpb - 1) / wpb);
  if (smem <= 48 * 1024) {
    perm_place_kernel<true><<<grid, wpb * 32, smem, stream>>>(
        perm_index.ptr<int32_t>(), pos.ptr<int32_t>(), hist.ptr<int32_t>(),
        expert_offsets.ptr<int32_t>(), topk_idx.ptr<int32_t>(), m, ei, chunk, nch);
  } else {
    perm_place_kernel<false><<<grid, wpb * 32, 0, stream>>>(
        perm_index.ptr<int32_t>(), pos.ptr<int32_t>(), hist.ptr<int32_t>(),
        expert_offsets.ptr<int32_t>(), topk_idx.ptr<int32_t>(), m, ei, chunk, nch);
  }
  R1_CUDA_CHECK_LAUNCH();
  // x_perm[pos(n, k)] = x[n], in the widest word the rows and pointers allow.
  const int64_t row_bytes = x.shape[1] * static_cast<int64_t>(dtype_size(x.dtype));
  if (row_bytes == 0) return;
  const auto fits = [&](int64_t w) {
    return row_bytes % w == 0 && reinterpret_cast<uintptr_t>(x.data) % w == 0 &&
           reinterpret_cast<uintptr_t>(x_perm.data) % w == 0;
  };
  const int ki = static_cast<int>(k);
  if (fits(16))
    launch_scatter<uint4>(x_perm, x, pos.ptr<int32_t>(), n, row_bytes, ki, ctx);
  else if (fits(8))
    launch_scatter<uint2>(x_perm, x, pos.ptr<int32_t>(), n, row_bytes, ki, ctx);
  else if (fits(4))
    launch_scatter<uint32_t>(x_perm, x, pos.ptr<int32_t>(), n, row_bytes, ki, ctx);
  else if (fits(2))
    launch_scatter<uint16_t>(x_perm, x, pos.ptr<int32_t>(), n, row_bytes, ki, ctx);
  else
    launch_scatter<uint8_t>(x_perm, x, pos.ptr<int32_t>(), n, row_bytes, ki, ctx);
}

void moe_permute_backward(const TensorView& dx, const TensorView& dx_perm,
                          const TensorView& perm_index, Context& ctx) {
  const int64_t n = dx.shape[0];
  if (n == 0) return;
  const int k = static_cast<int>(perm_index.numel() / n);
  Tensor pos = invert_perm(perm_index, "moe_permute_backward", ctx);
  if (dx.shape[1] == 0) return;
  gather_sum(dx, dx_perm, pos.ptr<int32_t>(), TensorView{}, k, "moe_permute_backward", ctx);
}

void moe_unpermute(const TensorView& y, const TensorView& y_perm, const TensorView& perm_index,
                   const TensorView& topk_weight, Context& ctx) {
  const int64_t n = y.shape[0];
  if (n == 0) return;
  const int k = static_cast<int>(topk_weight.shape[1]);
  Tensor pos = invert_perm(perm_index, "moe_unpermute", ctx);
  if (y.shape[1] == 0) return;
  gather_sum(y, y_perm, pos.ptr<int32_t>(), topk_weight, k, "moe_unpermute", ctx);
}

void moe_unpermute_backward(const TensorView& dy_perm, const TensorView& dtopk_weight,
                            const TensorView& dy, const TensorView& y_perm,
                            const TensorView& perm_index, const TensorView& topk_weight,
                            Context& ctx) {
  const int64_t n = dy.shape[0], c = dy.shape[1];
  if (n == 0) return;
  const int k = static_cast<int>(topk_weight.shape[1]);
  Tensor pos = invert_perm(perm_index, "moe_unpermute_backward", ctx);
  const size_t smem = slots_bytes(k);
  const unsigned grid = static_cast<unsigned>(n);
  const int32_t* ps = pos.ptr<int32_t>();
  if (dy_perm.dtype != dy.dtype || y_perm.dtype != dy.dtype) {
    allow_smem(unpermute_bwd_mixed_kernel, smem, ctx, "moe_unpermute_backward");
    unpermute_bwd_mixed_kernel<<<grid, row_threads(c), smem, stream_of(ctx)>>>(
        dy_perm.data, dy_perm.dtype, dtopk_weight.data, dtopk_weight.dtype, dy.data, dy.dtype,
        y_perm.data, y_perm.dtype, ps, topk_weight.data, topk_weight.dtype, c, k);
    R1_CUDA_CHECK_LAUNCH();
    return;
  }
  dispatch_float(dy.dtype, "moe_unpermute_backward", [&](auto tag) {
    using T = decltype(tag);
    const bool vec = c % kPack<T> == 0 && aligned16(dy_perm.data) && aligned16(dy.data) &&
                     aligned16(y_perm.data);
    if (vec) {
      auto kernel = unpermute_bwd_kernel<T, true>;
      allow_smem(kernel, smem, ctx, "moe_unpermute_backward");
      kernel<<<grid, row_threads(c / kPack<T>), smem, stream_of(ctx)>>>(
          dy_perm.ptr<T>(), dtopk_weight.data, dtopk_weight.dtype, dy.ptr<T>(), y_perm.ptr<T>(), ps,
          topk_weight.data, topk_weight.dtype, c, k);
    } else {
      auto kernel = unpermute_bwd_kernel<T, false>;
      allow_smem(kernel, smem, ctx, "moe_unpermute_backward");
      kernel<<<grid, row_threads(c), smem, stream_of(ctx)>>>(
          dy_perm.ptr<T>(), dtopk_weight.data, dtopk_weight.dtype, dy.ptr<T>(), y_perm.ptr<T>(), ps,
          topk_weight.data, topk_weight.dtype, c, k);
    }
    R1_CUDA_CHECK_LAUNCH();
  });
}

}  // namespace r1kit::kernels::cuda
