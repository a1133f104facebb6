// Training checkpoints: a directory that is an HF model directory (so `--model DIR` loads it) plus
// the optimizer and trainer state, written as a whole atomically and read back for an exact
// resume.
//   DIR/config.json, model*.safetensors   the weights in f32 (the fp32 masters on a bf16 run), so
//                                          a CPU run resumes bit-exactly
//   DIR/optimizer.safetensors              "adam_m", "adam_v" (flat, the arena's order; absent
//                                          before the first step), "master" (bf16 runs: the fp32
//                                          masters exactly) and metadata {"step": "<n>"}
//   DIR/trainer_state.json                 {"format": "r1kit-training-state", "version": 1,
//                                          "step": n, "trainer": {…the caller's state…}}
// Everything goes to "<DIR>.tmp.<pid>" first and is published with one rename
// (policy::publish_directory), so a kill leaves the previous checkpoint or the new one, never a
// mixture.
#pragma once

#include <string>

#include "core/context.h"
#include "core/json.h"
#include "policy/policy.h"

namespace r1kit::sft {

// Writes the checkpoint; `trainer` is stored as is (data order, metrics, config); the tokenizer
// files of `tokenizer_dir` are copied in when given (so the checkpoint is a complete model
// directory). Returns the trainer_state.json object written.
Json save_training_checkpoint(const std::string& dir, const policy::Policy& policy,
                              const Json& trainer, Context& ctx,
                              const std::string& tokenizer_dir = "");

// Restores the optimizer state of a checkpoint into `policy` (loaded from the same directory with
// Policy::load) and returns the caller's "trainer" object. Errors name the file: a missing or
// malformed trainer_state.json or optimizer.safetensors, a step that disagrees between the two,
// moments whose size does not match the model.
Json load_training_checkpoint(const std::string& dir, policy::Policy& policy, Context& ctx);

}  // namespace r1kit::sft
