// Request builders shared by the engine's CPU tests (tests/rollout/) and GPU tests (tests/gpu/).
#pragma once

#include <cstdint>
#include <random>
#include <vector>

#include "rollout/request.h"

namespace r1kit::rollout::test_requests {

// A token-id request: max_new tokens at `temperature` (0: greedy), n samples, seed 42.
inline Request ids_request(std::vector<int32_t> prompt, uint64_t index, int64_t max_new,
                           double temperature = 1.0, int64_t n = 1) {
  Request r;
  r.prompt_ids = std::move(prompt);
  r.index = index;
  r.sampling.max_new_tokens = max_new;
  r.sampling.temperature = temperature;
  r.sampling.n = n;
  r.sampling.seed = 42;
  return r;
}

// `len` ids uniform in [0, vocab).
inline std::vector<int32_t> random_prompt(std::mt19937_64& rng, int64_t len, int64_t vocab) {
  std::uniform_int_distribution<int32_t> d(0, static_cast<int32_t>(vocab - 1));
  std::vector<int32_t> p(static_cast<size_t>(len));
  for (auto& t : p) t = d(rng);
  return p;
}

}  // namespace r1kit::rollout::test_requests
