// llama2.c checkpoint and tokenizer readers and the conversion to the HF Llama layout. The file
// formats are described field by field in policy/llama2c.h.
#include "policy/llama2c.h"

#include <cstring>
#include <filesystem>

#include "core/error.h"
#include "core/fs.h"
#include "policy/checkpoint.h"

namespace r1kit::policy {
namespace {

constexpr uint32_t kLlama2cMagic = 0x616b3432;  // "ak42": llama2.c's version 1/2 export format

class Reader {
 public:
  Reader(const MappedFile& f, std::string label) : f_(f), label_(std::move(label)) {}
  bool has(size_t n) const { return pos_ + n <= f_.size(); }
  template <class T>
  T scalar(const char* what) {
    R1_CHECK(has(sizeof(T)), "{}: ends at byte {} inside {}", label_, f_.size(), what);
    T v;
    std::memcpy(&v, f_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  std::vector<float> floats(int64_t n, const std::string& what) {
    const size_t bytes = static_cast<size_t>(n) * 4;
    R1_CHECK(has(bytes), "{}: ends at byte {} inside {} ({} floats from byte {})", label_,
             f_.size(), what, n, pos_);
    std::vector<float> v(static_cast<size_t>(n));
    std::memcpy(v.data(), f_.data() + pos_, bytes);
    pos_ += bytes;
    return v;
  }
  std::string bytes(size_t n, const char* what) {
    R1_CHECK(has(n), "{}: ends at byte {} inside {}", label_, f_.size(), what);
    std::string s(reinterpret_cast<const char*>(f_.data() + pos_), n);
    pos_ += n;
    return s;
  }
  void skip(size_t n) { pos_ += n; }
  size_t pos() const { return pos_; }

 private:
  const MappedFile& f_;
  std::string label_;
  size_t pos_ = 0;
};

// Rows of one (rows, cols) matrix made of heads of `head_size` rows, permuted per head from
// interleaved-pair to half-split RoPE.
std::vector<float> permute_rope_rows(const std::vector<float>& w, int64_t rows, int64_t cols,
                                     int64_t head_size) {
  std::vector<float> out(w.size());
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t head = r / head_size, within = r % head_size;
    const int64_t src = head * head_size + llama2c_rope_row(within, head_size);
    std::memcpy(out.data() + r * cols, w.data() + src * cols, static_cast<size_t>(cols) * 4);
  }
  return out;
}

}  // namespace

int64_t llama2c_rope_row(int64_t new_row, int64_t head_size) {
  const int64_t half = head_size / 2;
  const int64_t t = new_row / half, j = new_row % half;
  return 2 * j + t;
}

Llama2cModel read_llama2c(const std::string& path) {
  const MappedFile f = MappedFile::open(path);
  Reader in(f, path);
  Llama2cModel m;
  Llama2cHeader& h = m.header;
  R1_CHECK(f.size() >= 28, "{}: {} bytes is too short for a llama2.c checkpoint header (28 bytes)",
           path, f.size());
  {
    uint32_t magic;
    std::memcpy(&magic, f.data(), 4);
    R1_CHECK(magic != kLlama2cMagic,
             "{}: this is llama2.c's version 1/2 export format (magic \"ak42\"); only the legacy "
             "format is supported (export with `python export.py --version 0`)",
             path);
  }
  h.dim = in.scalar<int32_t>("the header");
  h.hidden_dim = in.scalar<int32_t>("the header");
  h.n_layers = in.scalar<int32_t>("the header");
  h.n_heads = in.scalar<int32_t>("the header");
  h.n_kv_heads = in.scalar<int32_t>("the header");
  h.vocab_size = in.scalar<int32_t>("the header");
  h.seq_len = in.scalar<int32_t>("the header");
  h.shared_classifier = h.vocab_size > 0;
  if (h.vocab_size < 0) h.vocab_size = -h.vocab_size;
  const auto positive = [&](const char* name, int32_t v) {
    R1_CHECK(v > 0, "{}: header field {} = {} must be positive (not a llama2.c checkpoint?)", path,
             name, v);
  };
  positive("dim", h.dim);
  positive("hidden_dim", h.hidden_dim);
  positive("n_layers", h.n_layers);
  positive("n_heads", h.n_heads);
  positive("n_kv_heads", h.n_kv_heads);
  positive("vocab_size", h.vocab_size);
  positive("seq_len", h.seq_len);
  R1_CHECK(h.dim % h.n_heads == 0, "{}: dim {} is not a multiple of n_heads {}", path, h.dim,
           h.n_heads);
  R1_CHECK(h.n_heads % h.n_kv_heads == 0, "{}: n_heads {} is not a multiple of n_kv_heads {}", path,
           h.n_heads, h.n_kv_heads);
  R1_CHECK(h.head_size() % 2 == 0, "{}: head size {} must be even (RoPE rotates pairs)", path,
           h.head_size());

  const int64_t L = h.n_layers, C = h.dim, F = h.hidden_dim, V = h.vocab_size;
  const int64_t hs = h.head_size(), kv = h.kv_dim();
  const int64_t floats = V * C + L * C + L * C * C + 2 * L * kv * C + L * C * C + L * C +
                         3 * L * C * F + C + h.seq_len * hs + (h.shared_classifier ? 0 : V * C);
  const uint64_t expected = 28 + static_cast<uint64_t>(floats) * 4;
  R1_CHECK(f.size() == expected,
           "{}: {} bytes, but the header (dim {}, hidden_dim {}, n_layers {}, n_heads {}, "
           "n_kv_heads {}, vocab_size {}{}, seq_len {}) implies {} bytes (truncated or not a "
           "legacy llama2.c checkpoint)",
           path, f.size(), h.dim, h.hidden_dim, h.n_layers, h.n_heads, h.n_kv_heads, h.vocab_size,
           h.shared_classifier ? "" : " unshared", h.seq_len, expected);

  Json cj = {{"model_type", "llama"},
             {"architectures", {"LlamaForCausalLM"}},
             {"vocab_size", V},
             {"hidden_size", C},
             {"intermediate_size", F},
             {"num_hidden_layers", L},
             {"num_attention_heads", h.n_heads},
             {"num_key_value_heads", h.n_kv_heads},
             {"head_dim", hs},
             {"max_position_embeddings", h.seq_len},
             {"rms_norm_eps", 1e-5},
             {"rope_theta", 10000.0},
             {"hidden_act", "silu"},
             {"tie_word_embeddings", h.shared_classifier},
             {"bos_token_id", 1},
             {"eos_token_id", 2},
             {"dtype", "float32"}};
  m.config = ModelConfig::from_json(cj, path);

  auto per_layer = [&](const std::string& what, int64_t rows, int64_t cols) {
    std::vector<std::vector<float>> out;
    const std::vector<float> all = in.floats(L * rows * cols, what);
    for (int64_t l = 0; l < L; ++l)
      out.emplace_back(all.begin() + l * rows * cols, all.begin() + (l + 1) * rows * cols);
    return out;
  };
  auto& t = m.tensors;
  t["model.embed_tokens.weight"] = in.floats(V * C, "token_embedding_table");
  const auto rms_att = per_layer("rms_att_weight", 1, C);
  const auto wq = per_layer("wq", C, C);
  const auto wk = per_layer("wk", kv, C);
  const auto wv = per_layer("wv", kv, C);
  const auto wo = per_layer("wo", C, C);
  const auto rms_ffn = per_layer("rms_ffn_weight", 1, C);
  const auto w1 = per_layer("w1", F, C);
  const auto w2 = per_layer("w2", C, F);
  const auto w3 = per_layer("w3", F, C);
  t["model.norm.weight"] = in.floats(C, "rms_final_weight");
  in.skip(static_cast<size_t>(h.seq_len * hs) * 4);  // freq_cis_real, freq_cis_imag
  if (!h.shared_classifier) t["lm_head.weight"] = in.floats(V * C, "wcls");
  for (int64_t l = 0; l < L; ++l) {
    const std::string p = fmt::format("model.layers.{}.", l);
    const auto i = static_cast<size_t>(l);
    t[p + "input_layernorm.weight"] = rms_att[i];
    t[p + "self_attn.q_proj.weight"] = permute_rope_rows(wq[i], C, C, hs);
    t[p + "self_attn.k_proj.weight"] = permute_rope_rows(wk[i], kv, C, hs);
    t[p + "self_attn.v_proj.weight"] = wv[i];
    t[p + "self_attn.o_proj.weight"] = wo[i];
    t[p + "post_attention_layernorm.weight"] = rms_ffn[i];
    t[p + "mlp.gate_proj.weight"] = w1[i];
    t[p + "mlp.down_proj.weight"] = w2[i];
    t[p + "mlp.up_proj.weight"] = w3[i];
  }
  for (const ParamSpec& s : parameter_manifest(m.config, false))
    R1_CHECK(
        m.tensors.count(s.name) && static_cast<int64_t>(m.tensors.at(s.name).size()) == s.numel(),
        "{}: internal error: tensor {} not converted", path, s.name);
  return m;
}

Llama2cTokenizer read_llama2c_tokenizer(const std::string& path, int64_t vocab_size) {
  const MappedFile f = MappedFile::open(path);
  Reader in(f, path);
  Llama2cTokenizer tok;
  tok.max_token_length = in.scalar<int32_t>("the header (max_token_length)");
  R1_CHECK(tok.max_token_length > 0, "{}: max_token_length {} must be positive", path,
           tok.max_token_length);
  for (int64_t i = 0; i < vocab_size; ++i) {
    const std::string what = fmt::format("token {}", i);
    R1_CHECK(in.has(8), "{}: holds {} tokens, the model's vocabulary has {}", path, i, vocab_size);
    tok.scores.push_back(in.scalar<float>(what.c_str()));
    const int32_t len = in.scalar<int32_t>(what.c_str());
    R1_CHECK(len >= 0 && len <= tok.max_token_length,
             "{}: token {} has length {}, outside [0, max_token_length = {}]", path, i, len,
             tok.max_token_length);
    tok.pieces.push_back(in.bytes(static_cast<size_t>(len), what.c_str()));
  }
  R1_CHECK(in.pos() == f.size(),
           "{}: {} bytes left after the {} tokens of the model's vocabulary (a tokenizer for a "
           "larger vocabulary?)",
           path, f.size() - in.pos(), vocab_size);
  return tok;
}

Json convert_llama2c(const std::string& model_bin, const std::string& out_dir,
                     const Llama2cConvertOptions& opts) {
  Llama2cModel m = read_llama2c(model_bin);
  if (!opts.tokenizer.empty()) read_llama2c_tokenizer(opts.tokenizer, m.config.vocab_size);
  m.config.dtype = opts.dtype;
  std::map<std::string, TensorView> views;
  for (const ParamSpec& s : parameter_manifest(m.config, false))
    views[s.name] =
        TensorView(m.tensors.at(s.name).data(), DType::f32, Device::cpu(), s.shape, s.name);
  SaveOptions so;
  so.dtype = opts.dtype;
  so.overwrite = opts.overwrite;
  Json summary = save_checkpoint(out_dir, m.config, fill_from_views(views), so);
  if (!opts.tokenizer.empty()) {
    write_file_atomic((std::filesystem::path(out_dir) / "tokenizer.bin").string(),
                      read_file(opts.tokenizer));
    summary["tokenizer"] = "tokenizer.bin";
  }
  const Llama2cHeader& h = m.header;
  summary["llama2c"] = {{"dim", h.dim},
                        {"hidden_dim", h.hidden_dim},
                        {"n_layers", h.n_layers},
                        {"n_heads", h.n_heads},
                        {"n_kv_heads", h.n_kv_heads},
                        {"vocab_size", h.vocab_size},
                        {"shared_classifier", h.shared_classifier},
                        {"seq_len", h.seq_len}};
  summary["architecture"] = "LlamaForCausalLM";
  summary["parameters"] = count_parameters(m.config).total;
  return summary;
}

}  // namespace r1kit::policy
