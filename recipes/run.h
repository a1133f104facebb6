// Running a recipe (recipes/recipe.h) in a run directory, with resume.
//
// RUN/ holds:
//   resolved.json   the recipe as run: overrides applied, references and relative paths resolved,
//                   each stage's output and seed filled in
//   state.json      per stage: status (pending, running, done), seconds, its summary; atomic
//   <stage>/        each stage's output directory (checkpoints, final/, datasets, metrics.jsonl)
//   metrics.jsonl   every stage's metrics rows with "stage" added, plus one "eval" row per
//                   evaluated dataset; rebuilt from the stages' own files after each stage
//   tensorboard/    scalar event files, one folder per stage (`tensorboard --logdir RUN`)
//   report.html     the self-contained report (recipes/report.h)
//   log.txt         the run's log lines
// `r1kit run RECIPE --run-dir RUN --resume` skips the stages marked done and reruns the others:
// training stages resume from their newest checkpoint (sft/trainer.h, grpo/trainer.h), the rest
// restart (their outputs are written atomically at their end). Resuming checks the recipe against
// resolved.json: a changed stage config is an error naming the stage and key. Ctrl-C: the running
// trainer writes a checkpoint after its current step and the run stops with Interrupted (a sample
// or eval stage finishes first, then the run stops before the next stage); kill -9
// loses at most the steps since the last checkpoint (checkpoints are written atomically).
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "core/json.h"

namespace r1kit::recipes {

struct RunOptions {
  std::string run_dir;  // "" = runs/<name>-<UTC time>, or with resume the newest runs/<name>-*
  bool resume = false;
  std::vector<std::string> overrides;  // "stages.rl.config.optim.lr=2e-6", applied in order
  bool validate_only = false;          // resolve and validate, write nothing
  std::string until;                   // stop after this stage ("" = run them all)
  bool progress = true;                // progress lines on stderr
  // Every training step's metrics line, by stage name (tests stop runs with it).
  std::function<void(const std::string& stage, const Json& line)> on_step;
};

struct RunResult {
  std::string run_dir;
  Json resolved;
  Json state;
  std::string table;  // the per-stage evaluation table (empty without eval stages)
};

// Runs `recipe` (a built-in name or a path) as RunOptions say.
RunResult run_recipe(const std::string& recipe, const RunOptions& opts);

// The evaluation table of a run's state: one row per (eval stage, dataset).
std::string results_table(const Json& resolved, const Json& state);

}  // namespace r1kit::recipes
