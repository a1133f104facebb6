// `r1kit sft --config FILE.json` and `r1kit distill --config FILE.json`: one SFT or distillation
// stage (sft/trainer.h) from its config block — the same block a recipe stage holds. Progress goes
// to stderr (one line per logged step), the metrics to OUTPUT/metrics.jsonl, and a JSON summary
// to stdout. Running the same command again resumes from the newest checkpoint.
#include <cmath>
#include <iostream>

#include "apps/commands.h"
#include "core/interrupt.h"
#include "core/json.h"
#include "sft/trainer.h"

namespace r1kit::apps {
namespace {

struct SftArgs {
  std::string config, output, device;
  int64_t max_steps = -1;
};

void run_stage(const SftArgs& a, sft::StageKind kind) {
  Json j = read_json_file(a.config);
  require_object(j, a.config);
  // Command-line overrides of the block's keys.
  if (!a.output.empty()) j["output"] = a.output;
  if (!a.device.empty()) j["device"] = a.device;
  if (a.max_steps >= 0) j["max_steps"] = a.max_steps;
  const sft::SftConfig cfg = sft::SftConfig::from_json(j, a.config, kind);
  install_interrupt_handlers();  // Ctrl-C: checkpoint after the current step, exit 130
  const sft::SftResult r = sft::run_sft(cfg, [](const Json& m) {
    if (m.value("type", "") == "train") {
      std::cerr << fmt::format(
          "step {}/{}  loss {:.4f}  grad_norm {:.3f}  lr {:.3g}  {:.0f} tok/s\n",
          m.at("step").get<int64_t>(), m.at("total_steps").get<int64_t>(),
          m.at("loss").get<double>(), m.at("grad_norm").get<double>(), m.at("lr").get<double>(),
          m.at("tokens_per_s").get<double>());
    } else {
      std::cerr << fmt::format("eval at step {}: loss {:.4f}  token accuracy {:.4f}\n",
                               m.at("step").get<int64_t>(), m.at("eval_loss").get<double>(),
                               m.at("eval_token_accuracy").get<double>());
    }
  });
  auto num = [](double v) { return std::isnan(v) ? Json() : Json(v); };
  std::cout << Json{{"steps", r.steps},
                    {"resumed_from", r.resumed_from},
                    {"final_loss", r.final_loss},
                    {"eval_loss", num(r.eval_loss)},
                    {"eval_token_accuracy", num(r.eval_token_accuracy)},
                    {"final", r.final_dir},
                    {"train_data", r.train_stats.to_json()}}
                   .dump()
            << "\n";
}

void add_stage(CLI::App& app, const char* name, const char* help, sft::StageKind kind) {
  auto* cmd = app.add_subcommand(name, help);
  auto a = std::make_shared<SftArgs>();
  cmd->add_option("--config", a->config, "the stage's JSON config block (see docs/SFT.md)")
      ->required();
  cmd->add_option("--output", a->output, "override the config's output directory");
  cmd->add_option("--device", a->device, "override the config's device: auto, cpu or cuda");
  cmd->add_option("--max-steps", a->max_steps, "override the config's max_steps");
  cmd->callback([a, kind] { run_stage(*a, kind); });
}

}  // namespace

void register_sft(CLI::App& app) {
  add_stage(app, "sft",
            "Supervised fine-tuning on JSONL conversations (chat template, loss masks, packing, "
            "checkpoints, resume)",
            sft::StageKind::sft);
  add_stage(app, "distill",
            "Distil into a student: sequence level (teacher traces) or logit level (teacher "
            "top-k, on the fly or stored)",
            sft::StageKind::distill);
}

}  // namespace r1kit::apps
