// Inference-time forward over a paged KV cache, for the rollout engine (rollout/): each step takes
// new tokens of several sequences (a chunk of a prompt being prefilled, or one decoded token),
// writes their keys/values into the sequences' cache blocks, attends over everything each
// sequence's cache holds, and returns the logits after each sequence's last new token. Saves no
// activations (no backward). Dense (Qwen2/Llama GQA) and DeepSeek-V3 (MLA in the absorbed form,
// whose cache holds only the latent and the rope key, and MoE with the routed experts reported).
//
// Storage: blocks of `block_size` token slots, addressed by the block tables rollout's
// KvBlockAllocator hands out (rollout/kv_blocks.h); this file owns no bookkeeping.
//   GQA layer: K (num_blocks, block_size, Hkv, Dqk) and V (num_blocks, block_size, Hkv, Dv).
//   MLA layer: one row per token of Rkv + Dr values (latent after kv_a_layernorm, roped k_pe).
// The cache reads the policy's weights at every step (derived forms such as MLA's absorbed
// kv_b_proj are rebuilt by CachedForward::refresh_weights()), so after an optimizer step the engine
// decodes with the new weights without a disk round-trip.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "core/context.h"
#include "core/tensor.h"
#include "policy/config.h"

namespace r1kit::policy {

class Policy;

struct KvCacheSpec {
  int64_t num_blocks = 0;
  int64_t block_size = 16;   // token slots per block
  DType dtype = DType::f32;  // the activations' dtype (bf16 on GPU)
};

class PagedKvCache {
 public:
  // Bytes one block takes over all layers, for sizing num_blocks from a memory budget.
  static int64_t bytes_per_block(const ModelConfig& cfg, int64_t block_size, DType dtype);
  static PagedKvCache make(const ModelConfig& cfg, const KvCacheSpec& spec, Context& ctx);

  const KvCacheSpec& spec() const { return spec_; }
  // Copies token slots [0, n) of block src into block dst in every layer (copy-on-write of a
  // shared partial block: rollout::BlockCopy).
  void copy_block(int32_t src, int32_t dst, int64_t n, Context& ctx);

  // Per layer storage (decode.cpp's business; public for tests).
  struct Layer {
    Tensor k, v;    // GQA
    Tensor latent;  // MLA: (num_blocks, block_size, Rkv + Dr)
  };
  std::vector<Layer>& layers() { return layers_; }
  const std::vector<Layer>& layers() const { return layers_; }

 private:
  KvCacheSpec spec_;
  std::vector<Layer> layers_;
};

// One step. Sequence b's new tokens are tokens[offset_b, offset_b + new_len[b]) (concatenated in
// sequence order), at positions cached_len[b] .. cached_len[b] + new_len[b] − 1; its block table
// covers at least cached_len[b] + new_len[b] slots.
struct CachedBatch {
  std::vector<int32_t> tokens;
  std::vector<int64_t> cached_len;                 // tokens the sequence's cache already holds
  std::vector<int64_t> new_len;                    // >= 1
  std::vector<std::vector<int32_t>> block_tables;  // block ids, in order
};

struct CachedOutput {
  Tensor logits;  // (B, V) f32 on the context's device: after each sequence's last new token
  // MoE policies: (T, L_moe, K) routed expert ids of every new token, row-major (empty if dense).
  std::vector<int32_t> experts;
};

// The cached forward of one policy. Holds a reference to the policy (which must outlive it) and
// what it derives from the weights (MLA's absorbed kv_b_proj).
class CachedForward {
 public:
  CachedForward(Policy& policy, Context& ctx);
  CachedForward(CachedForward&&) noexcept;
  ~CachedForward();

  const ModelConfig& config() const;
  // Rebuilds the derived weights: call after the policy's weights change (an optimizer step).
  void refresh_weights(Context& ctx);
  // Validates the batch (sizes, block tables long enough, positions below
  // max_position_embeddings) with errors naming the sequence, then runs the step.
  CachedOutput step(const CachedBatch& batch, PagedKvCache& cache, Context& ctx);

  // CUDA graphs for decode steps (CUDA contexts, dense models: MoE layers synchronise to size
  // their grouped GEMMs). With graphs enabled, a step in which every sequence has one new token,
  // no sequence reaches past max_tokens and there are at most kMaxGraphBatch sequences runs from
  // a graph captured for its batch size: the first step of a size runs eagerly (its GEMMs get
  // tuned), the second is captured, later ones replay — the same kernels with the same launch
  // parameters (the block table padded to max_tokens' width), so results are bit-identical to
  // eager steps. Other steps run eagerly. Graphs are dropped when the weights are refreshed, the
  // RoPE tables grow or another cache is passed; a capture that fails turns graphs off.
  static constexpr int64_t kMaxGraphBatch = 512;
  void enable_cuda_graphs(int64_t max_tokens);
  void disable_cuda_graphs();
  struct GraphStats {
    int64_t captures = 0, replays = 0, failures = 0;
  };
  const GraphStats& graph_stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace r1kit::policy
