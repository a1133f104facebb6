// The built-in presets. Real-model presets copy the shapes of the published config.json files
// (tests/policy/data/configs/ holds two of them; presets_test checks they agree).
#include "policy/presets.h"

#include "core/error.h"

namespace r1kit::policy {
namespace {

using kernels::MoeScoring;
using kernels::MoeTopkMethod;
using kernels::RopeLayout;
using kernels::RopeScaling;

ModelConfig base(ModelArch arch) {
  ModelConfig c;
  c.arch = arch;
  c.dtype = DType::bf16;
  c.initializer_range = 0.02;
  c.rms_norm_eps = 1e-6;
  c.rope.layout = c.is_mla() ? RopeLayout::interleaved : RopeLayout::half_split;
  return c;
}

void set_gqa(ModelConfig& c, int64_t heads, int64_t kv_heads, int64_t head_dim) {
  c.num_attention_heads = heads;
  c.num_key_value_heads = kv_heads;
  c.head_dim = head_dim;
  c.rope.dim = head_dim;
}

void set_mla(ModelConfig& c, int64_t heads, int64_t q_lora, int64_t kv_lora, int64_t nope,
             int64_t rope, int64_t v) {
  c.num_attention_heads = heads;
  c.num_key_value_heads = heads;
  c.q_lora_rank = q_lora;
  c.kv_lora_rank = kv_lora;
  c.qk_nope_head_dim = nope;
  c.qk_rope_head_dim = rope;
  c.v_head_dim = v;
  c.head_dim = rope;
  c.rope.dim = rope;
}

void set_moe(ModelConfig& c, int64_t experts, int64_t shared, int64_t k, int64_t width,
             int64_t first_dense, MoeScoring scoring, MoeTopkMethod method, int64_t n_group,
             int64_t topk_group, bool norm, double scaling) {
  c.n_routed_experts = experts;
  c.n_shared_experts = shared;
  c.moe_intermediate_size = width;
  c.first_k_dense_replace = first_dense;
  c.moe_layer_freq = 1;
  c.routing.n_routed_experts = experts;
  c.routing.num_experts_per_tok = k;
  c.routing.scoring = scoring;
  c.routing.topk_method = method;
  c.routing.n_group = n_group;
  c.routing.topk_group = topk_group;
  c.routing.norm_topk_prob = norm;
  c.routing.routed_scaling_factor = scaling;
}

void set_yarn(ModelConfig& c, double factor, int64_t original, double mscale,
              double mscale_all_dim) {
  c.rope.scaling = RopeScaling::yarn;
  c.rope.factor = factor;
  c.rope.original_max_position_embeddings = original;
  c.rope.beta_fast = 32.0;
  c.rope.beta_slow = 1.0;
  c.rope.mscale = mscale;
  c.rope.mscale_all_dim = mscale_all_dim;
}

void set_tokens(ModelConfig& c, std::vector<int64_t> bos, std::vector<int64_t> eos) {
  c.bos_token_id = std::move(bos);
  c.eos_token_id = std::move(eos);
}

// DeepSeek-V3 in miniature: every mechanism of the real model (q-LoRA, YaRN, group-limited
// noaux_tc routing with a correction bias, a dense first layer, shared experts, one MTP module).
ModelConfig dsv3_tiny() {
  ModelConfig c = base(ModelArch::deepseek_v3);
  c.vocab_size = 128;
  c.hidden_size = 32;
  c.intermediate_size = 64;
  c.num_hidden_layers = 3;
  set_mla(c, 4, 16, 16, 8, 4, 8);
  set_moe(c, 8, 1, 2, 16, 1, MoeScoring::sigmoid, MoeTopkMethod::noaux_tc, 2, 1, true, 2.5);
  c.num_nextn_predict_layers = 1;
  c.max_position_embeddings = 128;
  c.rope.theta = 10000.0;
  set_yarn(c, 4.0, 32, 1.0, 1.0);
  set_tokens(c, {0}, {1});
  return c;
}

// dsv3-mini: 16 layers, C = 2048, MLA with kv_lora_rank 512 / rope 64 (V3's), 64 routed + 2 shared
// experts, top-6, 1 dense layer, 1 MTP module, as the issue fixes. The rest, chosen: 16 heads of
// V3's head dims (nope 128, v 128), q_lora_rank 768 (3/8 C; V3 uses 1536 for C = 7168), dense width
// 5632 (2.75 C, V3: 2.57 C), expert width 640 (a multiple of 128 so FP8 blocks tile it; V3: 0.29
// C), 8 groups of 8 experts with 4 kept per token (V3: 8 groups, 4 kept), sigmoid + noaux_tc,
// norm_topk_prob, routed_scaling_factor 2.5, V3's YaRN (factor 40 over 4096 positions) and its
// 129280-token vocabulary (the DeepSeek-V3 tokenizer). 4.64B parameters (+0.28B MTP), 0.96B active
// per token;
// fp32 master weights + AdamW state (16 bytes per parameter) fit one 141 GB GPU.
ModelConfig dsv3_mini() {
  ModelConfig c = base(ModelArch::deepseek_v3);
  c.vocab_size = 129280;
  c.hidden_size = 2048;
  c.intermediate_size = 5632;
  c.num_hidden_layers = 16;
  set_mla(c, 16, 768, 512, 128, 64, 128);
  set_moe(c, 64, 2, 6, 640, 1, MoeScoring::sigmoid, MoeTopkMethod::noaux_tc, 8, 4, true, 2.5);
  c.num_nextn_predict_layers = 1;
  c.max_position_embeddings = 163840;
  c.rope.theta = 10000.0;
  set_yarn(c, 40.0, 4096, 1.0, 1.0);
  set_tokens(c, {0}, {1});
  return c;
}

// DeepSeek-V2-Lite in miniature: plain q_proj, softmax greedy routing, no correction bias.
ModelConfig dsv2_tiny() {
  ModelConfig c = base(ModelArch::deepseek_v2);
  c.vocab_size = 128;
  c.hidden_size = 32;
  c.intermediate_size = 64;
  c.num_hidden_layers = 3;
  set_mla(c, 4, 0, 16, 8, 4, 8);
  set_moe(c, 8, 2, 2, 16, 1, MoeScoring::softmax, MoeTopkMethod::greedy, 1, 1, false, 1.0);
  c.max_position_embeddings = 128;
  c.rope.theta = 10000.0;
  set_yarn(c, 4.0, 32, 0.707, 0.707);
  set_tokens(c, {0}, {1});
  return c;
}

ModelConfig qwen2_tiny() {
  ModelConfig c = base(ModelArch::qwen2);
  c.vocab_size = 128;
  c.hidden_size = 32;
  c.intermediate_size = 64;
  c.num_hidden_layers = 2;
  set_gqa(c, 4, 2, 8);
  c.attention_bias = true;
  c.tie_word_embeddings = true;
  c.max_position_embeddings = 128;
  c.rope.theta = 1e6;
  set_tokens(c, {}, {1});
  return c;
}

// Qwen2.5-0.5B's config.json (tests/policy/data/configs/qwen2.5-0.5b.json).
ModelConfig qwen25_05b() {
  ModelConfig c = base(ModelArch::qwen2);
  c.vocab_size = 151936;
  c.hidden_size = 896;
  c.intermediate_size = 4864;
  c.num_hidden_layers = 24;
  set_gqa(c, 14, 2, 64);
  c.attention_bias = true;
  c.tie_word_embeddings = true;
  c.max_position_embeddings = 32768;
  c.rope.theta = 1e6;
  set_tokens(c, {151643}, {151643});
  return c;
}

// Qwen2.5-1.5B (base): 28 layers, C = 1536, 12 heads / 2 KV heads, MLP 8960, tied, 131072
// positions.
ModelConfig qwen25_15b() {
  ModelConfig c = base(ModelArch::qwen2);
  c.vocab_size = 151936;
  c.hidden_size = 1536;
  c.intermediate_size = 8960;
  c.num_hidden_layers = 28;
  set_gqa(c, 12, 2, 128);
  c.attention_bias = true;
  c.tie_word_embeddings = true;
  c.max_position_embeddings = 131072;
  c.rope.theta = 1e6;
  set_tokens(c, {151643}, {151643});
  return c;
}

ModelConfig llama_tiny() {
  ModelConfig c = base(ModelArch::llama);
  c.vocab_size = 128;
  c.hidden_size = 32;
  c.intermediate_size = 64;
  c.num_hidden_layers = 2;
  set_gqa(c, 4, 2, 8);
  c.max_position_embeddings = 256;
  c.rms_norm_eps = 1e-5;
  c.rope.theta = 500000.0;
  c.rope.scaling = RopeScaling::llama3;
  c.rope.factor = 8.0;
  c.rope.low_freq_factor = 1.0;
  c.rope.high_freq_factor = 4.0;
  c.rope.original_max_position_embeddings = 64;
  set_tokens(c, {1}, {2});
  return c;
}

// Llama-3.2-1B's config.json (tests/policy/data/configs/llama-3.2-1b.json).
ModelConfig llama32_1b() {
  ModelConfig c = base(ModelArch::llama);
  c.vocab_size = 128256;
  c.hidden_size = 2048;
  c.intermediate_size = 8192;
  c.num_hidden_layers = 16;
  set_gqa(c, 32, 8, 64);
  c.tie_word_embeddings = true;
  c.max_position_embeddings = 131072;
  c.rms_norm_eps = 1e-5;
  c.rope.theta = 500000.0;
  c.rope.scaling = RopeScaling::llama3;
  c.rope.factor = 32.0;
  c.rope.low_freq_factor = 1.0;
  c.rope.high_freq_factor = 4.0;
  c.rope.original_max_position_embeddings = 8192;
  set_tokens(c, {128000}, {128001});
  return c;
}

struct Entry {
  Preset preset;
  ModelConfig (*make)();
};

const std::vector<Entry>& entries() {
  static const std::vector<Entry> e = {
      {{"tiny", ModelArch::deepseek_v3,
        "DeepSeek-V3 in miniature: q-LoRA, YaRN, noaux_tc over 2 groups, 8 experts top-2, 1 "
        "shared, 1 dense layer, 1 MTP module"},
       dsv3_tiny},
      {{"dsv3-mini", ModelArch::deepseek_v3,
        "16 layers, hidden 2048, MLA 512/64, 64 routed + 2 shared experts, top-6, 1 dense layer, "
        "1 MTP module"},
       dsv3_mini},
      {{"tiny", ModelArch::deepseek_v2,
        "DeepSeek-V2-Lite in miniature: plain q_proj, softmax greedy routing, 2 shared experts"},
       dsv2_tiny},
      {{"tiny", ModelArch::qwen2, "Qwen2 in miniature: GQA 4/2 with q/k/v biases, tied embeddings"},
       qwen2_tiny},
      {{"qwen2.5-0.5b", ModelArch::qwen2, "the shapes of Qwen2.5-0.5B"}, qwen25_05b},
      {{"qwen2.5-1.5b", ModelArch::qwen2, "the shapes of Qwen2.5-1.5B"}, qwen25_15b},
      {{"tiny", ModelArch::llama, "Llama 3 in miniature: GQA 4/2, llama3 RoPE scaling, untied"},
       llama_tiny},
      {{"llama-3.2-1b", ModelArch::llama, "the shapes of Llama-3.2-1B"}, llama32_1b},
  };
  return e;
}

}  // namespace

const std::vector<Preset>& presets() {
  static const std::vector<Preset> p = [] {
    std::vector<Preset> v;
    for (const auto& e : entries()) v.push_back(e.preset);
    return v;
  }();
  return p;
}

std::vector<std::string> preset_names(ModelArch arch) {
  std::vector<std::string> v;
  for (const auto& e : entries())
    if (e.preset.arch == arch) v.push_back(e.preset.name);
  return v;
}

ModelConfig preset_config(ModelArch arch, std::string_view name) {
  for (const auto& e : entries()) {
    if (e.preset.arch != arch || e.preset.name != name) continue;
    ModelConfig c = e.make();
    c.validate(fmt::format("preset '{}' ({})", name, model_arch_name(arch)));
    return c;
  }
  std::string names;
  for (const auto& n : preset_names(arch)) names += (names.empty() ? "" : ", ") + n;
  R1_THROW("unknown preset '{}' for --arch {}; its presets are: {}", name, model_arch_name(arch),
           names);
}

Json describe_presets() {
  Json out = Json::array();
  for (const auto& e : entries()) {
    const ParamCounts p = count_parameters(e.make());
    out.push_back({{"arch", model_arch_name(e.preset.arch)},
                   {"name", e.preset.name},
                   {"description", e.preset.description},
                   {"parameters", {{"total", p.total}, {"active", p.active}, {"mtp", p.mtp}}}});
  }
  return out;
}

}  // namespace r1kit::policy
