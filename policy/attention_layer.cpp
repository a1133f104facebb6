// GQA attention of the dense models: projections, half-split RoPE, packed causal attention,
// output projection; the backward is the same list reversed. Formulas in
// policy/attention_layer.h.
#include "policy/attention_layer.h"

#include <cmath>

#include "kernels/attention.h"
#include "kernels/matmul.h"
#include "kernels/rope.h"
#include "policy/model.h"

namespace r1kit::policy {
namespace {

double softmax_scale(const ModelConfig& cfg) {
  return 1.0 / std::sqrt(static_cast<double>(cfg.head_dim));
}

}  // namespace

AttentionWeights attention_weights(const std::function<TensorView(const std::string&)>& lookup,
                                   const std::string& prefix, const ModelConfig& cfg) {
  AttentionWeights w;
  w.q_proj = lookup(prefix + "q_proj.weight");
  w.k_proj = lookup(prefix + "k_proj.weight");
  w.v_proj = lookup(prefix + "v_proj.weight");
  w.o_proj = lookup(prefix + "o_proj.weight");
  w.q_bias = lookup(prefix + "q_proj.bias");
  w.k_bias = lookup(prefix + "k_proj.bias");
  w.v_bias = lookup(prefix + "v_proj.bias");
  w.o_bias = lookup(prefix + "o_proj.bias");
  return w;
}

void gqa_forward(const TensorView& y, AttentionSaved* saved, const TensorView& x,
                 const AttentionWeights& w, const ModelConfig& cfg, const TokenBatch& batch,
                 const RopeTables& rope, Context& ctx) {
  const int64_t T = x.size(0), H = cfg.num_attention_heads, Hkv = cfg.num_key_value_heads,
                D = cfg.head_dim;
  const DType dt = x.dtype;
  const kernels::RopeLayout layout = cfg.rope.layout;
  Tensor q = ctx.empty({T, H, D}, dt, "attn.q");                // (T, H, D)
  Tensor k = ctx.empty({T, Hkv, D}, dt, "attn.k");              // (T, Hkv, D)
  Tensor v = ctx.empty({T, Hkv, D}, dt, "attn.v");              // (T, Hkv, D)
  Tensor out = ctx.empty({T, H, D}, dt, "attn.out");            // (T, H, D)
  Tensor lse = ctx.empty({H, T}, stats_dtype(dt), "attn.lse");  // (H, T)

  kernels::linear_forward(q.view().reshape({T, H * D}), x, w.q_proj, w.q_bias, ctx);
  kernels::linear_forward(k.view().reshape({T, Hkv * D}), x, w.k_proj, w.k_bias, ctx);
  kernels::linear_forward(v.view().reshape({T, Hkv * D}), x, w.v_proj, w.v_bias, ctx);
  kernels::rope_forward(q, q, rope.cos, rope.sin, batch.positions, layout, ctx);
  kernels::rope_forward(k, k, rope.cos, rope.sin, batch.positions, layout, ctx);
  kernels::attention_forward(out, lse, q, k, v, batch.cu_seqlens_host, softmax_scale(cfg), ctx);
  kernels::linear_forward(y, out.view().reshape({T, H * D}), w.o_proj, w.o_bias, ctx);

  if (saved) {
    saved->x = x;
    saved->q = std::move(q);
    saved->k = std::move(k);
    saved->v = std::move(v);
    saved->out = std::move(out);
    saved->lse = std::move(lse);
  }
}

void gqa_backward(const TensorView& dx, const AttentionWeights& dw, const TensorView& dy,
                  const AttentionSaved& saved, const AttentionWeights& w, const ModelConfig& cfg,
                  const TokenBatch& batch, const RopeTables& rope, Context& ctx) {
  const int64_t T = dy.size(0), H = cfg.num_attention_heads, Hkv = cfg.num_key_value_heads,
                D = cfg.head_dim;
  const DType dt = dy.dtype;
  const kernels::RopeLayout layout = cfg.rope.layout;
  using kernels::GradWrite;
  Tensor dout = ctx.empty({T, H, D}, dt, "attn.dout");  // (T, H, D)
  Tensor dq = ctx.empty({T, H, D}, dt, "attn.dq");      // (T, H, D)
  Tensor dk = ctx.empty({T, Hkv, D}, dt, "attn.dk");    // (T, Hkv, D)
  Tensor dv = ctx.empty({T, Hkv, D}, dt, "attn.dv");    // (T, Hkv, D)

  kernels::linear_backward(dout.view().reshape({T, H * D}), dw.o_proj, dw.o_bias, dy,
                           saved.out.view().reshape({T, H * D}), w.o_proj, GradWrite::overwrite,
                           ctx);
  kernels::attention_backward(dq, dk, dv, dout, saved.q, saved.k, saved.v, saved.out, saved.lse,
                              batch.cu_seqlens_host, softmax_scale(cfg), ctx);
  kernels::rope_backward(dk, dk, rope.cos, rope.sin, batch.positions, layout, ctx);
  kernels::rope_backward(dq, dq, rope.cos, rope.sin, batch.positions, layout, ctx);
  kernels::linear_backward(dx, dw.v_proj, dw.v_bias, dv.view().reshape({T, Hkv * D}), saved.x,
                           w.v_proj, GradWrite::overwrite, ctx);
  kernels::linear_backward(dx, dw.k_proj, dw.k_bias, dk.view().reshape({T, Hkv * D}), saved.x,
                           w.k_proj, GradWrite::accumulate, ctx);
  kernels::linear_backward(dx, dw.q_proj, dw.q_bias, dq.view().reshape({T, H * D}), saved.x,
                           w.q_proj, GradWrite::accumulate, ctx);
}

}  // namespace r1kit::policy
