// Row-major BLAS GEMMs of the CPU kernels (matmul.cpp, logprob.cpp, topk_head.cpp), split over
// the Context's thread pool; the log-prob heads' vectorizable exp and their parallel_for grain.
//
// OpenBLAS is told to run one thread (once, at the first GEMM) and each GEMM is cut into one
// block of C per pool thread: by rows of C when there are enough rows, else by columns (decode
// steps have few rows). Two thread teams (OpenBLAS's spinning workers and the pool) would otherwise
// compete for the same cores between calls: on 2 cores that cost a fifth of an SFT step. The cut
// depends only on the shapes and the pool size, so results are deterministic for a thread count.
#pragma once

#include <cblas.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <mutex>

#include "core/thread_pool.h"

namespace r1kit::kernels::cpu {

// exp(x) in double for x <= 0 without a libm call, so that the heads' loops over the vocabulary
// vectorize (the files that use it build with -fno-trapping-math, which lets the compiler turn the
// compare below into a select): x = n·ln2 + r with |r| <= ln2/2 (ln2 split in two, n·ln2_hi
// exact), exp(r) by its degree-13 Taylor polynomial (truncation below 1e-17 relative), 2^n written
// into the exponent bits. n comes out of adding 1.5·2^52 (round to nearest, then the integer in
// the low mantissa bits), since SSE2 has no packed double-to-int64 conversion. Relative error
// within a few ulp of double, so f32 results rounded from it equal those from std::exp.
// Below −708 (−inf included: a masked logit) the result is exactly 0; NaN stays NaN.
inline double exp_nonpositive(double x) {
  const double magic = 6755399441055744.0;    // 1.5 · 2^52
  const double xc = x > -708.0 ? x : -708.0;  // NaN > −708 is false: the NaN goes on below
  const double t = xc * 1.4426950408889634 + magic;
  const double n = t - magic;
  const double r = (xc - n * 6.93147180369123816490e-01) - n * 1.90821492927058770002e-10;
  double q = 1.0 / 6227020800.0;
  q = q * r + 1.0 / 479001600.0;
  q = q * r + 1.0 / 39916800.0;
  q = q * r + 1.0 / 3628800.0;
  q = q * r + 1.0 / 362880.0;
  q = q * r + 1.0 / 40320.0;
  q = q * r + 1.0 / 5040.0;
  q = q * r + 1.0 / 720.0;
  q = q * r + 1.0 / 120.0;
  q = q * r + 1.0 / 24.0;
  q = q * r + 1.0 / 6.0;
  q = q * r + 0.5;
  q = q * r + 1.0;
  q = q * r + 1.0;
  int64_t tb, mb;
  std::memcpy(&tb, &t, sizeof tb);
  std::memcpy(&mb, &magic, sizeof mb);
  const int64_t bits = (tb - mb + 1023) << 52;
  double scale;
  std::memcpy(&scale, &bits, sizeof scale);
  const double y = q * scale;
  return x < -708.0 ? 0.0 : (x == x ? y : x);
}

// Rows per parallel_for chunk: about 16k logits of work each.
inline int64_t row_grain(int64_t vocab) {
  return std::max<int64_t>(1, 16384 / vocab);
}

inline void blas_call(bool ta, bool tb, int m, int n, int k, float alpha, const float* a, int lda,
                      const float* b, int ldb, float beta, float* c, int ldc) {
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m, n,
              k, alpha, a, lda, b, ldb, beta, c, ldc);
}
inline void blas_call(bool ta, bool tb, int m, int n, int k, double alpha, const double* a, int lda,
                      const double* b, int ldb, double beta, double* c, int ldc) {
  cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m, n,
              k, alpha, a, lda, b, ldb, beta, c, ldc);
}

// C (m, n) = alpha · op(A) · op(B) + beta · C, row-major, leading dimensions given: A is stored
// (m, k), or (k, m) when trans_a; B (k, n), or (n, k) when trans_b. Dims must fit in int.
template <class T>
void pool_gemm(ThreadPool& pool, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
               T alpha, const T* a, int64_t lda, const T* b, int64_t ldb, T beta, T* c,
               int64_t ldc) {
  static std::once_flag single;
  std::call_once(single, [] { openblas_set_num_threads(1); });
  auto call = [&](int64_t i0, int64_t i1, int64_t j0, int64_t j1) {
    const T* ab = trans_a ? a + i0 : a + i0 * lda;
    const T* bb = trans_b ? b + j0 * ldb : b + j0;
    blas_call(trans_a, trans_b, static_cast<int>(i1 - i0), static_cast<int>(j1 - j0),
              static_cast<int>(k), alpha, ab, static_cast<int>(lda), bb, static_cast<int>(ldb),
              beta, c + i0 * ldc + j0, static_cast<int>(ldc));
  };
  const int64_t threads = pool.num_threads();
  // Below about 2^18 multiply-adds a thread hand-off costs more than it saves.
  const double work = static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k);
  if (threads <= 1 || work < 262144.0) {
    call(0, m, 0, n);
    return;
  }
  if (m >= 8 * threads) {
    pool.parallel_for(m, std::max<int64_t>(8, m / threads),
                      [&](int64_t i0, int64_t i1) { call(i0, i1, 0, n); });
  } else {
    pool.parallel_for(n, std::max<int64_t>(16, n / threads),
                      [&](int64_t j0, int64_t j1) { call(0, m, j0, j1); });
  }
}

// The logprob / top-k heads' form: alpha = 1.
inline void gemm(ThreadPool& pool, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
                 const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c,
                 int64_t ldc) {
  pool_gemm<float>(pool, trans_a, trans_b, m, n, k, 1.0f, a, lda, b, ldb, beta, c, ldc);
}
inline void gemm(ThreadPool& pool, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
                 const double* a, int64_t lda, const double* b, int64_t ldb, double beta, double* c,
                 int64_t ldc) {
  pool_gemm<double>(pool, trans_a, trans_b, m, n, k, 1.0, a, lda, b, ldb, beta, c, ldc);
}

}  // namespace r1kit::kernels::cpu
