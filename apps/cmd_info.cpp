// `r1kit info`: what this build and machine can do (CUDA backend, GPU, threads).
// `r1kit info DIR`: a JSON summary of the model checkpoint in DIR (architecture, total and active
// parameters, bytes by dtype, whether every tensor of its config.json is there, config summary).
// `r1kit info --arch A --preset NAME`: the same summary for a built-in preset, without files.
#include <iostream>
#include <thread>

#include "apps/commands.h"
#include "core/device.h"
#include "policy/checkpoint.h"
#include "policy/presets.h"

namespace r1kit::apps {
namespace {

struct InfoArgs {
  std::string dir, arch, preset;
};

void build_info() {
#if defined(R1KIT_WITH_CUDA)
  std::cout << "CUDA backend: built\n";
#else
  std::cout << "CUDA backend: not built (nvcc was not found at configure time)\n";
#endif
  std::cout << "GPU: " << cuda_describe() << "\n";
  std::cout << "CPU threads: " << std::thread::hardware_concurrency() << "\n";
}

void run_info(const InfoArgs& a) {
  if (!a.dir.empty()) {
    std::cout << policy::Checkpoint::open(a.dir).describe().dump() << "\n";
    return;
  }
  if (!a.preset.empty() || !a.arch.empty()) {
    if (a.preset.empty() || a.arch.empty()) R1_THROW("info: --preset and --arch go together");
    auto arch = policy::model_arch_from_name(a.arch);
    if (!arch)
      R1_THROW("--arch {}: unknown architecture (one of {})", a.arch, policy::model_arch_list());
    Json d = policy::describe_config(policy::preset_config(*arch, a.preset));
    d["preset"] = a.preset;
    std::cout << d.dump() << "\n";
    return;
  }
  build_info();
}

}  // namespace

void register_info(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "info", "Show the build and devices, or (with DIR) summarise a model checkpoint as JSON");
  auto a = std::make_shared<InfoArgs>();
  cmd->add_option("dir", a->dir, "a model directory (config.json + safetensors)");
  cmd->add_option("--arch", a->arch, "with --preset: summarise a built-in preset");
  cmd->add_option("--preset", a->preset, "a preset name (see r1kit init --help)");
  cmd->callback([a] { run_info(*a); });
}

}  // namespace r1kit::apps
