// Matmul, linear and grouped-linear CPU reference: every product is one row-major OpenBLAS
// sgemm/dgemm per batch entry or expert, split over the pool's threads (blas.h); bf16/f16
// operands are upcast to f32 first (CpuUpcast).
#include "kernels/matmul.h"

#include <algorithm>
#include <climits>

#include "kernels/cpu/blas.h"
#include "kernels/cpu/common.h"

namespace r1kit::kernels::cpu {
namespace {

// Row-major C (m, n) = alpha·op(A)·op(B) + beta·C with op(A) (m, k), op(B) (k, n), all dense:
// A is stored (m, k), or (k, m) when ta; B is stored (k, n), or (n, k) when tb.
// beta == 0 never reads C (it is zeroed first, so NaN in C cannot leak through 0·NaN).
template <class T>
void gemm(ThreadPool& pool, bool ta, bool tb, int64_t m, int64_t n, int64_t k, double alpha,
          const T* a, const T* b, double beta, T* c) {
  if (m == 0 || n == 0) return;
  // CBLAS takes dims and leading dims as int (OpenBLAS offsets are 64-bit internally, so only
  // each dim must fit, not the element count).
  if (m > INT_MAX || n > INT_MAX || k > INT_MAX)
    throw Error(
        fmt::format("[matmul] GEMM of ({}, {}) x ({}, {}) has a dim beyond the 32-bit "
                    "BLAS range; split it",
                    m, k, k, n));
  if (beta == 0) std::fill(c, c + m * n, T(0));
  if (k == 0) {
    if (beta != 0 && beta != 1)
      for (int64_t i = 0; i < m * n; ++i) c[i] = static_cast<T>(beta * c[i]);
    return;
  }
  const int lda = static_cast<int>(ta ? m : k), ldb = static_cast<int>(tb ? k : n);
  pool_gemm<T>(pool, ta, tb, m, n, k, static_cast<T>(alpha), a, lda, b, ldb, static_cast<T>(beta),
               c, n);
}

// Batch size and the per-batch element stride of a 2-D (stride 0, one batch) or 3-D view.
int64_t batch_of(const TensorView& v) {
  return v.ndim == 3 ? v.shape[0] : 1;
}
int64_t batch_stride(const TensorView& v) {
  return v.ndim == 3 ? v.stride[0] : 0;
}

}  // namespace

void matmul_forward(const TensorView& c_, const TensorView& a_, const TensorView& b_,
                    const MatmulOptions& opts, Context& ctx) {
  CpuUpcast up(ctx);
  TensorView a = up.in(a_), b = up.in(b_);
  TensorView c = opts.beta != 0 ? up.inout(c_) : up.out(c_);
  const int r = a.ndim - 2;
  const int64_t m = c.shape[r], n = c.shape[r + 1];
  const int64_t k = opts.trans_a ? a.shape[r] : a.shape[r + 1];
  dispatch_float(c.dtype, [&](auto tag) {
    using T = decltype(tag);
    for (int64_t i = 0; i < batch_of(c); ++i)
      gemm<T>(ctx.pool(), opts.trans_a, opts.trans_b, m, n, k, opts.alpha,
              a.ptr<T>() + i * batch_stride(a), b.ptr<T>() + i * batch_stride(b), opts.beta,
              c.ptr<T>() + i * batch_stride(c));
  });
  up.finish();
}

void matmul_backward(const TensorView& da_, const TensorView& db_, const TensorView& dc_,
                     const TensorView& a_, const TensorView& b_, const MatmulOptions& opts,
                     GradWrite da_write, GradWrite db_write, Context& ctx) {
  CpuUpcast up(ctx);
  TensorView a = up.in(a_), b = up.in(b_), dc = up.in(dc_);
  // Absent gradients (TensorView{}) pass through CpuUpcast as they are.
  TensorView da = up.grad(da_, da_write), db = up.grad(db_, db_write);
  const int r = a.ndim - 2;
  const int64_t m = dc.shape[r], n = dc.shape[r + 1];
  const int64_t k = opts.trans_a ? a.shape[r] : a.shape[r + 1];
  const bool ta = opts.trans_a, tb = opts.trans_b;
  const double da_beta = da_write == GradWrite::accumulate ? 1.0 : 0.0;
  const double db_beta = db_write == GradWrite::accumulate ? 1.0 : 0.0;
  dispatch_float(dc.dtype, [&](auto tag) {
    using T = decltype(tag);
    for (int64_t i = 0; i < batch_of(dc); ++i) {
      const T* ai = a.ptr<T>() + i * batch_stride(a);
      const T* bi = b.ptr<T>() + i * batch_stride(b);
      const T* dci = dc.ptr<T>() + i * batch_stride(dc);
      if (da.defined()) {
        T* dai = da.ptr<T>() + i * batch_stride(da);
        if (!ta) {
          // dA (M, K) = alpha·dC·op(B)ᵀ
          gemm<T>(ctx.pool(), false, !tb, m, k, n, opts.alpha, dci, bi, da_beta, dai);
        } else {
          // dA (K, M) = (alpha·dC·op(B)ᵀ)ᵀ = alpha·op(B)·dCᵀ
          gemm<T>(ctx.pool(), tb, true, k, m, n, opts.alpha, bi, dci, da_beta, dai);
        }
      }
      if (db.defined()) {
        T* dbi = db.ptr<T>() + i * batch_stride(db);
        if (!tb) {
          // dB (K, N) = alpha·op(A)ᵀ·dC
          gemm<T>(ctx.pool(), !ta, false, k, n, m, opts.alpha, ai, dci, db_beta, dbi);
        } else {
          // dB (N, K) = (alpha·op(A)ᵀ·dC)ᵀ = alpha·dCᵀ·op(A)
          gemm<T>(ctx.pool(), true, ta, n, k, m, opts.alpha, dci, ai, db_beta, dbi);
        }
      }
    }
  });
  up.finish();
}

void linear_forward(const TensorView& y_, const TensorView& x_, const TensorView& w_,
                    const TensorView& bias_, Context& ctx) {
  CpuUpcast up(ctx);
  TensorView x = up.in(x_), w = up.in(w_), y = up.out(y_);
  TensorView bias = up.in(bias_);  // TensorView{} (no bias) passes through
  const int64_t n = x.shape[0], ch = x.shape[1], oc = w.shape[0];
  dispatch_float(y.dtype, [&](auto tag) {
    using T = decltype(tag);
    T* yp = y.ptr<T>();
    // y = b (broadcast over rows), then y += x·wᵀ in the GEMM (beta = 1).
    if (bias.defined()) {
      const T* bp = bias.ptr<T>();
      ctx.pool().parallel_for(n, 64, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) std::copy(bp, bp + oc, yp + i * oc);
      });
    }
    gemm<T>(ctx.pool(), false, true, n, oc, ch, 1.0, x.ptr<T>(), w.ptr<T>(),
            bias.defined() ? 1.0 : 0.0, yp);
  });
  up.finish();
}

void linear_backward(const TensorView& dx_, const TensorView& dw_, const TensorView& dbias_,
                     const TensorView& dy_, const TensorView& x_, const TensorView& w_,
                     GradWrite dx_write, Context& ctx) {
  CpuUpcast up(ctx);
  TensorView x = up.in(x_), w = up.in(w_), dy = up.in(dy_);
  // Absent gradients (TensorView{}) pass through CpuUpcast as they are.
  TensorView dx = up.grad(dx_, dx_write), dw = up.inout(dw_), dbias = up.inout(dbias_);
  const int64_t n = x.shape[0], ch = x.shape[1], oc = w.shape[0];
  dispatch_float(dy.dtype, [&](auto tag) {
    using T = decltype(tag);
    const T* dyp = dy.ptr<T>();
    // dx (N, C) = dy (N, OC) · w (OC, C)
    if (dx.defined())
      gemm<T>(ctx.pool(), false, false, n, ch, oc, 1.0, dyp, w.ptr<T>(),
              dx_write == GradWrite::accumulate ? 1.0 : 0.0, dx.ptr<T>());
    // dw (OC, C) += dyᵀ (OC, N) · x (N, C)
    if (dw.defined())
      gemm<T>(ctx.pool(), true, false, oc, ch, n, 1.0, dyp, x.ptr<T>(), 1.0, dw.ptr<T>());
    // dbias_o += Σ_n dy[n, o]: parallel over outputs, a fixed-order double sum over rows.
    if (dbias.defined()) {
      T* dbp = dbias.ptr<T>();
      ctx.pool().parallel_for(oc, 16, [&](int64_t b, int64_t e) {
        for (int64_t o = b; o < e; ++o) {
          double s = 0;
          for (int64_t i = 0; i < n; ++i) s += static_cast<double>(dyp[i * oc + o]);
          dbp[o] = static_cast<T>(dbp[o] + s);
        }
      });
    }
  });
  up.finish();
}

void grouped_linear_forward(const TensorView& y_, const TensorView& x_, const TensorView& w_,
                            const TensorView& expert_offsets, Context& ctx) {
  CpuUpcast up(ctx);
  TensorView x = up.in(x_), w = up.in(w_), y = up.out(y_);
  const int64_t ch = x.shape[1], e = w.shape[0], oc = w.shape[1];
  const int32_t* off = expert_offsets.ptr<int32_t>();
  dispatch_float(y.dtype, [&](auto tag) {
    using T = decltype(tag);
    // y_e (m_e, OC) = x_e (m_e, C) · w_eᵀ for the rows of expert e.
    for (int64_t g = 0; g < e; ++g) {
      const int64_t r0 = off[g], rows = off[g + 1] - off[g];
      gemm<T>(ctx.pool(), false, true, rows, oc, ch, 1.0, x.ptr<T>() + r0 * ch,
              w.ptr<T>() + g * oc * ch, 0.0, y.ptr<T>() + r0 * oc);
    }
  });
  up.finish();
}

void grouped_linear_backward(const TensorView& dx_, const TensorView& dw_, const TensorView& dy_,
                             const TensorView& x_, const TensorView& w_,
                             const TensorView& expert_offsets, Context& ctx) {
  CpuUpcast up(ctx);
  TensorView x = up.in(x_), w = up.in(w_), dy = up.in(dy_);
  // Absent gradients (TensorView{}) pass through CpuUpcast as they are.
  TensorView dx = up.out(dx_), dw = up.inout(dw_);
  const int64_t ch = x.shape[1], e = w.shape[0], oc = w.shape[1];
  const int32_t* off = expert_offsets.ptr<int32_t>();
  dispatch_float(dy.dtype, [&](auto tag) {
    using T = decltype(tag);
    for (int64_t g = 0; g < e; ++g) {
      const int64_t r0 = off[g], rows = off[g + 1] - off[g];
      const T* dyg = dy.ptr<T>() + r0 * oc;
      const T* wg = w.ptr<T>() + g * oc * ch;
      // dx_e (m_e, C) = dy_e (m_e, OC) · w_e (OC, C)
      if (dx.defined())
        gemm<T>(ctx.pool(), false, false, rows, ch, oc, 1.0, dyg, wg, 0.0, dx.ptr<T>() + r0 * ch);
      // dw_e (OC, C) += dy_eᵀ (OC, m_e) · x_e (m_e, C); nothing to add for an empty expert.
      if (dw.defined() && rows > 0)
        gemm<T>(ctx.pool(), true, false, oc, ch, rows, 1.0, dyg, x.ptr<T>() + r0 * ch, 1.0,
                dw.ptr<T>() + g * oc * ch);
    }
  });
  up.finish();
}

}  // namespace r1kit::kernels::cpu
