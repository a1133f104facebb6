// The GRPO objective through the policy: samples (prompt + completion with the per-token terms of
// grpo/objective.h), scoring log-probs without gradients (old, reference, teacher), and the
// micro-batch forward + backward that accumulates ∂loss/∂θ with the step's global normalisers.
//
// Positions: completion token t of a sample whose prompt has P tokens sits at index P + t of
// `tokens`; its log-prob is the forward's output at index P + t − 1 (shifted targets), so a
// sample contributes its completion's n log-probs, whatever micro-batch packs it.
#pragma once

#include <cstdint>
#include <vector>

#include "core/context.h"
#include "core/tensor.h"
#include "grpo/objective.h"
#include "policy/policy.h"

namespace r1kit::grpo {

struct Sample {
  std::vector<int32_t> tokens;  // prompt + completion
  int64_t prompt_len = 0;       // P >= 1
  // Per completion token (n = tokens.size() − P):
  std::vector<uint8_t> mask;            // 1: in the loss
  std::vector<double> rollout_logprob;  // ℓᵇ (the engine's)
  std::vector<double> old_logprob;      // ℓ° (empty: the update's own log-probs, detached)
  std::vector<double> ref_logprob;      // ℓʳ (empty without a reference)
  std::vector<double> advantage;        // A_t
  // Router replay (MoE): per main decoder layer a (P + n, K) i32 host tensor of the experts used
  // at sampling time (rollout::replay_experts), undefined for dense layers; empty: route afresh.
  std::vector<Tensor> replay;

  int64_t completion_len() const { return static_cast<int64_t>(tokens.size()) - prompt_len; }
  // Sizes agree (mask and the given per-token vectors have n entries); errors name `where`.
  void validate(std::string_view where) const;
};

// The normalisers of one optimizer step over `samples` (their masks).
LossNorms loss_norms(const std::vector<const Sample*>& samples, const LossConfig& cfg,
                     double default_constant);

// Completion log-probs of each sample under `policy` at `temperature` (forward only, samples
// packed up to max_tokens tokens per forward; replay used when the samples carry it).
std::vector<std::vector<double>> completion_logprobs(policy::Policy& policy,
                                                     const std::vector<const Sample*>& samples,
                                                     double temperature, int64_t max_tokens,
                                                     Context& ctx);

// Forward of the packed micro-batch (with entropies), sequence_loss per sample, and with
// `backward` the policy's backward from those gradients (accumulating into its grads).
LossStats micro_step(policy::Policy& policy, const std::vector<const Sample*>& samples,
                     const LossConfig& cfg, const KlConfig& kl, const LossNorms& norms,
                     double temperature, bool backward, Context& ctx);

}  // namespace r1kit::grpo
