// The order in which SFT training visits its examples: a fresh seeded permutation per epoch that is
// identical on every platform and resumable from a two-number state (epoch, position), plus greedy
// token-budget micro-batching over that order whose batch-boundary state resumes it exactly.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "core/json.h"
#include "core/philox.h"

namespace r1kit::sft {

// The shuffles draw from Philox domain kPhiloxDomainDataOrder (core/philox.h, where the domains
// are listed), so they never share (key, counter) pairs with other streams.

// Where an order stands: `position` examples of epoch `epoch` have been handed out. DataOrder
// keeps position < N (after the last example of epoch e its state is (e + 1, 0)); a saved state
// with position == N is accepted and means the same thing.
struct DataOrderState {
  int64_t epoch = 0;
  int64_t position = 0;

  bool operator==(const DataOrderState&) const = default;
};

// {"epoch": 3, "position": 17}
Json to_json(const DataOrderState& s);
// Both keys required, non-negative integers; unknown keys are errors. Errors name `where` and the
// field: "data order state: 'epoch' must be a non-negative integer, got -1".
DataOrderState data_order_state_from_json(const Json& j,
                                          std::string_view where = "data order state");

// The order of epoch `epoch`: a permutation of 0..N-1 (N = num_examples >= 1), the identity when
// `shuffle` is false. The algorithm is documented above its definition in data_order.cpp; it uses
// only integer arithmetic on fixed-width types, so every compiler and library gives the same order.
std::vector<int64_t> data_order_permutation(int64_t num_examples, uint64_t seed, int64_t epoch,
                                            bool shuffle = true);

// An endless sequence of example indices, epoch after epoch, each epoch a permutation of 0..N-1
// (data_order_permutation). Holds one epoch's permutation (N int64s).
class DataOrder {
 public:
  // Continues from `start` exactly: the future sequence equals that of an order built with the same
  // (num_examples, seed, shuffle) and advanced to `start`. Throws when num_examples < 1 or `start`
  // is not a state of an N-example order (negative, or position > N).
  DataOrder(int64_t num_examples, uint64_t seed, bool shuffle = true, DataOrderState start = {});

  // The next example index, advancing the state (into the next epoch after the last of this one).
  int64_t next();
  // What next() would return, without advancing.
  int64_t peek() const { return perm_[static_cast<size_t>(state_.position)]; }
  // The state to save: an order rebuilt from it continues with what next() returns now.
  DataOrderState state() const { return state_; }

  int64_t examples_per_epoch() const { return num_examples_; }
  uint64_t seed() const { return seed_; }
  bool shuffle() const { return shuffle_; }

 private:
  void begin_epoch(int64_t epoch);

  int64_t num_examples_;
  uint64_t seed_;
  bool shuffle_;
  DataOrderState state_;
  std::vector<int64_t> perm_;  // [N] the order of epoch state_.epoch
};

struct MicroBatch {
  std::vector<int64_t> examples;  // example indices, in order
  int64_t tokens = 0;             // sum of their lengths, <= max_tokens
};

// Cuts the order into micro-batches of at most `max_tokens` tokens: examples are taken greedily in
// order and never reordered; the first example that does not fit starts the next batch, so every
// batch has at least one example. A batch may span an epoch boundary (the last examples of epoch e
// and the first of e + 1): the stream of examples is the order's, epoch boundaries are not cut
// points. state() is the order's state at the batch boundary (the first example not yet handed
// out), which is why the batcher peeks instead of holding a pending example.
class TokenBudgetBatcher {
 public:
  // lengths[i]: tokens of example i, one per example of `order`, each in [1, max_tokens]; an
  // example longer than the budget is an error naming it (it could never be batched).
  TokenBudgetBatcher(const std::vector<int64_t>& lengths, int64_t max_tokens, DataOrder order);

  MicroBatch next();
  // The state to save between batches: a batcher rebuilt with the same lengths, budget and an
  // order from this state produces the same future batches.
  DataOrderState state() const { return order_.state(); }

  int64_t examples_per_epoch() const { return order_.examples_per_epoch(); }
  int64_t max_tokens() const { return max_tokens_; }

 private:
  std::vector<int64_t> lengths_;  // [N]
  int64_t max_tokens_;
  DataOrder order_;
};

}  // namespace r1kit::sft
