// Counter-based random numbers: Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as
// 1, 2, 3", SC'11). A pure function of (key, counter), so the CPU and every GPU thread produce the
// same bits for the same (seed, counters) with no shared state. Sampling keys its counters by
// (request, sample index, position) so a completion does not depend on batch composition.
#pragma once

#include <cstdint>

#include "core/host_device.h"

namespace r1kit {

struct Philox4 {
  uint32_t v[4];
};

R1_HOST_DEVICE inline uint32_t philox_mulhilo(uint32_t a, uint32_t b, uint32_t* hi) {
  uint64_t p = static_cast<uint64_t>(a) * b;
  *hi = static_cast<uint32_t>(p >> 32);
  return static_cast<uint32_t>(p);
}

// Ten rounds of Philox4x32 on counter c with 64-bit key k.
R1_HOST_DEVICE inline Philox4 philox4x32_10(Philox4 c, uint64_t key) {
  constexpr uint32_t kM0 = 0xD2511F53u, kM1 = 0xCD9E8D57u;
  constexpr uint32_t kW0 = 0x9E3779B9u, kW1 = 0xBB67AE85u;
  uint32_t k0 = static_cast<uint32_t>(key), k1 = static_cast<uint32_t>(key >> 32);
  for (int r = 0; r < 10; ++r) {
    uint32_t hi0, hi1;
    uint32_t lo0 = philox_mulhilo(kM0, c.v[0], &hi0);
    uint32_t lo1 = philox_mulhilo(kM1, c.v[2], &hi1);
    c = Philox4{{hi1 ^ c.v[1] ^ k0, lo1, hi0 ^ c.v[3] ^ k1, lo0}};
    k0 += kW0;
    k1 += kW1;
  }
  return c;
}

// Maps 32 random bits to a float in [0, 1) with 24 bits of precision (exactly representable, so
// CPU and GPU agree bit for bit).
R1_HOST_DEVICE inline float philox_uniform(uint32_t bits) {
  return static_cast<float>(bits >> 8) * (1.0f / 16777216.0f);
}

// Derives an independent Philox key for one use of a seed (weight init, sampling, dropout, ...), so
// streams of different purposes never share (key, counter) pairs. SplitMix64 finaliser.
R1_HOST_DEVICE inline uint64_t philox_derive_key(uint64_t seed, uint64_t domain) {
  uint64_t z = seed ^ (domain * 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
// Domains in use (sampling keys Philox with the raw seed, domain 0).
constexpr uint64_t kPhiloxDomainRandomTensor = 1;
constexpr uint64_t kPhiloxDomainDataOrder = 2;  // sft/data_order.h: epoch shuffles

// Convenience: one uniform in [0,1) for a (seed, a, b, c, d) tuple — the first lane of one block.
R1_HOST_DEVICE inline float philox_uniform_at(uint64_t seed, uint32_t a, uint32_t b, uint32_t c,
                                              uint32_t d) {
  return philox_uniform(philox4x32_10(Philox4{{a, b, c, d}}, seed).v[0]);
}

}  // namespace r1kit
