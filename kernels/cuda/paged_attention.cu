// Paged attention on the GPU. Both kernels run the online softmax over a row's cached positions
// 0 .. p, walked through its sequence's block table:
//   m' = max(m, s_j),  l' = l·e^(m − m') + Σ_j e^(s_j − m'),  acc' = acc·e^(m − m') + Σ_j e^(s_j −
//   m')·v_j
// in the accumulator type (f32; f64 for f64 tensors).
// Tiled kernel (f32/bf16/f16, Dv <= 512, 4-byte aligned rows): one block per (query row, KV head),
// one warp per query head of the group (the group's heads share every K/V tile). Positions go in
// tiles of 32: the block copies the tile's K rows (and V rows, unless V is a prefix view of K, as
// MLA's latent cache is) into shared memory, each lane computes the score of one position (rows
// padded to an odd word count, so the 32 lanes reading 32 rows hit 32 banks), the warp takes the
// tile's max and sum with one reduction each, then accumulates the 32 weighted V rows with each
// lane owning the output columns c ≡ lane (mod 32).
// Simple kernel (the fallback: f64, Dv > 512, unaligned views): one warp per (query row, query
// head), one position at a time, a warp reduction per position. Split-K over long caches (few
// sequences with long contexts leave SMs idle) and tensor cores are later work.
// paged_cache_write: a grid-stride copy of (row, head) vectors into their slots.
#include "kernels/cuda/common.cuh"
#include "kernels/paged_attention.h"

namespace r1kit::kernels::cuda {
namespace {

struct CacheView {
  const void* data;
  int64_t s0, s1, s2;  // block, slot, head strides (elements)
};

// The sequence of packed row i: the last b with cu[b] <= i.
__device__ __forceinline__ int64_t sequence_of(const int32_t* cu, int64_t n_seq, int64_t i) {
  int64_t lo = 0, hi = n_seq - 1;
  while (lo < hi) {
    const int64_t mid = (lo + hi + 1) / 2;
    if (cu[mid] <= i) {
      lo = mid;
    } else {
      hi = mid - 1;
    }
  }
  return lo;
}

template <class T>
__global__ void paged_attention_kernel(
    T* __restrict__ out, int64_t os0, int64_t os1, const T* __restrict__ q, int64_t qs0,
    int64_t qs1, CacheView kc, CacheView vc, const int32_t* __restrict__ tables, int64_t width,
    const int32_t* __restrict__ cu, const int32_t* __restrict__ cached, int64_t n_seq,
    int64_t group, int64_t dqk, int64_t dv, int64_t bs, acc_t<T> scale) {
  using A = acc_t<T>;
  extern __shared__ unsigned char smem_raw[];
  A* qs = reinterpret_cast<A*>(smem_raw);  // (Dqk)
  A* acc = qs + dqk;                       // (Dv)
  const int64_t i = blockIdx.x, h = blockIdx.y, g = h / group;
  const int lane = static_cast<int>(threadIdx.x);
  const int64_t s = sequence_of(cu, n_seq, i);
  const int64_t pos = cached[s] + (i - cu[s]);
  const int32_t* table = tables + s * width;
  const T* qi = q + i * qs0 + h * qs1;
  for (int64_t c = lane; c < dqk; c += 32) qs[c] = load(qi + c);
  for (int64_t c = lane; c < dv; c += 32) acc[c] = A(0);
  __syncwarp();
  const T* kbase = static_cast<const T*>(kc.data);
  const T* vbase = static_cast<const T*>(vc.data);
  A m = -INFINITY, l = A(0);
  for (int64_t j = 0; j <= pos; ++j) {
    const int64_t blk = table[j / bs], slot = j % bs;
    const T* kj = kbase + blk * kc.s0 + slot * kc.s1 + g * kc.s2;
    const T* vj = vbase + blk * vc.s0 + slot * vc.s1 + g * vc.s2;
    A d = A(0);
    for (int64_t c = lane; c < dqk; c += 32) d += qs[c] * load(kj + c);
    const A sj = scale * warp_sum(d);
    const A m_new = max(m, sj);
    const A alpha = exp(m - m_new), pj = exp(sj - m_new);
    l = l * alpha + pj;
    for (int64_t c = lane; c < dv; c += 32) acc[c] = acc[c] * alpha + pj * load(vj + c);
    m = m_new;
  }
  T* oi = out + i * os0 + h * os1;
  for (int64_t c = lane; c < dv; c += 32) store(oi + c, acc[c] / l);
}

constexpr int kTile = 32;      // positions per tile (one per lane)
constexpr int kMaxWarps = 16;  // query heads a block runs at once

// The two values of a 32-bit word of 2-byte floats, or the one of an f32 word.
template <class T>
__device__ __forceinline__ float2 word_pair(uint32_t u) {
  if constexpr (std::is_same_v<T, bf16>) {
    __nv_bfloat162 v;
    memcpy(&v, &u, sizeof v);
    return __bfloat1622float2(v);
  } else {
    __half2 v;
    memcpy(&v, &u, sizeof v);
    return __half22float2(v);
  }
}

// kVpl: output values per lane (ceil(Dv / 32) rounded up to a power of two).
template <class T, int kVpl>
__global__ void paged_attention_tiled_kernel(
    T* __restrict__ out, int64_t os0, int64_t os1, const T* __restrict__ q, int64_t qs0,
    int64_t qs1, CacheView kc, CacheView vc, bool v_in_k, const int32_t* __restrict__ tables,
    int64_t width, const int32_t* __restrict__ cu, const int32_t* __restrict__ cached,
    int64_t n_seq, int group, int dqk, int dv, int64_t bs, int kw, int vw, float scale) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  uint32_t* kt = reinterpret_cast<uint32_t*>(smem_raw);  // (kTile, kw) words
  uint32_t* vt = v_in_k ? kt : kt + kTile * kw;          // (kTile, vw) words
  float* qs = reinterpret_cast<float*>(kt + kTile * kw + (v_in_k ? 0 : kTile * vw));
  const int nwarps = static_cast<int>(blockDim.x) / 32;
  const int warp = static_cast<int>(threadIdx.x) / 32, lane = static_cast<int>(threadIdx.x) % 32;
  const int64_t i = blockIdx.x, g = blockIdx.y;
  const int64_t s = sequence_of(cu, n_seq, i);
  const int64_t pos = cached[s] + (i - cu[s]);
  const int32_t* table = tables + s * width;
  constexpr int kPer = sizeof(T) == 2 ? 2 : 1;  // values per word
  const int kwords = dqk / kPer, vwords = dv / kPer;
  float* qw = qs + warp * dqk;
  for (int h0 = 0; h0 < group; h0 += nwarps) {
    const int hl = h0 + warp;
    const bool active = hl < group;
    const int64_t h = g * group + hl;
    if (active)
      for (int c = lane; c < dqk; c += 32) qw[c] = to_acc(q[i * qs0 + h * qs1 + c]);
    float acc[kVpl];
#pragma unroll
    for (int v = 0; v < kVpl; ++v) acc[v] = 0.f;
    float m = -INFINITY, l = 0.f;
    for (int64_t t0 = 0; t0 <= pos; t0 += kTile) {
      const int n = pos + 1 - t0 < kTile ? static_cast<int>(pos + 1 - t0) : kTile;
      __syncthreads();  // the previous tile (and this round's q) are done with / written
      for (int r = warp; r < n; r += nwarps) {
        const int64_t j = t0 + r, blk = table[j / bs], slot = j % bs;
        const uint32_t* kr = reinterpret_cast<const uint32_t*>(
            static_cast<const T*>(kc.data) + blk * kc.s0 + slot * kc.s1 + g * kc.s2);
        for (int w = lane; w < kwords; w += 32) kt[r * kw + w] = kr[w];
        if (!v_in_k) {
          const uint32_t* vr = reinterpret_cast<const uint32_t*>(
              static_cast<const T*>(vc.data) + blk * vc.s0 + slot * vc.s1 + g * vc.s2);
          for (int w = lane; w < vwords; w += 32) vt[r * vw + w] = vr[w];
        }
      }
      __syncthreads();
      if (!active) continue;
      float sj = -INFINITY;
      if (lane < n) {
        const uint32_t* kr = kt + lane * kw;
        float d = 0.f;
        if constexpr (kPer == 2) {
          for (int w = 0; w < kwords; ++w) {
            const float2 f = word_pair<T>(kr[w]);
            d = fmaf(qw[2 * w], f.x, d);
            d = fmaf(qw[2 * w + 1], f.y, d);
          }
        } else {
          for (int w = 0; w < kwords; ++w) d = fmaf(qw[w], __uint_as_float(kr[w]), d);
        }
        sj = scale * d;
      }
      const float m_new = max(m, warp_max(sj));
      const float alpha = expf(m - m_new);
      const float pj = lane < n ? expf(sj - m_new) : 0.f;
      l = l * alpha + warp_sum(pj);
#pragma unroll
      for (int v = 0; v < kVpl; ++v) acc[v] *= alpha;
      for (int j = 0; j < n; ++j) {
        const float pjj = __shfl_sync(0xffffffffu, pj, j);
        const T* vr = reinterpret_cast<const T*>(vt + j * vw);
#pragma unroll
        for (int v = 0; v < kVpl; ++v) {
          const int c = lane + 32 * v;
          if (c < dv) acc[v] = fmaf(pjj, to_acc(vr[c]), acc[v]);
        }
      }
      m = m_new;
    }
    if (active) {
      T* oi = out + i * os0 + h * os1;
#pragma unroll
      for (int v = 0; v < kVpl; ++v) {
        const int c = lane + 32 * v;
        if (c < dv) store(oi + c, acc[v] / l);
      }
    }
  }
}

template <class U>
__global__ void cache_write_kernel(U* __restrict__ cache, int64_t cs0, int64_t cs1, int64_t cs2,
                                   const U* __restrict__ src, int64_t ss0, int64_t ss1,
                                   const int32_t* __restrict__ slots, int64_t n, int64_t heads,
                                   int64_t d, int64_t bs) {
  const int64_t total = n * heads * d;
  for (int64_t e = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; e < total;
       e += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t c = e % d, gh = (e / d) % heads, r = e / (d * heads);
    const int64_t slot = slots[r];
    cache[(slot / bs) * cs0 + (slot % bs) * cs1 + gh * cs2 + c] = src[r * ss0 + gh * ss1 + c];
  }
}

// The device copy of an index array: itself, or an upload of a host one into `keep`.
const int32_t* device_ints(const TensorView& v, Tensor& keep, Context& ctx) {
  if (!v.device.is_cpu()) return v.ptr<int32_t>();
  keep = ctx.empty(v.dims(), DType::i32, v.name);
  ctx.copy(keep, v);
  return keep.ptr<int32_t>();
}

// Launches the tiled kernel when it applies (see the file comment); false otherwise.
template <class T>
bool launch_tiled(const TensorView& out, const TensorView& q, const TensorView& k_cache,
                  const TensorView& v_cache, const CacheView& kc, const CacheView& vc,
                  const int32_t* tbl, const int32_t* cu, const int32_t* len,
                  const PagedIndexHost& idx, int64_t dqk, int64_t dv, int64_t group, int64_t bs,
                  float scale, Context& ctx) {
  constexpr int64_t es = sizeof(T);
  auto aligned = [&](const TensorView& v) {
    return reinterpret_cast<uintptr_t>(v.data) % 4 == 0 && (v.stride[0] * es) % 4 == 0 &&
           (v.stride[1] * es) % 4 == 0 && (v.stride[2] * es) % 4 == 0;
  };
  if (dv > 512 || (dqk * es) % 4 != 0 || (dv * es) % 4 != 0 || !aligned(k_cache) ||
      !aligned(v_cache))
    return false;
  const bool v_in_k = v_cache.data == k_cache.data && v_cache.stride[0] == k_cache.stride[0] &&
                      v_cache.stride[1] == k_cache.stride[1] &&
                      v_cache.stride[2] == k_cache.stride[2] && dv <= dqk;
  const int kwords = static_cast<int>(dqk * es / 4), vwords = static_cast<int>(dv * es / 4);
  // Odd word strides: conflict-free column reads. V rows in the K tile keep its stride.
  const int kw = kwords | 1, vw = v_in_k ? kw : vwords | 1;
  const int warps = static_cast<int>(std::min<int64_t>(group, kMaxWarps));
  const size_t smem =
      sizeof(uint32_t) * static_cast<size_t>(kTile) * static_cast<size_t>(kw + (v_in_k ? 0 : vw)) +
      sizeof(float) * static_cast<size_t>(warps * dqk);
  if (smem > 200 * 1024) return false;
  const int64_t t = q.shape[0], hkv = k_cache.shape[2];
  const dim3 grid(static_cast<unsigned>(t), static_cast<unsigned>(hkv));
  auto launch = [&](auto kernel) {
    if (smem > 48 * 1024)
      R1_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         static_cast<int>(smem)));
    kernel<<<grid, 32 * warps, smem, stream_of(ctx)>>>(
        out.ptr<T>(), out.stride[0], out.stride[1], q.ptr<T>(), q.stride[0], q.stride[1], kc, vc,
        v_in_k, tbl, idx.table_width, cu, len, idx.num_seqs, static_cast<int>(group),
        static_cast<int>(dqk), static_cast<int>(dv), bs, kw, vw, scale);
    R1_CUDA_CHECK_LAUNCH();
  };
  const int64_t vpl = (dv + 31) / 32;
  if (vpl <= 1) {
    launch(paged_attention_tiled_kernel<T, 1>);
  } else if (vpl <= 2) {
    launch(paged_attention_tiled_kernel<T, 2>);
  } else if (vpl <= 4) {
    launch(paged_attention_tiled_kernel<T, 4>);
  } else if (vpl <= 8) {
    launch(paged_attention_tiled_kernel<T, 8>);
  } else {
    launch(paged_attention_tiled_kernel<T, 16>);
  }
  return true;
}

}  // namespace

void paged_attention_forward(const TensorView& out, const TensorView& q, const TensorView& k_cache,
                             const TensorView& v_cache, const TensorView& block_tables,
                             const TensorView& cu_seqlens, const TensorView& cached_lens,
                             const PagedIndexHost& idx, double scale, Context& ctx) {
  const int64_t t = q.shape[0], hq = q.shape[1];
  if (t == 0) return;
  Tensor keep_tbl, keep_cu, keep_len;
  const int32_t* tbl = device_ints(block_tables, keep_tbl, ctx);
  const int32_t* cu = device_ints(cu_seqlens, keep_cu, ctx);
  const int32_t* len = device_ints(cached_lens, keep_len, ctx);
  const int64_t dqk = q.shape[2], dv = v_cache.shape[3];
  const int64_t group = hq / k_cache.shape[2], bs = k_cache.shape[1];
  const CacheView kc{k_cache.data, k_cache.stride[0], k_cache.stride[1], k_cache.stride[2]};
  const CacheView vc{v_cache.data, v_cache.stride[0], v_cache.stride[1], v_cache.stride[2]};
  dispatch_float(q.dtype, "paged_attention", [&](auto tag) {
    using T = decltype(tag);
    using A = acc_t<T>;
    if constexpr (!std::is_same_v<T, double>) {
      if (launch_tiled<T>(out, q, k_cache, v_cache, kc, vc, tbl, cu, len, idx, dqk, dv, group, bs,
                          static_cast<float>(scale), ctx))
        return;
    }
    const size_t smem = static_cast<size_t>(dqk + dv) * sizeof(A);
    R1_CHECK(smem <= 48 * 1024,
             "[paged_attention] head dims Dqk = {} + Dv = {} exceed the "
             "simple kernel's shared memory",
             dqk, dv);
    const dim3 grid(static_cast<unsigned>(t), static_cast<unsigned>(hq));
    paged_attention_kernel<T><<<grid, 32, smem, stream_of(ctx)>>>(
        out.ptr<T>(), out.stride[0], out.stride[1], q.ptr<T>(), q.stride[0], q.stride[1], kc, vc,
        tbl, idx.table_width, cu, len, idx.num_seqs, group, dqk, dv, bs, static_cast<A>(scale));
    R1_CUDA_CHECK_LAUNCH();
  });
}

void paged_cache_write(const TensorView& cache, const TensorView& src, const TensorView& slots,
                       Context& ctx) {
  Tensor keep;
  const int32_t* s = device_ints(slots, keep, ctx);
  const int64_t n = src.shape[0], heads = src.shape[1], d = src.shape[2];
  const int threads = 256;
  const unsigned blocks = grid_for(ctx, n * heads * d, threads);
  auto launch = [&](auto tag) {
    using U = decltype(tag);
    cache_write_kernel<U><<<blocks, threads, 0, stream_of(ctx)>>>(
        static_cast<U*>(cache.data), cache.stride[0], cache.stride[1], cache.stride[2],
        static_cast<const U*>(src.data), src.stride[0], src.stride[1], s, n, heads, d,
        cache.shape[1]);
    R1_CUDA_CHECK_LAUNCH();
  };
  switch (dtype_size(src.dtype)) {
    case 2:
      launch(uint16_t{});
      break;
    case 4:
      launch(uint32_t{});
      break;
    case 8:
      launch(uint64_t{});
      break;
    default:
      R1_THROW("[paged_cache_write] unsupported element size {}", dtype_size(src.dtype));
  }
}

}  // namespace r1kit::kernels::cuda
