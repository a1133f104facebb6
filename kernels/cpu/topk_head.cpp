// Top-k and multi-target log-prob head CPU reference: the lm_head GEMM through OpenBLAS one chunk
// of tokens at a time, then row-parallel work over the chunk's tokens with sums in double.
#include "kernels/topk_head.h"

#include <cblas.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <numeric>
#include <vector>

#include "kernels/cpu/blas.h"
#include "kernels/cpu/common.h"

namespace r1kit::kernels::cpu {
namespace {

// The row's z_j = x_j / τ (in double) into z, and lse = m + log Σ_j exp(z_j − m), m = max z. A
// row with no z above −inf sums exp(NaN): lse is NaN, and so is every log-prob taken from it.
template <class T>
double scaled_lse(const T* x, int64_t vocab, double temperature, double* z) {
  double m = -INFINITY;
  for (int64_t j = 0; j < vocab; ++j) {
    z[j] = static_cast<double>(x[j]) / temperature;
    m = std::max(m, z[j]);
  }
  double s = 0;
  for (int64_t j = 0; j < vocab; ++j) s += exp_nonpositive(z[j] - m);
  return m + std::log(s);
}

// An unsigned key whose order is the numeric order of z (−0 and +0 equal; NaNs at the ends, by
// their bits), so the selection below is a strict weak order even for NaN logits.
uint64_t order_key(double z) {
  const uint64_t u = z == 0 ? 0 : std::bit_cast<uint64_t>(z);
  return (u >> 63) ? ~u : (u | (uint64_t{1} << 63));
}

// Top-k over `rows` rows of logits (rows, V): per row, the K ids first in the order
// (z descending, id ascending) — nth_element to the K-th, then a sort of the K —, their
// log-probs z[idx] − lse, and lse.
template <class T, class R>
void topk_rows(const T* logits, int64_t rows, int64_t vocab, int64_t k, double temperature,
               R* topk_logprob, int32_t* topk_idx, R* lse, Context& ctx) {
  ctx.pool().parallel_for(rows, row_grain(vocab), [&](int64_t b, int64_t e) {
    std::vector<double> z(static_cast<size_t>(vocab));
    std::vector<uint64_t> key(static_cast<size_t>(vocab));
    std::vector<int32_t> ids(static_cast<size_t>(vocab));
    const auto before = [&](int32_t a, int32_t c) {
      return key[a] > key[c] || (key[a] == key[c] && a < c);
    };
    for (int64_t i = b; i < e; ++i) {
      const double l = scaled_lse(logits + i * vocab, vocab, temperature, z.data());
      for (int64_t j = 0; j < vocab; ++j) key[j] = order_key(z[j]);
      std::iota(ids.begin(), ids.end(), 0);
      std::nth_element(ids.begin(), ids.begin() + (k - 1), ids.end(), before);
      std::sort(ids.begin(), ids.begin() + k, before);
      for (int64_t q = 0; q < k; ++q) {
        topk_idx[i * k + q] = ids[q];
        topk_logprob[i * k + q] = static_cast<R>(z[ids[q]] - l);
      }
      lse[i] = static_cast<R>(l);
    }
  });
}

// Multi-target forward over `rows` rows: logprob[i, k] = z[targets[i, k]] − lse[i], and lse.
template <class T, class R>
void multi_forward_rows(const T* logits, int64_t rows, int64_t vocab, int64_t k,
                        const int32_t* targets, double temperature, R* logprob, R* lse,
                        Context& ctx) {
  ctx.pool().parallel_for(rows, row_grain(vocab), [&](int64_t b, int64_t e) {
    std::vector<double> z(static_cast<size_t>(vocab));
    for (int64_t i = b; i < e; ++i) {
      const double l = scaled_lse(logits + i * vocab, vocab, temperature, z.data());
      for (int64_t q = 0; q < k; ++q)
        logprob[i * k + q] = static_cast<R>(z[targets[i * k + q]] - l);
      lse[i] = static_cast<R>(l);
    }
  });
}

// Multi-target backward over `rows` rows, in place (dlogits over the logits). Per row, in double,
// with p_j = exp(z_j − lse) from the saved lse and G = Σ_k dlogprob[i, k]:
//   dz_j = −G·p_j for every j, then dz[targets[i, k]] += dlogprob[i, k] in k order;
//   dlogits_j = dz_j / τ.
template <class T, class R>
void multi_backward_rows(T* logits, int64_t rows, int64_t vocab, int64_t k, const int32_t* targets,
                         const R* lse, const R* dlogprob, double temperature, Context& ctx) {
  ctx.pool().parallel_for(rows, row_grain(vocab), [&](int64_t b, int64_t e) {
    std::vector<double> dz(static_cast<size_t>(vocab));
    for (int64_t i = b; i < e; ++i) {
      T* x = logits + i * vocab;
      const double l = lse[i];
      double g = 0;
      for (int64_t q = 0; q < k; ++q) g += static_cast<double>(dlogprob[i * k + q]);
      for (int64_t j = 0; j < vocab; ++j)
        dz[j] = -g * exp_nonpositive(static_cast<double>(x[j]) / temperature - l);
      for (int64_t q = 0; q < k; ++q)
        dz[targets[i * k + q]] += static_cast<double>(dlogprob[i * k + q]);
      for (int64_t j = 0; j < vocab; ++j) x[j] = static_cast<T>(dz[j] / temperature);
    }
  });
}

}  // namespace

void logprob_head_topk(const TensorView& topk_logprob, const TensorView& topk_idx,
                       const TensorView& lse_, const TensorView& h_, const TensorView& w_,
                       double temperature, int64_t chunk_tokens, Context& ctx) {
  CpuUpcast up(ctx);
  TensorView h = up.in(h_), w = up.in(w_);
  const int64_t n = h.shape[0], ch = h.shape[1], vocab = w.shape[0], k = topk_idx.shape[1];
  const int64_t chunk = std::min(chunk_tokens, std::max<int64_t>(n, 1));
  // (chunk, V) logits of one chunk of tokens: the only vocabulary-wide buffer.
  Tensor scratch({chunk, vocab}, h.dtype, ctx.host_allocator(), "logprob_head_topk.logits");
  dispatch_float(h.dtype, [&](auto tag) {
    using T = decltype(tag);
    dispatch_float(lse_.dtype, [&](auto rtag) {
      using R = decltype(rtag);
      for (int64_t r0 = 0; r0 < n; r0 += chunk) {
        const int64_t rows = std::min(chunk, n - r0);
        // logits (rows, V) = h[r0 : r0 + rows] (rows, C) · wᵀ (C, V)
        gemm(ctx.pool(), false, true, rows, vocab, ch, h.ptr<T>() + r0 * ch, ch, w.ptr<T>(), ch,
             T(0), scratch.ptr<T>(), vocab);
        topk_rows<T, R>(scratch.ptr<T>(), rows, vocab, k, temperature,
                        topk_logprob.ptr<R>() + r0 * k, topk_idx.ptr<int32_t>() + r0 * k,
                        lse_.ptr<R>() + r0, ctx);
      }
    });
  });
  up.finish();
}

void logprob_head_multi_forward(const TensorView& logprob, const TensorView& lse_,
                                const TensorView& h_, const TensorView& w_,
                                const TensorView& targets, double temperature, int64_t chunk_tokens,
                                Context& ctx) {
  CpuUpcast up(ctx);
  TensorView h = up.in(h_), w = up.in(w_);
  const int64_t n = h.shape[0], ch = h.shape[1], vocab = w.shape[0], k = targets.shape[1];
  const int64_t chunk = std::min(chunk_tokens, std::max<int64_t>(n, 1));
  Tensor scratch({chunk, vocab}, h.dtype, ctx.host_allocator(), "logprob_head_multi.logits");
  dispatch_float(h.dtype, [&](auto tag) {
    using T = decltype(tag);
    dispatch_float(lse_.dtype, [&](auto rtag) {
      using R = decltype(rtag);
      for (int64_t r0 = 0; r0 < n; r0 += chunk) {
        const int64_t rows = std::min(chunk, n - r0);
        gemm(ctx.pool(), false, true, rows, vocab, ch, h.ptr<T>() + r0 * ch, ch, w.ptr<T>(), ch,
             T(0), scratch.ptr<T>(), vocab);
        multi_forward_rows<T, R>(scratch.ptr<T>(), rows, vocab, k, targets.ptr<int32_t>() + r0 * k,
                                 temperature, logprob.ptr<R>() + r0 * k, lse_.ptr<R>() + r0, ctx);
      }
    });
  });
  up.finish();
}

void logprob_head_multi_backward(const TensorView& dh_, const TensorView& dw_,
                                 const TensorView& dlogprob, const TensorView& h_,
                                 const TensorView& w_, const TensorView& targets,
                                 const TensorView& lse, double temperature, int64_t chunk_tokens,
                                 Context& ctx) {
  CpuUpcast up(ctx);
  TensorView h = up.in(h_), w = up.in(w_), dh = up.out(dh_), dw = up.inout(dw_);
  const int64_t n = h.shape[0], ch = h.shape[1], vocab = w.shape[0], k = targets.shape[1];
  const int64_t chunk = std::min(chunk_tokens, std::max<int64_t>(n, 1));
  // (chunk, V): one chunk's logits, turned into its dlogits in place.
  Tensor scratch({chunk, vocab}, h.dtype, ctx.host_allocator(), "logprob_head_multi.dlogits");
  dispatch_float(h.dtype, [&](auto tag) {
    using T = decltype(tag);
    dispatch_float(lse.dtype, [&](auto rtag) {
      using R = decltype(rtag);
      T* dl = scratch.ptr<T>();
      for (int64_t r0 = 0; r0 < n; r0 += chunk) {
        const int64_t rows = std::min(chunk, n - r0);
        const T* hc = h.ptr<T>() + r0 * ch;
        // logits (rows, V) = h_c · wᵀ, recomputed rather than saved.
        gemm(ctx.pool(), false, true, rows, vocab, ch, hc, ch, w.ptr<T>(), ch, T(0), dl, vocab);
        multi_backward_rows<T, R>(dl, rows, vocab, k, targets.ptr<int32_t>() + r0 * k,
                                  lse.ptr<R>() + r0, dlogprob.ptr<R>() + r0 * k, temperature, ctx);
        // dh_c (rows, C) = dlogits (rows, V) · w (V, C)   (=)
        gemm(ctx.pool(), false, false, rows, ch, vocab, dl, vocab, w.ptr<T>(), ch, T(0),
             dh.ptr<T>() + r0 * ch, ch);
        // dw (V, C) += dlogitsᵀ (V, rows) · h_c (rows, C)
        gemm(ctx.pool(), true, false, vocab, ch, rows, dl, vocab, hc, ch, T(1), dw.ptr<T>(), ch);
      }
    });
  });
  up.finish();
}

}  // namespace r1kit::kernels::cpu
