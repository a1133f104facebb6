// Training checkpoints (sft/checkpoint.h): stop after k steps, save, load into a fresh policy,
// resume the data order, and the following steps give bit-identical losses and weights to an
// uninterrupted run (CPU, dense and MoE); overwriting a checkpoint; inconsistent or damaged
// checkpoints are errors naming the file.
#include "sft/checkpoint.h"

#include <filesystem>
#include <fstream>
#include <random>

#include <unistd.h>

#include "gtest/gtest.h"
#include "policy/presets.h"
#include "sft/data_order.h"
#include "sft/loss.h"
#include "tests/common/test_util.h"

namespace r1kit::sft {
namespace {

using policy::ModelArch;
using policy::Policy;
using testing::cpu_ctx;

std::vector<Example> examples(int64_t vocab) {
  std::mt19937_64 rng(12);
  std::uniform_int_distribution<int32_t> tok(0, static_cast<int32_t>(vocab - 1));
  std::vector<Example> ex(7);
  for (size_t i = 0; i < ex.size(); ++i) {
    const size_t len = 6 + 3 * (i % 4);
    for (size_t j = 0; j < len; ++j) {
      ex[i].tokens.push_back(tok(rng));
      ex[i].loss_mask.push_back(j >= 2 ? 1 : 0);
    }
  }
  return ex;
}

struct TrainRun {
  std::vector<double> losses;
  std::vector<double> params;
};

// `steps` optimizer steps of two micro-batches each from the batcher.
void train(Policy& p, TokenBudgetBatcher& batcher, const std::vector<Example>& ex, int steps,
           TrainRun& run) {
  OptimConfig cfg;
  cfg.lr = 3e-3;
  cfg.warmup_steps = 2;
  cfg.total_steps = 6;
  cfg.weight_decay = 0.01;
  for (int s = 0; s < steps; ++s) {
    std::vector<std::vector<const Example*>> mbs(2);
    for (auto& mb : mbs)
      for (int64_t i : batcher.next().examples) mb.push_back(&ex[static_cast<size_t>(i)]);
    run.losses.push_back(optimizer_step(p, mbs, cfg, cpu_ctx()).loss);
  }
  run.params = testing::to_double(p.params().flat());
}

TokenBudgetBatcher batcher_for(const std::vector<Example>& ex, DataOrderState st) {
  std::vector<int64_t> lengths;
  for (const auto& e : ex) lengths.push_back(static_cast<int64_t>(e.tokens.size()));
  return TokenBudgetBatcher(lengths, 24, DataOrder(static_cast<int64_t>(ex.size()), 5, true, st));
}

TEST(TrainingCheckpoint, ResumeIsBitIdentical) {
  for (const ModelArch arch : {ModelArch::qwen2, ModelArch::deepseek_v3}) {
    SCOPED_TRACE(std::string(policy::model_arch_name(arch)));
    const auto cfg = policy::preset_config(arch, "tiny");
    const std::vector<Example> ex = examples(cfg.vocab_size);
    TrainRun whole;
    {
      Policy p = Policy::init(cfg, 4, cpu_ctx());
      TokenBudgetBatcher b = batcher_for(ex, {});
      train(p, b, ex, 5, whole);
    }
    testing::ScratchDir dir;
    const std::string ck = dir.file("step-2");
    TrainRun first, rest;
    {
      Policy p = Policy::init(cfg, 4, cpu_ctx());
      TokenBudgetBatcher b = batcher_for(ex, {});
      train(p, b, ex, 2, first);
      save_training_checkpoint(ck, p, {{"data", to_json(b.state())}}, cpu_ctx());
    }
    EXPECT_FALSE(std::filesystem::exists(ck + ".tmp." + std::to_string(::getpid())));
    Policy p = Policy::load(ck, cpu_ctx());
    const Json trainer = load_training_checkpoint(ck, p, cpu_ctx());
    EXPECT_EQ(p.step(), 2);
    TokenBudgetBatcher b = batcher_for(ex, data_order_state_from_json(trainer.at("data")));
    train(p, b, ex, 3, rest);
    first.losses.insert(first.losses.end(), rest.losses.begin(), rest.losses.end());
    EXPECT_EQ(first.losses, whole.losses);
    EXPECT_EQ(rest.params, whole.params);  // bit-identical
    EXPECT_LT(whole.losses.back(), whole.losses.front());
  }
}

TEST(TrainingCheckpoint, OverwriteAndDamage) {
  const auto cfg = policy::preset_config(ModelArch::qwen2, "tiny");
  const std::vector<Example> ex = examples(cfg.vocab_size);
  Policy p = Policy::init(cfg, 4, cpu_ctx());
  testing::ScratchDir dir;
  const std::string ck = dir.file("ck");
  save_training_checkpoint(ck, p, {{"note", "before any step"}}, cpu_ctx());
  {
    Policy q = Policy::load(ck, cpu_ctx());
    EXPECT_EQ(load_training_checkpoint(ck, q, cpu_ctx()).at("note"), "before any step");
    EXPECT_EQ(q.step(), 0);
  }
  TokenBudgetBatcher b = batcher_for(ex, {});
  TrainRun r;
  train(p, b, ex, 1, r);
  save_training_checkpoint(ck, p, {{"note", "after one"}}, cpu_ctx());  // replaces it
  Policy q = Policy::load(ck, cpu_ctx());
  EXPECT_EQ(load_training_checkpoint(ck, q, cpu_ctx()).at("note"), "after one");
  EXPECT_EQ(q.step(), 1);
  EXPECT_EQ(testing::to_double(q.adam_m().flat()), testing::to_double(p.adam_m().flat()));

  // The two files disagree on the step.
  Json st = read_json_file(ck + "/trainer_state.json");
  st["step"] = 7;
  write_json_file_atomic(ck + "/trainer_state.json", st);
  testing::expect_error_contains([&] { load_training_checkpoint(ck, q, cpu_ctx()); },
                                 {"optimizer.safetensors", "disagrees", "trainer_state.json"});
  // Not a training state at all.
  write_json_file_atomic(ck + "/trainer_state.json", Json{{"format", "other"}});
  testing::expect_error_contains([&] { load_training_checkpoint(ck, q, cpu_ctx()); },
                                 {"trainer_state.json", "not an r1kit training state"});
  // A truncated optimizer file.
  st["step"] = 1;
  write_json_file_atomic(ck + "/trainer_state.json", st);
  std::filesystem::resize_file(ck + "/optimizer.safetensors", 40);
  testing::expect_error_contains([&] { load_training_checkpoint(ck, q, cpu_ctx()); },
                                 {"optimizer.safetensors"});
  std::filesystem::remove(ck + "/trainer_state.json");
  testing::expect_error_contains([&] { load_training_checkpoint(ck, q, cpu_ctx()); },
                                 {"trainer_state.json"});
}

}  // namespace
}  // namespace r1kit::sft
