// ModelConfig: the real config.json files of DeepSeek-V3, DeepSeek-V2-Lite, Qwen2.5-0.5B and
// Llama-3.2-1B (tests/policy/data/configs), checked against what transformers computes from them
// (tests/policy/data/real, made by tests/golden/make_manifest_fixtures.py); rope_parameters vs
// rope_scaling; round trips through to_json(); every class of unsupported or invalid value.
#include "policy/config.h"

#include <cmath>

#include "core/fs.h"
#include "tests/common/test_util.h"

namespace r1kit::policy {
namespace {

using kernels::MoeScoring;
using kernels::MoeTopkMethod;
using kernels::RopeLayout;
using kernels::RopeScaling;
using testing::expect_error_contains;

std::string data(const std::string& name) {
  return std::string(R1KIT_SOURCE_DIR) + "/tests/policy/data/" + name;
}
ModelConfig load_real(const std::string& name) {
  return ModelConfig::load(data("configs/" + name + ".json"));
}
Json real_record(const std::string& name) {
  return read_json_file(data("real/" + name + ".json"));
}

void expect_same_rope(const kernels::RopeConfig& a, const kernels::RopeConfig& b) {
  EXPECT_EQ(a.dim, b.dim);
  EXPECT_EQ(a.theta, b.theta);
  EXPECT_EQ(a.scaling, b.scaling);
  EXPECT_EQ(a.factor, b.factor);
  EXPECT_EQ(a.low_freq_factor, b.low_freq_factor);
  EXPECT_EQ(a.high_freq_factor, b.high_freq_factor);
  EXPECT_EQ(a.original_max_position_embeddings, b.original_max_position_embeddings);
  EXPECT_EQ(a.beta_fast, b.beta_fast);
  EXPECT_EQ(a.beta_slow, b.beta_slow);
  EXPECT_EQ(a.mscale, b.mscale);
  EXPECT_EQ(a.mscale_all_dim, b.mscale_all_dim);
  EXPECT_EQ(a.attention_factor, b.attention_factor);
  EXPECT_EQ(a.truncate, b.truncate);
  EXPECT_EQ(a.layout, b.layout);
}

// Everything but `extra` (which legitimately differs between a config and its re-save).
Json owned(const ModelConfig& c) {
  ModelConfig d = c;
  d.extra = Json::object();
  return d.to_json();
}

TEST(ModelConfig, DeepSeekV3) {
  const ModelConfig c = load_real("deepseek-v3");
  EXPECT_EQ(c.arch, ModelArch::deepseek_v3);
  EXPECT_EQ(c.vocab_size, 129280);
  EXPECT_EQ(c.hidden_size, 7168);
  EXPECT_EQ(c.intermediate_size, 18432);
  EXPECT_EQ(c.num_hidden_layers, 61);
  EXPECT_EQ(c.num_attention_heads, 128);
  EXPECT_EQ(c.q_lora_rank, 1536);
  EXPECT_EQ(c.kv_lora_rank, 512);
  EXPECT_EQ(c.qk_nope_head_dim, 128);
  EXPECT_EQ(c.qk_rope_head_dim, 64);
  EXPECT_EQ(c.v_head_dim, 128);
  EXPECT_EQ(c.n_routed_experts, 256);
  EXPECT_EQ(c.n_shared_experts, 1);
  EXPECT_EQ(c.moe_intermediate_size, 2048);
  EXPECT_EQ(c.first_k_dense_replace, 3);
  EXPECT_EQ(c.moe_layer_freq, 1);
  EXPECT_EQ(c.num_nextn_predict_layers, 1);
  EXPECT_EQ(c.routing.n_routed_experts, 256);
  EXPECT_EQ(c.routing.num_experts_per_tok, 8);
  EXPECT_EQ(c.routing.scoring, MoeScoring::sigmoid);
  EXPECT_EQ(c.routing.topk_method, MoeTopkMethod::noaux_tc);
  EXPECT_EQ(c.routing.n_group, 8);
  EXPECT_EQ(c.routing.topk_group, 4);
  EXPECT_TRUE(c.routing.norm_topk_prob);
  EXPECT_EQ(c.routing.routed_scaling_factor, 2.5);
  EXPECT_EQ(c.rope.scaling, RopeScaling::yarn);
  EXPECT_EQ(c.rope.dim, 64);
  EXPECT_EQ(c.rope.factor, 40.0);
  EXPECT_EQ(c.rope.original_max_position_embeddings, 4096);
  EXPECT_EQ(c.rope.mscale, 1.0);
  EXPECT_EQ(c.rope.mscale_all_dim, 1.0);
  EXPECT_EQ(c.rope.layout, RopeLayout::interleaved);
  EXPECT_EQ(c.max_position_embeddings, 163840);
  EXPECT_EQ(c.fp8_block_rows, 128);
  EXPECT_EQ(c.fp8_block_cols, 128);
  EXPECT_EQ(c.dtype, DType::bf16);
  EXPECT_FALSE(c.tie_word_embeddings);
  EXPECT_FALSE(c.attention_bias);
  EXPECT_EQ(c.bos_token_id, std::vector<int64_t>{0});
  EXPECT_EQ(c.eos_token_id, std::vector<int64_t>{1});
  EXPECT_TRUE(c.is_moe_layer(3));
  EXPECT_FALSE(c.is_moe_layer(2));
  EXPECT_TRUE(c.is_moe_layer(61));  // the MTP block
  // Kept and dropped keys.
  EXPECT_EQ(c.extra.value("ep_size", -1), 1);
  EXPECT_FALSE(c.extra.contains("quantization_config"));
  EXPECT_FALSE(c.extra.contains("auto_map"));
}

TEST(ModelConfig, DeepSeekV2Lite) {
  const ModelConfig c = load_real("deepseek-v2-lite");
  EXPECT_EQ(c.arch, ModelArch::deepseek_v2);
  EXPECT_EQ(c.q_lora_rank, 0);
  EXPECT_EQ(c.num_hidden_layers, 27);
  EXPECT_EQ(c.n_routed_experts, 64);
  EXPECT_EQ(c.n_shared_experts, 2);
  EXPECT_EQ(c.routing.num_experts_per_tok, 6);
  EXPECT_EQ(c.routing.scoring, MoeScoring::softmax);
  EXPECT_EQ(c.routing.topk_method, MoeTopkMethod::greedy);
  EXPECT_FALSE(c.routing.norm_topk_prob);
  EXPECT_EQ(c.routing.routed_scaling_factor, 1.0);
  EXPECT_EQ(c.first_k_dense_replace, 1);
  EXPECT_EQ(c.num_nextn_predict_layers, 0);
  EXPECT_EQ(c.rope.mscale, 0.707);
  EXPECT_EQ(c.rope.mscale_all_dim, 0.707);
  EXPECT_EQ(c.rope.layout, RopeLayout::interleaved);
  EXPECT_EQ(c.fp8_block_rows, 0);
  EXPECT_EQ(c.extra.value("aux_loss_alpha", 0.0), 0.001);
}

TEST(ModelConfig, Qwen25AndLlama32) {
  const ModelConfig q = load_real("qwen2.5-0.5b");
  EXPECT_EQ(q.arch, ModelArch::qwen2);
  EXPECT_EQ(q.head_dim, 64);
  EXPECT_EQ(q.num_key_value_heads, 2);
  EXPECT_TRUE(q.attention_bias);  // implicit for qwen2
  EXPECT_TRUE(q.tie_word_embeddings);
  EXPECT_EQ(q.rope.theta, 1e6);
  EXPECT_EQ(q.rope.scaling, RopeScaling::none);
  EXPECT_EQ(q.rope.layout, RopeLayout::half_split);
  EXPECT_EQ(q.bos_token_id, std::vector<int64_t>{151643});
  const ModelConfig l = load_real("llama-3.2-1b");
  EXPECT_EQ(l.arch, ModelArch::llama);
  EXPECT_EQ(l.head_dim, 64);
  EXPECT_EQ(l.rope.scaling, RopeScaling::llama3);
  EXPECT_EQ(l.rope.factor, 32.0);
  EXPECT_EQ(l.rope.original_max_position_embeddings, 8192);
  EXPECT_EQ(l.rope.theta, 500000.0);
  EXPECT_EQ(l.rms_norm_eps, 1e-5);
  EXPECT_FALSE(l.attention_bias);
}

// Our RopeConfig → kernels' inv_freq and cos/sin scaling match transformers' rotary embedding of
// the same config.json (HF computes inv_freq in f32: 1e-6 relative), and the MLA softmax scale
// (qk_head_dim^-0.5 · mscale², computed in double by both) matches DeepseekV2/V3Attention.scaling.
TEST(ModelConfig, RopeMatchesTransformers) {
  for (const char* name : {"deepseek-v3", "deepseek-v2-lite", "qwen2.5-0.5b", "llama-3.2-1b"}) {
    SCOPED_TRACE(name);
    const ModelConfig c = load_real(name);
    const Json rec = real_record(name);
    const auto want = rec["rope"]["inv_freq"].get<std::vector<double>>();
    const auto got = kernels::rope_inv_freq(c.rope);
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < got.size(); ++i)
      EXPECT_NEAR(got[i], want[i], 1e-6 * std::abs(want[i])) << "inv_freq[" << i << "]";
    EXPECT_NEAR(kernels::rope_attention_scaling(c.rope),
                rec["rope"]["attention_scaling"].get<double>(), 1e-12);
    if (c.is_mla()) {
      const double scale =
          kernels::yarn_softmax_mscale(c.rope) / std::sqrt(static_cast<double>(c.qk_head_dim()));
      EXPECT_NEAR(scale, rec["softmax_scale"].get<double>(), 1e-12);
    }
  }
}

// transformers 5 re-saves old configs with rope_parameters (rope_theta inside) and "dtype": the
// same model.
TEST(ModelConfig, RopeParametersEqualsRopeScaling) {
  for (const char* name : {"deepseek-v3", "deepseek-v2-lite", "qwen2.5-0.5b", "llama-3.2-1b"}) {
    SCOPED_TRACE(name);
    const ModelConfig old_style = load_real(name);
    const Json resaved = real_record(name)["resaved_config"];
    ASSERT_TRUE(resaved.contains("rope_parameters"));
    ASSERT_FALSE(resaved.contains("rope_scaling"));
    const ModelConfig new_style = ModelConfig::from_json(resaved, std::string(name) + " (resaved)");
    expect_same_rope(old_style.rope, new_style.rope);
    ModelConfig a = old_style, b = new_style;
    a.fp8_block_rows = a.fp8_block_cols = 0;  // transformers' re-save drops quantization_config
    EXPECT_EQ(owned(a), owned(b));
  }
}

Json yarn_object() {
  return {{"type", "yarn"},       {"factor", 40},   {"original_max_position_embeddings", 4096},
          {"beta_fast", 32},      {"beta_slow", 1}, {"mscale", 1.0},
          {"mscale_all_dim", 1.0}};
}
Json tiny_v3() {
  Json j = read_json_file(data("configs/deepseek-v3.json"));
  j["num_hidden_layers"] = 2;
  return j;
}

TEST(ModelConfig, RopeBothKeysAndThetaPrecedence) {
  Json j = tiny_v3();
  Json params = yarn_object();
  params["rope_theta"] = 10000;
  j["rope_parameters"] = params;  // both present and agreeing
  const ModelConfig both = ModelConfig::from_json(j, "both.json");
  expect_same_rope(both.rope, load_real("deepseek-v3").rope);

  // rope_theta inside the object wins over the top-level key.
  Json k = tiny_v3();
  k.erase("rope_scaling");
  params["rope_theta"] = 5000;
  k["rope_parameters"] = params;
  k["rope_theta"] = 10000;
  EXPECT_EQ(ModelConfig::from_json(k, "k.json").rope.theta, 5000);

  // Disagreeing objects are an error naming both.
  Json bad = tiny_v3();
  Json p2 = yarn_object();
  p2["factor"] = 4;
  bad["rope_parameters"] = p2;
  expect_error_contains([&] { ModelConfig::from_json(bad, "bad.json"); },
                        {"bad.json", "rope_scaling", "rope_parameters", "factor", "40", "4"});

  // YaRN without factor: max_position_embeddings / original_max_position_embeddings.
  Json nf = tiny_v3();
  nf["rope_scaling"].erase("factor");
  EXPECT_EQ(ModelConfig::from_json(nf, "nf.json").rope.factor, 163840.0 / 4096.0);
  // rope_scaling null: default RoPE.
  Json none = tiny_v3();
  none["rope_scaling"] = nullptr;
  EXPECT_EQ(ModelConfig::from_json(none, "none.json").rope.scaling, RopeScaling::none);
}

TEST(ModelConfig, RoundTripThroughToJson) {
  std::vector<Json> configs;
  for (const char* name : {"deepseek-v3", "deepseek-v2-lite", "qwen2.5-0.5b", "llama-3.2-1b"})
    configs.push_back(read_json_file(data(std::string("configs/") + name + ".json")));
  for (const char* name :
       {"dsv3_qlora_mtp", "dsv3_noqlora_bias_mtp2", "dsv2_lite", "dsv2_group_qlora", "qwen2_tied",
        "qwen2_untied", "llama_llama3", "llama_bias_headdim"})
    configs.push_back(read_json_file(data(std::string("manifest/") + name + ".json"))["config"]);
  for (const Json& j : configs) {
    const ModelConfig a = ModelConfig::from_json(j, "a.json");
    const Json out = a.to_json();
    const ModelConfig b = ModelConfig::from_json(out, "b.json");
    EXPECT_EQ(b.to_json(), out);
    expect_same_rope(a.rope, b.rope);
    EXPECT_FALSE(out.contains("quantization_config"));
    EXPECT_FALSE(out.contains("auto_map"));
    EXPECT_EQ(out["architectures"][0], model_arch_class(a.arch));
    if (a.arch == ModelArch::deepseek_v3) {
      for (const char* key :
           {"scoring_func", "topk_method", "n_group", "topk_group", "norm_topk_prob",
            "routed_scaling_factor", "first_k_dense_replace", "moe_layer_freq",
            "num_nextn_predict_layers", "rope_interleave", "q_lora_rank", "kv_lora_rank",
            "rope_scaling", "rope_parameters", "rope_theta", "dtype", "torch_dtype"})
        EXPECT_TRUE(out.contains(key)) << key;
      EXPECT_EQ(out["topk_method"], kernels::moe_topk_method_name(a.routing.topk_method));
    }
  }
  const Json v3 = load_real("deepseek-v3").to_json();
  EXPECT_EQ(v3["topk_method"], "noaux_tc");
  EXPECT_EQ(v3["scoring_func"], "sigmoid");
  EXPECT_EQ(v3["rope_scaling"]["type"], "yarn");
  EXPECT_EQ(v3["rope_scaling"]["rope_type"], "yarn");
  EXPECT_EQ(v3["rope_parameters"]["rope_theta"], 10000.0);
  EXPECT_EQ(v3["ep_size"], 1);  // unknown keys carried through
}

TEST(ModelConfig, TokenIdsKeepTheirForm) {
  Json j = read_json_file(data("configs/llama-3.2-1b.json"));
  j["eos_token_id"] = {128001, 128008, 128009};
  j["pad_token_id"] = nullptr;
  const ModelConfig c = ModelConfig::from_json(j, "eos.json");
  EXPECT_EQ(c.eos_token_id, (std::vector<int64_t>{128001, 128008, 128009}));
  EXPECT_TRUE(c.pad_token_id.empty());
  const Json out = c.to_json();
  EXPECT_EQ(out["eos_token_id"], Json({128001, 128008, 128009}));
  EXPECT_EQ(out["bos_token_id"], 128000);
  EXPECT_TRUE(out["pad_token_id"].is_null());
}

TEST(ModelConfig, LoadFromDirectoryAndSave) {
  testing::ScratchDir dir;
  const ModelConfig c = load_real("deepseek-v3");
  c.save(dir.file("config.json"));
  const ModelConfig d = ModelConfig::load(dir.str());
  EXPECT_EQ(d.to_json(), c.to_json());
  expect_error_contains([&] { ModelConfig::load(dir.file("nope")); }, {"nope"});
}

struct BadCase {
  const char* base;  // a config under tests/policy/data/configs
  Json patch;        // merged into it (null values remove keys)
  std::vector<std::string> needles;
};

TEST(ModelConfig, ErrorsNameFileFieldAndValue) {
  const std::vector<BadCase> cases = {
      {"qwen2.5-0.5b", {{"model_type", "mistral"}}, {"model_type", "\"mistral\"", "deepseek_v3"}},
      {"qwen2.5-0.5b", {{"model_type", nullptr}}, {"model_type", "missing"}},
      {"llama-3.2-1b", {{"hidden_act", "gelu"}}, {"hidden_act", "\"gelu\"", "silu"}},
      {"llama-3.2-1b",
       {{"rope_scaling", {{"rope_type", "dynamic"}, {"factor", 2.0}}}},
       {"rope_scaling.rope_type", "\"dynamic\"", "yarn"}},
      {"llama-3.2-1b",
       {{"rope_scaling", {{"rope_type", "llama3"}, {"factor", 8.0}}}},
       {"rope_scaling.low_freq_factor", "missing"}},
      {"llama-3.2-1b",
       {{"rope_scaling", {{"rope_type", "linear"}, {"factor", -2.0}}}},
       {"rope_scaling.factor", "-2", "positive"}},
      {"deepseek-v3", {{"topk_method", "best"}}, {"topk_method", "\"best\"", "noaux_tc"}},
      {"deepseek-v3", {{"scoring_func", "relu"}}, {"scoring_func", "\"relu\""}},
      {"deepseek-v3", {{"n_routed_experts", 100}}, {"n_routed_experts = 100", "n_group = 8"}},
      {"deepseek-v3", {{"topk_group", 9}}, {"topk_group = 9", "n_group = 8"}},
      {"deepseek-v3", {{"num_experts_per_tok", 300}}, {"num_experts_per_tok = 300"}},
      {"deepseek-v3", {{"hidden_size", nullptr}}, {"hidden_size", "missing"}},
      {"deepseek-v3", {{"hidden_size", "big"}}, {"hidden_size", "string"}},
      {"deepseek-v3", {{"kv_lora_rank", nullptr}}, {"kv_lora_rank", "missing"}},
      {"deepseek-v3",
       {{"quantization_config", {{"quant_method", "gptq"}}}},
       {"quantization_config.quant_method", "\"gptq\""}},
      {"deepseek-v3", {{"qk_rope_head_dim", 63}}, {"qk_rope_head_dim = 63", "even"}},
      {"deepseek-v2-lite",
       {{"scoring_func", "sigmoid"}},
       {"scoring_func", "\"sigmoid\"", "softmax"}},
      {"deepseek-v2-lite", {{"topk_method", "noaux_tc"}}, {"topk_method", "\"noaux_tc\""}},
      {"deepseek-v2-lite", {{"num_nextn_predict_layers", 1}, {"mlp_bias", true}}, {"mlp_bias"}},
      {"qwen2.5-0.5b", {{"use_sliding_window", true}}, {"use_sliding_window", "true"}},
      {"qwen2.5-0.5b", {{"num_key_value_heads", 3}}, {"num_key_value_heads = 3"}},
      {"qwen2.5-0.5b", {{"partial_rotary_factor", 0.5}}, {"partial_rotary_factor", "0.5"}},
      {"qwen2.5-0.5b", {{"torch_dtype", "int8"}}, {"torch_dtype", "\"int8\""}},
      {"qwen2.5-0.5b",
       {{"layer_types", {"full_attention", "sliding_attention"}}},
       {"layer_types", "sliding_attention"}},
      {"llama-3.2-1b", {{"mlp_bias", true}}, {"mlp_bias", "true"}},
      {"llama-3.2-1b", {{"head_dim", nullptr}, {"hidden_size", 2050}}, {"hidden_size = 2050"}},
  };
  for (const auto& bc : cases) {
    Json j = read_json_file(data(std::string("configs/") + bc.base + ".json"));
    for (const auto& [k, v] : bc.patch.items()) {
      if (v.is_null())
        j.erase(k);
      else
        j[k] = v;
    }
    std::vector<std::string> needles = bc.needles;
    needles.push_back("patched.json");
    SCOPED_TRACE(bc.patch.dump());
    expect_error_contains([&] { ModelConfig::from_json(j, "patched.json"); }, needles);
  }
}

TEST(ModelConfig, NullRoutedExpertsMeansDense) {
  Json j = read_json_file(data("configs/deepseek-v2-lite.json"));
  j["n_routed_experts"] = nullptr;
  const ModelConfig c = ModelConfig::from_json(j, "dense.json");
  EXPECT_FALSE(c.is_moe());
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) EXPECT_FALSE(c.is_moe_layer(l));
}

TEST(ModelConfig, MoeLayerFrequencyFollowsDeepSeek) {
  Json j = read_json_file(data("configs/deepseek-v3.json"));
  j["moe_layer_freq"] = 2;
  const ModelConfig c = ModelConfig::from_json(j, "freq.json");
  EXPECT_FALSE(c.is_moe_layer(2));  // dense (first_k_dense_replace = 3)
  EXPECT_FALSE(c.is_moe_layer(3));  // 3 % 2 != 0
  EXPECT_TRUE(c.is_moe_layer(4));
}

}  // namespace
}  // namespace r1kit::policy
