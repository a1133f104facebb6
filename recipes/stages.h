// The stage runners a recipe dispatches to: each takes its resolved config block (recipe.h: paths
// absolute, references replaced, "output" set) and returns a summary object for state.json, the
// run's table and the report. init and data are defined here; the rest live with their stages
// (sft/trainer.h, grpo/trainer.h, recipes/sample.h, recipes/eval.h).
//
// init: {"arch": "deepseek_v3", "preset": "tiny", "config": {HF config.json keys overriding the
//        preset's}, "tokenizer": DIR (its files are copied and its vocabulary must fit),
//        "dtype": "f32" | "bf16", "seed"} → OUTPUT/model, a random-init HF directory.
// data: recipes/synthetic.h's keys → OUTPUT/{train,test,sft}.jsonl.
#pragma once

#include <functional>
#include <string>
#include <string_view>

#include "core/json.h"
#include "recipes/recipe.h"

namespace r1kit::recipes {

struct InitStageConfig {
  std::string arch, preset = "tiny";
  Json config = Json::object();
  std::string tokenizer;
  std::string dtype = "f32";
  uint64_t seed = 0;
  std::string output;

  static InitStageConfig from_json(const Json& j, std::string_view where);
  Json to_json() const;
};

// Parses the resolved block with the stage type's own parser (errors name `where` and the key).
void validate_stage_config(StageType type, const Json& config, std::string_view where);

// Observers of a running stage: each logged step's metrics line (sft, grpo) or progress line.
using StageCallback = std::function<void(const Json& line)>;

// Runs one stage; returns its summary ({"type", ...}: final step, key metrics, output paths).
Json run_stage(StageType type, const Json& config, const std::string& where,
               const StageCallback& on_step = {});

}  // namespace r1kit::recipes
