// Token log-prob head CPU reference: row-parallel over tokens, sums in double; the fused head runs
// the lm_head GEMM through OpenBLAS one chunk of tokens at a time. Each row's exponentials are one
// vectorized pass (exp_nonpositive, blas.h) into a row buffer, then the sums.
#include "kernels/logprob.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/cpu/blas.h"
#include "kernels/cpu/common.h"

namespace r1kit::kernels::cpu {
namespace {

// Forward over `rows` rows of logits (rows, V): per row, with z = x / τ and m = max z,
//   lse = m + log s,  s = Σ_j e_j,  e_j = exp(z_j − m);
//   logprob = z_t − lse;
//   H = −Σ p_j log p_j = log s − Σ_j e_j (z_j − m) / s   (shift-invariant, no cancellation at m).
// Terms with p_j = 0 (a −inf logit) count 0, the limit of p log p. A row with no logit above −inf
// has no distribution: everything comes out NaN. entropy may be null.
template <class T, class R>
void forward_rows(const T* logits, int64_t rows, int64_t vocab, const int32_t* targets,
                  double temperature, R* logprob, R* entropy, R* lse, Context& ctx) {
  ctx.pool().parallel_for(rows, row_grain(vocab), [&](int64_t b, int64_t e) {
    std::vector<double> zbuf(static_cast<size_t>(vocab)), ebuf(static_cast<size_t>(vocab));
    double* zb = zbuf.data();
    double* eb = ebuf.data();
    for (int64_t i = b; i < e; ++i) {
      const T* x = logits + i * vocab;
      double m = -INFINITY;
      for (int64_t j = 0; j < vocab; ++j) m = std::max(m, static_cast<double>(x[j]) / temperature);
      for (int64_t j = 0; j < vocab; ++j) zb[j] = static_cast<double>(x[j]) / temperature - m;
      for (int64_t j = 0; j < vocab; ++j) eb[j] = exp_nonpositive(zb[j]);
      double s = 0, sd = 0;
      for (int64_t j = 0; j < vocab; ++j) {
        s += eb[j];
        // A −inf logit has e_j = 0 and d = −inf: its term is the limit 0 (0·(−inf) would be NaN).
        if (eb[j] > 0) sd += eb[j] * zb[j];
      }
      const double log_s = std::log(s);
      const double l = m + log_s;
      lse[i] = static_cast<R>(l);
      logprob[i] = static_cast<R>(static_cast<double>(x[targets[i]]) / temperature - l);
      if (entropy) entropy[i] = static_cast<R>(log_s - sd / s);
    }
  });
}

// Backward over `rows` rows; dlogits may alias logits (the fused head works in place). Per row,
// with p_j = exp(z_j − lse) from the saved lse and H = Σ_j p_j (lse − z_j):
//   dz_j = dlogprob·(1[j = t] − p_j) − dentropy·p_j·((z_j − lse) + H);  dlogits_j = dz_j / τ.
// Entropy terms with p_j = 0 (a −inf logit) are 0, as in the forward. dentropy may be null.
template <class T, class R>
void backward_rows(T* dlogits, const T* logits, int64_t rows, int64_t vocab, const int32_t* targets,
                   const R* lse, const R* dlogprob, const R* dentropy, double temperature,
                   Context& ctx) {
  ctx.pool().parallel_for(rows, row_grain(vocab), [&](int64_t b, int64_t e) {
    std::vector<double> lbuf(static_cast<size_t>(vocab)), pbuf(static_cast<size_t>(vocab));
    double* lb = lbuf.data();
    double* pb = pbuf.data();
    for (int64_t i = b; i < e; ++i) {
      const T* x = logits + i * vocab;
      T* dx = dlogits + i * vocab;
      const double l = lse[i], dlp = dlogprob[i];
      const double dent = dentropy ? static_cast<double>(dentropy[i]) : 0.0;
      // Every x_j is read here, before dx (which may alias x) is written.
      for (int64_t j = 0; j < vocab; ++j) lb[j] = static_cast<double>(x[j]) / temperature - l;
      for (int64_t j = 0; j < vocab; ++j) pb[j] = exp_nonpositive(lb[j]);
      double ent = 0;
      if (dentropy) {
        for (int64_t j = 0; j < vocab; ++j)
          if (pb[j] > 0) ent -= pb[j] * lb[j];  // p = 0 (lp = −inf): the limit 0, not 0·(−inf)
      }
      const int64_t t = targets[i];
      for (int64_t j = 0; j < vocab; ++j) {
        const double p = pb[j];
        double dz = dlp * ((j == t ? 1.0 : 0.0) - p);
        if (dentropy && p > 0) dz -= dent * p * (lb[j] + ent);  // p = 0: no entropy gradient
        dx[j] = static_cast<T>(dz / temperature);
      }
    }
  });
}

}  // namespace

void logprob_forward(const TensorView& logprob_, const TensorView& entropy_, const TensorView& lse_,
                     const TensorView& logits_, const TensorView& targets, double temperature,
                     Context& ctx) {
  CpuUpcast up(ctx);
  TensorView logits = up.in(logits_);
  const int64_t n = logits.shape[0], vocab = logits.shape[1];
  dispatch_float(logits.dtype, [&](auto tag) {
    using T = decltype(tag);
    dispatch_float(lse_.dtype, [&](auto rtag) {
      using R = decltype(rtag);
      forward_rows<T, R>(logits.ptr<T>(), n, vocab, targets.ptr<int32_t>(), temperature,
                         logprob_.ptr<R>(), entropy_.defined() ? entropy_.ptr<R>() : nullptr,
                         lse_.ptr<R>(), ctx);
    });
  });
  up.finish();
}

void logprob_backward(const TensorView& dlogits_, const TensorView& dlogprob,
                      const TensorView& dentropy, const TensorView& logits_,
                      const TensorView& targets, const TensorView& lse, double temperature,
                      Context& ctx) {
  CpuUpcast up(ctx);
  TensorView logits = up.in(logits_), dlogits = up.out(dlogits_);
  const int64_t n = logits.shape[0], vocab = logits.shape[1];
  dispatch_float(logits.dtype, [&](auto tag) {
    using T = decltype(tag);
    dispatch_float(lse.dtype, [&](auto rtag) {
      using R = decltype(rtag);
      backward_rows<T, R>(dlogits.ptr<T>(), logits.ptr<T>(), n, vocab, targets.ptr<int32_t>(),
                          lse.ptr<R>(), dlogprob.ptr<R>(),
                          dentropy.defined() ? dentropy.ptr<R>() : nullptr, temperature, ctx);
    });
  });
  up.finish();
}

void logprob_head_forward(const TensorView& logprob_, const TensorView& entropy_,
                          const TensorView& lse_, const TensorView& h_, const TensorView& w_,
                          const TensorView& targets, double temperature, int64_t chunk_tokens,
                          Context& ctx) {
  CpuUpcast up(ctx);
  TensorView h = up.in(h_), w = up.in(w_);
  const int64_t n = h.shape[0], ch = h.shape[1], vocab = w.shape[0];
  const int64_t chunk = std::min(chunk_tokens, std::max<int64_t>(n, 1));
  // (chunk, V) logits of one chunk of tokens: the only vocabulary-wide buffer.
  Tensor scratch({chunk, vocab}, h.dtype, ctx.host_allocator(), "logprob_head.logits");
  dispatch_float(h.dtype, [&](auto tag) {
    using T = decltype(tag);
    dispatch_float(lse_.dtype, [&](auto rtag) {
      using R = decltype(rtag);
      R* entropy = entropy_.defined() ? entropy_.ptr<R>() : nullptr;
      for (int64_t r0 = 0; r0 < n; r0 += chunk) {
        const int64_t rows = std::min(chunk, n - r0);
        // logits (rows, V) = h[r0 : r0 + rows] (rows, C) · wᵀ (C, V)
        gemm(ctx.pool(), false, true, rows, vocab, ch, h.ptr<T>() + r0 * ch, ch, w.ptr<T>(), ch,
             T(0), scratch.ptr<T>(), vocab);
        forward_rows<T, R>(scratch.ptr<T>(), rows, vocab, targets.ptr<int32_t>() + r0, temperature,
                           logprob_.ptr<R>() + r0, entropy ? entropy + r0 : nullptr,
                           lse_.ptr<R>() + r0, ctx);
      }
    });
  });
  up.finish();
}

void logprob_head_backward(const TensorView& dh_, const TensorView& dw_, const TensorView& dlogprob,
                           const TensorView& dentropy_, const TensorView& h_, const TensorView& w_,
                           const TensorView& targets, const TensorView& lse, double temperature,
                           int64_t chunk_tokens, Context& ctx) {
  CpuUpcast up(ctx);
  TensorView h = up.in(h_), w = up.in(w_), dh = up.out(dh_), dw = up.inout(dw_);
  const int64_t n = h.shape[0], ch = h.shape[1], vocab = w.shape[0];
  const int64_t chunk = std::min(chunk_tokens, std::max<int64_t>(n, 1));
  // (chunk, V): one chunk's logits, turned into its dlogits in place.
  Tensor scratch({chunk, vocab}, h.dtype, ctx.host_allocator(), "logprob_head.dlogits");
  dispatch_float(h.dtype, [&](auto tag) {
    using T = decltype(tag);
    dispatch_float(lse.dtype, [&](auto rtag) {
      using R = decltype(rtag);
      const R* dentropy = dentropy_.defined() ? dentropy_.ptr<R>() : nullptr;
      T* dl = scratch.ptr<T>();
      for (int64_t r0 = 0; r0 < n; r0 += chunk) {
        const int64_t rows = std::min(chunk, n - r0);
        const T* hc = h.ptr<T>() + r0 * ch;
        // logits (rows, V) = h_c · wᵀ, recomputed rather than saved.
        gemm(ctx.pool(), false, true, rows, vocab, ch, hc, ch, w.ptr<T>(), ch, T(0), dl, vocab);
        backward_rows<T, R>(dl, dl, rows, vocab, targets.ptr<int32_t>() + r0, lse.ptr<R>() + r0,
                            dlogprob.ptr<R>() + r0, dentropy ? dentropy + r0 : nullptr, temperature,
                            ctx);
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
