// The per-element formulas of kernels/random.h, shared by the CPU and CUDA backends so both
// compute the same function of (seed, offset, index).
#pragma once

#include <cmath>
#include <cstdint>

#include "core/philox.h"

namespace r1kit::kernels {

// The key is derived from the seed in its own domain, so random tensors never reuse the noise that
// sampling draws from the same seed.
R1_HOST_DEVICE inline Philox4 random_block(uint64_t seed, uint64_t offset, uint64_t i) {
  return philox4x32_10(
      Philox4{{static_cast<uint32_t>(i), static_cast<uint32_t>(i >> 32),
               static_cast<uint32_t>(offset), static_cast<uint32_t>(offset >> 32)}},
      philox_derive_key(seed, kPhiloxDomainRandomTensor));
}

// Box–Muller: z = sqrt(−2 ln u1)·cos(2π u2), with u1 ∈ (0, 1] so the log is finite.
R1_HOST_DEVICE inline float random_normal_value(Philox4 r) {
  float u1 = 1.0f - philox_uniform(r.v[0]);
  float u2 = philox_uniform(r.v[1]);
  return sqrtf(-2.0f * logf(u1)) * cosf(6.283185307179586f * u2);
}

}  // namespace r1kit::kernels
