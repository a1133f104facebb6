// Paged attention CPU reference: one query row at a time over its sequence's cached positions,
// read through the block table; scores and sums in double. Parallel over (query head, sequence).
#include "kernels/paged_attention.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "kernels/cpu/common.h"

namespace r1kit::kernels::cpu {
namespace {

// Element pointer of slot `slot` of block `blk`, head g of a (NB, BS, H, D) cache view.
template <class T>
T* cache_row(const TensorView& c, int64_t blk, int64_t slot, int64_t g) {
  return c.ptr<T>() + blk * c.stride[0] + slot * c.stride[1] + g * c.stride[2];
}

}  // namespace

void paged_attention_forward(const TensorView& out_, const TensorView& q_, const TensorView& k_,
                             const TensorView& v_, const PagedIndexHost& idx, double scale,
                             Context& ctx) {
  CpuUpcast up(ctx);
  const TensorView q = up.in(q_), k = up.in(k_), v = up.in(v_), out = up.out(out_);
  const int64_t n_seq = idx.num_seqs, hq = q.shape[1], group = hq / k.shape[2];
  const int64_t dqk = q.shape[2], dv = v.shape[3], bs = k.shape[1];
  dispatch_float(q.dtype, [&](auto tag) {
    using T = decltype(tag);
    ctx.pool().parallel_for(hq * n_seq, 1, [&](int64_t b, int64_t e) {
      std::vector<double> p, acc(static_cast<size_t>(dv));
      for (int64_t task = b; task < e; ++task) {
        const int64_t h = task / n_seq, s = task % n_seq, g = h / group;
        const int32_t* table = idx.block_tables + s * idx.table_width;
        const int64_t i0 = idx.cu_seqlens[s], i1 = idx.cu_seqlens[s + 1];
        const int64_t cached = idx.cached_lens[s];
        p.resize(static_cast<size_t>(cached + i1 - i0));
        for (int64_t i = i0; i < i1; ++i) {
          const int64_t pos = cached + (i - i0);
          const T* qi = q.ptr<T>() + i * q.stride[0] + h * q.stride[1];
          // s_j = scale · q_i · k_j for j <= pos;  out_i = Σ_j exp(s_j − m) v_j / Σ_j exp(s_j − m)
          double m = -std::numeric_limits<double>::infinity();
          for (int64_t j = 0; j <= pos; ++j) {
            const T* kj = cache_row<T>(k, table[j / bs], j % bs, g);
            double d = 0;
            for (int64_t c = 0; c < dqk; ++c) d += static_cast<double>(qi[c]) * kj[c];
            p[static_cast<size_t>(j)] = scale * d;
            m = std::max(m, scale * d);
          }
          double l = 0;
          std::fill(acc.begin(), acc.end(), 0.0);
          for (int64_t j = 0; j <= pos; ++j) {
            const double pj = std::exp(p[static_cast<size_t>(j)] - m);
            l += pj;
            const T* vj = cache_row<T>(v, table[j / bs], j % bs, g);
            for (int64_t c = 0; c < dv; ++c) acc[static_cast<size_t>(c)] += pj * vj[c];
          }
          T* oi = out.ptr<T>() + i * out.stride[0] + h * out.stride[1];
          for (int64_t c = 0; c < dv; ++c) oi[c] = static_cast<T>(acc[static_cast<size_t>(c)] / l);
        }
      }
    });
  });
  up.finish();
}

void paged_cache_write(const TensorView& cache, const TensorView& src, const int32_t* slots,
                       Context& ctx) {
  const int64_t n = src.shape[0], h = src.shape[1], bs = cache.shape[1];
  const size_t row_bytes = static_cast<size_t>(src.shape[2]) * dtype_size(src.dtype);
  const int64_t esz = static_cast<int64_t>(dtype_size(src.dtype));
  ctx.pool().parallel_for(n, 16, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const int64_t blk = slots[i] / bs, slot = slots[i] % bs;
      for (int64_t g = 0; g < h; ++g) {
        char* dst = static_cast<char*>(cache.data) +
                    (blk * cache.stride[0] + slot * cache.stride[1] + g * cache.stride[2]) * esz;
        const char* from =
            static_cast<const char*>(src.data) + (i * src.stride[0] + g * src.stride[1]) * esz;
        std::memcpy(dst, from, row_bytes);
      }
    }
  });
}

}  // namespace r1kit::kernels::cpu
