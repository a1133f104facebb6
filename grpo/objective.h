// The GRPO family of objectives on the host: advantages per group, and per sequence the policy
// loss with its gradient on the trainer's log-probs (and entropies). The policy turns those
// gradients into parameter gradients (grpo/loss.h); this file is pure arithmetic in double so that
// every switch can be checked against a direct computation.
//
// Notation, for sample i of the batch (a completion o_i of group g(i)), completion token t:
//   ℓ_t     log π_θ(o_t | …)          the trainer's log-prob (differentiable)
//   ℓ°_t    log π_old(o_t | …)         the log-prob before this step's updates (detached): the
//                                       rollout's or recomputed by the trainer (OldLogprobs)
//   ℓʳ_t    log π_ref(o_t | …)         the frozen reference policy (KL)
//   ℓᵇ_t    the rollout engine's log-prob of the token it drew (the behaviour policy)
//   H_t     the entropy of π_θ at the position
//   m_t     1 for tokens in the loss (completion tokens of kept samples)
//   |o_i|   Σ_t m_t
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "core/json.h"

namespace r1kit::grpo {

// Advantage of sample i from the rewards R of its group G (size n, the kept samples only):
//   grpo     A_i = (R_i − mean_G R) / (std_G R + ε)          std with Bessel's correction (n − 1),
//                                                             0 for n = 1 (as torch.std would not)
//   dr_grpo  A_i =  R_i − mean_G R                            (Dr. GRPO: no std division)
//   rloo     A_i =  R_i − (Σ_{j∈G, j≠i} R_j) / (n − 1)       (leave-one-out baseline; 0 for n = 1)
// With batch_std the divisor of every estimator is (std over all kept samples of the batch + ε)
// instead (grpo's group std is then not used).
enum class AdvantageEstimator { grpo, dr_grpo, rloo };

struct AdvantageConfig {
  AdvantageEstimator estimator = AdvantageEstimator::grpo;
  bool batch_std = false;
  double eps = 1e-6;

  static AdvantageConfig from_json(const Json& j, std::string_view where);
  Json to_json() const;
};

// rewards[i], group[i] (any ids; samples of a group need not be adjacent), keep[i] (0: the sample
// is out of the loss — skipped reward, overlong-filtered — and out of the statistics). Returns
// A_i (0 for dropped samples).
std::vector<double> compute_advantages(const std::vector<double>& rewards,
                                       const std::vector<int64_t>& group,
                                       const std::vector<uint8_t>& keep,
                                       const AdvantageConfig& cfg);

// The importance ratio of token t:
//   token     r_t = exp(ℓ_t − ℓ°_t)
//   sequence  r_t = s_i = exp((1/|o_i|) Σ_u m_u (ℓ_u − ℓ°_u))  (GSPO), taken in its "GSPO-token"
//             form sg[s_i]·exp(ℓ_t − sg[ℓ_t]): its value is s_i on every token, clipping decides on
//             s_i, and ∂r_t/∂ℓ_t = s_i. With the seq_mean_token_mean aggregation the gradient is
//             GSPO's, −(1/S)·A_i·∇s_i.
enum class RatioLevel { token, sequence };

// The per-token KL estimate between π_θ and π_ref at the sampled token, with d = ℓ_t − ℓʳ_t:
//   k1 = d                        ∂/∂ℓ = 1
//   k2 = d² / 2                   ∂/∂ℓ = d
//   k3 = exp(−d) + d − 1          ∂/∂ℓ = 1 − exp(−d)   (Schulman's unbiased, always >= 0)
enum class KlEstimator { k1, k2, k3 };
double kl_value(KlEstimator e, double logprob, double ref_logprob);
double kl_grad(KlEstimator e, double logprob, double ref_logprob);  // ∂k/∂ℓ

// Where the KL to the reference goes:
//   none    no reference model is loaded at all
//   loss    + β·k(ℓ_t, ℓʳ_t) per token in the loss (differentiable)
//   reward  R_i ← R_i − β·Σ_t m_t k(ℓ°_t, ℓʳ_t) before the advantages (detached)
enum class KlPlacement { none, loss, reward };

// How per-token terms x_t are summed into the loss (S = sequences, N = Σ_i |o_i|, both over the
// whole batch of one optimizer step, so micro-batch splits change nothing):
//   seq_mean_token_mean      (1/S) Σ_i (1/|o_i|) Σ_t m_t x_t   (GRPO as published)
//   token_mean               (1/N) Σ_i Σ_t m_t x_t             (DAPO)
//   seq_mean_token_sum_norm  (1/(S·C)) Σ_i Σ_t m_t x_t         (Dr. GRPO: C a constant, by
//                                                              default the max new tokens)
enum class LossAggregation { seq_mean_token_mean, token_mean, seq_mean_token_sum_norm };

// The per-token loss, before aggregation (A_t: the sample's advantage, or per token for on-policy
// distillation):
//   pg_t   = max(−A_t r_t, −A_t clip(r_t, 1 − ε_low, 1 + ε_high))        (PPO's clipped surrogate)
//            and with dual_clip c > 1, for A_t < 0: min(pg_t, −c·A_t)     (dual-clip PPO)
//   x_t    = w_t · pg_t + β·k_t [KL in loss] − c_H · H_t [entropy bonus]
// where w_t = min(exp(ℓ°_t − ℓᵇ_t), C_IS) (truncated importance sampling between the trainer's
// old log-probs and the rollout's, detached; 1 when off) corrects for the rollout engine's
// numerics differing from the trainer's. ∂pg_t/∂r_t = −A_t when the unclipped term is the one
// taken (ties go to it) and the dual clip does not bind, else 0 (the token is "clipped").
struct LossConfig {
  RatioLevel ratio = RatioLevel::token;
  double clip_low = 0.2;   // ε_low
  double clip_high = 0.2;  // ε_high (DAPO clip-higher: e.g. 0.28)
  double dual_clip = 0.0;  // c (> 1), 0 = off
  LossAggregation aggregation = LossAggregation::seq_mean_token_mean;
  double norm_constant = 0;  // C of seq_mean_token_sum_norm (0: the trainer's max_new_tokens)
  bool importance_sampling = true;  // truncated IS weights w_t
  double is_cap = 2.0;              // C_IS
  double entropy_coef = 0.0;        // c_H

  static LossConfig from_json(const Json& j, std::string_view where);
  Json to_json() const;
};

struct KlConfig {
  double beta = 0.0;
  KlEstimator estimator = KlEstimator::k3;
  KlPlacement placement = KlPlacement::none;

  static KlConfig from_json(const Json& j, std::string_view where);
  Json to_json() const;
  bool active() const { return placement != KlPlacement::none; }
};

// The batch-wide normalisers of one optimizer step.
struct LossNorms {
  double sequences = 0;  // S
  double tokens = 0;     // N
  double constant = 1;   // C
};

// One sequence's completion tokens (n of them). Null pointers: not used (ref_logprob without KL in
// the loss, rollout_logprob without IS, entropy without an entropy bonus).
struct SequenceTerms {
  int64_t n = 0;
  const double* logprob = nullptr;      // ℓ
  const double* old_logprob = nullptr;  // ℓ°
  const double* ref_logprob = nullptr;  // ℓʳ
  const double* rollout_logprob = nullptr;
  const double* entropy = nullptr;    // H
  const double* advantage = nullptr;  // A_t
  const uint8_t* mask = nullptr;      // m_t
};

// Sums over the masked tokens (divide by `tokens` for means).
struct LossStats {
  double loss = 0;     // the sequence's contribution to the aggregated loss
  double pg = 0;       // Σ m_t c_t w_t pg_t: the policy-gradient part of `loss`
  double tokens = 0;   // Σ m_t
  double clipped = 0;  // tokens whose ratio gradient the clip (or the dual clip) zeroed
  double dual_clipped = 0;
  double ratio = 0, ratio_max = 0;                         // Σ r_t, max r_t
  double kl = 0;                                           // Σ k_t (when ref_logprob is given)
  double entropy = 0;                                      // Σ H_t (when entropy is given)
  double is_weight = 0, is_weight_max = 0, is_capped = 0;  // Σ w_t, max, tokens at the cap

  void add(const LossStats& o);
};

// The aggregated loss contribution of one sequence, and ∂loss/∂ℓ_t into dlogprob[n] and (when the
// entropy is given) ∂loss/∂H_t into dentropy[n] (written, not accumulated; 0 off the mask).
LossStats sequence_loss(const SequenceTerms& s, const LossConfig& cfg, const KlConfig& kl,
                        const LossNorms& norms, double* dlogprob, double* dentropy);

}  // namespace r1kit::grpo
