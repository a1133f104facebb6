// `r1kit init --arch A --preset NAME --out DIR`: a randomly initialised model in the Hugging Face
// layout (sharded safetensors + index, config.json, optional tokenizer files); prints a JSON
// summary.
#include <iostream>

#include "apps/commands.h"
#include "policy/checkpoint.h"
#include "policy/presets.h"

namespace r1kit::apps {
namespace {

struct InitArgs {
  std::string arch, preset, out, dtype = "bf16", tokenizer;
  uint64_t seed = 0;
  uint64_t max_shard_bytes = 5'000'000'000;
  bool overwrite = false;
};

void run_init(const InitArgs& a) {
  auto arch = policy::model_arch_from_name(a.arch);
  if (!arch)
    R1_THROW("--arch {}: unknown architecture (one of {})", a.arch, policy::model_arch_list());
  policy::InitOptions o;
  o.seed = a.seed;
  if (a.dtype == "bf16") {
    o.dtype = DType::bf16;
  } else if (a.dtype == "f32") {
    o.dtype = DType::f32;
  } else {
    R1_THROW("--dtype {}: expected bf16 or f32", a.dtype);
  }
  o.max_shard_bytes = a.max_shard_bytes;
  o.tokenizer_dir = a.tokenizer;
  o.overwrite = a.overwrite;
  const policy::ModelConfig config = policy::preset_config(*arch, a.preset);
  Json summary = policy::init_checkpoint(a.out, config, o);
  summary["preset"] = a.preset;
  std::cout << summary.dump() << "\n";
}

}  // namespace

void register_init(CLI::App& app) {
  auto* cmd = app.add_subcommand("init", "Write a randomly initialised model in the HF layout");
  auto a = std::make_shared<InitArgs>();
  cmd->add_option("--arch", a->arch, "deepseek_v3, deepseek_v2, qwen2 or llama")->required();
  cmd->add_option("--preset", a->preset,
                  "tiny; dsv3-mini (deepseek_v3); qwen2.5-0.5b, qwen2.5-1.5b (qwen2); "
                  "llama-3.2-1b (llama)")
      ->required();
  cmd->add_option("--out", a->out, "output directory (written atomically)")->required();
  cmd->add_option("--seed", a->seed, "Philox seed of the initialisation")->capture_default_str();
  cmd->add_option("--dtype", a->dtype, "storage dtype: bf16 or f32")->capture_default_str();
  cmd->add_option("--max-shard-bytes", a->max_shard_bytes, "largest shard before splitting")
      ->capture_default_str();
  cmd->add_option("--tokenizer", a->tokenizer, "copy tokenizer files from this directory");
  cmd->add_flag("--overwrite", a->overwrite, "replace an existing output directory");
  cmd->callback([a] { run_init(*a); });
}

}  // namespace r1kit::apps
