// Paged attention on the GPU, the simple version: one warp per (query row, query head) walks the
// row's cached positions 0 .. p through its sequence's block table with an online softmax
//   m' = max(m, s_j),  l' = l·e^(m − m') + e^(s_j − m'),  acc' = acc·e^(m − m') + e^(s_j − m')·v_j
// in the accumulator type (f32; f64 for f64 tensors). q and acc live in shared memory, each lane
// owning the columns c ≡ lane (mod 32), so only the q·k dot needs a warp reduction. Performance
// (several rows per block, split-K over long caches, tensor cores) is later work.
// paged_cache_write: a grid-stride copy of (row, head) vectors into their slots.
#include "kernels/cuda/common.cuh"
#include "kernels/paged_attention.h"

namespace r1kit::kernels::cuda {
namespace {

struct CacheView {
  const void* data;
  int64_t s0, s1, s2;  // block, slot, head strides (elements)
};

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
  // The sequence of row i: the last b with cu[b] <= i (and a non-empty range).
  int64_t lo = 0, hi = n_seq - 1;
  while (lo < hi) {
    const int64_t mid = (lo + hi + 1) / 2;
    if (cu[mid] <= i) {
      lo = mid;
    } else {
      hi = mid - 1;
    }
  }
  const int64_t s = lo;
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
