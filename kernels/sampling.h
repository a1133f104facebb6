// Next-token sampling for rollout: temperature, top-k, top-p, min-p, then a Gumbel-max draw whose
// noise is Philox keyed by (seed; stream, position, token), so a row's token depends only on
// (seed, stream, position, logits), never on the batch it was sampled in, and CPU and GPU agree.
// Shapes: B rows (one per sequence being decoded), V vocab. Forward only: sampling is not
// differentiated (the trainer recomputes log-probs with kernels/logprob.h).
#pragma once

#include <cmath>
#include <cstdint>

#include "core/context.h"
#include "core/philox.h"
#include "kernels/validate.h"

namespace r1kit::kernels {

struct SamplingParams {
  double temperature = 1.0;  // 0 = greedy argmax (ties → lowest id); else in [1e-5, ∞)
  int64_t top_k = 0;         // keep the k most likely tokens; 0 = off
  double top_p = 1.0;        // keep the smallest most-likely set with mass ≥ top_p; 1 = off
  double min_p = 0.0;        // keep tokens with p ≥ min_p·p_max; 0 = off
};

// Smallest non-zero temperature: below it z = logits / τ overflows for large logits; use 0.
constexpr double kMinSamplingTemperature = 1e-5;

// tokens (B) i32 (=): the sampled ids.
// token_logprob (B) f32/f64 (=): log softmax(logits / τ) at the sampled token over the full,
//   UNFILTERED vocabulary — what the trainer recomputes, so the two can be compared and used for
//   importance-sampling correction. For τ = 0 (greedy) it is the log-prob under τ = 1.
// logits (B, V) f32/f64/bf16/f16. Entries may be −inf (masked tokens are never drawn); NaN and
//   +inf are errors, as is a row with no finite entry.
// rng_counters (B, 2) i64: per row (stream, position), stream = request·n_samples + sample index
//   (>= 0), position in [0, 2^32) the index of the token being sampled.
//
// Per row, with τ > 0 and z = logits / τ (in double):
//   1. order tokens by (z descending, id ascending);
//   2. top-k keeps the first k; top-p keeps the shortest prefix of those whose renormalised mass
//      reaches top_p (at least one token); min-p keeps the tokens with exp(z_j − z_max) ≥ min_p.
//      Each filter keeps a prefix of the order, so the kept set is one prefix.
//   3. Gumbel-max: token = argmax over kept j of z_j + g_j, g_j = −log(−log u_j),
//      u_j = sampling_uniform(seed, stream, position, j). Then P(token = j) = softmax of z over
//      the kept set exactly. Gumbel-max needs no prefix sum over the vocabulary (whose rounding
//      depends on the reduction order and would differ between CPU and GPU): the draw is an
//      argmax of per-token scores, each a pure function of its inputs.
void sample_forward(const TensorView& tokens, const TensorView& token_logprob,
                    const TensorView& logits, const TensorView& rng_counters,
                    const SamplingParams& params, uint64_t seed, Context& ctx);

// The per-token uniform of step 3, shared by the CPU and CUDA backends: Philox4x32-10 keyed by
// seed on counter (stream lo, stream hi, position, token), lane 0; its top 24 bits k give
// u = (k + ½)·2^-24 ∈ [2^-25, 1 − 2^-25] — the midpoint of k's cell, away from 0 and 1, exact in
// double, so −log(−log u) is always finite.
R1_HOST_DEVICE inline double sampling_uniform(uint64_t seed, uint64_t stream, uint32_t position,
                                              uint32_t token) {
  const uint32_t bits =
      philox4x32_10(Philox4{{static_cast<uint32_t>(stream), static_cast<uint32_t>(stream >> 32),
                             position, token}},
                    seed)
          .v[0];
  return (static_cast<double>(bits >> 8) + 0.5) * (1.0 / 16777216.0);
}

// g = −log(−log u): standard Gumbel noise in double. CUDA's double log is within 1 ulp of glibc's,
// so the two backends can disagree only when two scores tie to within an ulp.
R1_HOST_DEVICE inline double sampling_gumbel(uint64_t seed, uint64_t stream, uint32_t position,
                                             uint32_t token) {
  return -log(-log(sampling_uniform(seed, stream, position, token)));
}

namespace cpu {
void sample_forward(const TensorView& tokens, const TensorView& token_logprob,
                    const TensorView& logits, const TensorView& rng_counters,
                    const SamplingParams& params, uint64_t seed, Context& ctx);
}  // namespace cpu
namespace cuda {
// rng_counters and finiteness are checked by the front-end only for host tensors; the CUDA kernel
// must flag NaN/+inf logits and bad counters itself.
void sample_forward(const TensorView& tokens, const TensorView& token_logprob,
                    const TensorView& logits, const TensorView& rng_counters,
                    const SamplingParams& params, uint64_t seed, Context& ctx);
}  // namespace cuda

}  // namespace r1kit::kernels
