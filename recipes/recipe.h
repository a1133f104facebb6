// Recipes: a post-training pipeline as JSON, chained stages whose outputs feed later stages.
//
//   {"name": "tiny-r1", "seed": 1,
//    "stages": [{"name": "data",  "type": "data",  "config": {"task": "addition", ...}},
//               {"name": "base",  "type": "init",  "config": {"arch": "deepseek_v3", ...}},
//               {"name": "cold",  "type": "sft",   "config": {"model": "@base",
//                                                             "train": "@data.sft", ...}},
//               {"name": "rl",    "type": "grpo",  "config": {"model": "@cold", ...}}, ...]}
//
// Stage types and what `@name` / `@name.output` refer to (paths inside the run directory):
//   init     a randomly initialised model (policy/checkpoint.h)   @s = @s.model = RUN/s/model
//   data     a built-in synthetic task (recipes/synthetic.h)       @s.train, @s.test, @s.sft
//                                                                  (@s = @s.train)
//   sft      cold-start SFT (sft/trainer.h)                        @s = @s.model = RUN/s/final
//   distill  distillation into a student (sft/trainer.h)           @s = @s.model
//   grpo     GRPO / on-policy distillation (grpo/trainer.h)        @s = @s.model
//   sample   rejection sampling (recipes/sample.h)                 @s = @s.accepted (JSONL)
//   eval     pass@1 / pass@k / maj@k (recipes/eval.h)              @s.results (JSON)
// A reference names an earlier stage; any string value of a stage config that starts with '@' is
// one ("@@x" is the literal "@x"). Each stage's "output" is set by the run (RUN/<stage name>), so
// a stage config that sets it is an error; a stage config without "seed" gets the recipe's.
//
// Validation (before anything runs) reports the first mistake naming the stage and the key path:
// unknown or mistyped keys (each stage's own config parser, run on the resolved config), unknown
// stage types, duplicate names, references to stages that do not exist, come later, or lack that
// output, and input files that do not exist.
//
// Overrides: "stages.rl.config.optim.lr=2e-6" sets a key (stages are addressed by name; the
// value is parsed as JSON, else taken as a string); "seed=3" sets a top-level key.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/json.h"

namespace r1kit::recipes {

enum class StageType { init, data, sft, distill, grpo, sample, eval };

std::string_view stage_type_name(StageType t);

struct Stage {
  std::string name;
  StageType type = StageType::sft;
  Json config = Json::object();  // as written (references unresolved)
};

struct Recipe {
  std::string name;
  uint64_t seed = 0;
  std::vector<Stage> stages;
  std::string base_dir;  // relative input paths are relative to this (the recipe file's folder)

  // Structure only: keys, types, stage names (unique, [A-Za-z0-9_-]+) and types.
  static Recipe from_json(const Json& j, std::string_view where);
  Json to_json() const;
};

// The built-in recipe names ("tiny-r1", ...); load_recipe takes a name or a path.
std::vector<std::string> builtin_recipe_names();
// The JSON of a built-in recipe, or of the file at `path`; overrides applied in order.
Json load_recipe_json(const std::string& name_or_path, const std::vector<std::string>& overrides);
// Applies one "a.b.c=value" override to a recipe's JSON (stages addressed by name).
void apply_override(Json& recipe, const std::string& assignment);

// The path a reference stands for inside `run_dir` ("@cold" → RUN/cold/final). Errors name
// `where` (the stage and key) for unknown stages, later stages and outputs the stage lacks.
std::string resolve_reference(const Recipe& r, size_t stage_index, const std::string& ref,
                              const std::string& run_dir, std::string_view where);

// The stage's config with references replaced by paths, relative input paths made absolute
// against base_dir, "output" = RUN/<name> and "seed" defaulted to the recipe's.
Json resolve_stage_config(const Recipe& r, size_t stage_index, const std::string& run_dir);

// The whole recipe resolved (what RUN/resolved.json holds) after validating every stage: its
// config parser accepts the resolved block, and every input path that is not a reference exists.
Json resolve_and_validate(const Recipe& r, const std::string& run_dir);

}  // namespace r1kit::recipes
