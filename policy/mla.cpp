// MLA forward/backward (training form) and the absorbed decode form, as lists of kernels/ calls.
// Each backward line undoes one forward line, in reverse order.
#include "policy/mla.h"

#include <cmath>

#include "kernels/attention.h"
#include "kernels/elementwise.h"
#include "kernels/matmul.h"
#include "kernels/rmsnorm.h"
#include "kernels/rope.h"
#include "kernels/softmax.h"

namespace r1kit::policy {
namespace {

namespace k = kernels;
using kernels::GradWrite;

// transformers' DeepseekV3RMSNorm(q_lora_rank) / (kv_lora_rank) and DeepSeek's RMSNorm(dim) take
// the class default, not config.rms_norm_eps.
constexpr double kMlaNormEps = 1e-6;

// Statistics (rstd, lse) and small tables: f64 for f64 activations, else f32.
DType stat_dtype(const TensorView& x) {
  return x.dtype == DType::f64 ? DType::f64 : DType::f32;
}

TensorView rows_of(const TensorView& v, int64_t begin, int64_t end) {
  return v.defined() ? v.slice(begin, end) : TensorView{};
}

// rmsnorm_backward always writes its weight gradient: a scratch stands in for a skipped one.
TensorView grad_or_scratch(const TensorView& dw, const TensorView& w, Tensor& scratch,
                           Context& ctx) {
  if (dw.defined()) return dw;
  scratch = ctx.zeros(w.dims(), w.dtype, "unused_grad");
  return scratch;
}

// A 3-D view (n0, n1, n2) of `base`'s memory starting `offset` elements in, with strides (s0, s1,
// 1): the heads or a column band of the heads of a packed (T, H, D) buffer.
TensorView view3(const TensorView& base, int64_t offset, int64_t n0, int64_t n1, int64_t n2,
                 int64_t s0, int64_t s1, const std::string& name) {
  TensorView v = base;
  v.data = static_cast<char*>(base.data) + offset * static_cast<int64_t>(dtype_size(base.dtype));
  v.ndim = 3;
  v.shape = {n0, n1, n2, 0};
  v.stride = {s0, s1, 1, 0};
  v.name = name;
  return v;
}

// Columns [begin, end) of every head of a contiguous (T, H, D) tensor, as (T, H, end − begin).
TensorView head_cols(const TensorView& t, int64_t begin, int64_t end, const std::string& name) {
  const int64_t d = t.shape[2];
  return view3(t, begin, t.shape[0], t.shape[1], end - begin, t.shape[1] * d, d, name);
}

// dst = src for (N, M, D) row views (a strided copy).
void copy_rows(const TensorView& dst, const TensorView& src, Context& ctx) {
  k::copy(dst, src, ctx);
}

// dst (T, D) = Σ_h src[:, h, :] for a contiguous src (T, H, D): per token, ones (1, H) · src[t].
void sum_heads(const TensorView& dst, const TensorView& src, Context& ctx) {
  const int64_t t = src.shape[0], h = src.shape[1], d = src.shape[2];
  if (t == 0) return;
  Tensor ones = ctx.empty({t, 1, h}, src.dtype, "ones");
  k::fill(ones, 1.0, ctx);
  k::matmul_forward(dst.reshape({t, 1, d}), ones, src, {}, ctx);
}

struct Dims {
  int64_t t, c, h, dn, dr, dqk, dv, rq, rkv;
};

Dims dims_of(const ModelConfig& cfg, int64_t tokens) {
  return {tokens,
          cfg.hidden_size,
          cfg.num_attention_heads,
          cfg.qk_nope_head_dim,
          cfg.qk_rope_head_dim,
          cfg.qk_head_dim(),
          cfg.v_head_dim,
          cfg.q_lora_rank,
          cfg.kv_lora_rank};
}

void check_input(const TensorView& x, const ModelConfig& cfg, const TokenBatch& batch,
                 const RopeTables& rope, const char* op) {
  R1_CHECK(cfg.is_mla(), "[{}] the config ({}) is not an MLA model", op, model_arch_name(cfg.arch));
  R1_CHECK(x.ndim == 2 && x.shape[0] == batch.num_tokens() && x.shape[1] == cfg.hidden_size,
           "[{}] x {} must be (T, C) = ({}, {})", op, x.describe(), batch.num_tokens(),
           cfg.hidden_size);
  R1_CHECK(rope.rows() >= batch.max_position(),
           "[{}] the RoPE tables have {} rows; the batch needs {} (RopeTables::grow)", op,
           rope.rows(), batch.max_position());
}

// The kv_a_proj_with_mqa rows of the latent and of the rope key (one GEMM each, so that the latent
// is a contiguous tensor for kv_a_layernorm).
TensorView latent_rows(const TensorView& v, const ModelConfig& cfg) {
  return rows_of(v, 0, cfg.kv_lora_rank);
}
TensorView rope_rows(const TensorView& v, const ModelConfig& cfg) {
  return rows_of(v, cfg.kv_lora_rank, cfg.kv_lora_rank + cfg.qk_rope_head_dim);
}

// s.q (T, H, Dqk) with RoPE on its q_pe part; with q-LoRA also s.q_a, s.q_a_rstd, s.q_a_norm.
void forward_q(MlaSaved& s, const TensorView& x, const MlaWeights& w, const ModelConfig& cfg,
               const TensorView& positions, const RopeTables& rope, Context& ctx) {
  const Dims d = dims_of(cfg, x.shape[0]);
  s.q = ctx.empty({d.t, d.h, d.dqk}, x.dtype, "mla.q");
  const TensorView q2 = s.q.view().reshape({d.t, d.h * d.dqk});
  if (d.rq > 0) {
    s.q_a = ctx.empty({d.t, d.rq}, x.dtype, "mla.q_a");
    s.q_a_rstd = ctx.empty({d.t}, stat_dtype(x), "mla.q_a_rstd");
    s.q_a_norm = ctx.empty({d.t, d.rq}, x.dtype, "mla.q_a_norm");
    k::linear_forward(s.q_a, x, w.q_a_proj, w.q_a_proj_bias, ctx);
    k::rmsnorm_forward(s.q_a_norm, s.q_a_rstd, s.q_a, w.q_a_layernorm, kMlaNormEps, ctx);
    k::linear_forward(q2, s.q_a_norm, w.q_b_proj, {}, ctx);
  } else {
    k::linear_forward(q2, x, w.q_proj, {}, ctx);
  }
  const TensorView q_pe = head_cols(s.q, d.dn, d.dqk, "mla.q_pe");
  k::rope_forward(q_pe, q_pe, rope.cos, rope.sin, positions, cfg.rope.layout, ctx);
}

// s.c_raw, s.c_rstd, s.c (T, Rkv) and k_pe_raw (T, Dr), the rope key before RoPE.
void forward_latent(MlaSaved& s, Tensor& k_pe_raw, const TensorView& x, const MlaWeights& w,
                    const ModelConfig& cfg, Context& ctx) {
  const Dims d = dims_of(cfg, x.shape[0]);
  s.c_raw = ctx.empty({d.t, d.rkv}, x.dtype, "mla.c_raw");
  s.c_rstd = ctx.empty({d.t}, stat_dtype(x), "mla.c_rstd");
  s.c = ctx.empty({d.t, d.rkv}, x.dtype, "mla.c");
  k_pe_raw = ctx.empty({d.t, d.dr}, x.dtype, "mla.k_pe_raw");
  k::linear_forward(s.c_raw, x, latent_rows(w.kv_a_proj_with_mqa, cfg),
                    latent_rows(w.kv_a_proj_with_mqa_bias, cfg), ctx);
  k::rmsnorm_forward(s.c, s.c_rstd, s.c_raw, w.kv_a_layernorm, kMlaNormEps, ctx);
  k::linear_forward(k_pe_raw, x, rope_rows(w.kv_a_proj_with_mqa, cfg),
                    rope_rows(w.kv_a_proj_with_mqa_bias, cfg), ctx);
}

}  // namespace

double mla_softmax_scale(const ModelConfig& cfg) {
  return 1.0 / std::sqrt(static_cast<double>(cfg.qk_head_dim())) * k::yarn_softmax_mscale(cfg.rope);
}

MlaWeights mla_weights(const std::function<TensorView(const std::string&)>& lookup,
                       const std::string& prefix, const ModelConfig& cfg) {
  R1_CHECK(cfg.is_mla(), "[mla] the config ({}) is not an MLA model", model_arch_name(cfg.arch));
  const Dims d = dims_of(cfg, 0);
  auto get = [&](const std::string& name, const Shape& shape) {
    TensorView v = lookup(prefix + name);
    R1_CHECK(v.dims() == shape, "[mla] {} is {}, expected {}", prefix + name, v.describe(),
             shape_str(shape));
    return v;
  };
  MlaWeights w;
  if (d.rq > 0) {
    w.q_a_proj = get("q_a_proj.weight", {d.rq, d.c});
    w.q_a_layernorm = get("q_a_layernorm.weight", {d.rq});
    w.q_b_proj = get("q_b_proj.weight", {d.h * d.dqk, d.rq});
    if (cfg.attention_bias) w.q_a_proj_bias = get("q_a_proj.bias", {d.rq});
  } else {
    w.q_proj = get("q_proj.weight", {d.h * d.dqk, d.c});
  }
  w.kv_a_proj_with_mqa = get("kv_a_proj_with_mqa.weight", {d.rkv + d.dr, d.c});
  w.kv_a_layernorm = get("kv_a_layernorm.weight", {d.rkv});
  w.kv_b_proj = get("kv_b_proj.weight", {d.h * (d.dn + d.dv), d.rkv});
  w.o_proj = get("o_proj.weight", {d.c, d.h * d.dv});
  if (cfg.attention_bias) {
    w.kv_a_proj_with_mqa_bias = get("kv_a_proj_with_mqa.bias", {d.rkv + d.dr});
    w.o_proj_bias = get("o_proj.bias", {d.c});
  }
  return w;
}

void mla_forward(const TensorView& y, MlaSaved* saved, const TensorView& x, const MlaWeights& w,
                 const ModelConfig& cfg, const TokenBatch& batch, const RopeTables& rope,
                 Context& ctx) {
  check_input(x, cfg, batch, rope, "mla_forward");
  MlaSaved local;
  MlaSaved& s = saved ? *saved : local;
  const Dims d = dims_of(cfg, x.shape[0]);
  s.x = x;
  Tensor k_pe_raw;
  forward_q(s, x, w, cfg, batch.positions, rope, ctx);
  forward_latent(s, k_pe_raw, x, w, cfg, ctx);
  s.kv = ctx.empty({d.t, d.h, d.dn + d.dv}, x.dtype, "mla.kv");
  s.k = ctx.empty({d.t, d.h, d.dqk}, x.dtype, "mla.k");
  s.attn = ctx.empty({d.t, d.h, d.dv}, x.dtype, "mla.attn");
  s.lse = ctx.empty({d.h, d.t}, stat_dtype(x), "mla.lse");
  const TensorView v = head_cols(s.kv, d.dn, d.dn + d.dv, "mla.v");
  // k_pe is one (T, Dr) key shared by the heads: a head stride of 0 broadcasts it.
  const TensorView k_pe_heads = view3(k_pe_raw, 0, d.t, d.h, d.dr, d.dr, 0, "mla.k_pe");

  k::linear_forward(s.kv.view().reshape({d.t, d.h * (d.dn + d.dv)}), s.c, w.kv_b_proj, {}, ctx);
  copy_rows(head_cols(s.k, 0, d.dn, "mla.k_nope"), head_cols(s.kv, 0, d.dn, "mla.k_nope"), ctx);
  k::rope_forward(head_cols(s.k, d.dn, d.dqk, "mla.k_pe"), k_pe_heads, rope.cos, rope.sin,
                  batch.positions, cfg.rope.layout, ctx);
  k::attention_forward(s.attn, s.lse, s.q, s.k, v, batch.cu_seqlens_host, mla_softmax_scale(cfg),
                       ctx);
  k::linear_forward(y, s.attn.view().reshape({d.t, d.h * d.dv}), w.o_proj, w.o_proj_bias, ctx);
}

void mla_backward(const TensorView& dx, const MlaWeights& dw, const TensorView& dy, MlaSaved& s,
                  const MlaWeights& w, const ModelConfig& cfg, const TokenBatch& batch,
                  const RopeTables& rope, Context& ctx) {
  check_input(s.x, cfg, batch, rope, "mla_backward");
  const TensorView& x = s.x;
  const Dims d = dims_of(cfg, x.shape[0]);
  Tensor dattn = ctx.empty({d.t, d.h, d.dv}, x.dtype, "mla.dattn");
  Tensor dq = ctx.empty({d.t, d.h, d.dqk}, x.dtype, "mla.dq");
  Tensor dk = ctx.empty({d.t, d.h, d.dqk}, x.dtype, "mla.dk");
  Tensor dkv = ctx.empty({d.t, d.h, d.dn + d.dv}, x.dtype, "mla.dkv");
  Tensor dk_pe_heads = ctx.empty({d.t, d.h, d.dr}, x.dtype, "mla.dk_pe_heads");
  Tensor dk_pe = ctx.empty({d.t, d.dr}, x.dtype, "mla.dk_pe_raw");
  Tensor dc = ctx.empty({d.t, d.rkv}, x.dtype, "mla.dc");
  Tensor dc_raw = ctx.empty({d.t, d.rkv}, x.dtype, "mla.dc_raw");
  const TensorView v = head_cols(s.kv, d.dn, d.dn + d.dv, "mla.v");
  const TensorView dv = head_cols(dkv, d.dn, d.dn + d.dv, "mla.dv");
  const TensorView dq_pe = head_cols(dq, d.dn, d.dqk, "mla.dq_pe");

  k::linear_backward(dattn.view().reshape({d.t, d.h * d.dv}), dw.o_proj, dw.o_proj_bias, dy,
                     s.attn.view().reshape({d.t, d.h * d.dv}), w.o_proj, GradWrite::overwrite, ctx);
  k::attention_backward(dq, dk, dv, dattn, s.q, s.k, v, s.attn, s.lse, batch.cu_seqlens_host,
                        mla_softmax_scale(cfg), ctx);
  // The broadcast of k_pe over heads: its gradient is the sum over heads of the un-rotated dk.
  k::rope_backward(dk_pe_heads, head_cols(dk, d.dn, d.dqk, "mla.dk_pe"), rope.cos, rope.sin,
                   batch.positions, cfg.rope.layout, ctx);
  sum_heads(dk_pe, dk_pe_heads, ctx);
  copy_rows(head_cols(dkv, 0, d.dn, "mla.dk_nope"), head_cols(dk, 0, d.dn, "mla.dk_nope"), ctx);
  k::linear_backward(dc, dw.kv_b_proj, {}, dkv.view().reshape({d.t, d.h * (d.dn + d.dv)}), s.c,
                     w.kv_b_proj, GradWrite::overwrite, ctx);
  k::linear_backward(dx, rope_rows(dw.kv_a_proj_with_mqa, cfg),
                     rope_rows(dw.kv_a_proj_with_mqa_bias, cfg), dk_pe, x,
                     rope_rows(w.kv_a_proj_with_mqa, cfg), GradWrite::overwrite, ctx);
  Tensor scratch;
  k::rmsnorm_backward(dc_raw, grad_or_scratch(dw.kv_a_layernorm, w.kv_a_layernorm, scratch, ctx),
                      dc, s.c_raw, w.kv_a_layernorm, s.c_rstd, GradWrite::overwrite, ctx);
  k::linear_backward(dx, latent_rows(dw.kv_a_proj_with_mqa, cfg),
                     latent_rows(dw.kv_a_proj_with_mqa_bias, cfg), dc_raw, x,
                     latent_rows(w.kv_a_proj_with_mqa, cfg), GradWrite::accumulate, ctx);
  k::rope_backward(dq_pe, dq_pe, rope.cos, rope.sin, batch.positions, cfg.rope.layout, ctx);
  const TensorView dq2 = dq.view().reshape({d.t, d.h * d.dqk});
  if (d.rq > 0) {
    Tensor dq_a_norm = ctx.empty({d.t, d.rq}, x.dtype, "mla.dq_a_norm");
    Tensor dq_a = ctx.empty({d.t, d.rq}, x.dtype, "mla.dq_a");
    k::linear_backward(dq_a_norm, dw.q_b_proj, {}, dq2, s.q_a_norm, w.q_b_proj,
                       GradWrite::overwrite, ctx);
    k::rmsnorm_backward(dq_a, grad_or_scratch(dw.q_a_layernorm, w.q_a_layernorm, scratch, ctx),
                        dq_a_norm, s.q_a, w.q_a_layernorm, s.q_a_rstd, GradWrite::overwrite, ctx);
    k::linear_backward(dx, dw.q_a_proj, dw.q_a_proj_bias, dq_a, x, w.q_a_proj,
                       GradWrite::accumulate, ctx);
  } else {
    k::linear_backward(dx, dw.q_proj, {}, dq2, x, w.q_proj, GradWrite::accumulate, ctx);
  }
}

// ---- Absorbed decode
// -------------------------------------------------------------------------------

MlaCache MlaCache::make(int64_t num_sequences, int64_t capacity, const ModelConfig& cfg,
                        DType dtype, Context& ctx) {
  R1_CHECK(num_sequences >= 0 && capacity >= 0, "[mla_cache] bad size: {} sequences of {} tokens",
           num_sequences, capacity);
  MlaCache cache;
  for (int64_t b = 0; b < num_sequences; ++b) {
    cache.latent.push_back(ctx.zeros({capacity, cfg.kv_lora_rank}, dtype, "mla_cache.latent"));
    cache.k_pe.push_back(ctx.zeros({capacity, cfg.qk_rope_head_dim}, dtype, "mla_cache.k_pe"));
  }
  cache.length.assign(static_cast<size_t>(num_sequences), 0);
  return cache;
}

MlaAbsorbed mla_absorb(const MlaWeights& w, const ModelConfig& cfg, Context& ctx) {
  const Dims d = dims_of(cfg, 0);
  const TensorView& kvb = w.kv_b_proj;  // (H·(Dn + Dv), Rkv) = (H, Dn + Dv, Rkv)
  const int64_t head = (d.dn + d.dv) * d.rkv;
  MlaAbsorbed a;
  a.w_uk = ctx.empty({d.h, d.dn, d.rkv}, kvb.dtype, "mla.w_uk");
  a.w_uv = ctx.empty({d.h, d.dv, d.rkv}, kvb.dtype, "mla.w_uv");
  copy_rows(a.w_uk, view3(kvb, 0, d.h, d.dn, d.rkv, head, d.rkv, "kv_b_proj.w_uk"), ctx);
  copy_rows(a.w_uv, view3(kvb, d.dn * d.rkv, d.h, d.dv, d.rkv, head, d.rkv, "kv_b_proj.w_uv"), ctx);
  return a;
}

void mla_cache_append(MlaCache& cache, const TensorView& x, const MlaWeights& w,
                      const ModelConfig& cfg, const TokenBatch& batch, const RopeTables& rope,
                      Context& ctx) {
  check_input(x, cfg, batch, rope, "mla_cache_append");
  R1_CHECK(batch.num_sequences() == cache.num_sequences(),
           "[mla_cache_append] the batch has {} sequences, the cache {}", batch.num_sequences(),
           cache.num_sequences());
  const Dims d = dims_of(cfg, x.shape[0]);
  MlaSaved s;
  Tensor k_pe_raw;
  forward_latent(s, k_pe_raw, x, w, cfg, ctx);
  Tensor k_pe = ctx.empty({d.t, 1, d.dr}, x.dtype, "mla.k_pe");
  k::rope_forward(k_pe, k_pe_raw.view().reshape({d.t, 1, d.dr}), rope.cos, rope.sin,
                  batch.positions, cfg.rope.layout, ctx);
  const int32_t* cu = batch.cu_seqlens_host.ptr<int32_t>();
  for (int64_t b = 0; b < cache.num_sequences(); ++b) {
    const int64_t n = cu[b + 1] - cu[b], at = cache.length[b];
    if (n == 0) continue;
    R1_CHECK(at + n <= cache.capacity(),
             "[mla_cache_append] sequence {} holds {} tokens; {} more exceed the capacity {}", b,
             at, n, cache.capacity());
    copy_rows(cache.latent[b].view().slice(at, at + n).reshape({n, 1, d.rkv}),
              s.c.view().slice(cu[b], cu[b + 1]).reshape({n, 1, d.rkv}), ctx);
    copy_rows(cache.k_pe[b].view().slice(at, at + n).reshape({n, 1, d.dr}),
              k_pe.view().slice(cu[b], cu[b + 1]), ctx);
    cache.length[b] += n;
  }
}

Tensor mla_query(const TensorView& x, const MlaWeights& w, const ModelConfig& cfg,
                 const TensorView& positions, const RopeTables& rope, Context& ctx) {
  MlaSaved s;
  forward_q(s, x, w, cfg, positions, rope, ctx);
  return std::move(s.q);
}

void mla_latent(Tensor& c, Tensor& k_pe, const TensorView& x, const MlaWeights& w,
                const ModelConfig& cfg, const TensorView& positions, const RopeTables& rope,
                Context& ctx) {
  const Dims d = dims_of(cfg, x.shape[0]);
  MlaSaved s;
  Tensor k_pe_raw;
  forward_latent(s, k_pe_raw, x, w, cfg, ctx);
  k_pe = ctx.empty({d.t, d.dr}, x.dtype, "mla.k_pe");
  k::rope_forward(k_pe.view().reshape({d.t, 1, d.dr}), k_pe_raw.view().reshape({d.t, 1, d.dr}),
                  rope.cos, rope.sin, positions, cfg.rope.layout, ctx);
  c = std::move(s.c);
}

void mla_decode(const TensorView& y, MlaCache& cache, const TensorView& x, const MlaWeights& w,
                const MlaAbsorbed& absorbed, const ModelConfig& cfg, const TokenBatch& batch,
                const RopeTables& rope, Context& ctx) {
  check_input(x, cfg, batch, rope, "mla_decode");
  const int32_t* cu = batch.cu_seqlens_host.ptr<int32_t>();
  for (int64_t b = 0; b < batch.num_sequences(); ++b)
    R1_CHECK(cu[b + 1] - cu[b] == 1,
             "[mla_decode] sequence {} has {} new tokens; decoding takes exactly one", b,
             cu[b + 1] - cu[b]);
  const Dims d = dims_of(cfg, x.shape[0]);  // T = B
  const double scale = mla_softmax_scale(cfg);
  mla_cache_append(cache, x, w, cfg, batch, rope, ctx);
  MlaSaved s;
  forward_q(s, x, w, cfg, batch.positions, rope, ctx);
  Tensor q_nope = ctx.empty({d.t, d.h, d.dn}, x.dtype, "mla.q_nope");
  Tensor q_pe = ctx.empty({d.t, d.h, d.dr}, x.dtype, "mla.q_pe");
  Tensor q_lat = ctx.empty({d.h, 1, d.rkv}, x.dtype, "mla.q_lat");
  Tensor o_lat = ctx.empty({d.h, 1, d.rkv}, x.dtype, "mla.o_lat");
  Tensor attn = ctx.empty({d.t, d.h, d.dv}, x.dtype, "mla.attn");
  copy_rows(q_nope, head_cols(s.q, 0, d.dn, "mla.q_nope"), ctx);
  copy_rows(q_pe, head_cols(s.q, d.dn, d.dqk, "mla.q_pe"), ctx);
  k::MatmulOptions nt;
  nt.trans_b = true;
  for (int64_t b = 0; b < d.t; ++b) {
    const int64_t len = cache.length[b];
    const TensorView latent = cache.latent[b].view().slice(0, len);  // (S, Rkv)
    const TensorView k_pe = cache.k_pe[b].view().slice(0, len);      // (S, Dr)
    Tensor scores = ctx.empty({d.h, len}, x.dtype, "mla.scores");
    k::MatmulOptions scaled = nt;
    scaled.alpha = scale;
    k::MatmulOptions scaled_acc = scaled;
    scaled_acc.beta = 1.0;
    // q_lat[h] = q_nope[h] · W_UK[h];  s = scale·(q_lat·cᵀ + q_pe·k_peᵀ);  o = softmax(s)·c·W_UVᵀ
    k::matmul_forward(q_lat, q_nope.view().select(b).reshape({d.h, 1, d.dn}), absorbed.w_uk, {},
                      ctx);
    k::matmul_forward(scores, q_lat.view().reshape({d.h, d.rkv}), latent, scaled, ctx);
    k::matmul_forward(scores, q_pe.view().select(b), k_pe, scaled_acc, ctx);
    k::softmax_forward(scores, scores, ctx);
    k::matmul_forward(o_lat.view().reshape({d.h, d.rkv}), scores, latent, {}, ctx);
    k::matmul_forward(attn.view().select(b).reshape({d.h, 1, d.dv}), o_lat, absorbed.w_uv, nt, ctx);
  }
  k::linear_forward(y, attn.view().reshape({d.t, d.h * d.dv}), w.o_proj, w.o_proj_bias, ctx);
}

}  // namespace r1kit::policy
