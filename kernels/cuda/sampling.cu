// Next-token sampling on the GPU, with the CPU reference's semantics (kernels/cpu/sampling.cpp):
// the same z = x / τ in double, the same kept prefix of the order (z descending, id ascending),
// and the same Gumbel-max draw (sampling_gumbel, shared with the CPU), so the GPU picks the CPU's
// token except where two scores tie to within an ulp of CUDA's vs glibc's double log/exp.
//
// The vocabulary is never sorted. Per group of rows, five launches:
//  K1 stats   (chunks × rows blocks): per chunk max / first argmax / min finite / finite count, and
//             the NaN / +inf reports.
//  K2 lse     (chunks × rows): Σ exp(z − z_max) in double per chunk (combined in chunk order: a
//             fixed order, deterministic), and — when top-k or top-p is on — a histogram of the
//             finite tokens over kNB buckets linear in z on [z_min, z_max] (bucket 0 holds z_max):
//             counts, and masses e = exp(z − z_max) as exact 96-bit fixed-point integers (three
//             u64 components summed with integer atomics: order-independent, so deterministic,
//             and exact to 2^-96 per token, finer than the CPU's own double rounding).
//  K3 select  (one 1024-thread block per row): finds the cut of the kept prefix. Top-k: the bucket
//             where the cumulative count reaches k; top-p: the bucket where the cumulative mass
//             (restricted to the top-k prefix) reaches top_p · total, compared in double as the
//             CPU compares its running sums. Inside that bucket: if it holds <= kCap tokens they
//             are gathered into shared memory and bitonic-sorted by (z desc, id asc), and the cut
//             is read off (the k-th, or the first whose exact prefix mass reaches the target);
//             otherwise the bucket is re-bucketed over its own [min z, max z] (another level), and
//             a bucket of one z value (a tie run) is cut by id with a block scan over ids. The
//             cut is the pair (key(z*), id*): kept ⇔ (z, id) ranks at or before it.
//  K4 gumbel  (chunks × rows): argmax of z_j + g_j over the kept tokens that pass min-p (ties to
//             the lower id); a token whose z + max g cannot reach the thread's best is skipped.
//  K5 final   (threads over rows): combines the chunk winners, writes the token and
//             log softmax(z)[token] = z_token − (z_max + log Σ).
// Greedy (τ = 0) uses K1's argmax (the lowest id among ties) and the τ = 1 log-sum-exp.
//
// NaN / +inf logits, rows with no finite entry and bad rng_counters are reported through the
// context's error sink with the CPU's wording (without the tensor description); such a row gets
// token 0 and a NaN log-prob.
#include <algorithm>
#include <climits>

#include "kernels/cuda/common.cuh"
#include "kernels/sampling.h"

namespace r1kit::kernels::cuda {
namespace {

constexpr unsigned kFull = 0xffffffffu;
constexpr int kNB = 1024;          // buckets per level (= kSelThreads: one bucket per thread)
constexpr int kSelThreads = 1024;  // select kernel block
constexpr int kCap = 4096;         // tokens sorted in shared memory
constexpr int kPerThread = kCap / kSelThreads;
constexpr int kThreads = 256;       // chunk kernels
constexpr int kMaxLevels = 240;     // re-bucketing depth (doubles need far fewer)
constexpr int64_t kRowGroup = 512;  // rows per pipeline pass (bounds the histogram scratch)
// g = −log(−log u) with u <= 1 − 2^-25 is at most 17.33: a token with z + kGumbelMax below the
// best score so far cannot win.
constexpr double kGumbelMax = 17.5;

enum : int32_t { kModeBad = 0, kModeGreedy = 1, kModeSample = 2 };

struct Part1 {
  double xmax, xmin;  // max over non-NaN, min over finite
  int32_t nfinite, argmax, bad, pad;
};
struct Part4 {
  double score;
  int32_t id, pad;
};
struct RowState {
  double zmax, lse;
  uint64_t cut_key;
  int32_t cut_id, has_cut, token, mode;
};

struct SampleArgs {
  int64_t rows, vocab, chunk, row0;  // row0: index of the group's first row (for messages)
  int nc;
  double tau;  // 0 = greedy
  double top_p, min_p;
  int64_t top_k;
  uint64_t seed;
  bool hist, mass;  // K2 builds the bucket histogram (top-k or top-p on), with masses (top-p)
};

// ---- scalar helpers
// ------------------------------------------------------------------------------

template <class T>
__device__ __forceinline__ double load_x(const T* p) {
  return static_cast<double>(to_acc(*p));
}

// z = x / τ as the CPU computes it (τ = 1 for greedy; x / 1 is x).
__device__ __forceinline__ double z_of(double x, double tau) {
  return tau == 1.0 ? x : x / tau;
}

// The order key: larger z first; -0 equal to +0. Only for non-NaN values.
__device__ __forceinline__ uint64_t zkey(double v) {
  uint64_t u = static_cast<uint64_t>(__double_as_longlong(v));
  if (u == 0x8000000000000000ull) u = 0;
  return (u >> 63) ? ~u : (u | 0x8000000000000000ull);
}
__device__ __forceinline__ double key_z(uint64_t k) {
  const uint64_t u = (k >> 63) ? (k ^ 0x8000000000000000ull) : ~k;
  return __longlong_as_double(static_cast<long long>(u));
}

// (key, id) ranks at or before the cut (ck, cid).
__device__ __forceinline__ bool within_cut(uint64_t key, uint32_t id, uint64_t ck, uint32_t cid) {
  return key > ck || (key == ck && id <= cid);
}

// Bucket of z in a level whose top is `hi`: floor((hi − z)·scale) clamped to [0, kNB − 1]; weakly
// decreasing in z, so a bucket is a contiguous run of the order.
__device__ __forceinline__ int bucket_of(double z, double hi, double scale) {
  const double d = hi - z;
  if (!(d > 0)) return 0;
  const double t = d * scale;
  return t < static_cast<double>(kNB - 1) ? static_cast<int>(t) : kNB - 1;
}
__device__ __forceinline__ double level_scale(double hi, double lo) {
  if (!(hi > lo)) return 0.0;
  const double w = hi - lo;
  if (isinf(w)) return (kNB * 0.5) / (hi * 0.5 - lo * 0.5);
  return kNB / w;
}

// Exact fixed-point mass: value = a·2^-32 + bh·2^-64 + bl·2^-96 (a < 2^33, bh, bl < 2^32 per
// token, so sums of < 2^31 tokens never overflow any component).
struct Mass {
  uint64_t a, bh, bl;
};
__device__ __forceinline__ Mass to_mass(double e) {  // e in [0, 1]
  const double s = e * 4294967296.0;                 // e·2^32, exact
  const double hi = floor(s);
  const uint64_t lo = static_cast<uint64_t>((s - hi) * 18446744073709551616.0);  // ·2^64
  return {static_cast<uint64_t>(hi), lo >> 32, lo & 0xffffffffull};
}
__device__ __forceinline__ Mass add(Mass x, Mass y) {
  return {x.a + y.a, x.bh + y.bh, x.bl + y.bl};
}
__device__ __forceinline__ Mass times(Mass x, uint64_t m) {
  return {x.a * m, x.bh * m, x.bl * m};
}
// Non-decreasing in each component, so a prefix's value never decreases along the prefix.
__device__ __forceinline__ double to_double(Mass x) {
  return static_cast<double>(x.a) * 0x1p-32 + static_cast<double>(x.bh) * 0x1p-64 +
         static_cast<double>(x.bl) * 0x1p-96;
}

// ---- block reductions
// ----------------------------------------------------------------------------

// (v, id) with the larger v, then the lower id; every thread gets the block's best.
__device__ __forceinline__ void warp_argmax(double& v, int& id) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const double ov = __shfl_xor_sync(kFull, v, o);
    const int oi = __shfl_xor_sync(kFull, id, o);
    if (ov > v || (ov == v && oi < id)) {
      v = ov;
      id = oi;
    }
  }
}
__device__ void block_argmax(double& v, int& id, double* sv, int* si) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
  warp_argmax(v, id);
  __syncthreads();
  if (lane == 0) {
    sv[warp] = v;
    si[warp] = id;
  }
  __syncthreads();
  v = lane < nw ? sv[lane] : -INFINITY;
  id = lane < nw ? si[lane] : INT_MAX;
  warp_argmax(v, id);
}

// Inclusive scan of N u64 components over the block (one value per thread); `ws` is shared
// [32][N]. Every thread also gets the block totals.
template <int N>
__device__ void block_scan(uint64_t (&v)[N], uint64_t (&total)[N], uint64_t (*ws)[N]) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
#pragma unroll
  for (int c = 0; c < N; ++c)
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
      const uint64_t y = __shfl_up_sync(kFull, v[c], o);
      if (lane >= o) v[c] += y;
    }
  __syncthreads();
  if (lane == 31)
#pragma unroll
    for (int c = 0; c < N; ++c) ws[warp][c] = v[c];
  __syncthreads();
  if (warp == 0) {
#pragma unroll
    for (int c = 0; c < N; ++c) {
      uint64_t w = lane < nw ? ws[lane][c] : 0;
#pragma unroll
      for (int o = 1; o < 32; o <<= 1) {
        const uint64_t y = __shfl_up_sync(kFull, w, o);
        if (lane >= o) w += y;
      }
      ws[lane][c] = w;
    }
  }
  __syncthreads();
#pragma unroll
  for (int c = 0; c < N; ++c) {
    if (warp > 0) v[c] += ws[warp - 1][c];
    total[c] = ws[nw - 1][c];
  }
  __syncthreads();
}

// ---- K1: chunk statistics and the logits checks -----------------------------------------------

template <class T>
__global__ void __launch_bounds__(kThreads)
    stats_kernel(Part1* __restrict__ part, const T* __restrict__ logits, SampleArgs a,
                 ErrorSink nan_sink, ErrorSink inf_sink) {
  __shared__ double sv[32];
  __shared__ int si[32];
  const int64_t r = blockIdx.y, c = blockIdx.x;
  const int64_t begin = c * a.chunk, end = min(a.vocab, begin + a.chunk);
  const T* row = logits + r * a.vocab;
  double xmax = -INFINITY, xmin = INFINITY;
  int arg = INT_MAX, nf = 0, bad = 0;
  for (int64_t j = begin + threadIdx.x; j < end; j += blockDim.x) {
    const double x = load_x(row + j);
    if (isnan(x)) {
      nan_sink.report(a.row0 + r, j);
      bad = 1;
      continue;
    }
    if (x == INFINITY) {
      inf_sink.report(a.row0 + r, j);
      bad = 1;
      continue;
    }
    if (x > xmax) {  // j increases: the first index of the max
      xmax = x;
      arg = static_cast<int>(j);
    }
    if (x != -INFINITY) {
      ++nf;
      xmin = fmin(xmin, x);
    }
  }
  block_argmax(xmax, arg, sv, si);
  xmin = -block_max(-xmin, sv);
  nf = block_sum(nf, si);
  bad = block_sum(bad, si);
  if (threadIdx.x == 0) part[r * a.nc + c] = Part1{xmax, xmin, nf, arg, bad, 0};
}

struct RowStats {
  double xmax, xmin;
  int64_t nfinite;
  int argmax;
  bool bad;
};
__device__ RowStats combine_stats(const Part1* p, int nc) {
  RowStats s{-INFINITY, INFINITY, 0, INT_MAX, false};
  for (int c = 0; c < nc; ++c) {
    const Part1 q = p[c];
    s.bad = s.bad || q.bad != 0;
    if (q.xmax > s.xmax) {  // chunks in order: the first index of the max
      s.xmax = q.xmax;
      s.argmax = q.argmax;
    }
    s.xmin = fmin(s.xmin, q.xmin);
    s.nfinite += q.nfinite;
  }
  return s;
}

// ---- K2: Σ exp(z − z_max) per chunk and the level-1 bucket histogram ---------------------------

template <class T>
__global__ void __launch_bounds__(kThreads)
    lse_hist_kernel(double* __restrict__ part2, uint32_t* __restrict__ gcnt,
                    unsigned long long* __restrict__ gmass, const T* __restrict__ logits,
                    const Part1* __restrict__ part1, SampleArgs a) {
  __shared__ uint32_t cnt[kNB];
  __shared__ unsigned long long mass[3][kNB];
  __shared__ double red[32];
  __shared__ double s_xmax, s_xmin;
  __shared__ int s_ok;
  const int64_t r = blockIdx.y, c = blockIdx.x;
  if (threadIdx.x == 0) {
    const RowStats st = combine_stats(part1 + r * a.nc, a.nc);
    s_xmax = st.xmax;
    s_xmin = st.xmin;
    s_ok = !st.bad && st.nfinite > 0;
  }
  if (a.hist)
    for (int b = threadIdx.x; b < kNB; b += blockDim.x) {
      cnt[b] = 0;
      mass[0][b] = mass[1][b] = mass[2][b] = 0;
    }
  __syncthreads();
  if (!s_ok) {
    if (threadIdx.x == 0) part2[r * a.nc + c] = 0;
    return;
  }
  const double tau = a.tau > 0 ? a.tau : 1.0;
  const double zmax = z_of(s_xmax, tau), zmin = z_of(s_xmin, tau);
  const double scale = level_scale(zmax, zmin);
  const int64_t begin = c * a.chunk, end = min(a.vocab, begin + a.chunk);
  const T* row = logits + r * a.vocab;
  double s = 0;
  for (int64_t j = begin + threadIdx.x; j < end; j += blockDim.x) {
    const double z = z_of(load_x(row + j), tau);
    const double e = exp(z - zmax);  // the CPU's exp(x / τ − z_max); 0 for −inf
    s += e;
    if (a.hist && z != -INFINITY) {
      const int b = bucket_of(z, zmax, scale);
      atomicAdd(&cnt[b], 1u);
      if (a.mass) {
        const Mass m = to_mass(e);
        if (m.a) atomicAdd(&mass[0][b], static_cast<unsigned long long>(m.a));
        if (m.bh) atomicAdd(&mass[1][b], static_cast<unsigned long long>(m.bh));
        if (m.bl) atomicAdd(&mass[2][b], static_cast<unsigned long long>(m.bl));
      }
    }
  }
  s = block_sum(s, red);
  if (threadIdx.x == 0) part2[r * a.nc + c] = s;
  if (a.hist) {
    // (block_sum ended with a barrier after the histogram's last update)
    uint32_t* gc = gcnt + r * kNB;
    unsigned long long* gm = gmass + r * 3 * kNB;
    for (int b = threadIdx.x; b < kNB; b += blockDim.x) {
      if (cnt[b] == 0) continue;
      atomicAdd(&gc[b], cnt[b]);
      if (a.mass)
        for (int q = 0; q < 3; ++q)
          if (mass[q][b]) atomicAdd(&gm[q * kNB + b], mass[q][b]);
    }
  }
}

// ---- K3: the cut
// ---------------------------------------------------------------------------------

// Block-shared state of the selection. Every decision is made from these values after a barrier,
// so the whole block takes the same path.
struct Sel {
  double zmax, tau;
  int64_t vocab;
  int nlev;
  double lhi[kMaxLevels], lscale[kMaxLevels];
  int lb[kMaxLevels];
  int restrict_on;
  uint64_t rkey;
  uint32_t rid;
  // results and broadcasts
  int list_n;
  uint64_t cut_key;
  uint32_t cut_id;
  int bsel;
  uint64_t excl[4], own[4];
  double lo, hi;
  uint64_t found;
};

// Shared arrays of the select kernel (dynamic shared memory).
struct SelArrays {
  uint32_t* cnt;             // [kNB]
  unsigned long long* mass;  // [3][kNB]
  uint64_t* keys;            // [kCap]
  uint32_t* ids;             // [kCap]
};

template <class T>
struct RowRef {
  const T* x;
  __device__ double z(const Sel& s, int64_t j) const { return z_of(load_x(x + j), s.tau); }
};

// A token is a member of the current candidate set: finite, in the chosen bucket of every level,
// and (when restricted) at or before the top-k cut.
__device__ __forceinline__ bool is_member(const Sel& s, double z, uint64_t key, uint32_t j) {
  if (z == -INFINITY) return false;
  for (int l = s.nlev - 1; l >= 0; --l)
    if (bucket_of(z, s.lhi[l], s.lscale[l]) != s.lb[l]) return false;
  return !s.restrict_on || within_cut(key, j, s.rkey, s.rid);
}

__device__ __forceinline__ bool ranks_before(uint64_t ka, uint32_t ia, uint64_t kb, uint32_t ib) {
  return ka > kb || (ka == kb && ia < ib);
}

// Gathers the members (at most kCap of them) and sorts them by (z desc, id asc).
template <class T>
__device__ void gather_sort(Sel& s, const SelArrays& sa, RowRef<T> row) {
  if (threadIdx.x == 0) s.list_n = 0;
  __syncthreads();
  for (int64_t j = threadIdx.x; j < s.vocab; j += blockDim.x) {
    const double z = row.z(s, j);
    if (z == -INFINITY) continue;
    const uint64_t key = zkey(z);
    if (!is_member(s, z, key, static_cast<uint32_t>(j))) continue;
    const int slot = atomicAdd(&s.list_n, 1);
    if (slot < kCap) {
      sa.keys[slot] = key;
      sa.ids[slot] = static_cast<uint32_t>(j);
    }
  }
  __syncthreads();
  const int n = min(s.list_n, kCap);
  int size = 1;
  while (size < n) size <<= 1;
  for (int i = n + threadIdx.x; i < size; i += blockDim.x) {
    sa.keys[i] = 0;  // below every finite z: sorts last
    sa.ids[i] = UINT_MAX;
  }
  __syncthreads();
  for (int k = 2; k <= size; k <<= 1)
    for (int j = k >> 1; j > 0; j >>= 1) {
      for (int i = threadIdx.x; i < size; i += blockDim.x) {
        const int ixj = i ^ j;
        if (ixj <= i) continue;
        const uint64_t ka = sa.keys[i], kb = sa.keys[ixj];
        const uint32_t ia = sa.ids[i], ib = sa.ids[ixj];
        const bool up = (i & k) == 0;
        if (up ? ranks_before(kb, ib, ka, ia) : ranks_before(ka, ia, kb, ib)) {
          sa.keys[i] = kb;
          sa.keys[ixj] = ka;
          sa.ids[i] = ib;
          sa.ids[ixj] = ia;
        }
      }
      __syncthreads();
    }
}

// Index in the sorted list (n entries) of the first token whose prefix mass, after cb, reaches
// target (compared in double like the CPU's running sum).
__device__ int mass_pick_list(Sel& s, const SelArrays& sa, int n, Mass cb, double target,
                              uint64_t (*ws)[4], int* wi) {
  const int i0 = threadIdx.x * kPerThread;
  Mass m[kPerThread], acc{0, 0, 0};
#pragma unroll
  for (int u = 0; u < kPerThread; ++u) {
    const int i = i0 + u;
    m[u] = i < n ? to_mass(exp(key_z(sa.keys[i]) - s.zmax)) : Mass{0, 0, 0};
    acc = add(acc, m[u]);
  }
  uint64_t v[4] = {acc.a, acc.bh, acc.bl, 0}, tot[4];
  block_scan<4>(v, tot, ws);
  Mass run = add(cb, Mass{v[0] - acc.a, v[1] - acc.bh, v[2] - acc.bl});
  int below = 0;
#pragma unroll
  for (int u = 0; u < kPerThread; ++u) {
    if (i0 + u >= n) break;
    run = add(run, m[u]);
    if (to_double(run) < target) ++below;
  }
  below = block_sum(below, wi);
  return min(below, n - 1);
}

// Min and max z of the members.
template <class T>
__device__ void member_range(Sel& s, RowRef<T> row, double* red) {
  double lo = INFINITY, hi = -INFINITY;
  for (int64_t j = threadIdx.x; j < s.vocab; j += blockDim.x) {
    const double z = row.z(s, j);
    if (z == -INFINITY) continue;
    if (!is_member(s, z, zkey(z), static_cast<uint32_t>(j))) continue;
    lo = fmin(lo, z);
    hi = fmax(hi, z);
  }
  lo = -block_max(-lo, red);
  hi = block_max(hi, red);
  if (threadIdx.x == 0) {
    s.lo = lo;
    s.hi = hi;
  }
  __syncthreads();
}

// Histogram of the members over a new level (hi, scale): counts, and masses when `with_mass`.
template <class T>
__device__ void member_hist(Sel& s, const SelArrays& sa, RowRef<T> row, double hi, double scale,
                            bool with_mass) {
  for (int b = threadIdx.x; b < kNB; b += blockDim.x) {
    sa.cnt[b] = 0;
    sa.mass[b] = sa.mass[kNB + b] = sa.mass[2 * kNB + b] = 0;
  }
  __syncthreads();
  for (int64_t j = threadIdx.x; j < s.vocab; j += blockDim.x) {
    const double z = row.z(s, j);
    if (z == -INFINITY) continue;
    if (!is_member(s, z, zkey(z), static_cast<uint32_t>(j))) continue;
    const int b = bucket_of(z, hi, scale);
    atomicAdd(&sa.cnt[b], 1u);
    if (with_mass) {
      const Mass m = to_mass(exp(z - s.zmax));
      if (m.a) atomicAdd(&sa.mass[b], static_cast<unsigned long long>(m.a));
      if (m.bh) atomicAdd(&sa.mass[kNB + b], static_cast<unsigned long long>(m.bh));
      if (m.bl) atomicAdd(&sa.mass[2 * kNB + b], static_cast<unsigned long long>(m.bl));
    }
  }
  __syncthreads();
}

// The first bucket of the shared histogram where the running total after (cb_count, cb_mass)
// reaches need (counts) or target (masses). Sets s.bsel, s.excl (the prefix before it) and s.own
// (its own count and mass).
__device__ void find_bucket(Sel& s, const SelArrays& sa, bool mass_mode, uint64_t cb_count,
                            Mass cb_mass, uint64_t need, double target, uint64_t (*ws)[4],
                            int* wi) {
  const int b = threadIdx.x;  // kSelThreads == kNB
  const uint64_t own[4] = {sa.cnt[b], sa.mass[b], sa.mass[kNB + b], sa.mass[2 * kNB + b]};
  uint64_t v[4] = {own[0], own[1], own[2], own[3]}, tot[4];
  block_scan<4>(v, tot, ws);
  const bool reached = mass_mode ? to_double(add(cb_mass, Mass{v[1], v[2], v[3]})) >= target
                                 : cb_count + v[0] >= need;
  const int below = block_sum(reached ? 0 : 1, wi);
  const int sel = min(below, kNB - 1);
  if (b == sel) {
    s.bsel = sel;
#pragma unroll
    for (int q = 0; q < 4; ++q) {
      s.excl[q] = v[q] - own[q];
      s.own[q] = own[q];
    }
  }
  __syncthreads();
}

// The id of the m-th member (1-based) in id order: threads take contiguous id ranges.
template <class T>
__device__ uint32_t nth_member_by_id(Sel& s, RowRef<T> row, uint64_t m, uint64_t (*ws)[4]) {
  if (threadIdx.x == 0) s.found = 0;  // ordered before the write below by block_scan's barriers
  const int64_t per = (s.vocab + blockDim.x - 1) / blockDim.x;
  const int64_t j0 = threadIdx.x * per, j1 = min(s.vocab, j0 + per);
  uint64_t c = 0;
  for (int64_t j = j0; j < j1; ++j) {
    const double z = row.z(s, j);
    if (z != -INFINITY && is_member(s, z, zkey(z), static_cast<uint32_t>(j))) ++c;
  }
  uint64_t v[4] = {c, 0, 0, 0}, tot[4];
  block_scan<4>(v, tot, ws);
  const uint64_t excl = v[0] - c;
  if (excl < m && m <= v[0]) {
    uint64_t seen = excl;
    for (int64_t j = j0; j < j1; ++j) {
      const double z = row.z(s, j);
      if (z != -INFINITY && is_member(s, z, zkey(z), static_cast<uint32_t>(j)) && ++seen == m) {
        s.found = static_cast<uint64_t>(j);
        break;
      }
    }
  }
  __syncthreads();
  return static_cast<uint32_t>(s.found);
}

// Resolves the cut inside the current candidate set (the chosen buckets of s's levels, n
// members, cb before them): the need-th token of the order (counts), or the first whose prefix
// mass reaches target. Leaves it in s.cut_key / s.cut_id; returns true when it ended with the
// members sorted in the shared list (s.list_n of them) without re-bucketing.
template <class T>
__device__ bool resolve_cut(Sel& s, const SelArrays& sa, RowRef<T> row, bool mass_mode, uint64_t n,
                            uint64_t cb_count, Mass cb_mass, uint64_t need, double target,
                            uint64_t (*ws)[4], int* wi, double* red) {
  const int levels_in = s.nlev;
  for (;;) {
    if (n <= static_cast<uint64_t>(kCap)) {
      gather_sort(s, sa, row);
      const int len = min(s.list_n, kCap);
      const uint64_t rel = need - cb_count;  // 1-based rank of the cut among the members
      const int idx = mass_mode
                          ? mass_pick_list(s, sa, len, cb_mass, target, ws, wi)
                          : (rel < static_cast<uint64_t>(len) ? static_cast<int>(rel) : len) - 1;
      if (threadIdx.x == 0) {
        s.cut_key = sa.keys[max(idx, 0)];
        s.cut_id = sa.ids[max(idx, 0)];
      }
      __syncthreads();
      return s.nlev == levels_in;
    }
    member_range(s, row, red);
    const double lo = s.lo, hi = s.hi;
    if (lo == hi || s.nlev >= kMaxLevels) {
      // One z value: the members tie, so the cut is by id.
      uint64_t m;
      if (mass_mode) {
        const Mass e = to_mass(exp(lo - s.zmax));
        uint64_t a = 1, b = n;  // smallest m in [1, n] with mass(cb + m·e) >= target
        while (a < b) {
          const uint64_t mid = a + (b - a) / 2;
          if (to_double(add(cb_mass, times(e, mid))) >= target)
            b = mid;
          else
            a = mid + 1;
        }
        m = a;
      } else {
        m = need - cb_count;
      }
      const uint32_t id = nth_member_by_id(s, row, m, ws);
      if (threadIdx.x == 0) {
        s.cut_key = zkey(lo);
        s.cut_id = id;
      }
      __syncthreads();
      return false;
    }
    const double scale = level_scale(hi, lo);
    member_hist(s, sa, row, hi, scale, mass_mode);
    find_bucket(s, sa, mass_mode, cb_count, cb_mass, need, target, ws, wi);
    cb_count += s.excl[0];
    cb_mass = add(cb_mass, Mass{s.excl[1], s.excl[2], s.excl[3]});
    n = s.own[0];
    if (threadIdx.x == 0) {
      const int l = s.nlev;
      s.lhi[l] = hi;
      s.lscale[l] = scale;
      s.lb[l] = s.bsel;
      s.nlev = l + 1;
    }
    __syncthreads();
  }
}

__device__ void load_level1(const SelArrays& sa, const uint32_t* gcnt,
                            const unsigned long long* gmass, bool with_mass) {
  for (int b = threadIdx.x; b < kNB; b += blockDim.x) {
    sa.cnt[b] = gcnt[b];
    for (int q = 0; q < 3; ++q) sa.mass[q * kNB + b] = with_mass ? gmass[q * kNB + b] : 0;
  }
  __syncthreads();
}

template <class T>
__global__ void __launch_bounds__(kSelThreads)
    select_kernel(RowState* __restrict__ state, const T* __restrict__ logits,
                  const int64_t* __restrict__ counters, const Part1* __restrict__ part1,
                  const double* __restrict__ part2, const uint32_t* __restrict__ gcnt,
                  const unsigned long long* __restrict__ gmass, SampleArgs a,
                  ErrorSink no_finite_sink, ErrorSink stream_sink, ErrorSink position_sink) {
  extern __shared__ __align__(16) unsigned char smem[];
  __shared__ Sel s;
  __shared__ uint64_t ws[32][4];
  __shared__ int wi[32];
  __shared__ double red[32];
  __shared__ RowState st;
  __shared__ double s_xmin;
  __shared__ int64_t s_nfinite;
  const int64_t r = blockIdx.x;
  const bool greedy = a.tau == 0;
  if (threadIdx.x == 0) {
    const RowStats rs = combine_stats(part1 + r * a.nc, a.nc);
    const int64_t stream = counters[2 * r], position = counters[2 * r + 1];
    bool bad = rs.bad;
    if (!rs.bad && rs.nfinite == 0) {
      no_finite_sink.report(a.row0 + r);
      bad = true;
    }
    if (stream < 0) {
      stream_sink.report(a.row0 + r, stream);
      bad = true;
    }
    if (position < 0 || position > static_cast<int64_t>(UINT32_MAX)) {
      position_sink.report(a.row0 + r, position);
      bad = true;
    }
    const double tau = greedy ? 1.0 : a.tau;
    st.zmax = z_of(rs.xmax, tau);
    double sum = 0;
    for (int c = 0; c < a.nc; ++c) sum += part2[r * a.nc + c];
    st.lse = st.zmax + log(sum);
    st.cut_key = 0;
    st.cut_id = 0;
    st.has_cut = 0;
    st.token = rs.argmax;
    st.mode = bad ? kModeBad : (greedy ? kModeGreedy : kModeSample);
    s_xmin = z_of(rs.xmin, tau);
    s_nfinite = rs.nfinite;
    s.zmax = st.zmax;
    s.tau = tau;
    s.vocab = a.vocab;
    s.nlev = 1;
    s.lhi[0] = st.zmax;
    s.lscale[0] = level_scale(st.zmax, s_xmin);
    s.restrict_on = 0;
  }
  __syncthreads();
  const bool k_on = a.top_k > 0 && a.top_k < s_nfinite;
  const bool p_on = a.top_p < 1.0;
  if (st.mode == kModeSample && (k_on || p_on)) {
    const SelArrays sa{reinterpret_cast<uint32_t*>(smem),
                       reinterpret_cast<unsigned long long*>(smem + kNB * 4),
                       reinterpret_cast<uint64_t*>(smem + kNB * 4 + 3 * kNB * 8),
                       reinterpret_cast<uint32_t*>(smem + kNB * 4 + 3 * kNB * 8 + kCap * 8)};
    const RowRef<T> row{logits + r * a.vocab};
    const uint32_t* gc = gcnt + r * kNB;
    const unsigned long long* gm = gmass + r * 3 * kNB;
    const Mass zero{0, 0, 0};
    uint64_t kkey = 0, need1 = 0;
    uint32_t kid = 0;
    int b1 = 0;
    bool list_b1 = false;
    load_level1(sa, gc, gm, p_on);
    if (k_on) {
      const uint64_t k = static_cast<uint64_t>(a.top_k);
      find_bucket(s, sa, false, 0, zero, k, 0, ws, wi);
      b1 = s.bsel;
      const uint64_t before = s.excl[0], n1 = s.own[0];
      need1 = k - before;  // members of bucket b1 within the top-k
      if (threadIdx.x == 0) s.lb[0] = b1;
      __syncthreads();
      list_b1 = resolve_cut(s, sa, row, false, n1, before, zero, k, 0, ws, wi, red);
      kkey = s.cut_key;
      kid = s.cut_id;
    }
    if (p_on) {
      Mass pm = zero;  // the mass of bucket b1's members within the top-k
      if (k_on) {
        if (list_b1) {
          Mass acc = zero;
          for (int i = threadIdx.x; i < static_cast<int>(need1); i += blockDim.x)
            acc = add(acc, to_mass(exp(key_z(sa.keys[i]) - s.zmax)));
          uint64_t v[4] = {acc.a, acc.bh, acc.bl, 0}, tot[4];
          block_scan<4>(v, tot, ws);
          pm = Mass{tot[0], tot[1], tot[2]};
        } else {
          if (threadIdx.x == 0) {
            s.nlev = 1;
            s.lb[0] = b1;
            s.restrict_on = 1;
            s.rkey = kkey;
            s.rid = kid;
          }
          __syncthreads();
          Mass acc = zero;
          for (int64_t j = threadIdx.x; j < a.vocab; j += blockDim.x) {
            const double z = row.z(s, j);
            if (z == -INFINITY || !is_member(s, z, zkey(z), static_cast<uint32_t>(j))) continue;
            acc = add(acc, to_mass(exp(z - s.zmax)));
          }
          uint64_t v[4] = {acc.a, acc.bh, acc.bl, 0}, tot[4];
          block_scan<4>(v, tot, ws);
          pm = Mass{tot[0], tot[1], tot[2]};
        }
        // The level-1 histogram restricted to the top-k: bucket b1 partly, later ones not at all.
        load_level1(sa, gc, gm, true);
        const int b = threadIdx.x;
        if (b == b1) {
          sa.cnt[b] = static_cast<uint32_t>(need1);
          sa.mass[b] = pm.a;
          sa.mass[kNB + b] = pm.bh;
          sa.mass[2 * kNB + b] = pm.bl;
        } else if (b > b1) {
          sa.cnt[b] = 0;
          sa.mass[b] = sa.mass[kNB + b] = sa.mass[2 * kNB + b] = 0;
        }
        __syncthreads();
      }
      // total: the kept-k mass; target = top_p · total, as the CPU computes it.
      uint64_t v[4] = {0, sa.mass[threadIdx.x], sa.mass[kNB + threadIdx.x],
                       sa.mass[2 * kNB + threadIdx.x]},
               tot[4];
      block_scan<4>(v, tot, ws);
      const double target = a.top_p * to_double(Mass{tot[1], tot[2], tot[3]});
      find_bucket(s, sa, true, 0, zero, 0, target, ws, wi);
      const int bp = s.bsel;
      const Mass before{s.excl[1], s.excl[2], s.excl[3]};
      const uint64_t np = s.own[0];
      if (k_on && list_b1 && bp == b1) {
        // The top-k members of b1 are the first need1 entries of the sorted list.
        const int idx = mass_pick_list(s, sa, static_cast<int>(need1), before, target, ws, wi);
        if (threadIdx.x == 0) {
          s.cut_key = sa.keys[idx];
          s.cut_id = sa.ids[idx];
        }
        __syncthreads();
      } else {
        if (threadIdx.x == 0) {
          s.nlev = 1;
          s.lb[0] = bp;
          s.restrict_on = k_on && bp == b1;
          s.rkey = kkey;
          s.rid = kid;
        }
        __syncthreads();
        resolve_cut(s, sa, row, true, np, 0, before, 0, target, ws, wi, red);
      }
    }
    if (threadIdx.x == 0) {
      st.cut_key = s.cut_key;
      st.cut_id = static_cast<int32_t>(s.cut_id);
      st.has_cut = 1;
    }
  }
  if (threadIdx.x == 0) state[r] = st;
}

// ---- K4: Gumbel-max over the kept tokens
// ---------------------------------------------------------

template <class T>
__global__ void __launch_bounds__(kThreads)
    gumbel_kernel(Part4* __restrict__ part4, const T* __restrict__ logits,
                  const RowState* __restrict__ state, const int64_t* __restrict__ counters,
                  SampleArgs a) {
  __shared__ double sv[32];
  __shared__ int si[32];
  const int64_t r = blockIdx.y, c = blockIdx.x;
  const RowState st = state[r];
  if (st.mode != kModeSample) {
    if (threadIdx.x == 0) part4[r * a.nc + c] = Part4{-INFINITY, INT_MAX, 0};
    return;
  }
  const uint64_t stream = static_cast<uint64_t>(counters[2 * r]);
  const uint32_t position = static_cast<uint32_t>(counters[2 * r + 1]);
  // min-p: exp(z − z_max) >= min_p. Decided from log(min_p) away from the boundary (a 1e-9
  // relative margin dwarfs the ulp errors of exp and log), with exp itself near it.
  const double lmp = a.min_p > 0 ? log(a.min_p) : -INFINITY;
  const double margin = 1e-9 * (1.0 + fabs(lmp));
  const int64_t begin = c * a.chunk, end = min(a.vocab, begin + a.chunk);
  const T* row = logits + r * a.vocab;
  double best = -INFINITY;
  int bid = INT_MAX;
  for (int64_t j = begin + threadIdx.x; j < end; j += blockDim.x) {
    const double z = z_of(load_x(row + j), a.tau);
    if (z == -INFINITY) continue;  // masked tokens are never drawn
    if (st.has_cut && !within_cut(zkey(z), static_cast<uint32_t>(j), st.cut_key,
                                  static_cast<uint32_t>(st.cut_id)))
      continue;
    if (a.min_p > 0) {
      const double d = z - st.zmax;
      if (d < lmp - margin) continue;
      if (!(d > lmp + margin) && !(exp(d) >= a.min_p)) continue;
    }
    if (bid != INT_MAX && z + kGumbelMax < best) continue;
    const double score = z + sampling_gumbel(a.seed, stream, position, static_cast<uint32_t>(j));
    if (bid == INT_MAX || score > best || (score == best && j < bid)) {
      best = score;
      bid = static_cast<int>(j);
    }
  }
  block_argmax(best, bid, sv, si);
  if (threadIdx.x == 0) part4[r * a.nc + c] = Part4{best, bid, 0};
}

// ---- K5: tokens and log-probs
// --------------------------------------------------------------------

template <class T, class L>
__global__ void finalize_kernel(int32_t* __restrict__ tokens, L* __restrict__ logprob,
                                const T* __restrict__ logits, const RowState* __restrict__ state,
                                const Part4* __restrict__ part4, SampleArgs a) {
  const int64_t r = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (r >= a.rows) return;
  const RowState st = state[r];
  int32_t token = 0;
  double lp = NAN;
  if (st.mode == kModeGreedy) {
    token = st.token;
    lp = st.zmax - st.lse;
  } else if (st.mode == kModeSample) {
    double best = -INFINITY;
    int bid = INT_MAX;
    for (int c = 0; c < a.nc; ++c) {
      const Part4 q = part4[r * a.nc + c];
      if (q.score > best || (q.score == best && q.id < bid)) {
        best = q.score;
        bid = q.id;
      }
    }
    if (bid != INT_MAX) {
      token = bid;
      lp = z_of(load_x(logits + r * a.vocab + bid), a.tau) - st.lse;
    }
  }
  tokens[r] = token;
  logprob[r] = static_cast<L>(lp);
}

// ---- host
// ------------------------------------------------------------------------------------------

constexpr size_t kSelSmem = kNB * 4 + 3 * kNB * 8 + kCap * 8 + kCap * 4;

size_t align256(size_t b) {
  return (b + 255) & ~size_t{255};
}

template <class T>
void run_sampling(const TensorView& tokens, const TensorView& token_logprob,
                  const TensorView& logits, const TensorView& rng_counters,
                  const SamplingParams& params, uint64_t seed, Context& ctx) {
  const int64_t rows = logits.shape[0], vocab = logits.shape[1];
  cudaStream_t stream = stream_of(ctx);
  SampleArgs a{};
  a.vocab = vocab;
  a.tau = params.temperature;
  a.top_p = params.top_p;
  a.min_p = params.min_p;
  a.top_k = params.top_k;
  a.seed = seed;
  const bool greedy = a.tau == 0;
  a.hist = !greedy && ((a.top_k > 0 && a.top_k < vocab) || a.top_p < 1.0);
  a.mass = a.hist && a.top_p < 1.0;
  const int64_t group = std::min(rows, kRowGroup);
  // Chunks per row: enough blocks for a few waves over the device, at least 2048 tokens each.
  const int64_t want = (4 * static_cast<int64_t>(sm_count(ctx)) + group - 1) / group;
  int64_t nc = std::clamp<int64_t>(want, 1, std::max<int64_t>(1, vocab / 2048));
  a.chunk = (vocab + nc - 1) / nc;
  nc = (vocab + a.chunk - 1) / a.chunk;
  a.nc = static_cast<int>(nc);

  // Scratch for one group of rows.
  const size_t part1_b = align256(sizeof(Part1) * group * nc),
               part2_b = align256(sizeof(double) * group * nc),
               state_b = align256(sizeof(RowState) * group),
               part4_b = align256(sizeof(Part4) * group * nc),
               cnt_b = a.hist ? align256(sizeof(uint32_t) * group * kNB) : 0,
               mass_b = a.mass ? align256(sizeof(uint64_t) * 3 * group * kNB) : 0;
  const size_t total = part1_b + part2_b + state_b + part4_b + cnt_b + mass_b;
  Tensor scratch = ctx.empty({static_cast<int64_t>(total)}, DType::u8, "sample_scratch");
  auto* base = static_cast<unsigned char*>(scratch.data());
  auto* part1 = reinterpret_cast<Part1*>(base);
  auto* part2 = reinterpret_cast<double*>(base + part1_b);
  auto* state = reinterpret_cast<RowState*>(base + part1_b + part2_b);
  auto* part4 = reinterpret_cast<Part4*>(base + part1_b + part2_b + state_b);
  unsigned char* hist_base = base + part1_b + part2_b + state_b + part4_b;
  auto* gcnt = a.hist ? reinterpret_cast<uint32_t*>(hist_base) : nullptr;
  auto* gmass = a.mass ? reinterpret_cast<unsigned long long*>(hist_base + cnt_b) : nullptr;

  const ErrorSink nan_sink = error_sink(
      ctx,
      "[sample] logits row {} token {} is nan: sampling needs finite logits (-inf masks a token)");
  const ErrorSink inf_sink = error_sink(
      ctx,
      "[sample] logits row {} token {} is inf: sampling needs finite logits (-inf masks a token)");
  const ErrorSink no_finite_sink =
      error_sink(ctx, "[sample] logits row {} has no finite entry: every token is masked");
  const ErrorSink stream_sink =
      error_sink(ctx, "[sample] rng_counters row {} has stream {}; streams must be >= 0");
  const ErrorSink position_sink =
      error_sink(ctx, "[sample] rng_counters row {} has position {}, outside [0, 2^32)");

  auto select = select_kernel<T>;
  static_assert(kSelThreads == kNB, "find_bucket gives each thread one bucket");
  R1_CUDA_CHECK(cudaFuncSetAttribute(select, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                     static_cast<int>(kSelSmem)));
  for (int64_t r0 = 0; r0 < rows; r0 += group) {
    const int64_t g = std::min(group, rows - r0);
    a.rows = g;
    a.row0 = r0;
    const T* x = logits.ptr<T>() + r0 * vocab;
    const int64_t* cnt = rng_counters.ptr<int64_t>() + 2 * r0;
    const dim3 grid(static_cast<unsigned>(nc), static_cast<unsigned>(g));
    if (a.hist) R1_CUDA_CHECK(cudaMemsetAsync(hist_base, 0, cnt_b + mass_b, stream));
    stats_kernel<T><<<grid, kThreads, 0, stream>>>(part1, x, a, nan_sink, inf_sink);
    R1_CUDA_CHECK_LAUNCH();
    lse_hist_kernel<T><<<grid, kThreads, 0, stream>>>(part2, gcnt, gmass, x, part1, a);
    R1_CUDA_CHECK_LAUNCH();
    select<<<static_cast<unsigned>(g), kSelThreads, kSelSmem, stream>>>(
        state, x, cnt, part1, part2, gcnt, gmass, a, no_finite_sink, stream_sink, position_sink);
    R1_CUDA_CHECK_LAUNCH();
    if (!greedy) {
      gumbel_kernel<T><<<grid, kThreads, 0, stream>>>(part4, x, state, cnt, a);
      R1_CUDA_CHECK_LAUNCH();
    }
    const unsigned fgrid = static_cast<unsigned>((g + 127) / 128);
    int32_t* tok = tokens.ptr<int32_t>() + r0;
    if (token_logprob.dtype == DType::f64) {
      finalize_kernel<T, double>
          <<<fgrid, 128, 0, stream>>>(tok, token_logprob.ptr<double>() + r0, x, state, part4, a);
    } else {
      finalize_kernel<T, float>
          <<<fgrid, 128, 0, stream>>>(tok, token_logprob.ptr<float>() + r0, x, state, part4, a);
    }
    R1_CUDA_CHECK_LAUNCH();
  }
}

}  // namespace

void sample_forward(const TensorView& tokens, const TensorView& token_logprob,
                    const TensorView& logits, const TensorView& rng_counters,
                    const SamplingParams& params, uint64_t seed, Context& ctx) {
  if (logits.shape[0] == 0) return;
  dispatch_float(logits.dtype, "sample", [&](auto tag) {
    using T = decltype(tag);
    run_sampling<T>(tokens, token_logprob, logits, rng_counters, params, seed, ctx);
  });
}

}  // namespace r1kit::kernels::cuda
