// ModelConfig from/to HF config.json, validation, the parameter manifest and parameter counts.
// Defaults and the rules for each key are in policy/config.h.
#include "policy/config.h"

#include <cmath>
#include <filesystem>
#include <set>

#include "core/error.h"
#include "core/fs.h"

namespace r1kit::policy {
namespace {

namespace fs = std::filesystem;
using kernels::MoeScoring;
using kernels::MoeTopkMethod;
using kernels::RopeConfig;
using kernels::RopeLayout;
using kernels::RopeScaling;

constexpr ModelArch kArchs[] = {ModelArch::deepseek_v3, ModelArch::deepseek_v2, ModelArch::qwen2,
                                ModelArch::llama};

[[noreturn]] void unsupported(const std::string& where, std::string_view field, const Json& value,
                              std::string_view why) {
  R1_THROW("{}: field '{}' = {} is not supported: {}", where, field, value.dump(), why);
}
[[noreturn]] void invalid(const std::string& where, std::string_view field, const Json& value,
                          std::string_view why) {
  R1_THROW("{}: field '{}' = {} is invalid: {}", where, field, value.dump(), why);
}

// The value of a key, or nullptr when it is absent or null.
const Json* present(const Json& j, std::string_view key) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return nullptr;
  return &*it;
}

int64_t opt_int(const Json& j, std::string_view key, const std::string& where, int64_t dflt) {
  return get_optional<int64_t>(j, key, where, dflt);
}
double opt_num(const Json& j, std::string_view key, const std::string& where, double dflt) {
  return get_optional<double>(j, key, where, dflt);
}
bool opt_bool(const Json& j, std::string_view key, const std::string& where, bool dflt) {
  return get_optional<bool>(j, key, where, dflt);
}
int64_t req_int(const Json& j, std::string_view key, const std::string& where) {
  if (!present(j, key)) R1_THROW("{}: missing required field '{}' (an integer)", where, key);
  return get_required<int64_t>(j, key, where);
}

// bos/eos/pad: an int, a list of ints or null.
void parse_token_ids(const Json& j, std::string_view key, const std::string& where,
                     std::vector<int64_t>* ids, bool* is_list, std::optional<int64_t> dflt) {
  ids->clear();
  *is_list = false;
  auto it = j.find(key);
  if (it == j.end()) {
    if (dflt) ids->push_back(*dflt);
    return;
  }
  if (it->is_null()) return;
  if (it->is_array()) {
    *is_list = true;
    *ids = json_value_as<std::vector<int64_t>>(*it, key, where);
    return;
  }
  ids->push_back(json_value_as<int64_t>(*it, key, where));
}
Json token_ids_json(const std::vector<int64_t>& ids, bool is_list) {
  if (is_list) return Json(ids);
  if (ids.empty()) return Json(nullptr);
  return Json(ids[0]);
}

DType parse_dtype(const Json& j, const std::string& where) {
  const char* key = present(j, "dtype") ? "dtype" : "torch_dtype";
  const Json* v = present(j, key);
  if (!v) return DType::f32;
  if (!v->is_string()) invalid(where, key, *v, "expected a torch dtype name such as \"bfloat16\"");
  const auto& s = v->get_ref<const std::string&>();
  if (s == "bfloat16") return DType::bf16;
  if (s == "float16") return DType::f16;
  if (s == "float32") return DType::f32;
  unsupported(where, key, *v, "r1kit stores weights as bfloat16, float16 or float32");
}
std::string_view dtype_torch_name(DType t) {
  switch (t) {
    case DType::bf16:
      return "bfloat16";
    case DType::f16:
      return "float16";
    default:
      return "float32";
  }
}

// ---- RoPE

std::string rope_type_of(const Json& obj, const std::string& where, const std::string& field) {
  const Json* rt = present(obj, "rope_type");
  const Json* t = present(obj, "type");
  for (const Json* v : {rt, t})
    if (v && !v->is_string())
      invalid(where, field + (v == rt ? ".rope_type" : ".type"), *v, "expected a string");
  if (rt && t && *rt != *t)
    invalid(where, field + ".rope_type", *rt,
            fmt::format("it disagrees with {}.type = {}", field, t->dump()));
  if (rt) return rt->get<std::string>();
  if (t) return t->get<std::string>();
  return "default";
}

// Both objects present: every key they share must hold the same value.
void check_rope_objects_agree(const Json& scaling, const Json& params, const std::string& where) {
  const std::string a = rope_type_of(scaling, where, "rope_scaling");
  const std::string b = rope_type_of(params, where, "rope_parameters");
  if (a != b)
    R1_THROW(
        "{}: 'rope_scaling' (type \"{}\") and 'rope_parameters' (type \"{}\") disagree; keep one "
        "of them",
        where, a, b);
  for (const auto& [k, v] : scaling.items()) {
    if (k == "type" || k == "rope_type") continue;
    auto it = params.find(k);
    if (it == params.end()) continue;
    bool same =
        (v.is_number() && it->is_number()) ? v.get<double>() == it->get<double>() : v == *it;
    if (!same)
      R1_THROW(
          "{}: 'rope_scaling' and 'rope_parameters' disagree on '{}' ({} vs {}); keep one of them",
          where, k, v.dump(), it->dump());
  }
}

RopeConfig parse_rope(const Json& j, const std::string& where, int64_t dim,
                      int64_t max_position_embeddings) {
  auto object_or_null = [&](const char* key) -> const Json* {
    const Json* v = present(j, key);
    if (v && !v->is_object()) invalid(where, key, *v, "expected an object or null");
    return v;
  };
  const Json* scaling = object_or_null("rope_scaling");
  const Json* params = object_or_null("rope_parameters");
  if (params) {
    for (const auto& [k, v] : params->items())
      if (v.is_object())
        unsupported(where, "rope_parameters." + k, v,
                    "per-layer-type RoPE parameters (r1kit uses one RoPE for every layer)");
  }
  if (scaling && params) check_rope_objects_agree(*scaling, *params, where);
  // transformers 5: rope_scaling (when not null) replaces rope_parameters.
  const Json empty = Json::object();
  const Json& obj = scaling ? *scaling : params ? *params : empty;
  const std::string field = scaling ? "rope_scaling" : "rope_parameters";
  auto fname = [&](const char* key) { return field + "." + key; };

  RopeConfig r;
  r.dim = dim;
  // rope_theta inside the chosen object wins over the top-level key (transformers' setdefault).
  const Json* theta = present(obj, "rope_theta");
  std::string theta_field = fname("rope_theta");
  if (!theta) {
    theta = present(j, "rope_theta");
    theta_field = "rope_theta";
  }
  if (!theta && params && scaling) {
    theta = present(*params, "rope_theta");
    theta_field = "rope_parameters.rope_theta";
  }
  if (theta) {
    r.theta = json_value_as<double>(*theta, theta_field, where);
    if (!(r.theta > 0)) invalid(where, theta_field, *theta, "must be positive");
  }
  for (const Json* where_prf : {&obj, &j}) {
    if (const Json* prf = present(*where_prf, "partial_rotary_factor")) {
      const std::string f =
          where_prf == &obj ? fname("partial_rotary_factor") : std::string("partial_rotary_factor");
      if (json_value_as<double>(*prf, f, where) != 1.0)
        unsupported(where, f, *prf, "partial rotary embeddings (only 1.0)");
    }
  }

  const std::string type = rope_type_of(obj, where, field);
  auto number = [&](const char* key, std::optional<double> dflt) -> double {
    const Json* v = present(obj, key);
    if (!v) {
      if (!dflt)
        R1_THROW("{}: missing required field '{}' for rope type \"{}\"", where, fname(key), type);
      return *dflt;
    }
    return json_value_as<double>(*v, fname(key), where);
  };
  auto positive = [&](const char* key, double v) {
    if (!(v > 0))
      invalid(where, fname(key), present(obj, key) ? *present(obj, key) : Json(v),
              "must be positive");
  };
  auto original_max = [&]() -> int64_t {
    const Json* v = present(obj, "original_max_position_embeddings");
    int64_t o = v ? json_value_as<int64_t>(*v, fname("original_max_position_embeddings"), where)
                  : max_position_embeddings;
    if (o <= 0)
      invalid(where, fname("original_max_position_embeddings"), v ? *v : Json(o),
              "must be positive");
    return o;
  };
  if (type == "default") {
    r.scaling = RopeScaling::none;
  } else if (type == "linear") {
    r.scaling = RopeScaling::linear;
    r.factor = number("factor", std::nullopt);
    positive("factor", r.factor);
  } else if (type == "llama3") {
    r.scaling = RopeScaling::llama3;
    r.factor = number("factor", std::nullopt);
    r.low_freq_factor = number("low_freq_factor", std::nullopt);
    r.high_freq_factor = number("high_freq_factor", std::nullopt);
    positive("factor", r.factor);
    positive("low_freq_factor", r.low_freq_factor);
    positive("high_freq_factor", r.high_freq_factor);
    if (!(r.high_freq_factor > r.low_freq_factor))
      invalid(where, fname("high_freq_factor"), Json(r.high_freq_factor),
              fmt::format("must exceed low_freq_factor = {}", r.low_freq_factor));
    r.original_max_position_embeddings = original_max();
  } else if (type == "yarn") {
    r.scaling = RopeScaling::yarn;
    r.original_max_position_embeddings = original_max();
    r.factor = number("factor", static_cast<double>(max_position_embeddings) /
                                    static_cast<double>(r.original_max_position_embeddings));
    positive("factor", r.factor);
    // transformers: `get("beta_fast") or 32`, so 0 and null mean the default too.
    r.beta_fast = number("beta_fast", 32.0);
    if (r.beta_fast == 0) r.beta_fast = 32.0;
    r.beta_slow = number("beta_slow", 1.0);
    if (r.beta_slow == 0) r.beta_slow = 1.0;
    r.mscale = number("mscale", 0.0);
    r.mscale_all_dim = number("mscale_all_dim", 0.0);
    r.attention_factor = number("attention_factor", 0.0);
    if (const Json* t = present(obj, "truncate"))
      r.truncate = json_value_as<bool>(*t, fname("truncate"), where);
  } else {
    unsupported(where, field + (present(obj, "rope_type") ? ".rope_type" : ".type"), Json(type),
                "r1kit implements the rope types default, linear, llama3 and yarn");
  }
  return r;
}

Json rope_json(const RopeConfig& r, bool with_theta) {
  Json o = Json::object();
  auto set_type = [&](const char* t) {
    o["rope_type"] = t;
    o["type"] = t;  // the key older readers (DeepSeek's remote code, transformers 4.3x) look at
  };
  switch (r.scaling) {
    case RopeScaling::none:
      o["rope_type"] = "default";
      break;
    case RopeScaling::linear:
      set_type("linear");
      o["factor"] = r.factor;
      break;
    case RopeScaling::llama3:
      set_type("llama3");
      o["factor"] = r.factor;
      o["low_freq_factor"] = r.low_freq_factor;
      o["high_freq_factor"] = r.high_freq_factor;
      o["original_max_position_embeddings"] = r.original_max_position_embeddings;
      break;
    case RopeScaling::yarn:
      set_type("yarn");
      o["factor"] = r.factor;
      o["original_max_position_embeddings"] = r.original_max_position_embeddings;
      o["beta_fast"] = r.beta_fast;
      o["beta_slow"] = r.beta_slow;
      if (r.mscale != 0) o["mscale"] = r.mscale;
      if (r.mscale_all_dim != 0) o["mscale_all_dim"] = r.mscale_all_dim;
      if (r.attention_factor != 0) o["attention_factor"] = r.attention_factor;
      if (!r.truncate) o["truncate"] = false;
      break;
  }
  if (with_theta) o["rope_theta"] = r.theta;
  return o;
}

// ---- MoE routing

MoeScoring parse_scoring(const Json& j, const std::string& where, MoeScoring dflt) {
  const Json* v = present(j, "scoring_func");
  if (!v) return dflt;
  if (*v == "softmax") return MoeScoring::softmax;
  if (*v == "sigmoid") return MoeScoring::sigmoid;
  unsupported(where, "scoring_func", *v, "r1kit implements \"softmax\" and \"sigmoid\"");
}
MoeTopkMethod parse_topk_method(const Json& j, const std::string& where, MoeTopkMethod dflt) {
  const Json* v = present(j, "topk_method");
  if (!v) return dflt;
  if (*v == "greedy") return MoeTopkMethod::greedy;
  if (*v == "group_limited_greedy") return MoeTopkMethod::group_limited_greedy;
  if (*v == "noaux_tc") return MoeTopkMethod::noaux_tc;
  unsupported(where, "topk_method", *v,
              "r1kit implements \"greedy\", \"group_limited_greedy\" and \"noaux_tc\"");
}

// Keys that are derived, aliases, or describe files r1kit does not write: not carried in `extra`.
const std::set<std::string> kDroppedKeys = {
    "quantization_config", "auto_map",    "transformers_version", "_name_or_path", "_commit_hash",
    "num_local_experts",   "num_experts", "num_mtp_layers",       "qk_head_dim"};

// Keys parse() reads; everything else goes to `extra`.
const std::set<std::string> kOwnedKeys = {"architectures",
                                          "model_type",
                                          "vocab_size",
                                          "hidden_size",
                                          "intermediate_size",
                                          "num_hidden_layers",
                                          "num_attention_heads",
                                          "num_key_value_heads",
                                          "head_dim",
                                          "hidden_act",
                                          "max_position_embeddings",
                                          "initializer_range",
                                          "rms_norm_eps",
                                          "tie_word_embeddings",
                                          "bos_token_id",
                                          "eos_token_id",
                                          "pad_token_id",
                                          "dtype",
                                          "torch_dtype",
                                          "rope_theta",
                                          "rope_scaling",
                                          "rope_parameters",
                                          "partial_rotary_factor",
                                          "attention_bias",
                                          "mlp_bias",
                                          "q_lora_rank",
                                          "kv_lora_rank",
                                          "qk_nope_head_dim",
                                          "qk_rope_head_dim",
                                          "v_head_dim",
                                          "n_routed_experts",
                                          "n_shared_experts",
                                          "moe_intermediate_size",
                                          "num_experts_per_tok",
                                          "n_group",
                                          "topk_group",
                                          "topk_method",
                                          "scoring_func",
                                          "norm_topk_prob",
                                          "routed_scaling_factor",
                                          "first_k_dense_replace",
                                          "moe_layer_freq",
                                          "num_nextn_predict_layers",
                                          "rope_interleave",
                                          "use_sliding_window",
                                          "sliding_window",
                                          "layer_types"};

void parse_quantization(const Json& j, const std::string& where, ModelConfig* c) {
  const Json* q = present(j, "quantization_config");
  if (!q) return;
  if (!q->is_object()) invalid(where, "quantization_config", *q, "expected an object");
  const Json* method = present(*q, "quant_method");
  if (!method || *method != "fp8")
    unsupported(where, "quantization_config.quant_method", method ? *method : Json(nullptr),
                "r1kit reads DeepSeek's block FP8 checkpoints (\"fp8\") and unquantised ones");
  if (const Json* fmt = present(*q, "fmt"); fmt && *fmt != "e4m3")
    unsupported(where, "quantization_config.fmt", *fmt, "only \"e4m3\" FP8 weights");
  std::vector<int64_t> block = {128, 128};
  if (const Json* b = present(*q, "weight_block_size")) {
    block = json_value_as<std::vector<int64_t>>(*b, "quantization_config.weight_block_size", where);
    if (block.size() != 2 || block[0] <= 0 || block[1] <= 0)
      invalid(where, "quantization_config.weight_block_size", *b,
              "expected two positive block sizes [rows, cols]");
  }
  c->fp8_block_rows = block[0];
  c->fp8_block_cols = block[1];
}

}  // namespace

// ---- Names
// ---------------------------------------------------------------------------------------

std::string_view model_arch_name(ModelArch a) {
  switch (a) {
    case ModelArch::deepseek_v3:
      return "deepseek_v3";
    case ModelArch::deepseek_v2:
      return "deepseek_v2";
    case ModelArch::qwen2:
      return "qwen2";
    case ModelArch::llama:
      return "llama";
  }
  return "?";
}
std::string_view model_arch_class(ModelArch a) {
  switch (a) {
    case ModelArch::deepseek_v3:
      return "DeepseekV3ForCausalLM";
    case ModelArch::deepseek_v2:
      return "DeepseekV2ForCausalLM";
    case ModelArch::qwen2:
      return "Qwen2ForCausalLM";
    case ModelArch::llama:
      return "LlamaForCausalLM";
  }
  return "?";
}
std::optional<ModelArch> model_arch_from_name(std::string_view model_type) {
  for (ModelArch a : kArchs)
    if (model_arch_name(a) == model_type) return a;
  return std::nullopt;
}
std::string model_arch_list() {
  std::string s;
  for (ModelArch a : kArchs) s += (s.empty() ? "" : ", ") + std::string(model_arch_name(a));
  return s;
}

// ---- ModelConfig
// ---------------------------------------------------------------------------------

bool ModelConfig::is_moe_layer(int64_t layer) const {
  return n_routed_experts > 0 && layer >= first_k_dense_replace && moe_layer_freq > 0 &&
         layer % moe_layer_freq == 0;
}

ModelConfig ModelConfig::from_json(const Json& j, const std::string& where) {
  require_object(j, where);
  ModelConfig c;
  const Json* mt = present(j, "model_type");
  if (!mt)
    R1_THROW("{}: missing required field 'model_type' (one of {})", where, model_arch_list());
  if (!mt->is_string()) invalid(where, "model_type", *mt, "expected a string");
  auto arch = model_arch_from_name(mt->get_ref<const std::string&>());
  if (!arch)
    unsupported(where, "model_type", *mt,
                fmt::format("r1kit implements the architectures {}", model_arch_list()));
  c.arch = *arch;
  const bool v3 = c.arch == ModelArch::deepseek_v3, v2 = c.arch == ModelArch::deepseek_v2;
  const bool mla = c.is_mla();

  if (const Json* act = present(j, "hidden_act"); act && *act != "silu")
    unsupported(where, "hidden_act", *act, "r1kit's MLPs are SwiGLU (\"silu\")");

  c.vocab_size = req_int(j, "vocab_size", where);
  c.hidden_size = req_int(j, "hidden_size", where);
  c.intermediate_size = req_int(j, "intermediate_size", where);
  c.num_hidden_layers = req_int(j, "num_hidden_layers", where);
  c.num_attention_heads = req_int(j, "num_attention_heads", where);
  c.num_key_value_heads = opt_int(j, "num_key_value_heads", where, c.num_attention_heads);
  c.rms_norm_eps = opt_num(j, "rms_norm_eps", where, 1e-6);
  c.initializer_range = opt_num(j, "initializer_range", where, 0.02);
  c.tie_word_embeddings = opt_bool(j, "tie_word_embeddings", where, false);
  int64_t default_max_pos = v3 ? 4096 : c.arch == ModelArch::qwen2 ? 32768 : 2048;
  c.max_position_embeddings = opt_int(j, "max_position_embeddings", where, default_max_pos);
  c.dtype = parse_dtype(j, where);
  std::optional<int64_t> bos = v3                           ? 0
                               : c.arch == ModelArch::qwen2 ? std::nullopt
                                                            : std::optional<int64_t>(1);
  std::optional<int64_t> eos = v3                           ? 1
                               : c.arch == ModelArch::qwen2 ? std::nullopt
                                                            : std::optional<int64_t>(2);
  parse_token_ids(j, "bos_token_id", where, &c.bos_token_id, &c.bos_token_list, bos);
  parse_token_ids(j, "eos_token_id", where, &c.eos_token_id, &c.eos_token_list, eos);
  parse_token_ids(j, "pad_token_id", where, &c.pad_token_id, &c.pad_token_list, std::nullopt);
  if (const Json* mb = present(j, "mlp_bias"); mb && json_value_as<bool>(*mb, "mlp_bias", where))
    unsupported(where, "mlp_bias", *mb, "MLP biases (r1kit's MLPs have none)");
  parse_quantization(j, where, &c);

  if (mla) {
    c.attention_bias = opt_bool(j, "attention_bias", where, false);
    if (!j.contains("q_lora_rank"))
      R1_THROW("{}: missing required field 'q_lora_rank' (an integer, or null for a plain q_proj)",
               where);
    c.q_lora_rank = opt_int(j, "q_lora_rank", where, 0);
    c.kv_lora_rank = req_int(j, "kv_lora_rank", where);
    c.qk_nope_head_dim = req_int(j, "qk_nope_head_dim", where);
    c.qk_rope_head_dim = req_int(j, "qk_rope_head_dim", where);
    c.v_head_dim = req_int(j, "v_head_dim", where);
    c.head_dim = c.qk_rope_head_dim;

    c.n_routed_experts = opt_int(j, "n_routed_experts", where, 0);
    c.routing.n_routed_experts = c.n_routed_experts;
    if (c.n_routed_experts > 0) {
      c.moe_intermediate_size = req_int(j, "moe_intermediate_size", where);
      c.routing.num_experts_per_tok = req_int(j, "num_experts_per_tok", where);
    } else {
      c.moe_intermediate_size = opt_int(j, "moe_intermediate_size", where, 0);
      c.routing.num_experts_per_tok = opt_int(j, "num_experts_per_tok", where, 0);
    }
    c.n_shared_experts = opt_int(j, "n_shared_experts", where, v3 ? 1 : 2);
    c.first_k_dense_replace = opt_int(j, "first_k_dense_replace", where, v3 ? 3 : 0);
    c.moe_layer_freq = opt_int(j, "moe_layer_freq", where, 1);
    c.routing.scoring = parse_scoring(j, where, v3 ? MoeScoring::sigmoid : MoeScoring::softmax);
    c.routing.topk_method =
        parse_topk_method(j, where, v3 ? MoeTopkMethod::noaux_tc : MoeTopkMethod::greedy);
    c.routing.n_group = opt_int(j, "n_group", where, v3 ? 8 : 1);
    c.routing.topk_group = opt_int(j, "topk_group", where, v3 ? 4 : 1);
    c.routing.norm_topk_prob = opt_bool(j, "norm_topk_prob", where, v3);
    c.routing.routed_scaling_factor = opt_num(j, "routed_scaling_factor", where, v3 ? 2.5 : 1.0);
    if (v2) {
      if (c.routing.scoring != MoeScoring::softmax)
        unsupported(where, "scoring_func", j["scoring_func"],
                    "deepseek_v2 scores with softmax (DeepSeek's V2 code and transformers' "
                    "DeepseekV2 implement nothing else)");
      if (c.routing.topk_method == MoeTopkMethod::noaux_tc)
        unsupported(where, "topk_method", j["topk_method"],
                    "deepseek_v2 routes with \"greedy\" or \"group_limited_greedy\" (noaux_tc is "
                    "deepseek_v3's)");
    }
    c.num_nextn_predict_layers = v3 ? opt_int(j, "num_nextn_predict_layers", where, 1) : 0;
    const bool interleave = v3 ? opt_bool(j, "rope_interleave", where, true) : true;
    c.rope = parse_rope(j, where, c.qk_rope_head_dim, c.max_position_embeddings);
    c.rope.layout = interleave ? RopeLayout::interleaved : RopeLayout::half_split;
  } else {
    // qwen2 has q/k/v biases whatever its config says (transformers hard-codes bias=True).
    c.attention_bias =
        c.arch == ModelArch::qwen2 ? true : opt_bool(j, "attention_bias", where, false);
    if (c.arch == ModelArch::qwen2) {
      if (const Json* sw = present(j, "use_sliding_window");
          sw && json_value_as<bool>(*sw, "use_sliding_window", where))
        unsupported(where, "use_sliding_window", *sw, "sliding-window attention");
    }
    if (const Json* lt = present(j, "layer_types")) {
      for (const auto& t : *lt)
        if (t != "full_attention")
          unsupported(where, "layer_types", *lt,
                      "every layer must be \"full_attention\" (no sliding-window layers)");
    }
    if (const Json* hd = present(j, "head_dim")) {
      c.head_dim = json_value_as<int64_t>(*hd, "head_dim", where);
    } else {
      if (c.num_attention_heads <= 0 || c.hidden_size % c.num_attention_heads != 0)
        R1_THROW(
            "{}: hidden_size = {} is not divisible by num_attention_heads = {} and there is no "
            "head_dim",
            where, c.hidden_size, c.num_attention_heads);
      c.head_dim = c.hidden_size / c.num_attention_heads;
    }
    c.rope = parse_rope(j, where, c.head_dim, c.max_position_embeddings);
    c.rope.layout = RopeLayout::half_split;
  }

  for (const auto& [k, v] : j.items()) {
    if (kOwnedKeys.count(k) || kDroppedKeys.count(k)) continue;
    if (mla && k == "head_dim") continue;  // derived (= qk_rope_head_dim) for MLA
    c.extra[k] = v;
  }
  c.validate(where);
  return c;
}

ModelConfig ModelConfig::load(const std::string& path) {
  std::error_code ec;
  std::string file = path;
  if (fs::is_directory(path, ec)) file = (fs::path(path) / "config.json").string();
  return from_json(read_json_file(file), file);
}

void ModelConfig::validate(const std::string& where) const {
  auto positive = [&](const char* name, int64_t v) {
    if (v <= 0) R1_THROW("{}: {} = {} must be positive", where, name, v);
  };
  positive("vocab_size", vocab_size);
  positive("hidden_size", hidden_size);
  positive("num_hidden_layers", num_hidden_layers);
  positive("num_attention_heads", num_attention_heads);
  if (!(rms_norm_eps > 0)) R1_THROW("{}: rms_norm_eps = {} must be positive", where, rms_norm_eps);
  if (!(initializer_range >= 0))
    R1_THROW("{}: initializer_range = {} must not be negative", where, initializer_range);
  if (max_position_embeddings <= 0)
    R1_THROW("{}: max_position_embeddings = {} must be positive", where, max_position_embeddings);
  bool any_dense = false;
  for (int64_t l = 0; l < num_hidden_layers + num_nextn_predict_layers; ++l)
    any_dense = any_dense || !is_moe_layer(l);
  if (any_dense) positive("intermediate_size", intermediate_size);
  if (is_mla()) {
    positive("kv_lora_rank", kv_lora_rank);
    positive("qk_rope_head_dim", qk_rope_head_dim);
    positive("v_head_dim", v_head_dim);
    if (qk_nope_head_dim < 0)
      R1_THROW("{}: qk_nope_head_dim = {} must not be negative", where, qk_nope_head_dim);
    if (q_lora_rank < 0)
      R1_THROW("{}: q_lora_rank = {} must be positive or null", where, q_lora_rank);
    if (qk_rope_head_dim % 2 != 0)
      R1_THROW("{}: qk_rope_head_dim = {} must be even (RoPE rotates pairs)", where,
               qk_rope_head_dim);
  } else {
    positive("head_dim", head_dim);
    positive("num_key_value_heads", num_key_value_heads);
    if (num_attention_heads % num_key_value_heads != 0)
      R1_THROW("{}: num_attention_heads = {} is not a multiple of num_key_value_heads = {}", where,
               num_attention_heads, num_key_value_heads);
    if (head_dim % 2 != 0)
      R1_THROW("{}: head_dim = {} must be even (RoPE rotates pairs)", where, head_dim);
  }
  if (num_nextn_predict_layers < 0)
    R1_THROW("{}: num_nextn_predict_layers = {} must not be negative", where,
             num_nextn_predict_layers);
  if (num_nextn_predict_layers > 0 && arch != ModelArch::deepseek_v3)
    R1_THROW("{}: num_nextn_predict_layers = {}: MTP modules exist only for deepseek_v3", where,
             num_nextn_predict_layers);
  if (n_routed_experts < 0)
    R1_THROW("{}: n_routed_experts = {} must not be negative", where, n_routed_experts);
  if (n_routed_experts > 0) {
    if (!is_mla())
      R1_THROW("{}: n_routed_experts = {}: routed experts exist only for deepseek models", where,
               n_routed_experts);
    const auto& r = routing;
    if (r.n_routed_experts != n_routed_experts)
      R1_THROW("{}: routing.n_routed_experts = {} differs from n_routed_experts = {}", where,
               r.n_routed_experts, n_routed_experts);
    positive("moe_intermediate_size", moe_intermediate_size);
    if (n_shared_experts < 0)
      R1_THROW("{}: n_shared_experts = {} must not be negative", where, n_shared_experts);
    if (r.num_experts_per_tok < 1 || r.num_experts_per_tok > n_routed_experts)
      R1_THROW("{}: num_experts_per_tok = {} must be in [1, n_routed_experts = {}]", where,
               r.num_experts_per_tok, n_routed_experts);
    if (first_k_dense_replace < 0)
      R1_THROW("{}: first_k_dense_replace = {} must not be negative", where, first_k_dense_replace);
    if (moe_layer_freq < 1)
      R1_THROW("{}: moe_layer_freq = {} must be at least 1", where, moe_layer_freq);
    if (!(r.routed_scaling_factor > 0))
      R1_THROW("{}: routed_scaling_factor = {} must be positive", where, r.routed_scaling_factor);
    if (r.topk_method != MoeTopkMethod::greedy) {
      const char* method = kernels::moe_topk_method_name(r.topk_method);
      if (r.n_group < 1)
        R1_THROW("{}: n_group = {} must be at least 1 for topk_method \"{}\"", where, r.n_group,
                 method);
      if (n_routed_experts % r.n_group != 0)
        R1_THROW(
            "{}: n_routed_experts = {} is not divisible by n_group = {} (topk_method \"{}\" "
            "splits the experts into equal groups)",
            where, n_routed_experts, r.n_group, method);
      if (r.topk_group < 1 || r.topk_group > r.n_group)
        R1_THROW("{}: topk_group = {} must be in [1, n_group = {}]", where, r.topk_group,
                 r.n_group);
      const int64_t per_group = n_routed_experts / r.n_group;
      if (r.topk_method == MoeTopkMethod::noaux_tc && per_group < 2)
        R1_THROW(
            "{}: n_routed_experts / n_group = {} / {} = {}: noaux_tc scores a group by its top 2 "
            "experts, so groups need at least 2",
            where, n_routed_experts, r.n_group, per_group);
      if (r.num_experts_per_tok > r.topk_group * per_group)
        R1_THROW(
            "{}: num_experts_per_tok = {} exceeds the {} experts of the topk_group = {} groups a "
            "token may use",
            where, r.num_experts_per_tok, r.topk_group * per_group, r.topk_group);
    }
  }
  if (rope.dim <= 0 || rope.dim % 2 != 0)
    R1_THROW("{}: the rotary dimension {} must be positive and even", where, rope.dim);
  try {
    (void)kernels::rope_inv_freq(rope);
  } catch (const Error& e) {
    R1_THROW("{}: {}", where, e.what());
  }
}

Json ModelConfig::to_json() const {
  Json j = Json::object();
  for (const auto& [k, v] : extra.items())
    if (!kDroppedKeys.count(k) && !kOwnedKeys.count(k)) j[k] = v;
  j["architectures"] = Json::array({std::string(model_arch_class(arch))});
  j["model_type"] = std::string(model_arch_name(arch));
  j["vocab_size"] = vocab_size;
  j["hidden_size"] = hidden_size;
  j["intermediate_size"] = intermediate_size;
  j["num_hidden_layers"] = num_hidden_layers;
  j["num_attention_heads"] = num_attention_heads;
  j["num_key_value_heads"] = num_key_value_heads;
  j["hidden_act"] = "silu";
  j["max_position_embeddings"] = max_position_embeddings;
  j["initializer_range"] = initializer_range;
  j["rms_norm_eps"] = rms_norm_eps;
  j["tie_word_embeddings"] = tie_word_embeddings;
  j["bos_token_id"] = token_ids_json(bos_token_id, bos_token_list);
  j["eos_token_id"] = token_ids_json(eos_token_id, eos_token_list);
  j["pad_token_id"] = token_ids_json(pad_token_id, pad_token_list);
  j["dtype"] = std::string(dtype_torch_name(dtype));
  j["torch_dtype"] = std::string(dtype_torch_name(dtype));
  j["rope_theta"] = rope.theta;
  j["rope_scaling"] = rope.scaling == RopeScaling::none ? Json(nullptr) : rope_json(rope, false);
  j["rope_parameters"] = rope_json(rope, true);
  if (is_mla()) {
    const bool v3 = arch == ModelArch::deepseek_v3;
    j["attention_bias"] = attention_bias;
    j["q_lora_rank"] = q_lora_rank > 0 ? Json(q_lora_rank) : Json(nullptr);
    j["kv_lora_rank"] = kv_lora_rank;
    j["qk_nope_head_dim"] = qk_nope_head_dim;
    j["qk_rope_head_dim"] = qk_rope_head_dim;
    j["v_head_dim"] = v_head_dim;
    j["n_routed_experts"] = n_routed_experts > 0 ? Json(n_routed_experts) : Json(nullptr);
    j["num_experts_per_tok"] =
        n_routed_experts > 0 ? Json(routing.num_experts_per_tok) : Json(nullptr);
    j["n_shared_experts"] = n_shared_experts;
    j["moe_intermediate_size"] = moe_intermediate_size;
    j["first_k_dense_replace"] = first_k_dense_replace;
    j["moe_layer_freq"] = moe_layer_freq;
    j["n_group"] = routing.n_group;
    j["topk_group"] = routing.topk_group;
    j["topk_method"] = kernels::moe_topk_method_name(routing.topk_method);
    j["scoring_func"] = kernels::moe_scoring_name(routing.scoring);
    j["norm_topk_prob"] = routing.norm_topk_prob;
    j["routed_scaling_factor"] = routing.routed_scaling_factor;
    if (v3) {
      j["rope_interleave"] = rope.layout == RopeLayout::interleaved;
      j["num_nextn_predict_layers"] = num_nextn_predict_layers;
    } else {
      j["mlp_bias"] = false;
    }
  } else {
    j["head_dim"] = head_dim;
    if (arch == ModelArch::llama) {
      j["attention_bias"] = attention_bias;
      j["mlp_bias"] = false;
    } else {
      j["use_sliding_window"] = false;
    }
  }
  return j;
}

void ModelConfig::save(const std::string& path) const {
  write_json_file_atomic(path, to_json(), 2);
}

Json describe_config(const ModelConfig& c) {
  Json d = {{"model_type", model_arch_name(c.arch)},
            {"architecture", model_arch_class(c.arch)},
            {"vocab_size", c.vocab_size},
            {"hidden_size", c.hidden_size},
            {"num_hidden_layers", c.num_hidden_layers},
            {"num_attention_heads", c.num_attention_heads},
            {"tie_word_embeddings", c.tie_word_embeddings},
            {"max_position_embeddings", c.max_position_embeddings},
            {"dtype", dtype_torch_name(c.dtype)}};
  if (c.is_mla()) {
    d["attention"] = {{"kind", "mla"},
                      {"q_lora_rank", c.q_lora_rank > 0 ? Json(c.q_lora_rank) : Json(nullptr)},
                      {"kv_lora_rank", c.kv_lora_rank},
                      {"qk_nope_head_dim", c.qk_nope_head_dim},
                      {"qk_rope_head_dim", c.qk_rope_head_dim},
                      {"v_head_dim", c.v_head_dim},
                      {"bias", c.attention_bias}};
  } else {
    d["attention"] = {{"kind", "gqa"},
                      {"num_key_value_heads", c.num_key_value_heads},
                      {"head_dim", c.head_dim},
                      {"bias", c.attention_bias}};
  }
  int64_t moe_layers = 0;
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) moe_layers += c.is_moe_layer(l) ? 1 : 0;
  d["mlp"] = {{"intermediate_size", c.intermediate_size},
              {"dense_layers", c.num_hidden_layers - moe_layers},
              {"moe_layers", moe_layers}};
  if (c.is_moe()) {
    const auto& r = c.routing;
    d["moe"] = {{"n_routed_experts", c.n_routed_experts},
                {"num_experts_per_tok", r.num_experts_per_tok},
                {"n_shared_experts", c.n_shared_experts},
                {"moe_intermediate_size", c.moe_intermediate_size},
                {"scoring_func", kernels::moe_scoring_name(r.scoring)},
                {"topk_method", kernels::moe_topk_method_name(r.topk_method)},
                {"n_group", r.n_group},
                {"topk_group", r.topk_group},
                {"norm_topk_prob", r.norm_topk_prob},
                {"routed_scaling_factor", r.routed_scaling_factor},
                {"first_k_dense_replace", c.first_k_dense_replace},
                {"moe_layer_freq", c.moe_layer_freq}};
  }
  d["mtp_modules"] = c.num_nextn_predict_layers;
  d["rope"] = rope_json(c.rope, true);
  d["rope"]["dim"] = c.rope.dim;
  d["rope"]["layout"] = c.rope.layout == RopeLayout::interleaved ? "interleaved" : "half_split";
  if (c.fp8_block_rows > 0)
    d["quantization"] = {{"fp8_e4m3_blocks", {c.fp8_block_rows, c.fp8_block_cols}}};
  const ParamCounts p = count_parameters(c);
  d["parameters"] = {{"total", p.total},
                     {"active", p.active},
                     {"embedding", p.embedding},
                     {"head", p.head},
                     {"routed_experts", p.routed_experts},
                     {"mtp", p.mtp},
                     {"mtp_active", p.mtp_active}};
  return d;
}

// ---- Manifest
// ------------------------------------------------------------------------------------

std::string_view param_kind_name(ParamKind k) {
  switch (k) {
    case ParamKind::embedding:
      return "embedding";
    case ParamKind::matrix:
      return "matrix";
    case ParamKind::norm:
      return "norm";
    case ParamKind::bias:
      return "bias";
    case ParamKind::router:
      return "router";
    case ParamKind::correction_bias:
      return "correction_bias";
  }
  return "?";
}

int64_t ParamSpec::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::vector<ParamSpec> parameter_manifest(const ModelConfig& c, bool include_mtp) {
  std::vector<ParamSpec> out;
  const int64_t C = c.hidden_size, H = c.num_attention_heads;
  int64_t layer = -1;
  bool mtp = false;
  auto add = [&](std::string name, Shape shape, ParamKind kind, int64_t expert = -1,
                 std::string tied_to = "") {
    ParamSpec s;
    s.name = std::move(name);
    s.shape = std::move(shape);
    s.kind = kind;
    s.layer = layer;
    s.expert = expert;
    s.mtp = mtp;
    s.tied_to = std::move(tied_to);
    out.push_back(std::move(s));
  };
  auto linear = [&](const std::string& prefix, int64_t out_dim, int64_t in_dim, bool bias) {
    add(prefix + ".weight", {out_dim, in_dim}, ParamKind::matrix);
    if (bias) add(prefix + ".bias", {out_dim}, ParamKind::bias);
  };
  auto mlp = [&](const std::string& prefix, int64_t width, int64_t expert) {
    add(prefix + ".gate_proj.weight", {width, C}, ParamKind::matrix, expert);
    add(prefix + ".up_proj.weight", {width, C}, ParamKind::matrix, expert);
    add(prefix + ".down_proj.weight", {C, width}, ParamKind::matrix, expert);
  };
  // One decoder block at model.layers.{l}.
  auto block = [&](int64_t l) {
    const std::string p = fmt::format("model.layers.{}.", l);
    const std::string a = p + "self_attn.";
    if (c.is_mla()) {
      const int64_t qk = c.qk_head_dim();
      if (c.q_lora_rank > 0) {
        linear(a + "q_a_proj", c.q_lora_rank, C, c.attention_bias);
        add(a + "q_a_layernorm.weight", {c.q_lora_rank}, ParamKind::norm);
        linear(a + "q_b_proj", H * qk, c.q_lora_rank, false);
      } else {
        linear(a + "q_proj", H * qk, C, false);
      }
      linear(a + "kv_a_proj_with_mqa", c.kv_lora_rank + c.qk_rope_head_dim, C, c.attention_bias);
      add(a + "kv_a_layernorm.weight", {c.kv_lora_rank}, ParamKind::norm);
      linear(a + "kv_b_proj", H * (c.qk_nope_head_dim + c.v_head_dim), c.kv_lora_rank, false);
      linear(a + "o_proj", C, H * c.v_head_dim, c.attention_bias);
    } else {
      const int64_t D = c.head_dim, KV = c.num_key_value_heads;
      linear(a + "q_proj", H * D, C, c.attention_bias);
      linear(a + "k_proj", KV * D, C, c.attention_bias);
      linear(a + "v_proj", KV * D, C, c.attention_bias);
      linear(a + "o_proj", C, H * D, c.arch == ModelArch::llama && c.attention_bias);
    }
    add(p + "input_layernorm.weight", {C}, ParamKind::norm);
    add(p + "post_attention_layernorm.weight", {C}, ParamKind::norm);
    if (c.is_moe_layer(l)) {
      const int64_t E = c.n_routed_experts, I = c.moe_intermediate_size;
      add(p + "mlp.gate.weight", {E, C}, ParamKind::router);
      if (c.routing.topk_method == MoeTopkMethod::noaux_tc)
        add(p + "mlp.gate.e_score_correction_bias", {E}, ParamKind::correction_bias);
      for (int64_t e = 0; e < E; ++e) mlp(fmt::format("{}mlp.experts.{}", p, e), I, e);
      if (c.n_shared_experts > 0) mlp(p + "mlp.shared_experts", c.n_shared_experts * I, -1);
    } else {
      mlp(p + "mlp", c.intermediate_size, -1);
    }
  };

  const std::string embed = "model.embed_tokens.weight";
  const std::string head = c.tie_word_embeddings ? embed : "lm_head.weight";
  add(embed, {c.vocab_size, C}, ParamKind::embedding);
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    layer = l;
    block(l);
  }
  layer = -1;
  add("model.norm.weight", {C}, ParamKind::norm);
  if (!c.tie_word_embeddings) add("lm_head.weight", {c.vocab_size, C}, ParamKind::matrix);
  if (include_mtp) {
    for (int64_t k = 0; k < c.num_nextn_predict_layers; ++k) {
      const int64_t l = c.num_hidden_layers + k;
      const std::string p = fmt::format("model.layers.{}.", l);
      layer = l;
      mtp = true;
      add(p + "embed_tokens.weight", {c.vocab_size, C}, ParamKind::embedding, -1, embed);
      add(p + "enorm.weight", {C}, ParamKind::norm);
      add(p + "hnorm.weight", {C}, ParamKind::norm);
      add(p + "eh_proj.weight", {C, 2 * C}, ParamKind::matrix);
      block(l);
      add(p + "shared_head.norm.weight", {C}, ParamKind::norm);
      add(p + "shared_head.head.weight", {c.vocab_size, C}, ParamKind::matrix, -1, head);
    }
  }
  return out;
}

ParamCounts count_parameters(const ModelConfig& c) {
  ParamCounts p;
  int64_t routed_mtp = 0;
  for (const ParamSpec& s : parameter_manifest(c, true)) {
    if (!s.tied_to.empty()) continue;  // copies
    const int64_t n = s.numel();
    if (s.mtp) {
      p.mtp += n;
      if (s.expert >= 0) routed_mtp += n;
      continue;
    }
    p.total += n;
    if (s.expert >= 0) p.routed_experts += n;
    if (s.kind == ParamKind::correction_bias) p.correction_bias += n;
    if (s.name == "model.embed_tokens.weight") p.embedding = n;
    if (s.name == "lm_head.weight") p.head = n;
  }
  // Per token, K of the E experts of a MoE layer run: (E − K) / E of the routed weights stay idle
  // (every expert has the same size, so the division is exact).
  const int64_t E = c.n_routed_experts, K = c.routing.num_experts_per_tok;
  auto idle = [&](int64_t routed) { return E > 0 ? routed / E * (E - K) : 0; };
  p.active = p.total - idle(p.routed_experts) - (c.tie_word_embeddings ? 0 : p.embedding);
  // An MTP module runs its own block and the shared head.
  const int64_t head = c.vocab_size * c.hidden_size;
  p.mtp_active = p.mtp == 0 ? 0 : p.mtp - idle(routed_mtp) + c.num_nextn_predict_layers * head;
  return p;
}

}  // namespace r1kit::policy
