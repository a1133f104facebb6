// Token log-prob head (GRPO, SFT, the reference model): log p(target) and entropy of the
// temperature-scaled distribution, from logits or, fused, from hidden states and the lm_head in
// chunks of tokens so a (N, V) probability matrix never exists.
//   z = logits / τ;  lse = log Σ_j exp z_j;  logprob = z[target] − lse;  H = lse − Σ_j p_j z_j.
// Shapes: N tokens, V vocab, C channels. logits (N, V); h (N, C); w (V, C) the lm_head weight;
// targets (N) i32 in [0, V) (use target 0 with dlogprob 0 for positions that do not count);
// logprob, entropy, lse, dlogprob, dentropy (N) f32/f64. entropy/dentropy may be TensorView{} (not
// defined()): then entropy is neither computed nor differentiated.
#pragma once

#include "core/context.h"
#include "kernels/validate.h"

namespace r1kit::kernels {

// lse is saved for backward. temperature > 0.
void logprob_forward(const TensorView& logprob, const TensorView& entropy, const TensorView& lse,
                     const TensorView& logits, const TensorView& targets, double temperature,
                     Context& ctx);

// dlogits (=): logits are an activation. With p = softmax(z), H the entropy:
//   dz_j = dlogprob·(1[j = t] − p_j) − dentropy·p_j·(log p_j + H);  dlogits = dz / τ.
void logprob_backward(const TensorView& dlogits, const TensorView& dlogprob,
                      const TensorView& dentropy, const TensorView& logits,
                      const TensorView& targets, const TensorView& lse, double temperature,
                      Context& ctx);

// Fused head: logits = h · wᵀ computed chunk_tokens rows at a time into a (chunk_tokens, V)
// scratch, then the forward above row by row. Same outputs as logits → logprob_forward.
void logprob_head_forward(const TensorView& logprob, const TensorView& entropy,
                          const TensorView& lse, const TensorView& h, const TensorView& w,
                          const TensorView& targets, double temperature, int64_t chunk_tokens,
                          Context& ctx);

// Recomputes each chunk's logits, turns them into dlogits in place, then
// dh (=, an activation: the final-norm output) = dlogits · w, and dw (+=, a parameter) +=
// dlogitsᵀ · h. The gradient write rule: parameter gradients accumulate, activation gradients
// overwrite, except the residual stream, which accumulates.
void logprob_head_backward(const TensorView& dh, const TensorView& dw, const TensorView& dlogprob,
                           const TensorView& dentropy, const TensorView& h, const TensorView& w,
                           const TensorView& targets, const TensorView& lse, double temperature,
                           int64_t chunk_tokens, Context& ctx);

namespace cpu {
void logprob_forward(const TensorView& logprob, const TensorView& entropy, const TensorView& lse,
                     const TensorView& logits, const TensorView& targets, double temperature,
                     Context& ctx);
void logprob_backward(const TensorView& dlogits, const TensorView& dlogprob,
                      const TensorView& dentropy, const TensorView& logits,
                      const TensorView& targets, const TensorView& lse, double temperature,
                      Context& ctx);
void logprob_head_forward(const TensorView& logprob, const TensorView& entropy,
                          const TensorView& lse, const TensorView& h, const TensorView& w,
                          const TensorView& targets, double temperature, int64_t chunk_tokens,
                          Context& ctx);
void logprob_head_backward(const TensorView& dh, const TensorView& dw, const TensorView& dlogprob,
                           const TensorView& dentropy, const TensorView& h, const TensorView& w,
                           const TensorView& targets, const TensorView& lse, double temperature,
                           int64_t chunk_tokens, Context& ctx);
}  // namespace cpu
namespace cuda {
// Targets are range-checked by the front-end only for host tensors; the CUDA kernels must flag an
// out-of-range target themselves.
void logprob_forward(const TensorView& logprob, const TensorView& entropy, const TensorView& lse,
                     const TensorView& logits, const TensorView& targets, double temperature,
                     Context& ctx);
void logprob_backward(const TensorView& dlogits, const TensorView& dlogprob,
                      const TensorView& dentropy, const TensorView& logits,
                      const TensorView& targets, const TensorView& lse, double temperature,
                      Context& ctx);
void logprob_head_forward(const TensorView& logprob, const TensorView& entropy,
                          const TensorView& lse, const TensorView& h, const TensorView& w,
                          const TensorView& targets, double temperature, int64_t chunk_tokens,
                          Context& ctx);
void logprob_head_backward(const TensorView& dh, const TensorView& dw, const TensorView& dlogprob,
                           const TensorView& dentropy, const TensorView& h, const TensorView& w,
                           const TensorView& targets, const TensorView& lse, double temperature,
                           int64_t chunk_tokens, Context& ctx);
}  // namespace cuda

}  // namespace r1kit::kernels
