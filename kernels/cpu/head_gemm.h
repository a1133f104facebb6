// Shared by the CPU log-prob heads (cpu/logprob.cpp, cpu/topk_head.cpp): row-major cblas GEMMs on
// f32/f64 and the parallel_for grain of per-row vocabulary work.
#pragma once

#include <cblas.h>

#include <algorithm>
#include <cstdint>

namespace r1kit::kernels::cpu {

// Rows per parallel_for chunk: about 16k logits of work each.
inline int64_t row_grain(int64_t vocab) {
  return std::max<int64_t>(1, 16384 / vocab);
}

// C (m, n) = op(A) · op(B) + beta · C, row-major.
inline void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const float* a,
                 int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
              trans_b ? CblasTrans : CblasNoTrans, static_cast<int>(m), static_cast<int>(n),
              static_cast<int>(k), 1.0f, a, static_cast<int>(lda), b, static_cast<int>(ldb), beta,
              c, static_cast<int>(ldc));
}
inline void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const double* a,
                 int64_t lda, const double* b, int64_t ldb, double beta, double* c, int64_t ldc) {
  cblas_dgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
              trans_b ? CblasTrans : CblasNoTrans, static_cast<int>(m), static_cast<int>(n),
              static_cast<int>(k), 1.0, a, static_cast<int>(lda), b, static_cast<int>(ldb), beta, c,
              static_cast<int>(ldc));
}

}  // namespace r1kit::kernels::cpu
