// What every layer of a policy forward needs besides its weights: a batch of packed token
// sequences (the attention kernel's varlen layout) and the RoPE tables.
// Legend: T packed tokens, B sequences, P table rows (max position + 1), D rotary dims.
#pragma once

#include <cstdint>
#include <vector>

#include "core/context.h"
#include "core/tensor.h"
#include "kernels/rope.h"

namespace r1kit::policy {

// B sequences packed end to end: sequence b is tokens [cu_seqlens[b], cu_seqlens[b+1]).
struct TokenBatch {
  Tensor tokens;           // (T) i32 on the context's device
  Tensor positions;        // (T) i32 on the device: position of each token within its sequence
                           //   (0-based, or starting at a cache offset for continued sequences)
  Tensor cu_seqlens;       // (B+1) i32 on the device
  Tensor cu_seqlens_host;  // (B+1) i32 host copy: what attention takes (no copy per call)
  int64_t num_tokens() const { return tokens.numel(); }
  int64_t num_sequences() const { return cu_seqlens_host.numel() - 1; }
  int64_t max_position() const { return max_position_; }  // largest position + 1 (0 if empty)

  // Packs host token lists (positions 0.. per sequence; position_offset added to all).
  static TokenBatch from_sequences(const std::vector<std::vector<int32_t>>& seqs, Context& ctx,
                                   int32_t position_offset = 0);

  int64_t max_position_ = 0;
};

// cos/sin (P, D/2) f32 tables indexed by position (kernels::rope_tables with positions 0..P−1),
// on the context's device. Built once per model for the longest position a batch uses; grow()
// rebuilds them when a batch needs more rows.
struct RopeTables {
  Tensor cos, sin;
  kernels::RopeConfig config;
  int64_t rows() const { return cos.defined() ? cos.size(0) : 0; }
  static RopeTables make(const kernels::RopeConfig& config, int64_t rows, Context& ctx);
  void grow(int64_t rows_needed, Context& ctx);  // no-op when rows() >= rows_needed
};

}  // namespace r1kit::policy
