// TokenBatch packing and RoPE table construction.
#include "policy/batch.h"

#include <algorithm>

namespace r1kit::policy {

TokenBatch TokenBatch::from_sequences(const std::vector<std::vector<int32_t>>& seqs, Context& ctx,
                                      int32_t position_offset) {
  R1_CHECK(position_offset >= 0, "[batch] position offset {} must be >= 0", position_offset);
  int64_t total = 0;
  for (const auto& s : seqs) total += static_cast<int64_t>(s.size());
  R1_CHECK(total < (int64_t{1} << 31), "[batch] {} tokens do not fit i32 offsets", total);
  Allocator& host = ctx.host_allocator();
  Tensor tok({total}, DType::i32, host, "tokens"), pos({total}, DType::i32, host, "positions");
  Tensor cu({static_cast<int64_t>(seqs.size()) + 1}, DType::i32, host, "cu_seqlens");
  int64_t t = 0, max_len = 0;
  cu.ptr<int32_t>()[0] = 0;
  for (size_t b = 0; b < seqs.size(); ++b) {
    for (size_t i = 0; i < seqs[b].size(); ++i, ++t) {
      tok.ptr<int32_t>()[t] = seqs[b][i];
      pos.ptr<int32_t>()[t] = position_offset + static_cast<int32_t>(i);
    }
    cu.ptr<int32_t>()[b + 1] = static_cast<int32_t>(t);
    max_len = std::max<int64_t>(max_len, static_cast<int64_t>(seqs[b].size()));
  }
  TokenBatch batch;
  batch.max_position_ = max_len == 0 ? 0 : position_offset + max_len;
  batch.tokens = ctx.empty({total}, DType::i32, "tokens");
  batch.positions = ctx.empty({total}, DType::i32, "positions");
  batch.cu_seqlens = ctx.empty(cu.view().dims(), DType::i32, "cu_seqlens");
  ctx.copy(batch.tokens, tok);
  ctx.copy(batch.positions, pos);
  ctx.copy(batch.cu_seqlens, cu);
  batch.cu_seqlens_host = std::move(cu);
  return batch;
}

RopeTables RopeTables::make(const kernels::RopeConfig& config, int64_t rows, Context& ctx) {
  RopeTables r;
  r.config = config;
  r.grow(std::max<int64_t>(rows, 1), ctx);
  return r;
}

void RopeTables::grow(int64_t rows_needed, Context& ctx) {
  if (rows() >= rows_needed) return;
  R1_CHECK(config.dim > 0 && config.dim % 2 == 0, "[rope] rotary dim {} must be even and > 0",
           config.dim);
  const int64_t half = config.dim / 2;
  Tensor pos_host({rows_needed}, DType::i32, ctx.host_allocator(), "positions");
  for (int64_t i = 0; i < rows_needed; ++i) pos_host.ptr<int32_t>()[i] = static_cast<int32_t>(i);
  Tensor pos = ctx.empty({rows_needed}, DType::i32, "positions");
  ctx.copy(pos, pos_host);
  cos = ctx.empty({rows_needed, half}, DType::f32, "rope.cos");
  sin = ctx.empty({rows_needed, half}, DType::f32, "rope.sin");
  kernels::rope_tables(cos, sin, pos, config, ctx);
}

}  // namespace r1kit::policy
