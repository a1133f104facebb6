// `r1kit run RECIPE [--run-dir DIR] [--resume] [--set KEY=VALUE]... [--validate]`: a recipe
// (recipes/recipe.h; RECIPE is a file or a built-in name such as tiny-r1) in a run directory
// (recipes/run.h). Progress goes to stderr; at the end the evaluation table and the run directory
// are printed to stdout. Ctrl-C stops after the running step with a checkpoint (exit status 130);
// `--resume` continues. `r1kit run --list` prints the built-in recipes.
#include <iostream>

#include "apps/commands.h"
#include "recipes/builtin.h"
#include "recipes/recipe.h"
#include "recipes/run.h"

namespace r1kit::apps {
namespace {

struct RunArgs {
  std::string recipe;
  recipes::RunOptions opts;
  bool list = false;
};

void run_command(RunArgs& a) {
  if (a.list) {
    for (const auto& [name, text] : recipes::builtin_recipes()) {
      const Json j = parse_json(text, "built-in recipe " + name);
      std::cout << name << "  " << j.value("description", std::string()) << "\n";
    }
    return;
  }
  R1_CHECK(!a.recipe.empty(), "run: give a recipe file or a built-in name (r1kit run --list)");
  const recipes::RunResult r = recipes::run_recipe(a.recipe, a.opts);
  if (a.opts.validate_only) {
    std::cout << r.resolved.dump(2) << "\n";
    std::cerr << "run: " << a.recipe << " is valid (" << r.resolved.at("stages").size()
              << " stages; would run in " << r.run_dir << ")\n";
    return;
  }
  if (!r.table.empty()) std::cout << r.table;
  std::cout << "run directory: " << r.run_dir << " (report.html, metrics.jsonl, tensorboard/)\n";
}

}  // namespace

void register_run(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "run",
      "Run a recipe: chained stages (data, init, sft, grpo, sample, distill, eval) in a "
      "run directory with resume");
  auto a = std::make_shared<RunArgs>();
  cmd->add_option("recipe", a->recipe, "a recipe JSON file or a built-in name (see --list)");
  cmd->add_option("--run-dir", a->opts.run_dir,
                  "the run directory (default runs/NAME-UTCTIME; with --resume the newest)");
  cmd->add_flag("--resume", a->opts.resume,
                "continue a run: finished stages are skipped, the running one resumes from its "
                "last checkpoint");
  cmd->add_option("--set", a->opts.overrides,
                  "override a key, e.g. --set stages.rl.config.optim.lr=2e-6 (repeatable)");
  cmd->add_flag("--validate", a->opts.validate_only,
                "resolve and validate the recipe, print it, run nothing");
  cmd->add_option("--until", a->opts.until, "stop after this stage (--resume continues later)");
  cmd->add_flag("--list", a->list, "list the built-in recipes");
  cmd->callback([a] { run_command(*a); });
}

}  // namespace r1kit::apps
