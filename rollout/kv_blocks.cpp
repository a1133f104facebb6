// The paged KV block allocator (rollout/kv_blocks.h): reference-counted blocks, copy-on-write of a
// shared partial last block, checks that leave the state unchanged when they throw.
#include "rollout/kv_blocks.h"

#include <limits>

#include "core/error.h"

namespace r1kit::rollout {

KvBlockAllocator::KvBlockAllocator(int64_t block_size, int64_t num_blocks)
    : block_size_(block_size) {
  R1_CHECK(block_size >= 1, "[kv_blocks] block_size must be at least 1 token, got {}", block_size);
  R1_CHECK(num_blocks >= 0 && num_blocks <= std::numeric_limits<int32_t>::max(),
           "[kv_blocks] num_blocks must be in [0, 2^31), got {}", num_blocks);
  ref_counts_.assign(static_cast<size_t>(num_blocks), 0);
  free_.reserve(static_cast<size_t>(num_blocks));
  // Pushed in reverse so that a fresh pool hands out blocks 0, 1, 2, ...
  for (int64_t b = num_blocks; b-- > 0;) free_.push_back(static_cast<int32_t>(b));
}

int64_t KvBlockAllocator::blocks_for_tokens(int64_t num_tokens) const {
  R1_CHECK(num_tokens >= 0, "[kv_blocks] a token count must be >= 0, got {}", num_tokens);
  return num_tokens / block_size_ + (num_tokens % block_size_ != 0);
}

bool KvBlockAllocator::can_admit(int64_t num_tokens, int64_t reserve_blocks) const {
  R1_CHECK(reserve_blocks >= 0, "[kv_blocks] reserve_blocks must be >= 0, got {}", reserve_blocks);
  const int64_t need = blocks_for_tokens(num_tokens);
  return need <= num_free_blocks() && reserve_blocks <= num_free_blocks() - need;
}

void KvBlockAllocator::add_sequence(SeqId id, int64_t num_tokens) {
  R1_CHECK(!contains(id), "[kv_blocks] add_sequence: sequence {} is already live", id);
  const int64_t need = blocks_for_tokens(num_tokens);
  R1_CHECK(need <= num_free_blocks(),
           "[kv_blocks] add_sequence: out of KV blocks: sequence {} of {} tokens needs {} blocks, "
           "{} of {} are free (check can_admit first)",
           id, num_tokens, need, num_free_blocks(), num_blocks());
  Sequence s;
  s.num_tokens = num_tokens;
  s.blocks.reserve(static_cast<size_t>(need));
  for (int64_t i = 0; i < need; ++i) s.blocks.push_back(take_block());
  seqs_.emplace(id, std::move(s));
}

void KvBlockAllocator::fork(SeqId parent, SeqId child) {
  const Sequence& p = seq(parent, "fork");
  R1_CHECK(!contains(child), "[kv_blocks] fork: child sequence {} is already live", child);
  for (int32_t b : p.blocks) ++ref_counts_[static_cast<size_t>(b)];
  Sequence c = p;  // copy before emplace: emplace may rehash and move p
  seqs_.emplace(child, std::move(c));
}

int64_t KvBlockAllocator::blocks_to_append(SeqId id, int64_t num_tokens) const {
  const Sequence& s = seq(id, "append");
  R1_CHECK(num_tokens >= 0 && num_tokens <= std::numeric_limits<int64_t>::max() - s.num_tokens,
           "[kv_blocks] append: cannot add {} tokens to sequence {} of {} tokens", num_tokens, id,
           s.num_tokens);
  if (num_tokens == 0) return 0;
  const int64_t grow =
      blocks_for_tokens(s.num_tokens + num_tokens) - static_cast<int64_t>(s.blocks.size());
  const bool cow =
      s.num_tokens % block_size_ != 0 && ref_counts_[static_cast<size_t>(s.blocks.back())] > 1;
  return grow + (cow ? 1 : 0);
}

bool KvBlockAllocator::can_append(SeqId id, int64_t num_tokens) const {
  return blocks_to_append(id, num_tokens) <= num_free_blocks();
}

AppendResult KvBlockAllocator::append(SeqId id, int64_t num_tokens) {
  const int64_t need = blocks_to_append(id, num_tokens);
  Sequence& s = seqs_.at(id);
  R1_CHECK(need <= num_free_blocks(),
           "[kv_blocks] append: out of KV blocks: {} more tokens for sequence {} ({} tokens, {} "
           "blocks) need {} blocks, {} of {} are free (check can_append, or preempt)",
           num_tokens, id, s.num_tokens, s.blocks.size(), need, num_free_blocks(), num_blocks());
  AppendResult r;
  if (num_tokens == 0) return r;
  const int64_t filled = s.num_tokens % block_size_;
  if (filled != 0 && ref_counts_[static_cast<size_t>(s.blocks.back())] > 1) {
    // Other samples still read this block's first `filled` tokens: write into a private copy.
    const int32_t src = s.blocks.back();
    const int32_t dst = take_block();
    --ref_counts_[static_cast<size_t>(src)];
    s.blocks.back() = dst;
    r.copy = BlockCopy{src, dst, filled};
    ++r.new_blocks;
  }
  s.num_tokens += num_tokens;
  while (static_cast<int64_t>(s.blocks.size()) < blocks_for_tokens(s.num_tokens)) {
    s.blocks.push_back(take_block());
    ++r.new_blocks;
  }
  return r;
}

void KvBlockAllocator::free(SeqId id) {
  auto it = seqs_.find(id);
  R1_CHECK(it != seqs_.end(),
           "[kv_blocks] free: unknown sequence {} (never added, or already freed)", id);
  for (int32_t b : it->second.blocks) {
    if (--ref_counts_[static_cast<size_t>(b)] == 0) free_.push_back(b);
  }
  seqs_.erase(it);
}

int64_t KvBlockAllocator::num_tokens(SeqId id) const {
  return seq(id, "num_tokens").num_tokens;
}

const std::vector<int32_t>& KvBlockAllocator::block_table(SeqId id) const {
  return seq(id, "block_table").blocks;
}

int64_t KvBlockAllocator::exclusive_blocks(SeqId id) const {
  int64_t n = 0;
  for (int32_t b : seq(id, "exclusive_blocks").blocks)
    n += ref_counts_[static_cast<size_t>(b)] == 1;
  return n;
}

int32_t KvBlockAllocator::ref_count(int32_t block) const {
  R1_CHECK(block >= 0 && block < num_blocks(), "[kv_blocks] ref_count: block {} is outside [0, {})",
           block, num_blocks());
  return ref_counts_[static_cast<size_t>(block)];
}

const KvBlockAllocator::Sequence& KvBlockAllocator::seq(SeqId id, const char* op) const {
  auto it = seqs_.find(id);
  R1_CHECK(it != seqs_.end(), "[kv_blocks] {}: unknown sequence {} (never added, or already freed)",
           op, id);
  return it->second;
}

int32_t KvBlockAllocator::take_block() {
  const int32_t b = free_.back();  // callers checked that enough blocks are free
  free_.pop_back();
  ref_counts_[static_cast<size_t>(b)] = 1;
  return b;
}

}  // namespace r1kit::rollout
