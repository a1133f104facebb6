// Matrix products: the general GEMM  C = alpha·op(A)·op(B) + beta·C  (2-D, or batched 3-D with the
// batch dim first), the linear layer in the Hugging Face weight layout,  y = x·Wᵀ + b, and the
// grouped linear of MoE experts (one weight per expert over its block of rows).
// CPU: OpenBLAS sgemm/dgemm (bf16/f16 inputs upcast to f32). CUDA: cuBLASLt, fp32 accumulation
// for bf16/f16/f32 (true fp32, no TF32) and fp64 for f64 (kernels/cuda/matmul.cu).
//
// Determinism (CUDA). By default every product uses cuBLASLt's first heuristic choice, a function
// of the problem (shapes, dtypes, transposes, pointer alignment), the cuBLAS version and the GPU
// model only, and cuBLASLt's kernels are deterministic for a fixed algorithm: the same inputs give
// the same bits in every run and process on the same GPU model and CUDA version, which bit-exact
// resume relies on. R1KIT_GEMM_AUTOTUNE=1 (read when a context first uses cuBLASLt) instead
// times the top candidates of each product of >= 1e10 flops on its first call (that call waits
// for the stream) and keeps the fastest for the life of the context: often a little faster, still
// reproducible within a context, but the choice, and with it the result bits, can differ between
// processes. bench/gemm_bench reports both. A context's first CUDA product creates its cuBLASLt
// handle and workspace (cudaMalloc): not while its stream is being captured into a CUDA graph.
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

// Grouped linear (MoE experts, HF layout per expert). The rows of x are already grouped by expert
// (the x_perm output of moe_permute): rows [off[e], off[e+1]) belong to expert e and use w[e]:
//   y[r] = x[r] · w[e]ᵀ   for off[e] <= r < off[e+1].
// x (M, C); w (E, OC, C); y (M, OC) overwritten; expert_offsets (E+1) i32 prefix sums with
// off[0] = 0 <= off[1] <= ... <= off[E] = M (empty experts allowed). y must not overlap x or w.
// expert_offsets may be a host tensor even on a CUDA context: the host needs the group sizes to
// launch one GEMM per expert. A device tensor (moe_permute's output on CUDA) is copied to the host
// first, which synchronises the context's stream; to avoid one sync per call, copy it to the host
// once per MoE layer and pass that copy to every grouped call of the layer (forward and backward).
// The offsets are checked (start 0, non-decreasing, end M) on the host in either case.
void grouped_linear_forward(const TensorView& y, const TensorView& x, const TensorView& w,
                            const TensorView& expert_offsets, Context& ctx);

// Gradients of grouped_linear_forward. Gradient write rule: parameter gradients accumulate (+=),
// activation gradients overwrite (=), except the residual stream, which accumulates:
//   dx (M, C) overwrite (=):   dx[r] = dy[r] · w[e]
//   dw (E, OC, C) += :         dw[e] += Σ_{r in expert e} dy[r]ᵀ · x[r]   (unchanged for empty e)
// dy (M, OC). dx or dw may be an empty TensorView{} to skip it. expert_offsets as in the forward.
void grouped_linear_backward(const TensorView& dx, const TensorView& dw, const TensorView& dy,
                             const TensorView& x, const TensorView& w,
                             const TensorView& expert_offsets, Context& ctx);

// Backends of the grouped linear receive expert_offsets as a host tensor (the front-end copies a
// device tensor to the host and validates the values).
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
void grouped_linear_forward(const TensorView& y, const TensorView& x, const TensorView& w,
                            const TensorView& expert_offsets, Context& ctx);
void grouped_linear_backward(const TensorView& dx, const TensorView& dw, const TensorView& dy,
                             const TensorView& x, const TensorView& w,
                             const TensorView& expert_offsets, Context& ctx);
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
void grouped_linear_forward(const TensorView& y, const TensorView& x, const TensorView& w,
                            const TensorView& expert_offsets, Context& ctx);
void grouped_linear_backward(const TensorView& dx, const TensorView& dw, const TensorView& dy,
                             const TensorView& x, const TensorView& w,
                             const TensorView& expert_offsets, Context& ctx);
}  // namespace cuda

}  // namespace r1kit::kernels
