// Presets: every preset is a valid config that survives config.json; the real-model presets equal
// the published config.json files; dsv3-mini has the numbers its comment promises.
#include "policy/presets.h"

#include "core/fs.h"
#include "tests/common/test_util.h"

namespace r1kit::policy {
namespace {

using testing::expect_error_contains;

std::string data(const std::string& name) {
  return std::string(R1KIT_SOURCE_DIR) + "/tests/policy/data/" + name;
}

Json owned(ModelConfig c) {
  c.extra = Json::object();
  return c.to_json();
}

TEST(Presets, AllValidAndRoundTrip) {
  ASSERT_FALSE(presets().empty());
  for (const auto& p : presets()) {
    SCOPED_TRACE(p.name + " " + std::string(model_arch_name(p.arch)));
    const ModelConfig c = preset_config(p.arch, p.name);
    EXPECT_EQ(c.arch, p.arch);
    const ModelConfig back = ModelConfig::from_json(c.to_json(), "preset.json");
    EXPECT_EQ(back.to_json(), c.to_json());
    EXPECT_FALSE(parameter_manifest(c).empty());
  }
  for (ModelArch a :
       {ModelArch::deepseek_v3, ModelArch::deepseek_v2, ModelArch::qwen2, ModelArch::llama}) {
    const auto names = preset_names(a);
    EXPECT_NE(std::find(names.begin(), names.end(), "tiny"), names.end());
  }
  EXPECT_EQ(describe_presets().size(), presets().size());
}

TEST(Presets, RealShapesEqualPublishedConfigs) {
  ModelConfig q = ModelConfig::load(data("configs/qwen2.5-0.5b.json"));
  EXPECT_EQ(owned(preset_config(ModelArch::qwen2, "qwen2.5-0.5b")), owned(q));
  ModelConfig l = ModelConfig::load(data("configs/llama-3.2-1b.json"));
  EXPECT_EQ(owned(preset_config(ModelArch::llama, "llama-3.2-1b")), owned(l));
  // Qwen2.5-1.5B: 1.54B parameters (1.31B without the tied embedding, as its model card says).
  const ParamCounts p = count_parameters(preset_config(ModelArch::qwen2, "qwen2.5-1.5b"));
  EXPECT_EQ(p.total, 1543714304);
  EXPECT_NEAR(static_cast<double>(p.total - p.embedding), 1.31e9, 0.01e9);
}

TEST(Presets, Dsv3Mini) {
  const ModelConfig c = preset_config(ModelArch::deepseek_v3, "dsv3-mini");
  EXPECT_EQ(c.num_hidden_layers, 16);
  EXPECT_EQ(c.hidden_size, 2048);
  EXPECT_EQ(c.kv_lora_rank, 512);
  EXPECT_EQ(c.qk_rope_head_dim, 64);
  EXPECT_EQ(c.n_routed_experts, 64);
  EXPECT_EQ(c.n_shared_experts, 2);
  EXPECT_EQ(c.routing.num_experts_per_tok, 6);
  EXPECT_EQ(c.first_k_dense_replace, 1);
  EXPECT_EQ(c.num_nextn_predict_layers, 1);
  EXPECT_EQ(c.routing.topk_method, kernels::MoeTopkMethod::noaux_tc);
  const ParamCounts p = count_parameters(c);
  EXPECT_NEAR(static_cast<double>(p.total), 4.7e9, 0.1e9);
  EXPECT_NEAR(static_cast<double>(p.active), 1.0e9, 0.1e9);
}

TEST(Presets, UnknownNameListsTheKnownOnes) {
  expect_error_contains([] { preset_config(ModelArch::qwen2, "huge"); },
                        {"huge", "qwen2", "tiny", "qwen2.5-0.5b", "qwen2.5-1.5b"});
}

}  // namespace
}  // namespace r1kit::policy
