// Fused heads for knowledge distillation over hidden states and the lm_head, in chunks of tokens
// so a (N, V) matrix never exists (as kernels/logprob.h's fused head):
//   logits = h · wᵀ,  z = logits / τ,  lse = log Σ_j exp z_j,  log p_j = z_j − lse.
// The top-k head gives a teacher's sparse distribution: per row the K tokens with the largest z,
// ordered by (z descending, id ascending), with their log-probs. The multi-target head gives a
// student's log-probs of K given tokens per row (a teacher's top-k ids) and their gradient.
// Shapes: N tokens, V vocab, C channels. h (N, C); w (V, C) the lm_head weight; topk_idx,
// targets (N, K) i32; topk_logprob, logprob, dlogprob (N, K) and lse (N) f32/f64: f32 for
// f32/bf16/f16 h and w, f64 for f64 (as logprob_head). −inf logits are allowed (p = 0); a row with
// no logit above −inf has no distribution: its lse and log-probs are NaN (as logprob_head).
#pragma once

#include "core/context.h"
#include "kernels/validate.h"

namespace r1kit::kernels {

// The largest K the CUDA top-k kernel takes (its K selected entries are sorted in shared memory).
inline constexpr int64_t kTopkCudaMaxK = 1024;

// Top-k of the temperature-scaled distribution of each row of logits = h · wᵀ, computed
// chunk_tokens rows at a time into a (chunk_tokens, V) scratch:
//   topk_idx (N, K) (=): the K ids j with the largest z_j, ordered by (z descending, id ascending)
//                        (ties: the lowest id first; −inf logits come last);
//   topk_logprob (N, K) (=) = z[idx] − lse;  lse (N) (=).
// 1 <= K <= V (and K <= kTopkCudaMaxK on CUDA). A row with no logit above −inf gets NaN
// log-probs and lse, and ids 0, ..., K − 1 (all tied at −inf).
void logprob_head_topk(const TensorView& topk_logprob, const TensorView& topk_idx,
                       const TensorView& lse, const TensorView& h, const TensorView& w,
                       double temperature, int64_t chunk_tokens, Context& ctx);

// Log-probs of K given targets per row: logprob (N, K) (=) = z[targets[i, k]] − lse[i],
// lse (N) (=, saved for backward). targets (N, K) i32 in [0, V), duplicates allowed, K >= 0.
void logprob_head_multi_forward(const TensorView& logprob, const TensorView& lse,
                                const TensorView& h, const TensorView& w, const TensorView& targets,
                                double temperature, int64_t chunk_tokens, Context& ctx);

// Backward of the above from dlogprob (N, K): with p = softmax(z) (from the saved lse) and
// G_i = Σ_k dlogprob[i, k],
//   dz_ij = Σ_k dlogprob[i, k]·[j = targets[i, k]] − G_i·p_ij,  dlogits = dz / τ;
// each chunk's logits are recomputed from h and w and turned into dlogits in place, then
// dh (=, an activation: the final-norm output) = dlogits · w, and dw (+=, a parameter) +=
// dlogitsᵀ · h. The gradient write rule: parameter gradients accumulate, activation gradients
// overwrite, except the residual stream, which accumulates.
void logprob_head_multi_backward(const TensorView& dh, const TensorView& dw,
                                 const TensorView& dlogprob, const TensorView& h,
                                 const TensorView& w, const TensorView& targets,
                                 const TensorView& lse, double temperature, int64_t chunk_tokens,
                                 Context& ctx);

namespace cpu {
void logprob_head_topk(const TensorView& topk_logprob, const TensorView& topk_idx,
                       const TensorView& lse, const TensorView& h, const TensorView& w,
                       double temperature, int64_t chunk_tokens, Context& ctx);
void logprob_head_multi_forward(const TensorView& logprob, const TensorView& lse,
                                const TensorView& h, const TensorView& w, const TensorView& targets,
                                double temperature, int64_t chunk_tokens, Context& ctx);
void logprob_head_multi_backward(const TensorView& dh, const TensorView& dw,
                                 const TensorView& dlogprob, const TensorView& h,
                                 const TensorView& w, const TensorView& targets,
                                 const TensorView& lse, double temperature, int64_t chunk_tokens,
                                 Context& ctx);
}  // namespace cpu
namespace cuda {
// Targets are range-checked by the front-end only for host tensors; the CUDA kernels flag an
// out-of-range target themselves (the ErrorSink; the row gets NaN).
void logprob_head_topk(const TensorView& topk_logprob, const TensorView& topk_idx,
                       const TensorView& lse, const TensorView& h, const TensorView& w,
                       double temperature, int64_t chunk_tokens, Context& ctx);
void logprob_head_multi_forward(const TensorView& logprob, const TensorView& lse,
                                const TensorView& h, const TensorView& w, const TensorView& targets,
                                double temperature, int64_t chunk_tokens, Context& ctx);
void logprob_head_multi_backward(const TensorView& dh, const TensorView& dw,
                                 const TensorView& dlogprob, const TensorView& h,
                                 const TensorView& w, const TensorView& targets,
                                 const TensorView& lse, double temperature, int64_t chunk_tokens,
                                 Context& ctx);
}  // namespace cuda

}  // namespace r1kit::kernels
