// Attention of new query rows over a paged KV cache (the rollout engine's prefill chunks and decode
// steps), and the scatter that writes new keys/values into their cache slots. Inference only (no
// lse, no backward). GQA/MQA and distinct q·k / v head dims; V may be a view of K (MLA's latent
// cache: K = [latent ‖ k_pe] (Dqk = Rkv + Dr), V = its first Dv = Rkv values).
// Shapes: T packed query rows, B sequences, Hq query heads, Hkv key/value heads (Hq % Hkv == 0),
// Dqk the q·k head dim, Dv the value head dim, NB cache blocks of BS token slots, W block-table
// width (blocks per sequence, padded).
#pragma once

#include "core/context.h"
#include "kernels/validate.h"

namespace r1kit::kernels {

// For each sequence b with new rows i = cu_seqlens[b] .. cu_seqlens[b+1]−1, the row at position
// p_i = cached_lens[b] + (i − cu_seqlens[b]) attends causally to the cache slots of positions
// j = 0 .. p_i of its own cache, position j living in block block_tables[b, j / BS], slot j % BS:
//   s_ij      = scale · q[i, h] · K[blk(b, j), j % BS, g],   g = h / (Hq / Hkv)
//   out[i, h] = Σ_j softmax_j(s_ij) · V[blk(b, j), j % BS, g]
// The new rows' own keys must already be in the cache (paged_cache_write first).
// out (T, Hq, Dv); q (T, Hq, Dqk); k_cache (NB, BS, Hkv, Dqk); v_cache (NB, BS, Hkv, Dv): any
// non-negative strides with unit stride in the last dim (so v_cache may be a view of k_cache).
// block_tables (B, W) i32 contiguous, cu_seqlens (B+1) i32 (0, non-decreasing, ending at T),
// cached_lens (B) i32 (>= 0): each on the host or the context's device (device ones are copied to
// the host for validation, which synchronises; pass host tensors, the CUDA backend uploads them).
// Every sequence needs ceil((cached_lens[b] + new rows) / BS) <= W table entries, each in [0, NB);
// entries past those are not read (padding such as −1 is fine).
// scale: the softmax scale (1/sqrt(Dqk), times yarn_softmax_mscale² for DeepSeek-V3).
// device: optional copies of the three index arrays on the context's device holding the same values
// (a caller that runs many layers over one batch uploads them once: the CUDA backend then needs no
// upload, and the host arrays are what is validated). Ignored on a CPU context.
struct PagedDeviceIndex {
  TensorView block_tables, cu_seqlens, cached_lens;
};
void paged_attention_forward(const TensorView& out, const TensorView& q, const TensorView& k_cache,
                             const TensorView& v_cache, const TensorView& block_tables,
                             const TensorView& cu_seqlens, const TensorView& cached_lens,
                             double scale, Context& ctx, const PagedDeviceIndex& device = {});

// cache[slots[n] / BS, slots[n] % BS, :, :] = src[n, :, :] for every row n.
// cache (NB, BS, H, D) any non-negative strides, unit last stride, same dtype as src; src (N, H, D)
// row view; slots (N) i32 on the host or the device (checked on the host: each in [0, NB·BS), all
// distinct); slots_device optionally a device copy of the same values (as in PagedDeviceIndex).
// src must not overlap cache.
void paged_cache_write(const TensorView& cache, const TensorView& src, const TensorView& slots,
                       Context& ctx, const TensorView& slots_device = TensorView{});

// The validated index arrays, on the host, for the backends.
struct PagedIndexHost {
  const int32_t* block_tables = nullptr;  // (B, W)
  const int32_t* cu_seqlens = nullptr;    // (B+1)
  const int32_t* cached_lens = nullptr;   // (B)
  int64_t num_seqs = 0, table_width = 0;
};

namespace cpu {
void paged_attention_forward(const TensorView& out, const TensorView& q, const TensorView& k_cache,
                             const TensorView& v_cache, const PagedIndexHost& idx, double scale,
                             Context& ctx);
void paged_cache_write(const TensorView& cache, const TensorView& src, const int32_t* slots,
                       Context& ctx);
}  // namespace cpu
namespace cuda {
// The index views to use (host ones are uploaded; device ones used as they are) and their
// validated host values.
void paged_attention_forward(const TensorView& out, const TensorView& q, const TensorView& k_cache,
                             const TensorView& v_cache, const TensorView& block_tables,
                             const TensorView& cu_seqlens, const TensorView& cached_lens,
                             const PagedIndexHost& idx, double scale, Context& ctx);
void paged_cache_write(const TensorView& cache, const TensorView& src, const TensorView& slots,
                       Context& ctx);
}  // namespace cuda

}  // namespace r1kit::kernels
