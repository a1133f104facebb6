#include "recipes/stages.h"

#include <filesystem>

#include "core/error.h"
#include "core/log.h"
#include "grpo/trainer.h"
#include "policy/checkpoint.h"
#include "policy/config.h"
#include "policy/presets.h"
#include "policy/tokenizer.h"
#include "recipes/eval.h"
#include "recipes/sample.h"
#include "recipes/synthetic.h"
#include "sft/trainer.h"

namespace r1kit::recipes {

namespace fs = std::filesystem;

InitStageConfig InitStageConfig::from_json(const Json& j, std::string_view where) {
  require_object(j, where);
  reject_unknown_keys(j, {"arch", "preset", "config", "tokenizer", "dtype", "seed", "output"},
                      where);
  InitStageConfig c;
  c.arch = get_required<std::string>(j, "arch", where);
  R1_CHECK(policy::model_arch_from_name(c.arch).has_value(),
           "{}: unknown arch '{}' (deepseek_v3, deepseek_v2, qwen2 or llama)",
           json_where(where, "arch"), c.arch);
  c.preset = get_optional<std::string>(j, "preset", where, c.preset);
  if (j.contains("config")) {
    require_object(j.at("config"), json_where(where, "config"));
    c.config = j.at("config");
  }
  c.tokenizer = get_optional<std::string>(j, "tokenizer", where, "");
  c.dtype = get_optional<std::string>(j, "dtype", where, c.dtype);
  R1_CHECK(c.dtype == "f32" || c.dtype == "bf16", "{}: 'dtype' must be f32 or bf16, got '{}'",
           where, c.dtype);
  c.seed = get_optional<uint64_t>(j, "seed", where, 0);
  c.output = get_optional<std::string>(j, "output", where, "");
  // The model config itself: the preset's, with the overrides (checked now, not when it runs).
  (void)policy::preset_config(*policy::model_arch_from_name(c.arch), c.preset);
  return c;
}

Json InitStageConfig::to_json() const {
  return Json{{"arch", arch},   {"preset", preset}, {"config", config}, {"tokenizer", tokenizer},
              {"dtype", dtype}, {"seed", seed},     {"output", output}};
}

namespace {

policy::ModelConfig init_model_config(const InitStageConfig& c, std::string_view where) {
  policy::ModelConfig base = policy::preset_config(*policy::model_arch_from_name(c.arch), c.preset);
  Json j = base.to_json();
  for (const auto& [k, v] : c.config.items()) j[k] = v;
  if (!c.tokenizer.empty() && !c.config.contains("vocab_size")) {
    // The vocabulary the tokenizer needs, rounded up to a multiple of 64 (as real models pad it).
    const int64_t v = policy::Tokenizer::load(c.tokenizer)->vocab_size();
    j["vocab_size"] = (v + 63) / 64 * 64;
  }
  return policy::ModelConfig::from_json(j, std::string(where) + ": config");
}

Json run_init(const InitStageConfig& c, const std::string& where) {
  const policy::ModelConfig mc = init_model_config(c, where);
  if (!c.tokenizer.empty()) {
    const int64_t v = policy::Tokenizer::load(c.tokenizer)->vocab_size();
    R1_CHECK(v <= mc.vocab_size, "{}: the tokenizer {} has {} ids but the model's vocab_size is {}",
             where, c.tokenizer, v, mc.vocab_size);
  }
  policy::InitOptions o;
  o.seed = c.seed;
  o.dtype = c.dtype == "bf16" ? DType::bf16 : DType::f32;
  o.tokenizer_dir = c.tokenizer;
  o.overwrite = true;  // a stage that stopped before finishing left a partial directory at most
  const std::string dir = (fs::path(c.output) / "model").string();
  fs::create_directories(c.output);
  Json info = policy::init_checkpoint(dir, mc, o);
  return Json{{"model", dir}, {"parameters", info.value("parameters", Json())}};
}

}  // namespace

void validate_stage_config(StageType type, const Json& config, std::string_view where) {
  switch (type) {
    case StageType::init: {
      const InitStageConfig c = InitStageConfig::from_json(config, where);
      // The overrides must make a valid model config (the tokenizer may not exist yet).
      policy::ModelConfig base =
          policy::preset_config(*policy::model_arch_from_name(c.arch), c.preset);
      Json j = base.to_json();
      for (const auto& [k, v] : c.config.items()) j[k] = v;
      (void)policy::ModelConfig::from_json(j, std::string(where) + ": config");
      return;
    }
    case StageType::data: {
      Json j = config;
      j.erase("output");
      (void)SyntheticConfig::from_json(j, where);
      return;
    }
    case StageType::sft:
      (void)sft::SftConfig::from_json(config, where, sft::StageKind::sft);
      return;
    case StageType::distill:
      (void)sft::SftConfig::from_json(config, where, sft::StageKind::distill);
      return;
    case StageType::grpo:
      (void)grpo::GrpoConfig::from_json(config, where);
      return;
    case StageType::sample:
      (void)SampleConfig::from_json(config, where);
      return;
    case StageType::eval:
      (void)EvalConfig::from_json(config, where);
      return;
  }
}

Json run_stage(StageType type, const Json& config, const std::string& where,
               const StageCallback& on_step) {
  switch (type) {
    case StageType::init:
      return run_init(InitStageConfig::from_json(config, where), where);
    case StageType::data: {
      Json j = config;
      const std::string out = get_required<std::string>(j, "output", where);
      j.erase("output");
      const SyntheticConfig c = SyntheticConfig::from_json(j, where);
      Json counts = write_synthetic_dataset(c, out);
      return Json{{"counts", counts},
                  {"train", (fs::path(out) / "train.jsonl").string()},
                  {"test", (fs::path(out) / "test.jsonl").string()},
                  {"sft", (fs::path(out) / "sft.jsonl").string()},
                  {"pretrain", (fs::path(out) / "pretrain.jsonl").string()}};
    }
    case StageType::sft:
    case StageType::distill: {
      const sft::SftConfig c = sft::SftConfig::from_json(
          config, where, type == StageType::sft ? sft::StageKind::sft : sft::StageKind::distill);
      const sft::SftResult r = sft::run_sft(c, on_step);
      return Json{{"steps", r.steps},
                  {"resumed_from", r.resumed_from},
                  {"final_loss", r.final_loss},
                  {"model", r.final_dir}};
    }
    case StageType::grpo: {
      const grpo::GrpoConfig c = grpo::GrpoConfig::from_json(config, where);
      const grpo::GrpoResult r = grpo::run_grpo(c, on_step);
      return Json{{"steps", r.steps},
                  {"resumed_from", r.resumed_from},
                  {"last_reward_mean", r.last_reward_mean},
                  {"model", r.final_dir}};
    }
    case StageType::sample: {
      const SampleConfig c = SampleConfig::from_json(config, where);
      run_sample(c, [&](const Json& p) {
        // Progress in prompts, with the acceptance so far.
        if (on_step)
          on_step(Json{{"type", "progress"},
                       {"step", p.value("prompts_done", int64_t{0})},
                       {"total_steps", p.value("prompts", int64_t{0})},
                       {"accepted", p.value("accepted", int64_t{0})}});
      });
      const std::string stats = (fs::path(c.output) / "stats.json").string();
      Json s = read_json_file(stats);
      return Json{{"accepted", (fs::path(c.output) / "accepted.jsonl").string()}, {"stats", s}};
    }
    case StageType::eval: {
      const EvalConfig c = EvalConfig::from_json(config, where);
      run_eval(c, on_step);
      const std::string results = (fs::path(c.output) / "results.json").string();
      return Json{{"results", read_json_file(results)}};
    }
  }
  R1_THROW("{}: unknown stage type", where);
}

}  // namespace r1kit::recipes
