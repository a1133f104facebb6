// The parameter manifest against transformers: for small random DeepseekV3/V2, Qwen2 and Llama
// models (tests/policy/data/manifest, made by tests/golden/make_manifest_fixtures.py) the names and
// shapes of the checkpoint save_pretrained writes, of model.state_dict() (fused experts), of the
// MTP modules in DeepSeek's naming, and the parameter counts; for the full-size DeepSeek-V3 the
// counts of transformers and of DeepSeek's released checkpoint.
#include <map>

#include "core/fs.h"
#include "policy/config.h"
#include "tests/common/test_util.h"

namespace r1kit::policy {
namespace {

std::string data(const std::string& name) {
  return std::string(R1KIT_SOURCE_DIR) + "/tests/policy/data/" + name;
}

using ShapeMap = std::map<std::string, Shape>;

ShapeMap fixture_shapes(const Json& rows) {
  ShapeMap m;
  for (const auto& r : rows) m[r[0].get<std::string>()] = r[1].get<Shape>();
  return m;
}

void expect_same(const ShapeMap& ours, const ShapeMap& theirs) {
  for (const auto& [name, shape] : theirs) {
    auto it = ours.find(name);
    if (it == ours.end()) {
      ADD_FAILURE() << "transformers has '" << name << "' " << shape_str(shape)
                    << ", the manifest does not";
    } else {
      EXPECT_EQ(it->second, shape) << name;
    }
  }
  for (const auto& [name, shape] : ours)
    if (!theirs.count(name))
      ADD_FAILURE() << "the manifest has '" << name << "' " << shape_str(shape)
                    << ", transformers does not";
}

const char* kCases[] = {
    "dsv3_qlora_mtp", "dsv3_noqlora_bias_mtp2", "dsv2_lite",    "dsv2_group_qlora",
    "qwen2_tied",     "qwen2_untied",           "llama_llama3", "llama_bias_headdim"};

TEST(Manifest, MatchesTransformersCheckpoints) {
  for (const char* name : kCases) {
    SCOPED_TRACE(name);
    const Json fx = read_json_file(data(std::string("manifest/") + name + ".json"));
    const ModelConfig c = ModelConfig::from_json(fx["config"], name);
    ShapeMap main, mtp;
    for (const auto& s : parameter_manifest(c, true)) {
      (s.mtp ? mtp : main)[s.name] = s.shape;
      EXPECT_EQ(s.mtp, s.layer >= c.num_hidden_layers);
    }
    expect_same(main, fixture_shapes(fx["checkpoint"]));
    if (fx.contains("mtp_checkpoint")) {
      expect_same(mtp, fixture_shapes(fx["mtp_checkpoint"]));
    } else {
      EXPECT_TRUE(mtp.empty());
    }
    // Without MTP the manifest is exactly the main model.
    EXPECT_EQ(parameter_manifest(c, false).size(), main.size());
  }
}

// model.state_dict() of transformers 5 holds experts fused: gate_up_proj (E, 2I, C), down_proj
// (E, C, I); tied models list lm_head.weight as well.
TEST(Manifest, MatchesTransformersStateDictWithFusedExperts) {
  for (const char* name : kCases) {
    SCOPED_TRACE(name);
    const Json fx = read_json_file(data(std::string("manifest/") + name + ".json"));
    const ModelConfig c = ModelConfig::from_json(fx["config"], name);
    ShapeMap fused;
    for (const auto& s : parameter_manifest(c, false)) {
      if (s.expert < 0) {
        fused[s.name] = s.shape;
        continue;
      }
      const std::string prefix = s.name.substr(0, s.name.find("experts.") + 8);
      const int64_t E = c.n_routed_experts, I = c.moe_intermediate_size, C = c.hidden_size;
      if (s.name.ends_with("down_proj.weight"))
        fused[prefix + "down_proj"] = {E, C, I};
      else
        fused[prefix + "gate_up_proj"] = {E, 2 * I, C};
    }
    if (c.tie_word_embeddings) fused["lm_head.weight"] = {c.vocab_size, c.hidden_size};
    expect_same(fused, fixture_shapes(fx["state_dict"]));
  }
}

TEST(Manifest, ParameterCountsMatchTransformers) {
  for (const char* name : kCases) {
    SCOPED_TRACE(name);
    const Json fx = read_json_file(data(std::string("manifest/") + name + ".json"));
    const ModelConfig c = ModelConfig::from_json(fx["config"], name);
    const ParamCounts p = count_parameters(c);
    // transformers counts the correction biases as buffers, not parameters.
    EXPECT_EQ(p.total - p.correction_bias, fx["num_parameters"].get<int64_t>());
    if (fx.contains("mtp_num_parameters")) {
      // MtpModel keeps its correction biases as buffers too.
      int64_t mtp_bias = 0;
      for (const auto& s : parameter_manifest(c, true))
        if (s.mtp && s.kind == ParamKind::correction_bias) mtp_bias += s.numel();
      EXPECT_EQ(p.mtp - mtp_bias, fx["mtp_num_parameters"].get<int64_t>());
    }
  }
}

TEST(Manifest, FullSizeParameterCounts) {
  for (const char* name : {"deepseek-v3", "deepseek-v2-lite", "qwen2.5-0.5b", "llama-3.2-1b"}) {
    SCOPED_TRACE(name);
    const ModelConfig c = ModelConfig::load(data(std::string("configs/") + name + ".json"));
    const Json rec = read_json_file(data(std::string("real/") + name + ".json"));
    const ParamCounts p = count_parameters(c);
    EXPECT_EQ(p.total - p.correction_bias, rec["num_parameters"].get<int64_t>());
    EXPECT_EQ(p.correction_bias, rec["persistent_buffer_elements"].get<int64_t>());
    if (rec.contains("mtp_num_parameters")) {
      const int64_t mtp_bias = c.routing.topk_method == kernels::MoeTopkMethod::noaux_tc
                                   ? c.n_routed_experts * c.num_nextn_predict_layers
                                   : 0;
      EXPECT_EQ(p.mtp - mtp_bias, rec["mtp_num_parameters"].get<int64_t>());
    }
  }
  // DeepSeek-V3 (its README_WEIGHTS.md): 671B parameters, "36.6B activated including 0.9B for the
  // output head" (so without the input embedding); MTP: "11.5B unique parameters" and "1.5B
  // activated including 0.9B for the output head".
  const ModelConfig v3 = ModelConfig::load(data("configs/deepseek-v3.json"));
  const ParamCounts p = count_parameters(v3);
  EXPECT_EQ(p.total, 671026404352 + 14848);
  EXPECT_NEAR(static_cast<double>(p.active), 36.6e9, 0.05e9);
  // DeepSeek's MTP figures leave out eh_proj (7168 x 14336 = 0.1B).
  const double eh_proj = 7168.0 * 14336.0;
  EXPECT_NEAR(static_cast<double>(p.mtp) - eh_proj, 11.5e9, 0.05e9);
  EXPECT_NEAR(static_cast<double>(p.mtp_active) - eh_proj, 1.5e9, 0.05e9);
  EXPECT_EQ(p.head, 129280LL * 7168);
  // Dense students: all parameters are active except the (untied) input embedding.
  const ModelConfig qwen = ModelConfig::load(data("configs/qwen2.5-0.5b.json"));
  const ParamCounts q = count_parameters(qwen);
  EXPECT_EQ(q.active, q.total);  // tied: the shared matrix counts once, as the head
  EXPECT_EQ(q.head, 0);
}

// DeepSeek-R1 (the DeepSeek-V3 architecture and config) ships 163 shards holding 91,991 tensors
// and 684,531,386,000 elements (a public listing of its safetensors index). That is the manifest
// with MTP (including the per-module copies of embedding and head) plus one f32 weight_scale_inv of
// ceil(rows/128) x ceil(cols/128) per FP8 matrix: every linear weight of attention and the MLPs;
// the embeddings, head, router and eh_proj stay bf16.
TEST(Manifest, DeepSeekV3MatchesReleasedCheckpoint) {
  const ModelConfig v3 = ModelConfig::load(data("configs/deepseek-v3.json"));
  int64_t tensors = 0, elements = 0;
  for (const auto& s : parameter_manifest(v3, true)) {
    ++tensors;
    elements += s.numel();
    const bool fp8 =
        s.kind == ParamKind::matrix && (s.name.find(".self_attn.") != std::string::npos ||
                                        s.name.find(".mlp.") != std::string::npos);
    if (fp8) {
      ++tensors;
      elements += ((s.shape[0] + 127) / 128) * ((s.shape[1] + 127) / 128);
    }
  }
  EXPECT_EQ(tensors, 91991);
  EXPECT_EQ(elements, 684531386000);
}

TEST(Manifest, LayoutDetails) {
  const ModelConfig v3 = ModelConfig::load(data("configs/deepseek-v3.json"));
  std::map<std::string, ParamSpec> m;
  for (const auto& s : parameter_manifest(v3, true)) m[s.name] = s;
  EXPECT_EQ(m.at("model.layers.61.embed_tokens.weight").tied_to, "model.embed_tokens.weight");
  EXPECT_EQ(m.at("model.layers.61.shared_head.head.weight").tied_to, "lm_head.weight");
  EXPECT_EQ(m.at("model.layers.61.eh_proj.weight").shape, (Shape{7168, 14336}));
  EXPECT_TRUE(m.at("model.layers.61.eh_proj.weight").mtp);
  EXPECT_EQ(m.at("model.layers.3.mlp.experts.255.down_proj.weight").expert, 255);
  EXPECT_EQ(m.at("model.layers.3.mlp.gate.e_score_correction_bias").kind,
            ParamKind::correction_bias);
  EXPECT_EQ(m.at("model.layers.3.mlp.gate.weight").kind, ParamKind::router);
  EXPECT_EQ(m.at("model.layers.0.self_attn.kv_a_layernorm.weight").kind, ParamKind::norm);
  EXPECT_EQ(m.at("model.layers.0.mlp.gate_proj.weight").shape, (Shape{18432, 7168}));
  EXPECT_EQ(m.at("model.layers.0.self_attn.kv_b_proj.weight").shape, (Shape{32768, 512}));
  EXPECT_FALSE(m.count("model.layers.2.mlp.gate.weight"));
  // Tied qwen2 with an MTP-less manifest: no lm_head.
  const ModelConfig q = ModelConfig::load(data("configs/qwen2.5-0.5b.json"));
  for (const auto& s : parameter_manifest(q)) EXPECT_NE(s.name, "lm_head.weight");
}

}  // namespace
}  // namespace r1kit::policy
