// The cached forward over a paged KV cache: the training forward's layer list (policy/policy.cpp)
// with attention replaced by a write of the new tokens' keys (GQA: K and V after RoPE; MLA: the
// normalised latent and the roped k_pe) into their cache slots and kernels::paged_attention over
// each sequence's cached positions (MLA in the absorbed form of policy/mla.h), and the LM head run
// only on each sequence's last new token. Formulas in policy/policy.h, policy/mla.h.
#include "policy/decode.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <utility>

#include "kernels/elementwise.h"
#include "kernels/embedding.h"
#include "kernels/matmul.h"
#include "kernels/paged_attention.h"
#include "kernels/rmsnorm.h"
#include "kernels/rope.h"
#include "policy/policy.h"

namespace r1kit::policy {
namespace {

namespace k = kernels;

std::string layer_prefix(int64_t layer) {
  return fmt::format("model.layers.{}.", layer);
}

// A view of `base`'s memory `offset` elements in, with the given shape and strides (heads of a
// packed buffer in another order, a column band of every cache row).
TensorView strided(const TensorView& base, int64_t offset, const Shape& shape, const Shape& stride,
                   const std::string& name) {
  TensorView v = base;
  v.data = static_cast<char*>(base.data) + offset * static_cast<int64_t>(dtype_size(base.dtype));
  v.ndim = static_cast<int>(shape.size());
  v.shape = {};
  v.stride = {};
  for (size_t d = 0; d < shape.size(); ++d) {
    v.shape[d] = shape[d];
    v.stride[d] = stride[d];
  }
  v.name = name;
  return v;
}

int64_t values_per_token(const ModelConfig& cfg) {
  return cfg.is_mla() ? cfg.kv_lora_rank + cfg.qk_rope_head_dim
                      : 2 * cfg.num_key_value_heads * cfg.head_dim;
}

// The index arrays of one step: built on the host in one packed i32 buffer
//   [tokens (T) | positions (T) | cu_seqlens (B+1) | last (B) | cached (B) | table (B, W) | slots
//   (T)]
// and uploaded in one copy (one stream sync per step); the device views point into that copy.
struct StepIndex {
  int64_t b = 0, t = 0, width = 0, max_pos = 0;
  int64_t o_tok = 0, o_pos = 0, o_cu = 0, o_last = 0;  // offsets into the packed buffer
  TensorView packed;  // the packed buffer on the context's device (the host one on a CPU)
  Tensor host, dev;   // the packed buffer, host and device (dev: CUDA only)
  TensorView cu, cached, table, slots;          // host views: (B+1), (B), (B, W), (T)
  TokenBatch batch;                             // tokens, positions, cu_seqlens on the device
  TensorView last;                              // (B) on the device: each sequence's last new row
  TensorView cached_dev, table_dev, slots_dev;  // device views (CUDA contexts)
  kernels::PagedDeviceIndex device() const {
    if (!table_dev.defined()) return {};
    return {table_dev, batch.cu_seqlens.view(), cached_dev};
  }
  TensorView slots_device() const { return slots_dev; }
};

}  // namespace

// ---- PagedKvCache ----------------------------------------------------------------------------

int64_t PagedKvCache::bytes_per_block(const ModelConfig& cfg, int64_t block_size, DType dtype) {
  return cfg.num_hidden_layers * block_size * values_per_token(cfg) *
         static_cast<int64_t>(dtype_size(dtype));
}

PagedKvCache PagedKvCache::make(const ModelConfig& cfg, const KvCacheSpec& spec, Context& ctx) {
  R1_CHECK(spec.num_blocks > 0 && spec.block_size > 0,
           "[paged_kv_cache] num_blocks {} and block_size {} must be > 0", spec.num_blocks,
           spec.block_size);
  R1_CHECK(spec.num_blocks * spec.block_size < (int64_t{1} << 31),
           "[paged_kv_cache] {} blocks of {} slots exceed i32 slot ids", spec.num_blocks,
           spec.block_size);
  PagedKvCache c;
  c.spec_ = spec;
  const int64_t nb = spec.num_blocks, bs = spec.block_size;
  for (int64_t l = 0; l < cfg.num_hidden_layers; ++l) {
    Layer layer;
    if (cfg.is_mla()) {
      layer.latent = ctx.zeros({nb, bs, cfg.kv_lora_rank + cfg.qk_rope_head_dim}, spec.dtype,
                               fmt::format("kv_cache.{}.latent", l));
    } else {
      const int64_t hkv = cfg.num_key_value_heads, d = cfg.head_dim;
      layer.k = ctx.zeros({nb, bs, hkv, d}, spec.dtype, fmt::format("kv_cache.{}.k", l));
      layer.v = ctx.zeros({nb, bs, hkv, d}, spec.dtype, fmt::format("kv_cache.{}.v", l));
    }
    c.layers_.push_back(std::move(layer));
  }
  return c;
}

void PagedKvCache::copy_block(int32_t src, int32_t dst, int64_t n, Context& ctx) {
  R1_CHECK(src >= 0 && src < spec_.num_blocks && dst >= 0 && dst < spec_.num_blocks && src != dst,
           "[paged_kv_cache] copy_block({} -> {}): blocks must be distinct and in [0, {})", src,
           dst, spec_.num_blocks);
  R1_CHECK(n >= 0 && n <= spec_.block_size,
           "[paged_kv_cache] copy_block: {} slots is not within a block of {}", n,
           spec_.block_size);
  if (n == 0) return;
  for (Layer& l : layers_)
    for (Tensor* t : {&l.k, &l.v, &l.latent})
      if (t->defined())
        k::copy(t->view().select(dst).slice(0, n), t->view().select(src).slice(0, n), ctx);
}

// ---- CachedForward ---------------------------------------------------------------------------

struct CachedForward::Impl {
  Policy& policy;
  std::vector<MlaAbsorbed> absorbed;  // (L) MLA: kv_b_proj split per head
  RopeTables rope;                    // tables in the statistics dtype

  explicit Impl(Policy& p) : policy(p) {}
  const ModelConfig& cfg() const { return policy.config(); }
  DType dtype() const { return policy.options().dtype; }

  TensorView weight(const std::string& name) const {
    const TensorView v = policy.params().find(name);
    return v.defined() ? v : policy.buffers().find(name);
  }
  std::function<TensorView(const std::string&)> lookup() const {
    return [this](const std::string& n) { return weight(n); };
  }

  void ensure_rope(int64_t rows, Context& ctx);
  // Validates the batch and builds (and, on CUDA, uploads) the packed index arrays, the block
  // table at least min_width wide; into *reuse when given and of the right size (a graph's input
  // buffer), else a new device buffer (then kept in s.dev).
  StepIndex index(const CachedBatch& batch, const PagedKvCache& cache, Context& ctx,
                  int64_t min_width = 0, Tensor* reuse = nullptr) const;
  // The step's TokenBatch on the device, filled from the packed buffer by device copies.
  static void bind(StepIndex& s, Context& ctx);
  // Everything after the index: the layers and the head (capturable for dense models).
  CachedOutput run(const StepIndex& s, PagedKvCache& cache, Context& ctx);
  void clear_graphs() {
    graphs.clear();
    seen.clear();
  }

  // CUDA graphs of decode steps by batch size (enable_cuda_graphs).
  struct Graph {
    CudaGraph graph;
    Tensor index;       // the input: packed index arrays, uploaded before each replay
    TensorView logits;  // the output in the graph pool: copied out right after the replay
  };
  bool graphs_on = false;
  int64_t graph_tokens = 0, graph_width = 0;
  const PagedKvCache* graph_cache = nullptr;
  std::map<int64_t, Graph> graphs;
  std::set<int64_t> seen;  // batch sizes run eagerly once (their GEMMs tuned)
  CachedForward::GraphStats graph_stats;
  void gqa(const TensorView& y, const TensorView& x, int64_t layer, PagedKvCache::Layer& kv,
           const StepIndex& s, Context& ctx);
  void mla(const TensorView& y, const TensorView& x, int64_t layer, PagedKvCache::Layer& kv,
           const StepIndex& s, Context& ctx);
};

// RoPE tables of `rows` positions or more, in the statistics dtype as Policy::rope_for builds
// them (grown geometrically, capped at max_position_embeddings).
void CachedForward::Impl::ensure_rope(int64_t rows, Context& ctx) {
  if (rope.rows() >= rows) return;
  int64_t n = std::max<int64_t>(rows, 2 * rope.rows());
  if (cfg().max_position_embeddings > 0)
    n = std::max<int64_t>(rows, std::min<int64_t>(n, cfg().max_position_embeddings));
  rope.config = cfg().rope;
  Tensor pos_host({n}, DType::i32, ctx.host_allocator(), "positions");
  for (int64_t i = 0; i < n; ++i) pos_host.ptr<int32_t>()[i] = static_cast<int32_t>(i);
  Tensor pos = ctx.empty({n}, DType::i32, "positions");
  ctx.copy(pos, pos_host);
  const DType st = stats_dtype(dtype());
  rope.cos = ctx.empty({n, cfg().rope.dim / 2}, st, "rope.cos");
  rope.sin = ctx.empty({n, cfg().rope.dim / 2}, st, "rope.sin");
  k::rope_tables(rope.cos, rope.sin, pos, cfg().rope, ctx);
}

// Validates the batch against the config and the cache, and builds the step's index arrays.
StepIndex CachedForward::Impl::index(const CachedBatch& batch, const PagedKvCache& cache,
                                     Context& ctx, int64_t min_width, Tensor* reuse) const {
  const ModelConfig& c = cfg();
  const int64_t b_n = static_cast<int64_t>(batch.new_len.size());
  const int64_t bs = cache.spec().block_size, nb = cache.spec().num_blocks;
  R1_CHECK(b_n >= 1, "[decode] the batch has no sequences (new_len is empty)");
  R1_CHECK(static_cast<int64_t>(batch.cached_len.size()) == b_n &&
               static_cast<int64_t>(batch.block_tables.size()) == b_n,
           "[decode] new_len has {} sequences but cached_len {} and block_tables {}; give one "
           "entry per sequence in each",
           b_n, batch.cached_len.size(), batch.block_tables.size());
  R1_CHECK(static_cast<int64_t>(cache.layers().size()) == c.num_hidden_layers,
           "[decode] the cache has {} layers, the model {}", cache.layers().size(),
           c.num_hidden_layers);
  R1_CHECK(cache.spec().dtype == dtype(),
           "[decode] the cache holds {} but the policy computes in {}; make the cache with "
           "KvCacheSpec::dtype = {}",
           dtype_name(cache.spec().dtype), dtype_name(dtype()), dtype_name(dtype()));
  int64_t total = 0, width = 1;
  for (int64_t b = 0; b < b_n; ++b) {
    const int64_t cached = batch.cached_len[b], fresh = batch.new_len[b], end = cached + fresh;
    R1_CHECK(fresh >= 1, "[decode] sequence {} has new_len {}; each sequence needs >= 1 new token",
             b, fresh);
    R1_CHECK(cached >= 0, "[decode] sequence {} has cached_len {} < 0", b, cached);
    R1_CHECK(c.max_position_embeddings <= 0 || end <= c.max_position_embeddings,
             "[decode] sequence {} reaches position {} ({} cached + {} new), beyond "
             "max_position_embeddings = {} of the model",
             b, end - 1, cached, fresh, c.max_position_embeddings);
    const int64_t need = (end + bs - 1) / bs,
                  have = static_cast<int64_t>(batch.block_tables[b].size());
    R1_CHECK(have >= need,
             "[decode] sequence {} covers {} positions ({} cached + {} new), which need {} blocks "
             "of {} slots; its block table has {}",
             b, end, cached, fresh, need, bs, have);
    for (int64_t j = 0; j < need; ++j) {
      const int32_t blk = batch.block_tables[b][j];
      R1_CHECK(blk >= 0 && blk < nb,
               "[decode] block_tables[{}][{}] = {} is not a block of the cache ({} blocks)", b, j,
               blk, nb);
    }
    total += fresh;
    width = std::max(width, need);
  }
  R1_CHECK(static_cast<int64_t>(batch.tokens.size()) == total,
           "[decode] {} tokens given; new_len sums to {}", batch.tokens.size(), total);
  for (size_t i = 0; i < batch.tokens.size(); ++i)
    R1_CHECK(batch.tokens[i] >= 0 && batch.tokens[i] < c.vocab_size,
             "[decode] token {} at index {} is outside the vocabulary (V = {})", batch.tokens[i], i,
             c.vocab_size);

  width = std::max(width, min_width);
  StepIndex s;
  s.b = b_n;
  s.t = total;
  s.width = width;
  // Offsets of the packed arrays.
  const int64_t o_tok = 0, o_pos = total, o_cu = 2 * total, o_last = o_cu + b_n + 1,
                o_cached = o_last + b_n, o_table = o_cached + b_n, o_slots = o_table + b_n * width,
                n_all = o_slots + total;
  s.host = Tensor({n_all}, DType::i32, ctx.host_allocator(), "step_index");
  const TensorView all = s.host.view();
  s.cu = all.slice(o_cu, o_cu + b_n + 1);
  s.cached = all.slice(o_cached, o_cached + b_n);
  s.table = all.slice(o_table, o_table + b_n * width).reshape({b_n, width});
  s.slots = all.slice(o_slots, o_slots + total);
  int32_t* h = s.host.ptr<int32_t>();
  int32_t *tok = h + o_tok, *pos = h + o_pos, *cu = h + o_cu, *last = h + o_last,
          *cached_h = h + o_cached, *tbl = h + o_table, *slots = h + o_slots;
  std::fill(tbl, tbl + b_n * width, -1);
  cu[0] = 0;
  int64_t t = 0, max_pos = 0;
  for (int64_t b = 0; b < b_n; ++b) {
    const int64_t cached = batch.cached_len[b];
    cached_h[b] = static_cast<int32_t>(cached);
    const auto& bt = batch.block_tables[b];
    std::copy(bt.begin(), bt.begin() + (cached + batch.new_len[b] + bs - 1) / bs, tbl + b * width);
    for (int64_t i = 0; i < batch.new_len[b]; ++i, ++t) {
      const int64_t p = cached + i;
      tok[t] = batch.tokens[t];
      pos[t] = static_cast<int32_t>(p);
      slots[t] = static_cast<int32_t>(bt[p / bs] * bs + p % bs);
    }
    cu[b + 1] = static_cast<int32_t>(t);
    last[b] = static_cast<int32_t>(t - 1);
    max_pos = std::max(max_pos, cached + batch.new_len[b]);
  }
  // One upload; the TokenBatch's own tensors are filled from it by device copies (bind).
  TensorView d = all;
  if (ctx.is_cuda()) {
    Tensor* dst = &s.dev;
    if (reuse && reuse->defined() && reuse->numel() == n_all) {
      dst = reuse;
    } else {
      s.dev = ctx.empty({n_all}, DType::i32, "step_index");
    }
    ctx.copy(*dst, s.host);
    d = dst->view();
    s.cached_dev = d.slice(o_cached, o_cached + b_n);
    s.table_dev = d.slice(o_table, o_table + b_n * width).reshape({b_n, width});
    s.slots_dev = d.slice(o_slots, o_slots + total);
  }
  s.packed = d;
  s.o_tok = o_tok;
  s.o_pos = o_pos;
  s.o_cu = o_cu;
  s.o_last = o_last;
  s.max_pos = max_pos;
  s.last = d.slice(o_last, o_last + b_n);
  s.batch.cu_seqlens_host = Tensor({b_n + 1}, DType::i32, ctx.host_allocator(), "cu_seqlens");
  std::copy(cu, cu + b_n + 1, s.batch.cu_seqlens_host.ptr<int32_t>());
  s.batch.max_position_ = max_pos;
  return s;
}

void CachedForward::Impl::bind(StepIndex& s, Context& ctx) {
  const TensorView& base = s.packed;
  s.batch.tokens = ctx.empty({s.t}, DType::i32, "tokens");
  s.batch.positions = ctx.empty({s.t}, DType::i32, "positions");
  s.batch.cu_seqlens = ctx.empty({s.b + 1}, DType::i32, "cu_seqlens");
  ctx.copy_on_device(s.batch.tokens, base.slice(s.o_tok, s.o_tok + s.t));
  ctx.copy_on_device(s.batch.positions, base.slice(s.o_pos, s.o_pos + s.t));
  ctx.copy_on_device(s.batch.cu_seqlens, base.slice(s.o_cu, s.o_cu + s.b + 1));
}

// GQA: q, k, v projections, RoPE on q and k, k and v into their slots, attention over the cache.
void CachedForward::Impl::gqa(const TensorView& y, const TensorView& x, int64_t layer,
                              PagedKvCache::Layer& kv, const StepIndex& s, Context& ctx) {
  const ModelConfig& c = cfg();
  const AttentionWeights w = attention_weights(lookup(), layer_prefix(layer) + "self_attn.", c);
  const int64_t T = s.t, H = c.num_attention_heads, Hkv = c.num_key_value_heads, D = c.head_dim;
  const DType dt = x.dtype;
  Tensor q = ctx.empty({T, H, D}, dt, "attn.q");      // (T, H, D)
  Tensor kk = ctx.empty({T, Hkv, D}, dt, "attn.k");   // (T, Hkv, D)
  Tensor v = ctx.empty({T, Hkv, D}, dt, "attn.v");    // (T, Hkv, D)
  Tensor out = ctx.empty({T, H, D}, dt, "attn.out");  // (T, H, D)
  k::linear_forward(q.view().reshape({T, H * D}), x, w.q_proj, w.q_bias, ctx);
  k::linear_forward(kk.view().reshape({T, Hkv * D}), x, w.k_proj, w.k_bias, ctx);
  k::linear_forward(v.view().reshape({T, Hkv * D}), x, w.v_proj, w.v_bias, ctx);
  k::rope_forward(q, q, rope.cos, rope.sin, s.batch.positions, c.rope.layout, ctx);
  k::rope_forward(kk, kk, rope.cos, rope.sin, s.batch.positions, c.rope.layout, ctx);
  k::paged_cache_write(kv.k, kk, s.slots, ctx, s.slots_device());
  k::paged_cache_write(kv.v, v, s.slots, ctx, s.slots_device());
  k::paged_attention_forward(out, q, kv.k, kv.v, s.table, s.cu, s.cached,
                             1.0 / std::sqrt(static_cast<double>(D)), ctx, s.device());
  k::linear_forward(y, out.view().reshape({T, H * D}), w.o_proj, w.o_bias, ctx);
}

// MLA, absorbed (policy/mla.h): the latent row [c ‖ k_pe] of each new token into its slot, then
//   q_lat[h] = q_nope[h] · W_UK[h],  o_lat = attention([q_lat ‖ q_pe], K = [c ‖ k_pe], V = c),
//   o[h] = o_lat[h] · W_UV[h]ᵀ,  y = o · W_oᵀ (+ b).
void CachedForward::Impl::mla(const TensorView& y, const TensorView& x, int64_t layer,
                              PagedKvCache::Layer& kv, const StepIndex& s, Context& ctx) {
  const ModelConfig& c = cfg();
  const MlaWeights w = mla_weights(lookup(), layer_prefix(layer) + "self_attn.", c);
  const MlaAbsorbed& a = absorbed[static_cast<size_t>(layer)];
  const int64_t T = s.t, H = c.num_attention_heads, Dn = c.qk_nope_head_dim,
                Dr = c.qk_rope_head_dim, Dqk = Dn + Dr, Dv = c.v_head_dim, R = c.kv_lora_rank,
                W = R + Dr;
  const DType dt = x.dtype;
  const TensorView& lat = kv.latent;  // (NB, BS, R + Dr)
  const int64_t nb = lat.shape[0], bs = lat.shape[1];
  const TensorView k_cache = strided(lat, 0, {nb, bs, 1, W}, {bs * W, W, W, 1}, lat.name);
  const TensorView v_cache = strided(lat, 0, {nb, bs, 1, R}, {bs * W, W, W, 1}, lat.name + ".c");
  const TensorView pe_cache = strided(lat, R, {nb, bs, 1, Dr}, {bs * W, W, W, 1}, lat.name + ".pe");

  Tensor latent, k_pe;  // (T, R), (T, Dr)
  mla_latent(latent, k_pe, x, w, c, s.batch.positions, rope, ctx);
  k::paged_cache_write(v_cache, latent.view().reshape({T, 1, R}), s.slots, ctx, s.slots_device());
  k::paged_cache_write(pe_cache, k_pe.view().reshape({T, 1, Dr}), s.slots, ctx, s.slots_device());

  const Tensor q = mla_query(x, w, c, s.batch.positions, rope, ctx);  // (T, H, Dqk)
  Tensor q_nope = ctx.empty({H, T, Dn}, dt, "mla.q_nope");            // (H, T, Dn)
  Tensor q_lat = ctx.empty({H, T, R}, dt, "mla.q_lat");               // (H, T, R)
  Tensor q_cat = ctx.empty({T, H, W}, dt, "mla.q_cat");               // (T, H, R + Dr)
  Tensor o_lat = ctx.empty({T, H, R}, dt, "mla.o_lat");               // (T, H, R)
  Tensor o_lat_h = ctx.empty({H, T, R}, dt, "mla.o_lat_h");           // (H, T, R)
  Tensor o_h = ctx.empty({H, T, Dv}, dt, "mla.o_h");                  // (H, T, Dv)
  Tensor attn = ctx.empty({T, H, Dv}, dt, "mla.attn");                // (T, H, Dv)
  k::copy(q_nope, strided(q, 0, {H, T, Dn}, {Dqk, H * Dqk, 1}, "mla.q_nope"), ctx);
  k::matmul_forward(q_lat, q_nope, a.w_uk, {}, ctx);
  k::copy(strided(q_cat, 0, {H, T, R}, {W, H * W, 1}, "mla.q_cat.lat"), q_lat, ctx);
  k::copy(strided(q_cat, R, {T, H, Dr}, {H * W, W, 1}, "mla.q_cat.pe"),
          strided(q, Dn, {T, H, Dr}, {H * Dqk, Dqk, 1}, "mla.q_pe"), ctx);
  k::paged_attention_forward(o_lat, q_cat, k_cache, v_cache, s.table, s.cu, s.cached,
                             mla_softmax_scale(c), ctx, s.device());
  k::copy(o_lat_h, strided(o_lat, 0, {H, T, R}, {R, H * R, 1}, "mla.o_lat"), ctx);
  k::MatmulOptions nt;
  nt.trans_b = true;
  k::matmul_forward(o_h, o_lat_h, a.w_uv, nt, ctx);
  k::copy(attn, strided(o_h, 0, {T, H, Dv}, {Dv, T * Dv, 1}, "mla.o_h"), ctx);
  k::linear_forward(y, attn.view().reshape({T, H * Dv}), w.o_proj, w.o_proj_bias, ctx);
}

CachedForward::CachedForward(Policy& policy, Context& ctx) : impl_(std::make_unique<Impl>(policy)) {
  refresh_weights(ctx);
}
CachedForward::CachedForward(CachedForward&&) noexcept = default;
CachedForward::~CachedForward() = default;

const ModelConfig& CachedForward::config() const {
  return impl_->cfg();
}

void CachedForward::refresh_weights(Context& ctx) {
  Impl& m = *impl_;
  m.clear_graphs();  // they read the derived tensors
  m.absorbed.clear();
  if (!m.cfg().is_mla()) return;
  for (int64_t l = 0; l < m.cfg().num_hidden_layers; ++l)
    m.absorbed.push_back(
        mla_absorb(mla_weights(m.lookup(), layer_prefix(l) + "self_attn.", m.cfg()), m.cfg(), ctx));
}

CachedOutput CachedForward::Impl::run(const StepIndex& s, PagedKvCache& cache, Context& ctx) {
  Impl& m = *this;
  const ModelConfig& c = m.cfg();
  const int64_t T = s.t, B = s.b, C = c.hidden_size, V = c.vocab_size;
  const DType dt = m.dtype(), st = stats_dtype(dt);
  const double eps = c.rms_norm_eps;
  const auto lk = m.lookup();

  Tensor x = ctx.empty({T, C}, dt, "embed");  // (T, C) residual stream
  k::embedding_forward(x, s.batch.tokens, m.weight("model.embed_tokens.weight"), ctx);
  Tensor ln = ctx.empty({T, C}, dt, "ln");      // (T, C) a norm output
  Tensor rstd = ctx.empty({T}, st, "ln.rstd");  // (T)
  Tensor mid = ctx.empty({T, C}, dt, "mid");    // (T, C) x + self_attn(ln1)
  std::vector<Tensor> topk;                     // per MoE layer (T, K) i32
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const std::string p = layer_prefix(l);
    PagedKvCache::Layer& kv = cache.layers()[static_cast<size_t>(l)];
    k::rmsnorm_forward(ln, rstd, x, m.weight(p + "input_layernorm.weight"), eps, ctx);
    if (c.is_mla()) {
      m.mla(mid, ln, l, kv, s, ctx);
    } else {
      m.gqa(mid, ln, l, kv, s, ctx);
    }
    k::add_forward(mid, mid, x, ctx);
    k::rmsnorm_forward(ln, rstd, mid, m.weight(p + "post_attention_layernorm.weight"), eps, ctx);
    if (c.is_moe_layer(l)) {
      MoeSaved ms;
      moe_forward(x, &ms, ln, moe_weights(lk, p + "mlp.", c), c, MoeOptions{}, s.batch, ctx);
      topk.push_back(std::move(ms.topk_idx));
    } else {
      mlp_forward(x, nullptr, ln, mlp_weights(lk, p + "mlp."), ctx);
    }
    k::add_forward(x, x, mid, ctx);  // x = mid + mlp(ln2): the next layer's input
  }

  // The head on each sequence's last new token only.
  Tensor x_last = ctx.empty({B, C}, dt, "x_last");  // (B, C)
  Tensor h = ctx.empty({B, C}, dt, "h");            // (B, C)
  Tensor h_rstd = ctx.empty({B}, st, "h.rstd");     // (B)
  k::embedding_forward(x_last, s.last, x, ctx);
  k::rmsnorm_forward(h, h_rstd, x_last, m.weight("model.norm.weight"), eps, ctx);
  const TensorView head =
      m.weight(c.tie_word_embeddings ? "model.embed_tokens.weight" : "lm_head.weight");
  CachedOutput o;
  o.logits = ctx.empty({B, V}, DType::f32, "logits");  // (B, V)
  if (dt == DType::f32) {
    k::linear_forward(o.logits, h, head, TensorView{}, ctx);
  } else {
    Tensor logits = ctx.empty({B, V}, dt, "logits.working");
    k::linear_forward(logits, h, head, TensorView{}, ctx);
    k::cast(o.logits, logits, ctx);
  }

  // Routed experts as (T, L_moe, K).
  if (!topk.empty()) {
    const int64_t lm = static_cast<int64_t>(topk.size()), kk = c.num_experts_per_tok();
    o.experts.resize(static_cast<size_t>(T * lm * kk));
    Tensor host({T, kk}, DType::i32, ctx.host_allocator(), "topk_idx");
    for (int64_t j = 0; j < lm; ++j) {
      ctx.copy(host, topk[static_cast<size_t>(j)]);
      for (int64_t t = 0; t < T; ++t)
        for (int64_t e = 0; e < kk; ++e)
          o.experts[static_cast<size_t>((t * lm + j) * kk + e)] = host.ptr<int32_t>()[t * kk + e];
    }
  }
  return o;
}

CachedOutput CachedForward::step(const CachedBatch& batch, PagedKvCache& cache, Context& ctx) {
  Impl& m = *impl_;
  const ModelConfig& c = m.cfg();
  const int64_t b_n = static_cast<int64_t>(batch.new_len.size());
  bool decode = m.graphs_on && ctx.is_cuda() && !c.is_moe() && b_n >= 1 && b_n <= kMaxGraphBatch &&
                static_cast<int64_t>(batch.tokens.size()) == b_n;
  for (int64_t b = 0; decode && b < b_n; ++b)
    decode = batch.new_len[static_cast<size_t>(b)] == 1 &&
             batch.cached_len[static_cast<size_t>(b)] + 1 <= m.graph_tokens;
  if (decode && m.graph_cache != &cache) {
    m.clear_graphs();
    m.graph_cache = &cache;
  }
  if (decode) {
    const int64_t bs = cache.spec().block_size;
    m.graph_width = (m.graph_tokens + bs - 1) / bs;
    auto it = m.graphs.find(b_n);
    if (it != m.graphs.end()) {  // replay: new inputs into the graph's buffer, then the graph
      const StepIndex s = m.index(batch, cache, ctx, m.graph_width, &it->second.index);
      R1_CHECK(!s.dev.defined(), "[decode] the graph's index buffer does not fit batch {}", b_n);
      it->second.graph.replay(ctx);
      CachedOutput o;
      o.logits = ctx.empty({b_n, c.vocab_size}, DType::f32, "logits");
      ctx.copy_on_device(o.logits, it->second.logits);
      ++m.graph_stats.replays;
      return o;
    }
    if (m.seen.count(b_n)) {  // second time: capture (the first ran eagerly and tuned the GEMMs)
      m.ensure_rope(m.graph_tokens, ctx);
      StepIndex s = m.index(batch, cache, ctx, m.graph_width);
      Impl::Graph g;
      g.index = std::move(s.dev);
      s.dev = Tensor();
      CachedOutput captured;
      try {
        ctx.begin_capture();
        try {
          Impl::bind(s, ctx);
          captured = m.run(s, cache, ctx);
        } catch (...) {
          try {
            (void)ctx.end_capture();
          } catch (const Error&) {
          }
          throw;
        }
        g.graph = ctx.end_capture();
      } catch (const Error&) {
        // Not capturable here (a synchronising op, an unsupported call): eager from now on.
        ++m.graph_stats.failures;
        m.graphs_on = false;
        m.clear_graphs();
        return step(batch, cache, ctx);
      }
      g.logits = captured.logits.view();
      g.graph.replay(ctx);
      CachedOutput o;
      o.logits = ctx.empty({b_n, c.vocab_size}, DType::f32, "logits");
      ctx.copy_on_device(o.logits, g.logits);
      m.graphs.emplace(b_n, std::move(g));
      ++m.graph_stats.captures;
      return o;
    }
    m.seen.insert(b_n);
  }
  StepIndex s = m.index(batch, cache, ctx);
  const int64_t rope_rows = m.rope.rows();
  m.ensure_rope(s.batch.max_position(), ctx);
  if (m.rope.rows() != rope_rows) m.clear_graphs();  // graphs read the old tables
  Impl::bind(s, ctx);
  return m.run(s, cache, ctx);
}

void CachedForward::enable_cuda_graphs(int64_t max_tokens) {
  Impl& m = *impl_;
  R1_CHECK(max_tokens >= 1, "[decode] enable_cuda_graphs: max_tokens {} must be >= 1", max_tokens);
  if (!m.graphs_on || max_tokens > m.graph_tokens) {
    m.clear_graphs();
    m.graph_tokens = max_tokens;
  }
  m.graphs_on = true;
}

void CachedForward::disable_cuda_graphs() {
  impl_->graphs_on = false;
  impl_->clear_graphs();
}

const CachedForward::GraphStats& CachedForward::graph_stats() const {
  return impl_->graph_stats;
}

}  // namespace r1kit::policy
