// One GRPO stage: the config block (what `r1kit grpo --config` and a recipe's grpo stage read) and
// the RL loop.
//
// A step:
//   1. prompts_per_step prompts from the seeded resumable order over the prompt rows;
//   2. the rollout engine (rollout/engine.h, sharing the policy's weights in process) samples
//      `group_size` completions of each; request index = the running count of prompts drawn, so
//      the draws depend on (seed, that count, sample, position) only;
//   3. the composed reward (rewards/compose.h) scores each completion against its row (the row is
//      the reference: gold answer, tests, ...); a skipped or failed score takes the sample out of
//      the loss (counted); overlong filtering takes out completions cut at max_new_tokens;
//   4. dynamic sampling (DAPO): groups whose kept rewards are all equal carry no signal and are
//      dropped; more prompts are drawn and sampled (at most max_rounds rounds in all) until
//      prompts_per_step groups have signal or the rounds are spent;
//   5. old log-probs (recomputed by the trainer, or the rollout's) and reference log-probs (when a
//      KL is configured); teacher log-probs for on-policy distillation;
//   6. advantages per group (grpo/objective.h; the KL in the reward subtracted first), or for
//      on-policy distillation A_t = −(ℓ°_t − ℓᵀ_t) per token (the negative reverse KL to the
//      teacher at each sampled token);
//   7. ppo_epochs passes over the batch; each pass cuts it (in a seeded order) into mini_batches
//      mini-batches, each one optimizer step: micro-batches of at most micro_batch_tokens tokens
//      with the mini-batch's global normalisers, gradient clipping, AdamW at the schedule's rate,
//      the MoE bias update;
//   8. the engine refreshes what its cache derives from the weights.
// With one pass and one mini-batch the old log-probs are the update's own (detached: ratio 1),
// so no extra forward is run unless the KL in the reward or on-policy distillation needs them
// before the update.
//
// Output directory (GrpoConfig::output): checkpoints/step-NNNNNNNN/ (sft/checkpoint.h: weights in
// the HF layout, AdamW state, and the trainer state: step, prompt order, prompts drawn), final/,
// metrics.jsonl (one "train" line per logged step), config.json. A run whose output holds
// checkpoints resumes from the newest: the continuation is bit-identical to an uninterrupted run
// on the CPU.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "core/json.h"
#include "grpo/loss.h"
#include "grpo/objective.h"
#include "rollout/engine.h"
#include "rollout/request.h"
#include "sft/loss.h"

namespace r1kit::grpo {

enum class Objective {
  grpo,               // rewards → group advantages
  on_policy_distill,  // per-token reverse KL to a teacher on the student's own samples
};

enum class OldLogprobs {
  recompute,  // the trainer's forward at the start of the step (TIS corrects against the rollout)
  rollout,    // the engine's (no importance-sampling correction is then possible)
};

struct GrpoConfig {
  Objective objective = Objective::grpo;
  std::string model;            // HF model directory (policy, tokenizer, chat template)
  std::string tokenizer;        // "" = the model's
  std::string chat_template;    // a built-in template name ("" = the model directory's)
  std::string prompt_template;  // a pattern with {prompt} (chat_template.h); overrides the above
  std::string system_prompt;
  std::string train;                 // JSONL prompt rows
  std::string prompt_field;          // "" = the first of messages, prompt, question, problem
  int64_t max_prompt_tokens = 1024;  // longer prompts are skipped (counted)
  Json rewards;                      // the composed reward's config object, or a path to one
  rollout::SamplingParams sampling;  // n is group_size
  int64_t group_size = 8;
  int64_t prompts_per_step = 8;
  int64_t max_steps = 0;  // 0 = epochs over the prompts decide
  int64_t epochs = 1;
  int64_t ppo_epochs = 1;    // μ
  int64_t mini_batches = 1;  // optimizer steps per pass
  int64_t micro_batch_tokens = 4096;
  bool shuffle = true;
  AdvantageConfig advantage;
  LossConfig loss;
  KlConfig kl;
  std::string reference;  // the reference model ("" = `model`), loaded only when kl is active
  OldLogprobs old_logprobs = OldLogprobs::recompute;
  bool router_replay = true;  // MoE policies: train on the experts routed at sampling time
  bool dynamic_sampling = false;
  int64_t max_rounds = 3;  // sampling rounds per step with dynamic sampling
  bool overlong_filter = false;
  std::string teacher;              // on_policy_distill
  sft::OptimConfig optim;           // total_steps computed: steps × ppo_epochs × mini_batches
  double bias_update_rate = 0.0;    // γ of the aux-loss-free bias update (MoE)
  double balance_loss_alpha = 0.0;  // α of the sequence-wise balance loss (MoE)
  rollout::EngineOptions engine;
  std::string output;
  int64_t save_every = 0;
  int64_t keep_checkpoints = 2;
  int64_t log_every = 1;
  int64_t log_samples = 4;  // completions per logged step written to samples.jsonl
  uint64_t seed = 0;
  std::string device = "auto";
  std::string dtype = "auto";
  int threads = 0;
  bool recompute = false;  // activation recompute

  // The stage block; unknown keys, wrong types and bad values are errors naming `where` and the
  // key. Sub-blocks: "sampling" (rollout/request.h keys, n excluded: group_size), "advantage",
  // "loss", "kl" (with "reference"), "optim", "engine", "moe".
  static GrpoConfig from_json(const Json& j, std::string_view where);
  Json to_json() const;
};

struct GrpoResult {
  int64_t steps = 0;
  int64_t resumed_from = 0;
  double last_reward_mean = 0;
  std::string final_dir;
  int64_t prompts = 0;          // usable prompt rows
  int64_t skipped_prompts = 0;  // rows skipped (malformed, too long)
};

using StepCallback = std::function<void(const Json& metrics)>;

GrpoResult run_grpo(const GrpoConfig& cfg, const StepCallback& on_step = {});

// One optimizer step over `micro_batches` (the samples of one mini-batch, with their normalisers
// computed over all of them): zero the gradients, micro_step each with backward, clip, AdamW at
// the schedule's rate for step policy.step() + 1, then the MoE bias update with γ. A non-finite
// gradient norm skips the update.
struct UpdateResult {
  LossStats stats;
  double grad_norm = 0;
  double lr = 0;
  bool skipped = false;
};
UpdateResult optimizer_step(policy::Policy& policy,
                            const std::vector<std::vector<const Sample*>>& micro_batches,
                            const LossConfig& loss, const KlConfig& kl, double temperature,
                            double default_constant, const sft::OptimConfig& optim,
                            double bias_update_rate, Context& ctx);

}  // namespace r1kit::grpo
