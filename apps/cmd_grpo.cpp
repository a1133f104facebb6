// `r1kit grpo --config FILE.json`: one GRPO stage (grpo/trainer.h) from its config block — the
// same block a recipe's grpo stage holds. Progress goes to stderr (one line per logged step), the
// metrics to OUTPUT/metrics.jsonl, and a JSON summary to stdout. Running the same command again
// resumes from the newest checkpoint.
#include <iostream>

#include "apps/commands.h"
#include "core/interrupt.h"
#include "core/json.h"
#include "grpo/trainer.h"

namespace r1kit::apps {
namespace {

struct GrpoArgs {
  std::string config, output, device;
  int64_t max_steps = -1;
};

void run_grpo_stage(const GrpoArgs& a) {
  Json j = read_json_file(a.config);
  require_object(j, a.config);
  if (!a.output.empty()) j["output"] = a.output;
  if (!a.device.empty()) j["device"] = a.device;
  if (a.max_steps >= 0) j["max_steps"] = a.max_steps;
  const grpo::GrpoConfig cfg = grpo::GrpoConfig::from_json(j, a.config);
  install_interrupt_handlers();  // Ctrl-C: checkpoint after the current step, exit 130
  const grpo::GrpoResult r = grpo::run_grpo(cfg, [](const Json& m) {
    std::string extra;
    if (m.contains("accuracy"))
      extra += fmt::format("  accuracy {:.3f}", m.at("accuracy").get<double>());
    if (m.contains("kl")) extra += fmt::format("  kl {:.4f}", m.at("kl").get<double>());
    if (m.contains("teacher_kl"))
      extra += fmt::format("  teacher_kl {:.4f}", m.at("teacher_kl").get<double>());
    std::cerr << fmt::format(
        "step {}/{}  reward {:.3f} ± {:.3f}{}  length {:.1f}  clip {:.3f}  grad_norm {:.3f}  "
        "{:.0f} tok/s\n",
        m.at("step").get<int64_t>(), m.at("total_steps").get<int64_t>(),
        m.at("reward_mean").get<double>(), m.at("reward_std").get<double>(), extra,
        m.at("response_length_mean").get<double>(), m.at("clip_fraction").get<double>(),
        m.at("grad_norm").get<double>(), m.at("tokens_per_s").get<double>());
  });
  std::cout << Json{{"steps", r.steps},
                    {"resumed_from", r.resumed_from},
                    {"last_reward_mean", r.last_reward_mean},
                    {"prompts", r.prompts},
                    {"skipped_prompts", r.skipped_prompts},
                    {"final", r.final_dir}}
                   .dump()
            << "\n";
}

}  // namespace

void register_grpo(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "grpo",
      "GRPO-family RL on prompts with rule-based rewards (rollouts, advantages, clipped policy "
      "loss, KL, checkpoints, resume); also on-policy distillation");
  auto a = std::make_shared<GrpoArgs>();
  cmd->add_option("--config", a->config, "the stage's JSON config block (see docs/GRPO.md)")
      ->required();
  cmd->add_option("--output", a->output, "override the config's output directory");
  cmd->add_option("--device", a->device, "override the config's device: auto, cpu or cuda");
  cmd->add_option("--max-steps", a->max_steps, "override the config's max_steps");
  cmd->callback([a] { run_grpo_stage(*a); });
}

}  // namespace r1kit::apps
