// One SFT or distillation stage: the config block (what `r1kit sft --config`, `r1kit distill
// --config` and a recipe stage read), and the loop that runs it — epochs of token-budget
// micro-batches in a seeded resumable order, gradient accumulation, optimizer steps, evaluation,
// metrics, checkpoints and exact resume.
//
// Output directory (SftConfig::output):
//   checkpoints/step-NNNNNNNN/  training checkpoints (sft/checkpoint.h) every save_every steps and
//                               at the end; the newest keep_checkpoints are kept
//   final/                      the trained model (an HF directory with the tokenizer files)
//   metrics.jsonl               one line per logged step ("train") and per evaluation ("eval")
//   config.json                 the stage's config as run (resolved defaults)
// A run whose output already holds checkpoints resumes from the newest one: model, optimizer,
// data order, step and metrics (metrics.jsonl is cut back to the checkpoint's step), so the
// continuation is the uninterrupted run's (bit-identical on the CPU). The resumed config must
// agree on what decides the trajectory (datasets, seed, batching, schedule); a difference is an
// error naming the field.
//
// A step: grad_accum micro-batches from the batcher (each at most micro_batch_tokens tokens), one
// optimizer_step (sft/loss.h: global token normalisation across the micro-batches). The run ends
// after `epochs` passes over the training examples (the batch that crosses the last epoch's end
// ends it) or at max_steps. The schedule's length (OptimConfig::total_steps) is that number of
// steps, counted by running the batcher over the lengths before training starts.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "core/json.h"
#include "sft/chat_data.h"
#include "sft/kd.h"
#include "sft/loss.h"

namespace r1kit::sft {

enum class StageKind { sft, distill };

struct SftConfig {
  StageKind kind = StageKind::sft;
  std::string model;           // HF model directory (weights, tokenizer, chat template)
  std::string tokenizer;       // tokenizer directory ("" = the model's)
  std::string chat_template;   // built-in template name ("" = the model directory's)
  std::string train;           // JSONL training rows
  std::string eval;            // JSONL eval rows ("" = eval_fraction of train, or none)
  double eval_fraction = 0.0;  // held out from train (a seeded choice) when eval is ""
  DataConfig data;
  OptimConfig optim;  // total_steps is computed (see the file comment)
  int64_t epochs = 1;
  int64_t max_steps = 0;  // 0 = epochs decide
  int64_t micro_batch_tokens = 4096;
  int64_t grad_accum = 1;  // micro-batches per optimizer step
  bool shuffle = true;
  uint64_t seed = 0;
  double mtp_loss_weight = 0.1;  // λ for models with MTP modules; 0 = train the main head only
  std::string output;
  int64_t save_every = 0;  // steps between checkpoints (0 = only at the end)
  int64_t keep_checkpoints = 2;
  int64_t eval_every = 0;  // steps between evaluations (0 = only at the end)
  int64_t log_every = 1;
  std::string device = "auto";  // auto, cpu, cuda
  std::string dtype = "auto";   // auto (bf16 on CUDA, f32 on the CPU), f32, bf16
  int threads = 0;
  bool recompute = false;
  // Distillation (kind distill): the teacher model ("" = the dataset's stored top-k, or for
  // sequence-level distillation plain SFT on teacher-written rows with kd.weight = 0).
  std::string teacher;
  KdConfig kd;

  // The stage block: {"model", "train", "output", ...}; unknown keys and wrong types are errors
  // naming `where` and the key. "optim" holds OptimConfig's keys, "data" DataConfig's, "kd"
  // KdConfig's (distill only).
  static SftConfig from_json(const Json& j, std::string_view where, StageKind kind);
  Json to_json() const;
};

struct SftResult {
  int64_t steps = 0;         // the last step taken
  int64_t resumed_from = 0;  // the step a resumed run started after (0 = a fresh run)
  double final_loss = 0;     // the last step's objective
  double eval_loss = 0;      // the last evaluation (NaN without an eval split)
  double eval_token_accuracy = 0;
  std::string final_dir;
  DatasetStats train_stats, eval_stats;
};

// Optional observer of each step's metrics line (the CLI prints progress with it).
using StepCallback = std::function<void(const Json& metrics)>;

SftResult run_sft(const SftConfig& cfg, const StepCallback& on_step = {});

// Rows with a stored teacher distribution for logit distillation, as `r1kit logprobs --topk K`
// writes them: {"prompt_ids", "completion_ids", "topk_ids": [[K ids] per completion token],
// "topk_logprobs": [[K log-probs] …]} (other fields ignored). The loss is on the completion
// tokens. Bad rows are skipped and counted (or, with cfg.strict, an error naming the file and
// line); rows over cfg.max_tokens are dropped (a stored distribution cannot be cut).
SftDataset load_topk_dataset(const std::string& path, const DataConfig& cfg, int64_t vocab);

}  // namespace r1kit::sft
