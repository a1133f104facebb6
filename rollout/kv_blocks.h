// Paged KV memory bookkeeping: a pool of fixed-size blocks (block_size tokens each) under a budget,
// a block table per sequence, and reference counts so that the n samples of one GRPO prompt share
// the prompt's blocks (fork) and a shared, partially filled last block is copied on write.
// Pure bookkeeping: it hands out block indices; the K/V (or MLA latent) tensors live elsewhere and
// their owner performs the copies append() reports. Not built yet: swap-out, prefix caching
// across different requests (hashing full blocks), the tensors themselves.
#pragma once

#include <cstdint>
#include <optional>
#include <unordered_map>
#include <vector>

namespace r1kit::rollout {

using SeqId = int64_t;  // chosen by the caller (the scheduler), unique among live sequences

// The tensors' owner copies the first `num_tokens` token slots of block `src` into block `dst`
// before writing the appended tokens.
struct BlockCopy {
  int32_t src = -1;
  int32_t dst = -1;
  int64_t num_tokens = 0;
};

struct AppendResult {
  int64_t new_blocks = 0;         // blocks taken from the pool, the copy's destination included
  std::optional<BlockCopy> copy;  // copy-on-write of a shared partial last block
};

class KvBlockAllocator {
 public:
  // Throws unless block_size >= 1 and 0 <= num_blocks <= INT32_MAX.
  KvBlockAllocator(int64_t block_size, int64_t num_blocks);

  int64_t block_size() const { return block_size_; }
  int64_t num_blocks() const { return static_cast<int64_t>(ref_counts_.size()); }
  int64_t num_free_blocks() const { return static_cast<int64_t>(free_.size()); }
  int64_t num_used_blocks() const { return num_blocks() - num_free_blocks(); }
  int64_t num_sequences() const { return static_cast<int64_t>(seqs_.size()); }

  // ceil(num_tokens / block_size).
  int64_t blocks_for_tokens(int64_t num_tokens) const;
  // Whether a new sequence of num_tokens tokens fits, keeping `reserve_blocks` free afterwards
  // (e.g. one block per sample of a group for the first decode steps).
  bool can_admit(int64_t num_tokens, int64_t reserve_blocks = 0) const;
  // Adds sequence `id` holding num_tokens tokens (0 for chunked prefill through append()).
  // Throws when the id is live, num_tokens < 0 or the blocks are not free (state unchanged).
  void add_sequence(SeqId id, int64_t num_tokens = 0);

  // `child` gets `parent`'s block table and token count; every block's count goes up by one, so
  // the fork takes no blocks. Throws for an unknown parent or a live child id.
  void fork(SeqId parent, SeqId child);

  // Blocks append(id, num_tokens) would take from the pool (copy-on-write included).
  int64_t blocks_to_append(SeqId id, int64_t num_tokens = 1) const;
  bool can_append(SeqId id, int64_t num_tokens = 1) const;
  // Grows the sequence by num_tokens. When its last block is partially filled and shared, that
  // block is replaced by a fresh copy first (reported in the result). Throws when the pool has too
  // few free blocks; the state is then unchanged, so the scheduler can preempt and retry.
  AppendResult append(SeqId id, int64_t num_tokens = 1);

  // Retires the sequence: its blocks' counts go down and blocks no one holds return to the pool.
  // Throws for an unknown id (never added, or already freed).
  void free(SeqId id);

  bool contains(SeqId id) const { return seqs_.count(id) != 0; }
  int64_t num_tokens(SeqId id) const;
  const std::vector<int32_t>& block_table(SeqId id) const;
  // Blocks of the sequence that no other sequence holds: what retiring it gives back.
  int64_t exclusive_blocks(SeqId id) const;
  // How many sequences hold block `block` (0: free). Throws for an index outside the pool.
  int32_t ref_count(int32_t block) const;

 private:
  struct Sequence {
    std::vector<int32_t> blocks;
    int64_t num_tokens = 0;
  };
  const Sequence& seq(SeqId id, const char* op) const;
  int32_t take_block();

  int64_t block_size_;
  std::vector<int32_t> ref_counts_;  // (num_blocks)
  std::vector<int32_t> free_;        // a stack: the most recently freed block is reused first
  std::unordered_map<SeqId, Sequence> seqs_;
};

}  // namespace r1kit::rollout
