// Fixtures of the training tests (tests/grpo on the CPU, tests/gpu on CUDA): tiny models with the
// test tokenizers, the a + b prompt set, a GRPO config around them and an SFT warm-up.
#pragma once

#include <fmt/format.h>

#include <fstream>
#include <string>
#include <vector>

#include "core/json.h"
#include "grpo/trainer.h"
#include "gtest/gtest.h"
#include "policy/checkpoint.h"
#include "policy/presets.h"
#include "sft/trainer.h"
#include "tests/common/test_util.h"

namespace r1kit::testing::training {

inline std::string tokenizer_dir(const std::string& name) {
  return std::string(R1KIT_SOURCE_DIR) + "/tests/policy/data/tokenizers/" + name;
}

inline void write_text(const std::string& path, const std::string& text) {
  std::ofstream(path) << text;
}

// A tiny model of `arch` (wider for `wide`) with the vocabulary of the named test tokenizer, as an
// HF directory with the tokenizer files.
inline std::string write_model(const ScratchDir& dir, const std::string& name,
                               policy::ModelArch arch, uint64_t seed, bool wide = false) {
  policy::ModelConfig c = policy::preset_config(arch, "tiny");
  const std::string tok = arch == policy::ModelArch::qwen2 ? "qwen3-mini" : "deepseek-v3-mini";
  c.vocab_size = tok == "qwen3-mini" ? 3328 : 4096;
  if (wide) {
    c.hidden_size = 64;
    c.intermediate_size = 128;
    c.num_attention_heads = 4;
    c.num_key_value_heads = 2;
    c.head_dim = 16;
  }
  policy::InitOptions o;
  o.seed = seed;
  o.dtype = DType::f32;
  o.tokenizer_dir = tokenizer_dir(tok);
  const std::string path = dir.file(name);
  policy::init_checkpoint(path, c, o);
  return path;
}

// Sums a + b for a, b in [1, k]: prompt rows {"question": "a+b", "answer": "a+b"}.
inline std::string sum_prompts(int k) {
  std::string s;
  for (int a = 1; a <= k; ++a)
    for (int b = 1; b <= k; ++b)
      s += fmt::format(R"({{"question": "{}+{}", "answer": "{}"}})"
                       "\n",
                       a, b, a + b);
  return s;
}

inline Json accuracy_reward() {
  return Json::parse(R"({"rewards": [{"type": "accuracy"}]})");
}

inline Json base_config(const std::string& model, const std::string& train,
                        const std::string& out) {
  Json j = Json::object();
  j["model"] = model;
  j["train"] = train;
  j["output"] = out;
  j["chat_template"] = "qwen3";  // the test tokenizers have no template of their own
  j["device"] = "cpu";
  j["threads"] = 2;
  j["rewards"] = accuracy_reward();
  j["sampling"] = {{"temperature", 1.0},
                   {"max_new_tokens", 16},
                   {"stop", {"</answer>"}},
                   {"include_stop_str_in_output", true}};
  j["group_size"] = 4;
  j["prompts_per_step"] = 4;
  j["seed"] = 11;
  j["optim"] = {{"lr", 3e-3}, {"schedule", "constant"}};
  return j;
}

inline std::vector<Json> metric_lines(const std::string& out) {
  return read_jsonl_file(out + "/metrics.jsonl");
}

// `steps` SFT steps (AdamW at `lr`) of `model` on a + b → "<answer>a + b</answer>" (a, b in 1..4);
// the trained model's directory.
inline std::string warm_up(const ScratchDir& dir, const std::string& model, const std::string& name,
                           int64_t steps, double lr = 1e-2, const std::string& device = "cpu") {
  std::string rows;
  for (int a = 1; a <= 4; ++a)
    for (int b = 1; b <= 4; ++b)
      rows += fmt::format(R"({{"question": "{}+{}", "answer": "<answer>{}</answer>"}})"
                          "\n",
                          a, b, a + b);
  write_text(dir.file(name + ".jsonl"), rows);
  Json s = Json::object();
  s["model"] = model;
  s["train"] = dir.file(name + ".jsonl");
  s["output"] = dir.file(name);
  s["chat_template"] = "qwen3";
  s["device"] = device;
  s["threads"] = 2;
  s["micro_batch_tokens"] = 512;
  s["max_steps"] = steps;
  s["epochs"] = 1000;
  s["seed"] = 3;
  s["optim"] = {{"lr", lr}, {"schedule", "constant"}};
  return sft::run_sft(sft::SftConfig::from_json(s, name, sft::StageKind::sft)).final_dir;
}

// The issue's learning check on `device`: a wide tiny Qwen2 model, 90 SFT steps at 3e-3 on a + b,
// then 80 GRPO steps (16 prompts × 8 samples, AdamW 1e-3) with the accuracy reward. Returns the
// mean sampled accuracy of the first 3 and the last 3 steps.
inline std::pair<double, double> learning_run(const ScratchDir& dir, const std::string& device,
                                              const std::string& dtype) {
  const std::string model = write_model(dir, "m", policy::ModelArch::qwen2, 8, /*wide=*/true);
  write_text(dir.file("train.jsonl"), sum_prompts(4));
  const std::string warm = warm_up(dir, model, "sft", 90, 3e-3, device);
  Json j = base_config(warm, dir.file("train.jsonl"), dir.file("grpo"));
  j["device"] = device;
  j["dtype"] = dtype;
  j["group_size"] = 8;
  j["prompts_per_step"] = 16;
  j["max_steps"] = 80;
  j["epochs"] = 1000;
  j["optim"] = {{"lr", 1e-3}, {"schedule", "constant"}};
  grpo::run_grpo(grpo::GrpoConfig::from_json(j, "learning run"));
  const auto m = metric_lines(dir.file("grpo"));
  EXPECT_EQ(m.size(), 80u);
  auto acc = [&](size_t a, size_t b) {
    double sum = 0;
    for (size_t i = a; i < b; ++i) sum += m.at(i).at("accuracy").get<double>();
    return sum / static_cast<double>(b - a);
  };
  return {acc(0, 3), acc(m.size() - 3, m.size())};
}

}  // namespace r1kit::testing::training
