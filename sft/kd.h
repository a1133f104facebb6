// Logit-level distillation losses over a teacher's top-k: the teacher's sparse distribution (its k
// most likely tokens and their log-probs at one position) against the student's log-probs of the
// same k tokens, each completed by one "rest" bin holding the remaining mass, so both are proper
// distributions over k + 1 outcomes:
//   p_j = exp(t_j), q_j = exp(s_j) (j = 1..k),  p_R = 1 − Σ p_j,  q_R = 1 − Σ q_j,
// with t the teacher's and s the student's log-probs (rest masses clamped below at kKdTinyMass so
// their logs stay finite; a clamped rest bin is treated as a constant). Per position:
//   forward KL   KL(P‖Q) = Σ_b p_b (log p_b − log q_b)          (mode-covering, the classic KD)
//   reverse KL   KL(Q‖P) = Σ_b q_b (log q_b − log p_b)          (mode-seeking)
//   JSD(β)       β·KL(P‖M) + (1 − β)·KL(Q‖M),  M = β·P + (1 − β)·Q   (bounded by log 2 at β = ½)
// over bins b = 1..k, R (terms with a zero mass count 0). The gradient with respect to the
// student's log-probs s_j goes through q_j = exp(s_j) and q_R = 1 − Σ q:
//   dL/ds_j = q_j · (∂L/∂q_j − ∂L/∂q_R), with
//   forward KL ∂L/∂q_b = −p_b / q_b;  reverse KL log(q_b / p_b) + 1;  JSD (1 − β)·log(q_b / m_b).
// The trainer turns dL/ds into the student's logit gradient with the multi-target log-prob head
// (kernels/topk_head.h).
#pragma once

#include <cstdint>
#include <string_view>

#include "core/json.h"

namespace r1kit::sft {

enum class KdLoss { forward_kl, reverse_kl, jsd };

inline constexpr double kKdTinyMass = 1e-10;

struct KdConfig {
  KdLoss loss = KdLoss::forward_kl;
  double jsd_beta = 0.5;  // β of the JSD mix
  // α: the step's objective is (1 − α)·CE + α·KD (both means over the step's targets).
  double weight = 0.5;
  int64_t topk = 64;  // k of an on-the-fly teacher (stored top-k sets their own k)
  // Both distributions are at temperature 1: the student's NLL and KD terms share one forward.

  // Keys: loss ("forward_kl", "reverse_kl", "jsd"), jsd_beta, weight, topk.
  static KdConfig from_json(const Json& j, std::string_view where);
};

// The loss of one position over k bins + rest; writes dL/ds_j into dstudent[0..k).
double kd_position_loss(const float* teacher_logprob, const double* student_logprob, int64_t k,
                        const KdConfig& cfg, double* dstudent);

}  // namespace r1kit::sft
