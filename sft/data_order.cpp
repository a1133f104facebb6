// Deterministic, resumable SFT example order and token-budget micro-batching (see data_order.h).
#include "sft/data_order.h"

#include <limits>
#include <numeric>
#include <string>
#include <utility>

#include "core/error.h"
#include "core/philox.h"

namespace r1kit::sft {

namespace {

const std::vector<std::string> kStateKeys = {"epoch", "position"};

int64_t state_field(const Json& j, const char* field, std::string_view where) {
  auto it = j.find(field);
  R1_CHECK(it != j.end(), "{}: missing '{}' (a non-negative integer)", where, field);
  const Json& v = *it;
  const bool ok = v.is_number_unsigned()
                      ? v.get<uint64_t>() <= uint64_t{std::numeric_limits<int64_t>::max()}
                      : v.is_number_integer() && v.get<int64_t>() >= 0;
  R1_CHECK(ok, "{}: '{}' must be a non-negative integer, got {}", where, field,
           v.is_number() ? v.dump() : json_type_name(v));
  return v.get<int64_t>();
}

// A uniform integer in [0, s) for Fisher-Yates step i (s = i + 1), by modulo with rejection:
//   t = 2^64 mod s  (computed as (2^64 - s) mod s in uint64)
//   for a = 0, 1, 2, ...:
//     (v0, v1, v2, v3) = philox4x32_10(counter = (lo32(i), hi32(i), a, 0), key)
//     x = v0 + 2^32 * v1
//     if x >= t: return x mod s
// The accepted x cover [t, 2^64), whose size 2^64 - t is a multiple of s, so x mod s is exactly
// uniform; a redraw happens with probability t / 2^64 < s / 2^64.
uint64_t bounded_draw(uint64_t key, uint64_t i, uint64_t s) {
  const uint64_t t = (0 - s) % s;
  for (uint32_t a = 0;; ++a) {
    const Philox4 r = philox4x32_10(
        Philox4{{static_cast<uint32_t>(i), static_cast<uint32_t>(i >> 32), a, 0u}}, key);
    const uint64_t x = static_cast<uint64_t>(r.v[0]) | (static_cast<uint64_t>(r.v[1]) << 32);
    if (x >= t) return x % s;
  }
}

}  // namespace

Json to_json(const DataOrderState& s) {
  return Json{{"epoch", s.epoch}, {"position", s.position}};
}

DataOrderState data_order_state_from_json(const Json& j, std::string_view where) {
  require_object(j, where);
  reject_unknown_keys(j, kStateKeys, where);
  DataOrderState s;
  s.epoch = state_field(j, "epoch", where);
  s.position = state_field(j, "position", where);
  return s;
}

// The permutation of epoch e, a Fisher-Yates shuffle driven by Philox4x32-10:
//   key  = philox_derive_key(philox_derive_key(seed, kPhiloxDomainDataOrder), e)
//   perm = [0, 1, ..., N-1]
//   for i = N-1 down to 1:
//     j = bounded_draw(key, i, i + 1)   (uniform in [0, i], counter (i, ...), see above)
//     swap(perm[i], perm[j])
// The identity when shuffle is false.
std::vector<int64_t> data_order_permutation(int64_t num_examples, uint64_t seed, int64_t epoch,
                                            bool shuffle) {
  R1_CHECK(num_examples >= 1, "[data_order] num_examples must be at least 1, got {}", num_examples);
  R1_CHECK(epoch >= 0, "[data_order] epoch must be >= 0, got {}", epoch);
  std::vector<int64_t> perm(static_cast<size_t>(num_examples));
  std::iota(perm.begin(), perm.end(), int64_t{0});
  if (!shuffle) return perm;
  const uint64_t key = philox_derive_key(philox_derive_key(seed, kPhiloxDomainDataOrder),
                                         static_cast<uint64_t>(epoch));
  for (uint64_t i = static_cast<uint64_t>(num_examples) - 1; i >= 1; --i) {
    const uint64_t j = bounded_draw(key, i, i + 1);
    std::swap(perm[i], perm[j]);
  }
  return perm;
}

DataOrder::DataOrder(int64_t num_examples, uint64_t seed, bool shuffle, DataOrderState start)
    : num_examples_(num_examples), seed_(seed), shuffle_(shuffle) {
  R1_CHECK(num_examples >= 1,
           "[data_order] num_examples must be at least 1, got {} (is the dataset empty?)",
           num_examples);
  R1_CHECK(start.epoch >= 0 && start.epoch < std::numeric_limits<int64_t>::max(),
           "[data_order] start state: epoch must be a non-negative integer, got {}", start.epoch);
  R1_CHECK(start.position >= 0 && start.position <= num_examples,
           "[data_order] start state: position must be in [0, {}] (the number of examples), got "
           "{} (was the state saved for a different dataset?)",
           num_examples, start.position);
  if (start.position == num_examples) {
    begin_epoch(start.epoch + 1);
  } else {
    begin_epoch(start.epoch);
    state_.position = start.position;
  }
}

void DataOrder::begin_epoch(int64_t epoch) {
  perm_ = data_order_permutation(num_examples_, seed_, epoch, shuffle_);
  state_ = DataOrderState{epoch, 0};
}

int64_t DataOrder::next() {
  const int64_t index = perm_[static_cast<size_t>(state_.position)];
  if (++state_.position == num_examples_) begin_epoch(state_.epoch + 1);
  return index;
}

TokenBudgetBatcher::TokenBudgetBatcher(const std::vector<int64_t>& lengths, int64_t max_tokens,
                                       DataOrder order)
    : lengths_(lengths), max_tokens_(max_tokens), order_(std::move(order)) {
  R1_CHECK(max_tokens >= 1, "[data_order] max_tokens must be at least 1, got {}", max_tokens);
  R1_CHECK(static_cast<int64_t>(lengths_.size()) == order_.examples_per_epoch(),
           "[data_order] {} example lengths for an order over {} examples (one length per "
           "example)",
           lengths_.size(), order_.examples_per_epoch());
  for (size_t i = 0; i < lengths_.size(); ++i) {
    R1_CHECK(lengths_[i] >= 1,
             "[data_order] example {} has length {}; every example needs >= 1 token", i,
             lengths_[i]);
    R1_CHECK(lengths_[i] <= max_tokens,
             "[data_order] example {} has length {} tokens, more than the micro-batch budget "
             "max_tokens = {}; raise max_tokens or truncate or drop the example",
             i, lengths_[i], max_tokens);
  }
}

// Greedy: take the next example while it fits (the first one always does, every length being
// <= max_tokens). The loop ends within max_tokens steps since each example costs >= 1 token. With
// a budget larger than an epoch's tokens a batch can hold one example twice (from two epochs).
MicroBatch TokenBudgetBatcher::next() {
  MicroBatch batch;
  while (true) {
    const int64_t length = lengths_[static_cast<size_t>(order_.peek())];
    if (!batch.examples.empty() && batch.tokens + length > max_tokens_) break;
    batch.examples.push_back(order_.next());
    batch.tokens += length;
  }
  return batch;
}

}  // namespace r1kit::sft
