// The paged KV block allocator (rollout/kv_blocks.h): a GRPO group holds its prompt's blocks once,
// copy-on-write of the shared partial block, budget exhaustion as an error with the state
// unchanged, misuse errors, and a randomized run against a model that stores token values.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>
#include <set>
#include <vector>

#include "core/error.h"
#include "rollout/kv_blocks.h"
#include "tests/common/test_util.h"

namespace r1kit::rollout {
namespace {

using r1kit::testing::expect_error_contains;

int64_t ceil_div(int64_t a, int64_t b) {
  return (a + b - 1) / b;
}

// n samples of a P-token prompt: sample 0 holds the prefilled prompt, 1..n-1 are forks; each then
// decodes its own length one token at a time, round robin as a batched decode would.
void check_group(int64_t B, int64_t P, const std::vector<int64_t>& lengths) {
  SCOPED_TRACE(::testing::Message() << "B=" << B << " P=" << P);
  const int64_t n = static_cast<int64_t>(lengths.size());
  KvBlockAllocator kv(B, 256);
  kv.add_sequence(0, P);
  for (SeqId s = 1; s < n; ++s) kv.fork(0, s);
  // Before decoding, the whole group costs the prompt once.
  EXPECT_EQ(kv.num_used_blocks(), ceil_div(P, B));
  for (int32_t b : kv.block_table(0)) EXPECT_EQ(kv.ref_count(b), n);
  EXPECT_EQ(kv.exclusive_blocks(0), n == 1 ? ceil_div(P, B) : 0);

  int copies = 0;
  const int64_t longest = *std::max_element(lengths.begin(), lengths.end());
  for (int64_t step = 0; step < longest; ++step)
    for (SeqId s = 0; s < n; ++s)
      if (step < lengths[static_cast<size_t>(s)]) {
        const int64_t before = kv.num_free_blocks();
        const AppendResult r = kv.append(s);
        EXPECT_EQ(before - kv.num_free_blocks(), r.new_blocks);
        copies += r.copy.has_value();
      }
  // The full prompt blocks stay shared; the partial one (if any) ends up with one owner per
  // sample: one keeps the original, n-1 got copies.
  const int64_t full = P / B;
  int64_t expected = full;
  for (SeqId s = 0; s < n; ++s) {
    const int64_t own = ceil_div(P + lengths[static_cast<size_t>(s)], B) - full;
    expected += own;
    EXPECT_EQ(kv.exclusive_blocks(s), n == 1 ? own + full : own) << "sample " << s;
    EXPECT_EQ(kv.num_tokens(s), P + lengths[static_cast<size_t>(s)]);
    const auto& table = kv.block_table(s);
    for (int64_t i = 0; i < full; ++i)
      EXPECT_EQ(table[static_cast<size_t>(i)], kv.block_table(0)[static_cast<size_t>(i)]);
  }
  EXPECT_EQ(kv.num_used_blocks(), expected);
  EXPECT_EQ(copies, P % B == 0 ? 0 : n - 1);
  for (SeqId s = 0; s < n; ++s) kv.free(s);
  EXPECT_EQ(kv.num_free_blocks(), kv.num_blocks());
}

TEST(KvBlocks, GroupSharesThePromptBlocks) {
  check_group(4, 10, {3, 1, 7, 2, 5});   // partial last prompt block
  check_group(4, 8, {3, 1, 7, 2, 5});    // prompt fills its blocks exactly
  check_group(16, 5, {40, 40, 40, 40});  // prompt shorter than one block
  check_group(1, 6, {2, 3});             // one token per block
  check_group(4, 9, {6});                // n = 1
}

TEST(KvBlocks, CopyOnWriteOfTheSharedPartialBlock) {
  KvBlockAllocator kv(4, 16);
  kv.add_sequence(7, 6);  // blocks 0 (full) and 1 (2 of 4 tokens)
  ASSERT_EQ(kv.block_table(7), (std::vector<int32_t>{0, 1}));
  kv.fork(7, 8);
  EXPECT_EQ(kv.blocks_to_append(8, 1), 1);

  AppendResult r = kv.append(8);
  ASSERT_TRUE(r.copy.has_value());
  EXPECT_EQ(r.copy->src, 1);
  EXPECT_EQ(r.copy->dst, 2);
  EXPECT_EQ(r.copy->num_tokens, 2);
  EXPECT_EQ(r.new_blocks, 1);
  EXPECT_EQ(kv.block_table(8), (std::vector<int32_t>{0, 2}));
  EXPECT_EQ(kv.ref_count(0), 2);
  EXPECT_EQ(kv.ref_count(1), 1);
  EXPECT_EQ(kv.ref_count(2), 1);

  // The parent now owns block 1 alone and writes in place.
  r = kv.append(7);
  EXPECT_FALSE(r.copy.has_value());
  EXPECT_EQ(r.new_blocks, 0);
  EXPECT_EQ(kv.block_table(7), (std::vector<int32_t>{0, 1}));

  // Copy and growth in one call: a third sample appends 7 tokens to the 7-token parent.
  kv.fork(7, 9);
  EXPECT_EQ(kv.blocks_to_append(9, 7), 3);  // copy of block 1, then 2 more blocks for 14 tokens
  r = kv.append(9, 7);
  ASSERT_TRUE(r.copy.has_value());
  EXPECT_EQ(r.copy->src, 1);
  EXPECT_EQ(r.copy->num_tokens, 3);
  EXPECT_EQ(r.new_blocks, 3);
  EXPECT_EQ(kv.block_table(9).size(), 4u);
  EXPECT_EQ(kv.block_table(9)[0], 0);
  EXPECT_EQ(kv.ref_count(0), 3);
  EXPECT_EQ(kv.num_tokens(9), 14);
  EXPECT_EQ(kv.append(9, 0).new_blocks, 0);
}

TEST(KvBlocks, FullSharedLastBlockNeedsNoCopy) {
  KvBlockAllocator kv(4, 8);
  kv.add_sequence(0, 8);
  kv.fork(0, 1);
  const AppendResult r = kv.append(1);
  EXPECT_FALSE(r.copy.has_value());
  EXPECT_EQ(r.new_blocks, 1);
  EXPECT_EQ(kv.ref_count(kv.block_table(0)[1]), 2);
  EXPECT_EQ(kv.block_table(1).size(), 3u);
}

TEST(KvBlocks, ChunkedPrefillThroughAppend) {
  KvBlockAllocator kv(4, 8);
  kv.add_sequence(3);
  EXPECT_TRUE(kv.block_table(3).empty());
  EXPECT_EQ(kv.append(3, 5).new_blocks, 2);
  EXPECT_EQ(kv.append(3, 3).new_blocks, 0);
  EXPECT_EQ(kv.append(3, 1).new_blocks, 1);
  EXPECT_EQ(kv.num_used_blocks(), 3);
}

TEST(KvBlocks, BudgetExhaustionIsAnErrorAndChangesNothing) {
  KvBlockAllocator kv(4, 3);
  EXPECT_TRUE(kv.can_admit(12));
  EXPECT_FALSE(kv.can_admit(13));
  EXPECT_TRUE(kv.can_admit(8, 1));
  EXPECT_FALSE(kv.can_admit(9, 1));
  expect_error_contains(
      [&] { kv.add_sequence(0, 13); },
      {"[kv_blocks] add_sequence: out of KV blocks", "needs 4 blocks", "3 of 3 are free"});
  EXPECT_FALSE(kv.contains(0));
  EXPECT_EQ(kv.num_free_blocks(), 3);

  kv.add_sequence(0, 10);  // all 3 blocks, the last one half full
  kv.fork(0, 1);           // forks take no blocks
  EXPECT_EQ(kv.num_free_blocks(), 0);
  EXPECT_FALSE(kv.can_append(1));  // the copy-on-write needs a block
  const std::vector<int32_t> table = kv.block_table(1);
  expect_error_contains([&] { kv.append(1); },
                        {"[kv_blocks] append: out of KV blocks", "sequence 1", "need 1 blocks",
                         "0 of 3 are free", "preempt"});
  EXPECT_EQ(kv.block_table(1), table);
  EXPECT_EQ(kv.num_tokens(1), 10);
  for (int32_t b : table) EXPECT_EQ(kv.ref_count(b), 2);

  // Preempting sample 0 leaves sample 1 sole owner: it appends in place, with no block.
  kv.free(0);
  EXPECT_EQ(kv.num_free_blocks(), 0);
  EXPECT_EQ(kv.blocks_to_append(1, 2), 0);
  EXPECT_FALSE(kv.can_append(1, 3));
  kv.append(1, 2);
  EXPECT_EQ(kv.num_tokens(1), 12);
  kv.free(1);
  EXPECT_EQ(kv.num_free_blocks(), 3);

  KvBlockAllocator empty(4, 0);
  EXPECT_TRUE(empty.can_admit(0));
  EXPECT_FALSE(empty.can_admit(1));
}

TEST(KvBlocks, MisuseErrors) {
  expect_error_contains([] { KvBlockAllocator(0, 4); }, {"block_size must be at least 1"});
  expect_error_contains([] { KvBlockAllocator(4, -1); }, {"num_blocks must be in"});
  KvBlockAllocator kv(4, 8);
  kv.add_sequence(1, 3);
  expect_error_contains([&] { kv.add_sequence(1, 3); }, {"sequence 1 is already live"});
  expect_error_contains([&] { kv.add_sequence(2, -1); }, {"token count must be >= 0, got -1"});
  expect_error_contains([&] { kv.fork(5, 6); }, {"fork: unknown sequence 5"});
  expect_error_contains([&] { kv.fork(1, 1); }, {"child sequence 1 is already live"});
  expect_error_contains([&] { kv.append(9); }, {"append: unknown sequence 9"});
  expect_error_contains([&] { kv.append(1, -2); }, {"cannot add -2 tokens"});
  expect_error_contains([&] { kv.block_table(9); }, {"block_table: unknown sequence 9"});
  expect_error_contains([&] { kv.ref_count(8); }, {"block 8 is outside [0, 8)"});
  kv.free(1);
  expect_error_contains([&] { kv.free(1); }, {"free: unknown sequence 1", "already freed"});
  EXPECT_EQ(kv.num_free_blocks(), 8);
}

// Random adds, forks, appends and frees on a small pool. Every token gets a unique value written
// into simulated KV storage through the block tables (copies applied as reported); each sequence
// must always read back exactly its own tokens, and a write must only ever hit a block the writer
// owns alone. Reference counts and the free count are checked against the tables after each step.
TEST(KvBlocks, RandomizedAgainstAModel) {
  constexpr int64_t B = 3, kBlocks = 40;
  KvBlockAllocator kv(B, kBlocks);
  std::vector<std::vector<int64_t>> storage(kBlocks, std::vector<int64_t>(B, -1));
  std::map<SeqId, std::vector<int64_t>> model;
  std::mt19937_64 rng(12345);
  int64_t next_value = 0;
  SeqId next_id = 0;
  int copies = 0, exhausted = 0;

  auto write = [&](SeqId id, int64_t pos, int64_t value) {
    const int32_t b = kv.block_table(id)[static_cast<size_t>(pos / B)];
    ASSERT_EQ(kv.ref_count(b), 1) << "write into a shared block";
    storage[static_cast<size_t>(b)][static_cast<size_t>(pos % B)] = value;
  };
  auto pick = [&]() {
    auto it = model.begin();
    std::advance(it, static_cast<long>(rng() % model.size()));
    return it->first;
  };

  for (int step = 0; step < 6000; ++step) {
    // Retire more often when the pool runs low, so that it is full often but not always.
    int op = static_cast<int>(rng() % 10);
    if (kv.num_free_blocks() < 3 && rng() % 3 == 0) op = 9;
    if (op < 2 || model.empty()) {  // add
      const int64_t len = static_cast<int64_t>(rng() % 10);
      const SeqId id = next_id++;
      if (!kv.can_admit(len)) {
        EXPECT_THROW(kv.add_sequence(id, len), Error);
        ++exhausted;
        continue;
      }
      kv.add_sequence(id, len);
      auto& toks = model[id];
      for (int64_t p = 0; p < len; ++p) {
        toks.push_back(next_value);
        write(id, p, next_value++);
      }
    } else if (op < 4) {  // fork
      const SeqId parent = pick();
      const SeqId id = next_id++;
      kv.fork(parent, id);
      model[id] = model[parent];
    } else if (op < 8) {  // append
      const SeqId id = pick();
      const int64_t k = 1 + static_cast<int64_t>(rng() % 4);
      if (!kv.can_append(id, k)) {
        const auto table = kv.block_table(id);
        EXPECT_THROW(kv.append(id, k), Error);
        EXPECT_EQ(kv.block_table(id), table);
        ++exhausted;
        continue;
      }
      const AppendResult r = kv.append(id, k);
      if (r.copy) {
        ++copies;
        for (int64_t i = 0; i < r.copy->num_tokens; ++i)
          storage[static_cast<size_t>(r.copy->dst)][static_cast<size_t>(i)] =
              storage[static_cast<size_t>(r.copy->src)][static_cast<size_t>(i)];
      }
      auto& toks = model[id];
      for (int64_t i = 0; i < k; ++i) {
        write(id, static_cast<int64_t>(toks.size()), next_value);
        toks.push_back(next_value++);
      }
    } else {  // retire
      const SeqId id = pick();
      kv.free(id);
      model.erase(id);
    }

    std::vector<int32_t> refs(kBlocks, 0);
    for (const auto& [id, toks] : model) {
      const auto& table = kv.block_table(id);
      ASSERT_EQ(kv.num_tokens(id), static_cast<int64_t>(toks.size()));
      ASSERT_EQ(static_cast<int64_t>(table.size()), ceil_div(static_cast<int64_t>(toks.size()), B));
      for (size_t p = 0; p < toks.size(); ++p)
        ASSERT_EQ(storage[static_cast<size_t>(table[p / B])][p % B], toks[p])
            << "sequence " << id << " position " << p << " at step " << step;
      for (int32_t b : table) ++refs[static_cast<size_t>(b)];
    }
    int64_t used = 0;
    for (int32_t b = 0; b < kBlocks; ++b) {
      ASSERT_EQ(kv.ref_count(b), refs[static_cast<size_t>(b)]) << "block " << b;
      used += refs[static_cast<size_t>(b)] > 0;
    }
    ASSERT_EQ(kv.num_used_blocks(), used);
    for (const auto& [id, toks] : model) {
      int64_t excl = 0;
      for (int32_t b : kv.block_table(id)) excl += refs[static_cast<size_t>(b)] == 1;
      ASSERT_EQ(kv.exclusive_blocks(id), excl);
    }
  }
  EXPECT_GT(copies, 100);     // the run exercised copy-on-write ...
  EXPECT_GT(exhausted, 100);  // ... and a full pool
  while (!model.empty()) {
    kv.free(model.begin()->first);
    model.erase(model.begin());
  }
  EXPECT_EQ(kv.num_free_blocks(), kBlocks);
  EXPECT_EQ(kv.num_sequences(), 0);
  for (int32_t b = 0; b < kBlocks; ++b) EXPECT_EQ(kv.ref_count(b), 0);
}

}  // namespace
}  // namespace r1kit::rollout
