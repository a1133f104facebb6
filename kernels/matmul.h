// Matrix products: the general GEMM  C = alpha·op(A)·op(B) + beta·C  (2-D, or batched 3-D with the
// batch dim first) and the linear layer in the Hugging Face weight layout,  y = x·Wᵀ + b.
// CPU: OpenBLAS sgemm/dgemm (bf16/f16 inputs upcast to f32); CUDA: cuBLAS(Lt) later.
#pragma once

#include "core/context.h"
#include "kernels/validate.h"

namespace r1kit::kernels {

// op(A) = Aᵀ when trans_a, else A; likewise for B. With op(A) (M, K) and op(B) (K, N):
//   A (M, K) or, transposed, (K, M);  B (K, N) or, transposed, (N, K);  C (M, N).
// Batched: A, B, C all 3-D with the same leading batch size (Bt, ·, ·); no broadcasting.
struct MatmulOptions {
  bool trans_a = false;
  bool trans_b = false;
  double alpha = 1.0;
  double beta = 0.0;  // 0: C is only written (NaN or garbage in C does not propagate)
};

// C = alpha·op(A)·op(B) + beta·C.  a, b, c contiguous float; c must not overlap a or b.
void matmul_forward(const TensorView& c, const TensorView& a, const TensorView& b,
                    const MatmulOptions& opts, Context& ctx);

// Gradients of C = alpha·op(A)·op(B) (+ beta·C_old, whose gradient beta·dC is the caller's):
//   dop(A) = alpha·dC·op(B)ᵀ,  dop(B) = alpha·op(A)ᵀ·dC, transposed back where A or B was.
// Write rule: parameter gradients accumulate (+=), activation gradients overwrite (=), except the
// residual stream, which accumulates; a general matmul does not know which of A, B is a parameter,
// so each gradient has its own GradWrite. da or db may be an empty TensorView{} to skip it.
void matmul_backward(const TensorView& da, const TensorView& db, const TensorView& dc,
                     const TensorView& a, const TensorView& b, const MatmulOptions& opts,
                     GradWrite da_write, GradWrite db_write, Context& ctx);

// Linear layer, HF layout: y (N, OC) = x (N, C) · wᵀ (w is (OC, C)) + bias (OC).
// bias may be an empty TensorView{} for none. y must not overlap x, w or bias.
void linear_forward(const TensorView& y, const TensorView& x, const TensorView& w,
                    const TensorView& bias, Context& ctx);

// dx (N, C) = dy·w  (=, or += with GradWrite::accumulate for the residual stream);
// dw (OC, C) += dyᵀ·x;  dbias (OC) += Σ_n dy.  Parameter gradients accumulate (+=), activation
// gradients overwrite (=), except the residual stream, which accumulates.
// dx, dw and dbias may each be an empty TensorView{} to skip them (frozen input or weight).
void linear_backward(const TensorView& dx, const TensorView& dw, const TensorView& dbias,
                     const TensorView& dy, const TensorView& x, const TensorView& w,
                     GradWrite dx_write, Context& ctx);

namespace cpu {
void matmul_forward(const TensorView& c, const TensorView& a, const TensorView& b,
                    const MatmulOptions& opts, Context& ctx);
void matmul_backward(const TensorView& da, const TensorView& db, const TensorView& dc,
                     const TensorView& a, const TensorView& b, const MatmulOptions& opts,
                     GradWrite da_write, GradWrite db_write, Context& ctx);
void linear_forward(const TensorView& y, const TensorView& x, const TensorView& w,
                    const TensorView& bias, Context& ctx);
void linear_backward(const TensorView& dx, const TensorView& dw, const TensorView& dbias,
                     const TensorView& dy, const TensorView& x, const TensorView& w,
                     GradWrite dx_write, Context& ctx);
}  // namespace cpu
namespace cuda {
void matmul_forward(const TensorView& c, const TensorView& a, const TensorView& b,
                    const MatmulOptions& opts, Context& ctx);
void matmul_backward(const TensorView& da, const TensorView& db, const TensorView& dc,
                     const TensorView& a, const TensorView& b, const MatmulOptions& opts,
                     GradWrite da_write, GradWrite db_write, Context& ctx);
void linear_forward(const TensorView& y, const TensorView& x, const TensorView& w,
                    const TensorView& bias, Context& ctx);
void linear_backward(const TensorView& dx, const TensorView& dw, const TensorView& dbias,
                     const TensorView& dy, const TensorView& x, const TensorView& w,
                     GradWrite dx_write, Context& ctx);
}  // namespace cuda

}  // namespace r1kit::kernels
