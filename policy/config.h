// Model configuration: one ModelConfig read from (and written to) a Hugging Face config.json for
// DeepSeek-V3 (and the DeepSeek-V2 scoring variant), Qwen2 and Llama, plus the parameter manifest
// (every tensor of a config with its exact HF checkpoint name and shape) and parameter counts.
//
// Legend: V vocab, C hidden size, L decoder layers (without MTP), H attention heads, Hkv key/value
// heads (GQA), D head size, E routed experts, K experts per token, I expert width.
//
// Reading config.json. Keys r1kit does not use are ignored (and kept in `extra` to be written
// back); an absent key takes the default of the transformers config class for that model_type
// (written in the field comments), except the shape keys every real checkpoint carries (vocab_size,
// hidden_size, intermediate_size, num_hidden_layers, num_attention_heads; for MLA kv_lora_rank,
// q_lora_rank, qk_nope_head_dim, qk_rope_head_dim, v_head_dim; for MoE moe_intermediate_size,
// num_experts_per_tok), whose absence is an error. Values r1kit cannot run (hidden_act other than
// silu, an unknown rope type or topk_method, E not divisible by n_group, sliding-window attention,
// partial rotary, MLP biases, quantisation other than DeepSeek's FP8 blocks, ...) are errors that
// name the file, the field and the value.
//
// RoPE: transformers 5 writes `rope_parameters` (with rope_theta inside), older checkpoints
// `rope_scaling` + top-level `rope_theta`; both are read. As in transformers 5, a non-null
// rope_scaling takes precedence, and rope_theta inside the chosen object wins over the top-level
// one; when both objects are present their common keys must agree. YaRN uses `factor` as given
// (transformers 5; transformers 4.4x used max_position_embeddings /
// original_max_position_embeddings when the latter is present, which is the same number for
// DeepSeek's configs); without `factor` the ratio is used; original_max_position_embeddings
// defaults to max_position_embeddings.
//
// Layers: DeepSeek's own code makes layer i MoE when E > 0, i >= first_k_dense_replace and
// i % moe_layer_freq == 0 (transformers ignores moe_layer_freq; the two agree for freq 1, which
// every released config uses). MTP module k is decoder block L + k under the same rule.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/dtype.h"
#include "core/json.h"
#include "core/tensor.h"
#include "kernels/moe.h"
#include "kernels/rope.h"

namespace r1kit::policy {

// model_type of config.json.
enum class ModelArch : uint8_t { deepseek_v3, deepseek_v2, qwen2, llama };

std::string_view model_arch_name(ModelArch a);   // "deepseek_v3", "deepseek_v2", "qwen2", "llama"
std::string_view model_arch_class(ModelArch a);  // "DeepseekV3ForCausalLM", ...
std::optional<ModelArch> model_arch_from_name(std::string_view model_type);
// "deepseek_v3, deepseek_v2, qwen2, llama" for error messages.
std::string model_arch_list();

struct ModelConfig {
  ModelArch arch = ModelArch::llama;

  // ---- Sizes
  int64_t vocab_size = 0;           // V
  int64_t hidden_size = 0;          // C
  int64_t intermediate_size = 0;    // width of the dense SwiGLU MLPs
  int64_t num_hidden_layers = 0;    // L, decoder layers of the main model
  int64_t num_attention_heads = 0;  // H
  int64_t num_key_value_heads = 0;  // Hkv (GQA); default H. MLA keeps it (= H) but does not use it
  // D for GQA attention: config head_dim, default C / H. For MLA it is qk_rope_head_dim, as HF
  // sets it (the key is not read for MLA).
  int64_t head_dim = 0;
  // llama: bias on q/k/v/o_proj; deepseek: on q_a_proj (or none on q_proj), kv_a_proj_with_mqa and
  // o_proj, as transformers builds them. qwen2 always has q/k/v biases (and none on o_proj): the
  // flag is true for qwen2 and its config key is neither read nor written.
  bool attention_bias = false;

  // ---- MLA (deepseek): q = q_b(norm(q_a(x))) or q_proj(x); [c_kv ‖ k_pe] = kv_a_proj_with_mqa(x)
  int64_t q_lora_rank = 0;       // 0 = plain q_proj (config null)
  int64_t kv_lora_rank = 0;      // width of the latent c_kv (512 in V2/V3)
  int64_t qk_nope_head_dim = 0;  // per-head non-rotary q/k dims
  int64_t qk_rope_head_dim = 0;  // per-head rotary q/k dims (the shared k_pe is this wide)
  int64_t v_head_dim = 0;

  // ---- DeepSeekMoE
  int64_t n_routed_experts = 0;       // E; 0 (config null or absent) = every layer dense
  int64_t n_shared_experts = 0;       // the shared expert MLP has width n_shared_experts * I
  int64_t moe_intermediate_size = 0;  // I
  int64_t first_k_dense_replace = 0;  // layers [0, k) are dense; v3 default 3, v2 default 0
  int64_t moe_layer_freq = 1;
  // E, K (num_experts_per_tok), scoring_func, n_group, topk_group, topk_method, norm_topk_prob,
  // routed_scaling_factor. Defaults: v3 sigmoid / noaux_tc / n_group 8 / topk_group 4 / norm true /
  // 2.5 (DeepSeek's configuration_deepseek.py; transformers' DeepseekV3 hard-codes sigmoid and
  // noaux_tc); v2 softmax / greedy / 1 / 1 / false / 1.0. masked_fill stays at the kernel default.
  kernels::MoeRouting routing;
  int64_t num_nextn_predict_layers = 0;  // MTP modules (deepseek_v3 only; default 1 as in HF)

  // ---- Norms and positions
  double rms_norm_eps = 1e-6;
  // dim = qk_rope_head_dim (MLA) or head_dim; layout interleaved for deepseek (v3: rope_interleave,
  // default true; v2 always), half_split for qwen2 and llama.
  kernels::RopeConfig rope;
  int64_t max_position_embeddings = 0;  // defaults: v3 4096, v2 2048, qwen2 32768, llama 2048

  bool tie_word_embeddings = false;  // lm_head shares model.embed_tokens.weight

  // ---- Tokens (HF allows an int, a list or null; written back in the form read)
  std::vector<int64_t> bos_token_id;
  std::vector<int64_t> eos_token_id;
  std::vector<int64_t> pad_token_id;
  bool bos_token_list = false, eos_token_list = false, pad_token_list = false;

  // ---- Storage and initialisation
  DType dtype = DType::f32;  // "dtype" (transformers 5) or "torch_dtype"; absent = float32 as in HF
  double initializer_range = 0.02;
  // quantization_config of DeepSeek's FP8 checkpoints: {"quant_method": "fp8", "fmt": "e4m3",
  // "weight_block_size": [128, 128]}. Weights are dequantised on load; to_json() never writes it.
  int64_t fp8_block_rows = 0, fp8_block_cols = 0;  // 0 = not quantised

  // Keys of config.json that r1kit does not interpret, written back by to_json() (except those
  // that would be wrong for what r1kit writes: quantization_config, auto_map, transformers_version
  // and HF bookkeeping such as _name_or_path).
  Json extra = Json::object();

  bool is_mla() const { return arch == ModelArch::deepseek_v3 || arch == ModelArch::deepseek_v2; }
  bool is_moe() const { return n_routed_experts > 0; }
  // True when decoder block `layer` (main layers and MTP blocks L + k alike) is a MoE layer.
  bool is_moe_layer(int64_t layer) const;
  int64_t qk_head_dim() const { return qk_nope_head_dim + qk_rope_head_dim; }
  int64_t num_mtp_modules() const { return num_nextn_predict_layers; }
  int64_t num_experts_per_tok() const { return routing.num_experts_per_tok; }

  // Parses a config.json object; `label` (the file) starts every error message.
  static ModelConfig from_json(const Json& j, const std::string& label);
  // `path` is a config.json or a directory holding one.
  static ModelConfig load(const std::string& path);
  // An HF-compatible config.json: every key r1kit owns is written whatever its value (so other
  // engines never fall back to their own defaults), including for V3-style models scoring_func,
  // topk_method, n_group, topk_group, norm_topk_prob, routed_scaling_factor, first_k_dense_replace,
  // moe_layer_freq and num_nextn_predict_layers; RoPE as rope_theta + rope_scaling (older readers)
  // and rope_parameters (transformers 5), both carrying the same values; dtype as both "dtype" and
  // "torch_dtype". Keys are sorted (nlohmann order), as HF writes them.
  Json to_json() const;
  void save(const std::string& path) const;  // atomic write of to_json()
  // Throws naming `label` when the sizes do not fit together (called by from_json; presets and
  // hand-built configs call it too).
  void validate(const std::string& label) const;
};

// A short JSON summary: model_type, architecture class, sizes, attention, MoE, RoPE, parameters.
Json describe_config(const ModelConfig& c);

// ---- Parameter manifest
// ------------------------------------------------------------------------

// What a tensor is, which decides its initialisation (normal(0, initializer_range) for embedding,
// matrix and router; ones for norm; zeros for bias and correction_bias) and its storage dtype
// (correction_bias is always f32, as in DeepSeek's checkpoints).
enum class ParamKind : uint8_t { embedding, matrix, norm, bias, router, correction_bias };
std::string_view param_kind_name(ParamKind k);

struct ParamSpec {
  std::string name;  // the HF checkpoint name, e.g. "model.layers.3.mlp.experts.7.up_proj.weight"
  Shape shape;       // as in the checkpoint: Linear weights are (out, in)
  ParamKind kind = ParamKind::matrix;
  int64_t layer = -1;   // decoder block: [0, L) main, L + k MTP module k; -1 outside the layers
  int64_t expert = -1;  // routed expert index, -1 otherwise
  bool mtp = false;     // part of an MTP module
  // Non-empty for the per-module copies DeepSeek's checkpoints store of shared tensors:
  // model.layers.{L+k}.embed_tokens.weight (a copy of model.embed_tokens.weight) and
  // model.layers.{L+k}.shared_head.head.weight (of lm_head.weight, or of the embedding when tied).
  std::string tied_to;
  int64_t numel() const;
};

// Every tensor of the config in the checkpoint's layout, in model order: model.embed_tokens.weight,
// then per layer
//   self_attn: q_a_proj (q_lora_rank, C) [+ bias], q_a_layernorm (q_lora_rank),
//              q_b_proj (H·(nope+rope), q_lora_rank) | q_proj (H·(nope+rope), C);
//              kv_a_proj_with_mqa (kv_lora_rank + rope, C) [+ bias], kv_a_layernorm (kv_lora_rank),
//              kv_b_proj (H·(nope+v), kv_lora_rank), o_proj (C, H·v) [+ bias]          (MLA)
//              q_proj (H·D, C), k_proj (Hkv·D, C), v_proj (Hkv·D, C) [+ biases], o_proj (C, H·D)
//   input_layernorm (C), post_attention_layernorm (C),
//   mlp: gate_proj/up_proj (intermediate, C), down_proj (C, intermediate)        (dense layers)
//        gate.weight (E, C), gate.e_score_correction_bias (E) (topk_method noaux_tc),
//        experts.{j}.{gate,up}_proj.weight (I, C), experts.{j}.down_proj.weight (C, I),
//        shared_experts.{gate,up}_proj.weight (n_shared·I, C), down_proj (C, n_shared·I) (MoE)
// then model.norm.weight, lm_head.weight (V, C) unless tied, and with include_mtp each MTP module
// k at model.layers.{L+k}: embed_tokens (copy), enorm (C), hnorm (C), eh_proj (C, 2C), the decoder
// block above, shared_head.norm (C), shared_head.head (copy). Checked against transformers'
// state_dict() by tests/policy/manifest_test.cpp (fixtures from tests/golden/).
std::vector<ParamSpec> parameter_manifest(const ModelConfig& c, bool include_mtp = true);

struct ParamCounts {
  // Distinct parameters (copies of tied tensors counted once), including the correction biases
  // (transformers keeps those as buffers, so its num_parameters() is total − correction_bias).
  int64_t total = 0;
  // Per token: the parameters a token's forward pass multiplies with, i.e. total minus the input
  // embedding table (a lookup) and minus the routed experts it is not sent to ((E − K) experts per
  // MoE layer). With tied embeddings the shared matrix counts once, as the head. DeepSeek-V3 main
  // model: 36.6B (DeepSeek's "36.6B including 0.9B for the output head").
  int64_t active = 0;
  int64_t embedding = 0;        // model.embed_tokens.weight
  int64_t head = 0;             // lm_head.weight (0 when tied)
  int64_t routed_experts = 0;   // routed expert weights of the main model
  int64_t correction_bias = 0;  // e_score_correction_bias elements
  int64_t mtp = 0;              // MTP modules without their copies of the embedding and head
  int64_t mtp_active = 0;       // active parameters of the MTP modules (head included)
};
// Counts for the main model and, separately (mtp, mtp_active, not in total/active), the MTP
// modules.
ParamCounts count_parameters(const ModelConfig& c);

}  // namespace r1kit::policy
