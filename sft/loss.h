// The SFT objective on packed micro-batches, the learning-rate schedules, and one optimizer step
// (gradient accumulation with global token normalisation, clipping, AdamW). The trainer loop,
// checkpoints and the command line build on these (sft/trainer, later).
//
// Objective of one optimizer step over micro-batches b = 1..M, each a list of examples packed into
// one sequence list (positions restart per example; attention never crosses examples):
//   L = −(1/N) Σ_b Σ_{examples e in b} Σ_i mask_e[i+1] · log π(e[i+1] | e[0..i])
// with N = Σ over all micro-batches of the step of the targets (mask_e ones at i ≥ 1): the
// normaliser is global, so splitting a step's examples into micro-batches differently changes
// neither L nor ∇L (up to summation order). Per position the backward's dL/dlogprob is
// −mask_e[i+1] / N.
//
// Extensions (LossOptions):
//   MTP (models with MTP modules, depths k = 1..D): L_k = −(1/N_k) Σ mask_e[i+k+1]·log
//   p_k(e[i+k+1])
//     with N_k the step's count of such targets; the policy weights each depth by λ/D
//     (PolicyOptions::mtp_loss_weight), so the objective is L + λ/D Σ_k L_k as in DeepSeek-V3.
//   Distillation (KdConfig, sft/kd.h): per target the KD loss ℓ between the teacher's top-k (+
//     rest) and the student's log-probs of the same tokens; objective (1 − α)·L + α·(1/N) Σ ℓ.
//     The teacher's top-k comes from the examples (Example::teacher_*) or from a teacher policy
//     run on the same micro-batch.
//   Accuracy (eval): the fraction of targets that are the argmax of the model's distribution.
#pragma once

#include <cstdint>
#include <vector>

#include "core/context.h"
#include "kernels/adamw.h"
#include "policy/policy.h"
#include "sft/chat_data.h"
#include "sft/kd.h"

namespace r1kit::sft {

enum class LrSchedule { constant, linear, cosine };

struct OptimConfig {
  double lr = 1e-5;
  double min_lr_ratio = 0.0;  // r: the schedule decays to r·lr
  int64_t warmup_steps = 0;
  int64_t total_steps = 1;  // the schedule's length (steps after it stay at its end value)
  LrSchedule schedule = LrSchedule::cosine;
  double weight_decay = 0.0;
  double beta1 = 0.9, beta2 = 0.95, eps = 1e-8;
  double max_grad_norm = 1.0;  // 0 = no clipping
};

// The learning rate of optimizer step s (1-based), with W = warmup_steps, S = total_steps:
//   s <= W:  lr · s / W                                              (linear warmup)
//   else p = min(1, (s − W) / max(1, S − W)) and
//     constant  lr
//     linear    lr · (r + (1 − r)(1 − p))
//     cosine    lr · (r + (1 − r) · ½(1 + cos(π p)))
double learning_rate(const OptimConfig& cfg, int64_t step);

struct LossOptions {
  int64_t mtp_depths = 0;  // MTP depths to train (<= the model's MTP modules)
  bool accuracy = false;   // count argmax hits (MicroResult::correct)
  // Distillation: on when set. The teacher (sharing the student's tokenizer) gives each target's
  // top-k on the fly; without one every example must carry its own (Example::teacher_*).
  const KdConfig* kd = nullptr;
  policy::Policy* teacher = nullptr;
};

// The normalisers of one optimizer step: N and N_k (see the file comment).
struct StepNorms {
  double targets = 0;
  std::vector<double> mtp_targets;  // per depth
};
StepNorms step_norms(const std::vector<std::vector<const Example*>>& micro_batches,
                     const LossOptions& opts);

struct MicroResult {
  double loss_sum = 0;  // −Σ mask · log π over the micro-batch (not normalised)
  int64_t targets = 0;
  int64_t tokens = 0;
  int64_t correct = 0;               // targets that are the argmax (LossOptions::accuracy)
  double kd_sum = 0;                 // Σ ℓ over the targets (distillation)
  std::vector<double> mtp_loss_sum;  // per depth: −Σ mask · log p_k
  std::vector<int64_t> mtp_targets;  // per depth
};

// Forward (and, with `backward`, backward accumulating into the policy's gradients of the step's
// objective with the step's normalisers) of one packed micro-batch.
MicroResult micro_step(policy::Policy& policy, const std::vector<const Example*>& examples,
                       const StepNorms& norms, const LossOptions& opts, bool backward,
                       Context& ctx);
// Plain SFT (no MTP, distillation or accuracy) with N = norm.
MicroResult micro_step(policy::Policy& policy, const std::vector<const Example*>& examples,
                       double norm, bool backward, Context& ctx);

struct StepResult {
  double loss = 0;  // the objective (with distillation (1 − α)·nll + α·kd; MTP not included)
  double nll = 0;   // L: the mean negative log-likelihood of the step's targets
  double kd = 0;    // the mean KD loss (distillation)
  std::vector<double> mtp_loss;  // L_k per depth
  double grad_norm = 0;          // before clipping
  double lr = 0;
  int64_t targets = 0, tokens = 0;
  bool skipped = false;  // a non-finite gradient norm: no update
};

// The update once the step's gradients are accumulated: clip (max_grad_norm; else only measure the
// norm), then AdamW at the schedule's rate for step policy.step() + 1. A non-finite norm skips the
// update. The one tail of every trainer's optimizer step (SFT here, GRPO in grpo/trainer).
struct UpdateInfo {
  double grad_norm = 0;  // before clipping
  double lr = 0;
  bool skipped = false;
};
UpdateInfo apply_update(policy::Policy& policy, const OptimConfig& cfg, Context& ctx);

// One optimizer step: zero the gradients, run every micro-batch (global N), clip, AdamW at the
// schedule's rate for step policy.step() + 1. A non-finite gradient norm skips the update (the
// result says so) instead of writing NaN into the weights.
StepResult optimizer_step(policy::Policy& policy,
                          const std::vector<std::vector<const Example*>>& micro_batches,
                          const OptimConfig& cfg, Context& ctx, const LossOptions& opts = {});

}  // namespace r1kit::sft
