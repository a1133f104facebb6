// Causal self-attention for training over packed variable-length sequences, with flash-attention
// semantics: the forward saves only the log-sum-exp of the scaled scores, the backward recomputes
// the probabilities from it. GQA/MQA and distinct q·k / v head dims (MLA: 192 / 128).
// Shapes: T packed tokens, B sequences, Hq query heads, Hkv key/value heads (Hq % Hkv == 0),
// Dqk the q·k head dim, Dv the value head dim.
#pragma once

#include "core/context.h"
#include "kernels/validate.h"

namespace r1kit::kernels {

// For each sequence b (rows cu_seqlens[b] .. cu_seqlens[b+1]−1), query head h, kv head
// g = h / (Hq / Hkv), and row i of that sequence, over keys j of the same sequence with j <= i:
//   s_ij  = scale · q[i, h] · k[j, g]
//   lse_hi = log Σ_j exp(s_ij)
//   out[i, h] = Σ_j exp(s_ij − lse_hi) · v[j, g]
// out (T, Hq, Dv); lse (Hq, T) f32/f64; q (T, Hq, Dqk); k (T, Hkv, Dqk); v (T, Hkv, Dv);
// cu_seqlens (B+1) i32 offsets: 0, non-decreasing, ending at T, on the context's device or on the
// host (a host copy saves a synchronising device-to-host copy per call on a GPU context). q, k, v,
// out need unit stride in the last dim only, so slices of a fused projection pass without copies.
// scale: the softmax scale, e.g. 1/sqrt(Dqk), times yarn_softmax_mscale(rope config) for
// DeepSeek-V3.
void attention_forward(const TensorView& out, const TensorView& lse, const TensorView& q,
                       const TensorView& k, const TensorView& v, const TensorView& cu_seqlens,
                       double scale, Context& ctx);

// dq, dk, dv overwritten (activation gradients). Gradient write rule: parameter gradients
// accumulate (+=), activation gradients overwrite (=), except the residual stream, which
// accumulates. With P_ij = exp(s_ij − lse_hi) recomputed and D_hi = Σ_d dout[i,h,d]·out[i,h,d]:
//   dv[j, g] = Σ_{h in g} Σ_i P_ij · dout[i, h]
//   dS_ij    = P_ij · (dout[i, h] · v[j, g] − D_hi)
//   dq[i, h] = scale · Σ_j dS_ij · k[j, g]
//   dk[j, g] = scale · Σ_{h in g} Σ_i dS_ij · q[i, h]
// dq, dk, dv shaped like q, k, v (row-strided views allowed, e.g. slices of one fused gradient);
// dout like out; the rest as in the forward.
void attention_backward(const TensorView& dq, const TensorView& dk, const TensorView& dv,
                        const TensorView& dout, const TensorView& q, const TensorView& k,
                        const TensorView& v, const TensorView& out, const TensorView& lse,
                        const TensorView& cu_seqlens, double scale, Context& ctx);

namespace cpu {
void attention_forward(const TensorView& out, const TensorView& lse, const TensorView& q,
                       const TensorView& k, const TensorView& v, const TensorView& cu_seqlens,
                       double scale, Context& ctx);
void attention_backward(const TensorView& dq, const TensorView& dk, const TensorView& dv,
                        const TensorView& dout, const TensorView& q, const TensorView& k,
                        const TensorView& v, const TensorView& out, const TensorView& lse,
                        const TensorView& cu_seqlens, double scale, Context& ctx);
}  // namespace cpu
namespace cuda {
void attention_forward(const TensorView& out, const TensorView& lse, const TensorView& q,
                       const TensorView& k, const TensorView& v, const TensorView& cu_seqlens,
                       double scale, Context& ctx);
void attention_backward(const TensorView& dq, const TensorView& dk, const TensorView& dv,
                        const TensorView& dout, const TensorView& q, const TensorView& k,
                        const TensorView& v, const TensorView& out, const TensorView& lse,
                        const TensorView& cu_seqlens, double scale, Context& ctx);
}  // namespace cuda

}  // namespace r1kit::kernels
