// Pieces every training stage shares (SFT and distillation here, GRPO in grpo/, recipes later):
// the device and dtype choice, the "optim" config block, checkpoint directories, the trajectory
// check of a resume, metrics cut back to a checkpoint, and the shared-tokenizer check.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/context.h"
#include "core/json.h"
#include "policy/policy.h"
#include "policy/tokenizer.h"
#include "sft/loss.h"

namespace r1kit::sft {

// A context for a stage's "device" ("auto", "cpu", "cuda") and "threads" (0 = all cores).
std::unique_ptr<Context> make_context(const std::string& device, int threads, uint64_t seed);
// The working dtype of a stage's "dtype": "f32", "bf16", or "auto" (bf16 on CUDA, f32 on the CPU).
DType working_dtype(const std::string& dtype, const Context& ctx);
// Checks "device" and "dtype" strings, naming `where`.
void check_device_and_dtype(const std::string& device, const std::string& dtype,
                            std::string_view where);

// The "optim" block: OptimConfig's keys except total_steps (the trainer computes it).
OptimConfig optim_from_json(const Json& j, std::string_view where);
Json optim_to_json(const OptimConfig& c);

// "step-00000012": a checkpoint directory's name.
std::string step_dir_name(int64_t step);
// The complete checkpoint directories (trainer_state.json present) under `root`, by step.
std::vector<std::pair<int64_t, std::string>> list_checkpoints(const std::string& root);
// Writes ROOT/step-NNNNNNNN (sft/checkpoint.h) and removes all but the newest `keep` checkpoints.
void save_checkpoint_keeping(const std::string& root, int64_t step, int64_t keep,
                             const policy::Policy& policy, const Json& trainer_state, Context& ctx,
                             const std::string& tokenizer_dir);
// OUTPUT/final: the model alone (bf16 runs in bf16, else f32) with the tokenizer files, for
// `--model` in the next stage; returns its path.
std::string save_final_model(const std::string& output, const policy::Policy& policy, DType working,
                             const std::string& tokenizer_dir, Context& ctx);
// Every field of `now` must equal the saved one; else an error naming checkpoint `ck` and the
// field.
void check_same_trajectory(const Json& saved, const Json& now, const std::string& ck);
// Keeps the JSONL metrics lines whose "step" is <= `step` (a resumed run rewrites what came after
// its checkpoint); a missing file is fine. Atomic.
void cut_metrics(const std::string& path, int64_t step);

// Teacher and student must tokenize alike for logit-level distillation: probe texts are encoded
// by both; a difference is an error naming both directories.
void check_same_tokenizer(const policy::Tokenizer& a, const policy::Tokenizer& b,
                          const std::string& student, const std::string& teacher);

}  // namespace r1kit::sft
