// RMSNorm on the GPU.
//
// Forward, and dx in backward: one row per warp when the row is at most 32·NP units, else one row
// per block (up to 1024 threads forward, 512 backward), grid-stride over rows. A unit is a 16-byte
// pack when the row width is a multiple of the pack and every pointer is 16-byte aligned, else one
// element. Each thread keeps its first NP units of the row in registers between the reduction and
// the write (rows wider than NP units per thread re-read the rest from L1/L2), so x (and dy) are
// read from memory once. The block-per-row backward on packs with every unit in one pass instead
// streams rows through shared memory with cp.async, two stages deep, so the next row's loads are
// in flight while the current one is reduced and written (backward_staged_kernel).
//
// dw (+=) without atomics: each row group (warp or block) sums dy·x·rstd over the rows it visits,
// in row order, each thread its own columns (in shared memory, or in registers for the staged
// kernel); each block then writes one fp32 (f64 for f64) partial row (a warp-per-row block first
// adds its warps' rows in warp order) of a (blocks, C) scratch; a second kernel adds the partials
// in a fixed order. The grouping depends only on the shape, the write mode and the device (its SM
// count and occupancy), so results are deterministic. Rows too wide for the registers take dx and
// dw in separate passes (dw partials over row chunks, then the same fixed-order sum).
//
// Dtypes: x, y (dx, dy) of one dtype T with w (dw) either T or f32 run the typed kernels (computed
// in acc_t<T>); any other mix (allowed by the front-end, never with f64) runs on f32 stand-ins, as
// the CPU reference does.
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/vec.cuh"
#include "kernels/rmsnorm.h"

#include <cuda_pipeline.h>

#include <algorithm>
#include <vector>

namespace r1kit::kernels::cuda {

namespace {

// ---- helpers -----------------------------------------------------------------------------------

template <class A, class T>
__device__ __forceinline__ A as(T v) {
  return static_cast<A>(to_acc(v));
}

template <class A>
__device__ __forceinline__ A inv_sqrt(A v) {
  if constexpr (std::is_same_v<A, double>) {
    return 1.0 / sqrt(v);
  } else {
    return 1.0f / sqrtf(v);  // IEEE sqrt and division (no fast math), as close to the CPU as f32
  }
}

// The threads that share a row: a warp, or the whole block.
template <bool kWarp>
struct RowGroup {
  __device__ int lane() const { return kWarp ? static_cast<int>(threadIdx.x & 31) : threadIdx.x; }
  __device__ int size() const { return kWarp ? 32 : blockDim.x; }
  __device__ int64_t first() const {
    return kWarp ? static_cast<int64_t>(blockIdx.x) * (blockDim.x >> 5) + (threadIdx.x >> 5)
                 : static_cast<int64_t>(blockIdx.x);
  }
  __device__ int64_t count() const {
    return kWarp ? static_cast<int64_t>(gridDim.x) * (blockDim.x >> 5)
                 : static_cast<int64_t>(gridDim.x);
  }
};

template <bool kWarp, class A>
__device__ __forceinline__ A group_sum(A v, A* scratch) {
  if constexpr (kWarp) {
    return warp_sum(v);
  } else {
    return block_sum(v, scratch);
  }
}

// ---- forward -----------------------------------------------------------------------------------

// y = x · rstd · w, rstd = 1 / sqrt(mean(x²) + eps). y may be x (each thread reads its units before
// writing them; the reduction separates the two phases).
template <class T, class W, int V, int NP, bool kWarp>
__global__ void __launch_bounds__(1024)
    forward_kernel(T* y, acc_t<T>* rstd, const T* x, const W* w, int64_t n, int c, acc_t<T> eps) {
  using A = acc_t<T>;
  __shared__ A scratch[32];
  const RowGroup<kWarp> g;
  const int units = c / V, lane = g.lane(), gs = g.size();
  for (int64_t row = g.first(); row < n; row += g.count()) {
    const T* xr = x + row * c;
    T* yr = y + row * c;
    Vec<T, V> xv[NP];
#pragma unroll
    for (int k = 0; k < NP; ++k) {
      const int u = lane + k * gs;
      if (u < units) xv[k] = load_vec<T, V>(xr + static_cast<int64_t>(u) * V);
    }
    A ss = 0;
#pragma unroll
    for (int k = 0; k < NP; ++k) {
      if (lane + k * gs >= units) continue;
#pragma unroll
      for (int j = 0; j < V; ++j) {
        const A v = to_acc(xv[k].v[j]);
        ss += v * v;
      }
    }
    for (int u = lane + NP * gs; u < units; u += gs) {
      const Vec<T, V> t = load_vec<T, V>(xr + static_cast<int64_t>(u) * V);
#pragma unroll
      for (int j = 0; j < V; ++j) {
        const A v = to_acc(t.v[j]);
        ss += v * v;
      }
    }
    ss = group_sum<kWarp>(ss, scratch);
    const A r = inv_sqrt(ss / static_cast<A>(c) + eps);
    if (lane == 0) rstd[row] = r;
#pragma unroll
    for (int k = 0; k < NP; ++k) {
      const int u = lane + k * gs;
      if (u >= units) continue;
      const Vec<W, V> wv = load_vec<W, V>(w + static_cast<int64_t>(u) * V);
      Vec<T, V> o;
#pragma unroll
      for (int j = 0; j < V; ++j) o.v[j] = from_acc<T>(to_acc(xv[k].v[j]) * r * as<A>(wv.v[j]));
      store_vec<T, V>(yr + static_cast<int64_t>(u) * V, o);
    }
    for (int u = lane + NP * gs; u < units; u += gs) {
      const Vec<T, V> t = load_vec<T, V>(xr + static_cast<int64_t>(u) * V);
      const Vec<W, V> wv = load_vec<W, V>(w + static_cast<int64_t>(u) * V);
      Vec<T, V> o;
#pragma unroll
      for (int j = 0; j < V; ++j) o.v[j] = from_acc<T>(to_acc(t.v[j]) * r * as<A>(wv.v[j]));
      store_vec<T, V>(yr + static_cast<int64_t>(u) * V, o);
    }
  }
}

// ---- backward ----------------------------------------------------------------------------------

// dx_j (=|+=) rstd · (w_j dy_j − x_j · rstd² · mean(w dy x)). With kDW, also the block's partial
// dw row Σ dy·x·rstd over the rows its groups visited into part[blockIdx.x, :] (written even when
// the block had no row; warp groups' rows are added in warp order first).
// dx may be dy (overwrite only; same read-before-write argument as the forward).
template <class T, class W, class R, int V, int NP, bool kWarp, bool kDW>
__global__ void __launch_bounds__(512)
    backward_kernel(T* dx, acc_t<T>* part, const T* dy, const T* x, const W* w, const R* rstd,
                    int64_t n, int c, bool accumulate) {
  using A = acc_t<T>;
  __shared__ A scratch[32];
  const RowGroup<kWarp> g;
  const int units = c / V, lane = g.lane(), gs = g.size();
  // The group's dw accumulators: one row of C in dynamic shared memory per group, each thread
  // touching only its own units' slots (thread-private, so no barriers; registers stay free for
  // the loads in flight).
  extern __shared__ __align__(16) unsigned char smem[];
  A* dws = reinterpret_cast<A*>(smem) + (kWarp ? static_cast<int64_t>(threadIdx.x >> 5) * c : 0);
  if constexpr (kDW) {
    Vec<A, V> zero;
#pragma unroll
    for (int j = 0; j < V; ++j) zero.v[j] = 0;
#pragma unroll
    for (int k = 0; k < NP; ++k) {
      const int u = lane + k * gs;
      if (u < units) store_vec<A, V>(dws + static_cast<int64_t>(u) * V, zero);
    }
  }
  for (int64_t row = g.first(); row < n; row += g.count()) {
    const T* xr = x + row * c;
    const T* dyr = dy + row * c;
    T* dxr = dx + row * c;
    const A r = static_cast<A>(rstd[row]);
    // x, dy and (accumulating) the old dx of the thread's units, all loads in flight at once.
    Vec<T, V> xv[NP], gv[NP], ov[NP];
#pragma unroll
    for (int k = 0; k < NP; ++k) {
      const int u = lane + k * gs;
      if (u >= units) continue;
      xv[k] = load_vec<T, V>(xr + static_cast<int64_t>(u) * V);
      gv[k] = load_vec<T, V>(dyr + static_cast<int64_t>(u) * V);
      if (accumulate) ov[k] = load_vec<T, V>(dxr + static_cast<int64_t>(u) * V);
    }
    A dot = 0;
#pragma unroll
    for (int k = 0; k < NP; ++k) {
      const int u = lane + k * gs;
      if (u >= units) continue;
      const Vec<W, V> wv = load_vec<W, V>(w + static_cast<int64_t>(u) * V);
#pragma unroll
      for (int j = 0; j < V; ++j) dot += as<A>(wv.v[j]) * to_acc(gv[k].v[j]) * to_acc(xv[k].v[j]);
    }
    if constexpr (!kDW) {
      for (int u = lane + NP * gs; u < units; u += gs) {
        const Vec<T, V> xt = load_vec<T, V>(xr + static_cast<int64_t>(u) * V);
        const Vec<T, V> gt = load_vec<T, V>(dyr + static_cast<int64_t>(u) * V);
        const Vec<W, V> wv = load_vec<W, V>(w + static_cast<int64_t>(u) * V);
#pragma unroll
        for (int j = 0; j < V; ++j) dot += as<A>(wv.v[j]) * to_acc(gt.v[j]) * to_acc(xt.v[j]);
      }
    }
    dot = group_sum<kWarp>(dot, scratch);
    const A kk = r * r * dot / static_cast<A>(c);
#pragma unroll
    for (int k = 0; k < NP; ++k) {
      const int u = lane + k * gs;
      if (u >= units) continue;
      const Vec<W, V> wv = load_vec<W, V>(w + static_cast<int64_t>(u) * V);
      Vec<T, V> o;
      Vec<A, V> dwv;
      if constexpr (kDW) dwv = load_vec<A, V>(dws + static_cast<int64_t>(u) * V);
#pragma unroll
      for (int j = 0; j < V; ++j) {
        const A xj = to_acc(xv[k].v[j]), gj = to_acc(gv[k].v[j]);
        A d = r * (as<A>(wv.v[j]) * gj - xj * kk);
        if (accumulate) d = to_acc(ov[k].v[j]) + d;
        o.v[j] = from_acc<T>(d);
        if constexpr (kDW) dwv.v[j] += gj * xj * r;
      }
      store_vec<T, V>(dxr + static_cast<int64_t>(u) * V, o);
      if constexpr (kDW) store_vec<A, V>(dws + static_cast<int64_t>(u) * V, dwv);
    }
    if constexpr (!kDW) {
      for (int u = lane + NP * gs; u < units; u += gs) {
        const Vec<T, V> xt = load_vec<T, V>(xr + static_cast<int64_t>(u) * V);
        const Vec<T, V> gt = load_vec<T, V>(dyr + static_cast<int64_t>(u) * V);
        const Vec<W, V> wv = load_vec<W, V>(w + static_cast<int64_t>(u) * V);
        Vec<T, V> o;
        if (accumulate) o = load_vec<T, V>(dxr + static_cast<int64_t>(u) * V);
#pragma unroll
        for (int j = 0; j < V; ++j) {
          A d = r * (as<A>(wv.v[j]) * to_acc(gt.v[j]) - to_acc(xt.v[j]) * kk);
          if (accumulate) d = to_acc(o.v[j]) + d;
          o.v[j] = from_acc<T>(d);
        }
        store_vec<T, V>(dxr + static_cast<int64_t>(u) * V, o);
      }
    }
  }
  if constexpr (kDW && kWarp) {
    // One partial row per block: the warps' rows added in warp order (fixed, so deterministic).
    __syncthreads();  // every warp's accumulators are final
    const A* rows = reinterpret_cast<const A*>(smem);
    const int warps = blockDim.x >> 5;
    A* pr = part + static_cast<int64_t>(blockIdx.x) * c;
    for (int j = threadIdx.x; j < c; j += blockDim.x) {
      A t = 0;
      for (int wi = 0; wi < warps; ++wi) t += rows[static_cast<int64_t>(wi) * c + j];
      pr[j] = t;
    }
  } else if constexpr (kDW) {
    A* pr = part + static_cast<int64_t>(blockIdx.x) * c;
#pragma unroll
    for (int k = 0; k < NP; ++k) {
      const int u = lane + k * gs;
      if (u < units)
        store_vec<A, V>(pr + static_cast<int64_t>(u) * V,
                        load_vec<A, V>(dws + static_cast<int64_t>(u) * V));
    }
  }
}

// The block-per-row backward for pack-aligned rows whose units all fit one pass (fused dw).
// Rows stream through shared memory by cp.async, two stages deep: the copies of the block's next
// row (x, dy and, accumulating, the old dx) are in flight while the current row is reduced and
// written, so each SM keeps about a row per resident block in flight instead of waiting for each
// row's loads after the last row's stores. Each thread copies and reads only its own units' slots
// (no barrier orders the copies; the end-of-row barrier keeps a stage's reads before its next
// copy). w and the dw partials (Σ dy·x·rstd over the block's rows, in row order) stay in
// registers; the block writes its partial row to part[blockIdx.x, :] (zeros when it had no row).
template <class T, class W, int NP>
__global__ void __launch_bounds__(512)
    backward_staged_kernel(T* dx, acc_t<T>* part, const T* dy, const T* x, const W* w,
                           const acc_t<T>* rstd, int64_t n, int c, bool accumulate) {
  using A = acc_t<T>;
  constexpr int V = kPack<T>;
  __shared__ A scratch[32];
  extern __shared__ __align__(16) unsigned char smem[];
  Pack<T>* buf = reinterpret_cast<Pack<T>*>(smem);  // [2 stages][planes][units]
  const int units = c / V, lane = threadIdx.x, gs = blockDim.x, planes = accumulate ? 3 : 2;
  const auto slot = [&](int s, int plane, int u) {
    return buf + static_cast<int64_t>(s * planes + plane) * units + u;
  };
  // Starts the copies of `row` into stage s (none past the end) and commits them as one group.
  const auto issue = [&](int64_t row, int s) {
    if (row < n) {
      const int64_t base = row * c;
#pragma unroll
      for (int k = 0; k < NP; ++k) {
        const int u = lane + k * gs;
        if (u >= units) continue;
        const int64_t off = base + static_cast<int64_t>(u) * V;
        __pipeline_memcpy_async(slot(s, 0, u), x + off, 16);
        __pipeline_memcpy_async(slot(s, 1, u), dy + off, 16);
        if (accumulate) __pipeline_memcpy_async(slot(s, 2, u), dx + off, 16);
      }
    }
    __pipeline_commit();
  };
  Vec<W, V> wv[NP];
  Vec<A, V> dwv[NP];
#pragma unroll
  for (int k = 0; k < NP; ++k) {
    const int u = lane + k * gs;
    if (u < units) wv[k] = load_vec<W, V>(w + static_cast<int64_t>(u) * V);
#pragma unroll
    for (int j = 0; j < V; ++j) dwv[k].v[j] = 0;
  }
  const int64_t stride = gridDim.x;
  int s = 0;
  issue(blockIdx.x, 0);
  for (int64_t row = blockIdx.x; row < n; row += stride, s ^= 1) {
    issue(row + stride, s ^ 1);
    const A r = static_cast<A>(rstd[row]);
    __pipeline_wait_prior(1);  // this thread's copies of `row` have landed
    A dot = 0;
#pragma unroll
    for (int k = 0; k < NP; ++k) {
      const int u = lane + k * gs;
      if (u >= units) continue;
      const Pack<T> xv = *slot(s, 0, u), gv = *slot(s, 1, u);
#pragma unroll
      for (int j = 0; j < V; ++j) dot += as<A>(wv[k].v[j]) * to_acc(gv.v[j]) * to_acc(xv.v[j]);
    }
    dot = block_sum(dot, scratch);
    const A kk = r * r * dot / static_cast<A>(c);
    T* dxr = dx + row * c;
#pragma unroll
    for (int k = 0; k < NP; ++k) {
      const int u = lane + k * gs;
      if (u >= units) continue;
      const Pack<T> xv = *slot(s, 0, u), gv = *slot(s, 1, u);
      Pack<T> o;
      if (accumulate) o = *slot(s, 2, u);
#pragma unroll
      for (int j = 0; j < V; ++j) {
        const A xj = to_acc(xv.v[j]), gj = to_acc(gv.v[j]);
        A d = r * (as<A>(wv[k].v[j]) * gj - xj * kk);
        if (accumulate) d = to_acc(o.v[j]) + d;
        o.v[j] = from_acc<T>(d);
        dwv[k].v[j] += gj * xj * r;
      }
      store_pack(dxr + static_cast<int64_t>(u) * V, o);
    }
    __syncthreads();  // stage s is read; the next iteration's issue overwrites it
  }
  __pipeline_wait_prior(0);
  A* pr = part + static_cast<int64_t>(blockIdx.x) * c;
#pragma unroll
  for (int k = 0; k < NP; ++k) {
    const int u = lane + k * gs;
    if (u < units) store_vec<A, V>(pr + static_cast<int64_t>(u) * V, dwv[k]);
  }
}

constexpr int kColTile = 32, kColSlices = 8;  // column-reduction blocks: 32 columns × 8 slices

// part[group, j] = Σ over rows [group·rows_per, …) of dy·x·rstd (rows too wide for the fused path).
template <class T, class R>
__global__ void __launch_bounds__(kColTile* kColSlices)
    dw_partial_kernel(acc_t<T>* part, const T* dy, const T* x, const R* rstd, int64_t n, int c,
                      int64_t rows_per) {
  using A = acc_t<T>;
  __shared__ A s[kColSlices][kColTile + 1];
  const int col = blockIdx.x * kColTile + threadIdx.x;
  const int64_t r0 = static_cast<int64_t>(blockIdx.y) * rows_per;
  const int64_t r1 = min(n, r0 + rows_per);
  A acc = 0;
  if (col < c)
    for (int64_t row = r0 + threadIdx.y; row < r1; row += kColSlices)
      acc += to_acc(dy[row * c + col]) * to_acc(x[row * c + col]) * static_cast<A>(rstd[row]);
  s[threadIdx.y][threadIdx.x] = acc;
  __syncthreads();
  if (threadIdx.y == 0 && col < c) {
    A t = 0;
#pragma unroll
    for (int k = 0; k < kColSlices; ++k) t += s[k][threadIdx.x];
    part[static_cast<int64_t>(blockIdx.y) * c + col] = t;
  }
}

// dw_j += Σ_g part[g, j], summed in a fixed order (slice k takes g ≡ k mod 8, then slices 0..7).
template <class W, class A>
__global__ void __launch_bounds__(kColTile* kColSlices)
    dw_sum_kernel(W* dw, const A* part, int64_t groups, int c) {
  __shared__ A s[kColSlices][kColTile + 1];
  const int col = blockIdx.x * kColTile + threadIdx.x;
  A acc = 0;
  if (col < c)
    for (int64_t gi = threadIdx.y; gi < groups; gi += kColSlices) acc += part[gi * c + col];
  s[threadIdx.y][threadIdx.x] = acc;
  __syncthreads();
  if (threadIdx.y == 0 && col < c) {
    A t = 0;
#pragma unroll
    for (int k = 0; k < kColSlices; ++k) t += s[k][threadIdx.x];
    dw[col] = from_acc<W>(as<A>(dw[col]) + t);
  }
}

// ---- launch planning ---------------------------------------------------------------------------

int64_t ceil_div(int64_t a, int64_t b) {
  return (a + b - 1) / b;
}

constexpr int kWarpBlock = 256;  // threads of a warp-per-row block (8 rows)

// Threads of a block-per-row launch: enough for NP units each, a multiple of 32, in [64, cap].
int row_threads(int units, int np, int cap) {
  const int64_t t = ceil_div(ceil_div(units, np), 32) * 32;
  return static_cast<int>(std::clamp<int64_t>(t, 64, cap));
}

template <class T, class W, int V, int NP>
void forward_typed(const TensorView& y, const TensorView& rstd, const TensorView& x,
                   const TensorView& w, double eps, Context& ctx) {
  using A = acc_t<T>;
  const int64_t n = x.shape[0];
  const int c = static_cast<int>(x.shape[1]), units = c / V;
  const bool warp = units <= 32 * NP;
  const int threads = warp ? kWarpBlock : row_threads(units, NP, 1024);
  const int64_t blocks = warp ? ceil_div(n, kWarpBlock / 32) : n;
  const unsigned grid = static_cast<unsigned>(std::min<int64_t>(blocks, int64_t{1} << 20));
  auto kernel = warp ? forward_kernel<T, W, V, NP, true> : forward_kernel<T, W, V, NP, false>;
  kernel<<<grid, threads, 0, stream_of(ctx)>>>(y.ptr<T>(), rstd.ptr<A>(), x.ptr<T>(), w.ptr<W>(), n,
                                               c, static_cast<A>(eps));
  R1_CUDA_CHECK_LAUNCH();
}

template <class T, class W, int V, int NP>
void backward_typed(const TensorView& dx, const TensorView& dw, const TensorView& dy,
                    const TensorView& x, const TensorView& w, const TensorView& rstd,
                    bool accumulate, Context& ctx) {
  using A = acc_t<T>;
  const int64_t n = x.shape[0];
  const int c = static_cast<int>(x.shape[1]), units = c / V;
  cudaStream_t stream = stream_of(ctx);
  const bool warp = units <= 32 * NP;
  const int threads = warp ? kWarpBlock : row_threads(units, NP, 512);
  const bool fused = warp || units <= NP * threads;
  // Pack-aligned rows of one block each stream through shared memory (backward_staged_kernel).
  const bool staged = V == kPack<T> && !warp && fused;
  auto kernel = warp    ? backward_kernel<T, W, A, V, NP, true, true>
                : fused ? backward_kernel<T, W, A, V, NP, false, true>
                        : backward_kernel<T, W, A, V, NP, false, false>;
  if constexpr (V == kPack<T>)
    if (staged) kernel = backward_staged_kernel<T, W, NP>;
  const int64_t rows_per_block = warp ? kWarpBlock / 32 : 1;
  // Staged: two stages of the row's 2 or 3 tensors (at most 192 KB: units <= 4·512). Otherwise
  // the dw accumulators: one row per group (above the default 48 KB for rows wider than 12288
  // bf16 elements).
  const size_t smem = staged  ? size_t{2} * (accumulate ? 3 : 2) * units * sizeof(Pack<T>)
                      : fused ? static_cast<size_t>(rows_per_block * c) * sizeof(A)
                              : 0;
  if (smem > 48 * 1024)
    R1_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                       static_cast<int>(smem)));
  // One wave of resident blocks, grid-stride over rows: few partial rows to add up.
  int per_sm = 0;
  R1_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, threads, smem));
  const int64_t grid = std::min<int64_t>(ceil_div(n, rows_per_block),
                                         static_cast<int64_t>(std::max(per_sm, 1)) * sm_count(ctx));
  const DType part_dtype = std::is_same_v<A, double> ? DType::f64 : DType::f32;
  // Partial dw rows: one per block of the fused kernel, one per row chunk of dw_partial_kernel.
  const int64_t groups =
      fused ? grid : std::min<int64_t>(n, 4 * static_cast<int64_t>(sm_count(ctx)));
  Tensor part = ctx.empty({groups, c}, part_dtype, "rmsnorm_backward.dw_partials");
  const unsigned col_blocks = static_cast<unsigned>(ceil_div(c, kColTile));
  const dim3 col_threads(kColTile, kColSlices);
  if (!fused) {  // before dx: dx may be dy
    const int64_t rows_per = ceil_div(n, groups);
    dw_partial_kernel<T, A>
        <<<dim3(col_blocks, static_cast<unsigned>(groups)), col_threads, 0, stream>>>(
            part.ptr<A>(), dy.ptr<T>(), x.ptr<T>(), rstd.ptr<A>(), n, c, rows_per);
    R1_CUDA_CHECK_LAUNCH();
  }
  kernel<<<static_cast<unsigned>(grid), threads, smem, stream>>>(
      dx.ptr<T>(), part.ptr<A>(), dy.ptr<T>(), x.ptr<T>(), w.ptr<W>(), rstd.ptr<A>(), n, c,
      accumulate);
  R1_CUDA_CHECK_LAUNCH();
  dw_sum_kernel<W, A>
      <<<col_blocks, col_threads, 0, stream>>>(dw.ptr<W>(), part.ptr<A>(), groups, c);
  R1_CUDA_CHECK_LAUNCH();
}

// Calls fn(T{}, W{}) for the typed combinations: W = T, or W = f32 with T = bf16/f16.
template <class F>
void dispatch_tw(DType t, DType wt, const char* op, F&& fn) {
  dispatch_float(t, op, [&](auto tt) {
    using T = decltype(tt);
    if (wt == t) {
      fn(tt, tt);
    } else if constexpr (std::is_same_v<T, bf16> || std::is_same_v<T, f16>) {
      fn(tt, float{});
    }
  });
}

bool typed_pair(DType t, DType wt) {
  return wt == t || (wt == DType::f32 && (t == DType::bf16 || t == DType::f16));
}

// f32 stand-ins for a mixed-dtype call: in() converts, out() is scratch written back by finish(),
// inout() both. f32 views (and absent ones) pass through.
class F32Stage {
 public:
  explicit F32Stage(Context& ctx) : ctx_(ctx) {}
  TensorView in(const TensorView& v) { return make(v, true, false); }
  TensorView out(const TensorView& v) { return make(v, false, true); }
  TensorView inout(const TensorView& v) { return make(v, true, true); }
  void finish() {
    for (auto& [orig, s] : back_) convert_views(orig, s, ctx_);
  }

 private:
  TensorView make(const TensorView& v, bool copy_in, bool write_back) {
    if (!v.defined() || v.dtype == DType::f32) return v;
    keep_.push_back(ctx_.empty(v.dims(), DType::f32, v.name));
    TensorView s = keep_.back().view();
    if (copy_in) convert_views(s, v, ctx_);
    if (write_back) back_.emplace_back(v, s);
    return s;
  }
  Context& ctx_;
  std::vector<Tensor> keep_;
  std::vector<std::pair<TensorView, TensorView>> back_;
};

void forward_any(const TensorView& y, const TensorView& rstd, const TensorView& x,
                 const TensorView& w, double eps, Context& ctx) {
  dispatch_tw(x.dtype, w.dtype, "rmsnorm", [&](auto tt, auto wt) {
    using T = decltype(tt);
    using W = decltype(wt);
    const bool vec =
        x.shape[1] % kPack<T> == 0 && aligned16(x.data) && aligned16(y.data) && aligned16(w.data);
    if (vec) {
      forward_typed<T, W, kPack<T>, 4>(y, rstd, x, w, eps, ctx);
    } else {
      forward_typed<T, W, 1, 8>(y, rstd, x, w, eps, ctx);
    }
  });
}

void backward_any(const TensorView& dx, const TensorView& dw, const TensorView& dy,
                  const TensorView& x, const TensorView& w, const TensorView& rstd, bool accumulate,
                  Context& ctx) {
  dispatch_tw(x.dtype, w.dtype, "rmsnorm_backward", [&](auto tt, auto wt) {
    using T = decltype(tt);
    using W = decltype(wt);
    const bool vec = x.shape[1] % kPack<T> == 0 && aligned16(x.data) && aligned16(dy.data) &&
                     aligned16(dx.data) && aligned16(w.data);
    if (vec) {
      backward_typed<T, W, kPack<T>, 4>(dx, dw, dy, x, w, rstd, accumulate, ctx);
    } else {
      backward_typed<T, W, 1, 8>(dx, dw, dy, x, w, rstd, accumulate, ctx);
    }
  });
}

}  // namespace

void rmsnorm_forward(const TensorView& y, const TensorView& rstd, const TensorView& x,
                     const TensorView& w, double eps, Context& ctx) {
  if (x.shape[0] == 0) return;  // (N, 0) still writes rstd (NaN, as the CPU does)
  if (y.dtype == x.dtype && typed_pair(x.dtype, w.dtype))
    return forward_any(y, rstd, x, w, eps, ctx);
  F32Stage st(ctx);
  const TensorView ys = st.out(y), xs = st.in(x), ws = st.in(w);
  forward_any(ys, rstd, xs, ws, eps, ctx);
  st.finish();
}

void rmsnorm_backward(const TensorView& dx, const TensorView& dw, const TensorView& dy,
                      const TensorView& x, const TensorView& w, const TensorView& rstd,
                      GradWrite dx_write, Context& ctx) {
  if (x.shape[0] == 0 || x.shape[1] == 0) return;
  const bool accumulate = dx_write == GradWrite::accumulate;
  if (dx.dtype == x.dtype && dy.dtype == x.dtype && dw.dtype == w.dtype &&
      typed_pair(x.dtype, w.dtype))
    return backward_any(dx, dw, dy, x, w, rstd, accumulate, ctx);
  F32Stage st(ctx);
  const TensorView dxs = accumulate ? st.inout(dx) : st.out(dx), dws = st.inout(dw);
  const TensorView dys = st.in(dy), xs = st.in(x), ws = st.in(w);
  backward_any(dxs, dws, dys, xs, ws, rstd, accumulate, ctx);
  st.finish();
}

}  // namespace r1kit::kernels::cuda
