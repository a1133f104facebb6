// Model checkpoints in the Hugging Face layout: reading a directory (config.json +
// model.safetensors or model.safetensors.index.json with shards) into caller-provided host tensors
// by manifest name, converting dtypes and dequantising DeepSeek's FP8 blocks; writing one
// atomically (sharded safetensors + index, config.json, tokenizer files); random initialisation
// (`r1kit init`).
//
// How a manifest tensor (policy/config.h) is found in a checkpoint, in this order:
//   1. under its own name (bf16, f16, f32 or f64; or f8_e4m3/f8_e5m2 with "<name>_scale_inv");
//   2. routed experts: under transformers 5's fused names, mlp.experts.gate_up_proj (E, 2I, C)
//      whose expert e holds gate_proj in rows [0, I) and up_proj in rows [I, 2I) (transformers'
//      chunk(2, dim=-1) of the output), and mlp.experts.down_proj (E, C, I);
//   3. DeepSeek's per-module MTP copies (model.layers.{L+k}.embed_tokens / shared_head.head): from
//      the tensor they copy when a checkpoint leaves them out.
// FP8 (DeepSeek-V3's inference/kernel.py weight_dequant): w[r, c] = f32(q[r, c]) · s[r / Br, c /
// Bc] computed in f32, with s = "<name>_scale_inv" of shape (ceil(rows / Br), ceil(cols / Bc)) and
// Br × Bc = quantization_config.weight_block_size (128 × 128); edge blocks may be partial. Scales
// may be f32, bf16, f16 or f8_e8m0. A fused gate_up_proj_scale_inv (E, SR, SC) is read as the
// concatenation of the gate and up scales (SR = 2·ceil(I / Br), what merging DeepSeek's per-expert
// tensors gives) unless SR = ceil(2I / Br) differs from that, in which case blocks run over the
// fused 2I rows; for I a multiple of Br (every released model) the two coincide.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "core/json.h"
#include "core/safetensors.h"
#include "core/tensor.h"
#include "policy/config.h"

namespace r1kit::policy {

enum class StoredLayout : uint8_t {
  plain,       // under the manifest name
  fused_gate,  // rows [0, I) of expert e of mlp.experts.gate_up_proj (E, 2I, C)
  fused_up,    // rows [I, 2I) of expert e of mlp.experts.gate_up_proj
  fused_down,  // expert e of mlp.experts.down_proj (E, C, I)
  tied_copy,   // absent: read from the tensor it copies (ParamSpec::tied_to)
};

// Where the values of one manifest tensor come from.
struct StoredTensor {
  std::string name;  // the checkpoint tensor that is read
  DType dtype = DType::f32;
  StoredLayout layout = StoredLayout::plain;
  int64_t expert = -1;     // fused layouts
  std::string scale_name;  // FP8: the block scales ("<name>_scale_inv"); empty otherwise
  bool fp8() const { return !scale_name.empty(); }
};

// dst (R, Cc) contiguous host f32/f64/bf16/f16 = q (R, Cc) f8_e4m3/f8_e5m2 dequantised with the
// block scales `scale_inv` (ceil((row_offset + R) / Br) rows or more, ceil(Cc / Bc) cols, any float
// dtype incl. f8_e8m0): dst[r, c] = f32(q[r, c]) · s[(row_offset + r) / Br, c / Bc] in f32, then
// stored in dst's dtype. row_offset places q inside a larger blocked matrix (a fused half). The
// views may point into a memory-mapped file at any alignment.
void dequantize_fp8_blocks(const TensorView& dst, const TensorView& q, const TensorView& scale_inv,
                           int64_t block_rows, int64_t block_cols, int64_t row_offset = 0);

// A checkpoint directory opened for reading. Every shard is mapped and validated at open() (missing
// or truncated shards fail there, naming the file); tensors are checked against the manifest of
// config.json when located. Move-only; loading is thread-compatible (const).
class Checkpoint {
 public:
  // `dir` holds config.json and model.safetensors or model.safetensors.index.json + shards.
  static Checkpoint open(const std::string& dir);

  const std::string& dir() const { return dir_; }
  const ModelConfig& config() const { return config_; }
  const ShardedCheckpoint& tensors() const { return file_; }
  // parameter_manifest(config(), true).
  const std::vector<ParamSpec>& manifest() const { return manifest_; }
  bool has_spec(const std::string& name) const { return index_.count(name) != 0; }
  // Throws for a name that is not in the manifest (with a "did you mean").
  const ParamSpec& spec(const std::string& name) const;

  // Finds the stored tensor (see the header comment) and checks its shape, dtype and FP8 scales;
  // throws naming the file and the tensor when it is absent or does not fit.
  StoredTensor locate(const ParamSpec& spec) const;
  // Loads one tensor into `dst`: a contiguous host view of spec.shape, dtype f32, f64, bf16 or f16.
  // Values convert exactly when dst can hold them (bf16 → f32), else round to nearest even.
  void load(const ParamSpec& spec, const TensorView& dst) const;
  void load(const std::string& name, const TensorView& dst) const { load(spec(name), dst); }
  // Loads every manifest tensor into dst_for(spec).
  void load_all(const std::function<TensorView(const ParamSpec&)>& dst_for) const;

  struct Report {
    std::vector<std::string> missing;     // one message per manifest tensor that cannot be loaded
    std::vector<std::string> unexpected;  // checkpoint tensors no manifest tensor reads
    int64_t fp8_tensors = 0;              // manifest tensors stored as FP8 blocks
    int64_t fused_expert_tensors = 0;     // manifest tensors read from fused expert tensors
    int64_t tied_copies_absent = 0;       // MTP copies read from the tensor they copy
    bool complete() const { return missing.empty(); }
  };
  // Locates every manifest tensor without loading; collects problems instead of throwing.
  Report check() const;
  // JSON summary for `r1kit info DIR`: path, architecture, parameters, bytes by dtype, the
  // check() report and describe_config().
  Json describe() const;

 private:
  std::string dir_;
  ModelConfig config_;
  ShardedCheckpoint file_;
  std::vector<ParamSpec> manifest_;
  std::map<std::string, size_t> index_;
};

// ---- Writing
// ---------------------------------------------------------------------------------------

// Files copied from SaveOptions::tokenizer_dir when present: tokenizer.json,
// tokenizer_config.json, special_tokens_map.json, vocab.json, merges.txt, tokenizer.model,
// tokenizer.bin (llama2.c),
// added_tokens.json, chat_template.jinja, chat_template.json, generation_config.json.
const std::vector<std::string>& tokenizer_file_names();

struct SaveOptions {
  // Storage dtype of every tensor except e_score_correction_bias (always f32, as DeepSeek ships
  // it).
  DType dtype = DType::bf16;
  uint64_t max_shard_bytes = 5'000'000'000;  // transformers' default "5GB"
  std::string tokenizer_dir;                 // copy tokenizer files from here ("" = none)
  bool overwrite = false;                    // replace an existing directory
  // Write DeepSeek's per-module MTP copies of the embedding and head (other engines load MTP
  // modules from them); false leaves them out (readers fall back to the tensors they copy).
  bool mtp_copies = true;
};

// fill(spec, dst) writes the values of `spec` into dst, a contiguous host f32 view of spec.shape.
// It is called once per tensor while the files are written (so values may be produced on the fly);
// for a tied copy it is called with the spec of the tensor it copies.
using TensorFill = std::function<void(const ParamSpec& spec, const TensorView& dst)>;

// Writes `config` and its manifest's tensors as a checkpoint directory `dir`: shards
// model-0000i-of-0000N.safetensors + model.safetensors.index.json (or one model.safetensors),
// metadata {"format": "pt"}, per-expert names, config.json (config.to_json() with the storage
// dtype, without quantization_config), tokenizer files. Atomic: everything goes to
// "<dir>.tmp.<pid>" first, which then replaces `dir` in one rename (an existing directory is
// exchanged atomically with renameat2 where the filesystem supports it, else moved aside first).
// Returns a JSON summary (path, tensors, shards, bytes, dtype, tokenizer files copied).
Json save_checkpoint(const std::string& dir, const ModelConfig& config, const TensorFill& fill,
                     const SaveOptions& opts = {});

// Publishes a finished directory `tmp` under `dir` in one rename (an existing `dir` is exchanged
// atomically with renameat2 where the filesystem supports it, else moved aside first; the old one
// is removed), then fsyncs the parent. What save_checkpoint does last; for writers of other
// directories (training checkpoints).
void publish_directory(const std::string& tmp, const std::string& dir);

// A TensorFill reading host views of any float dtype by manifest name (a view per manifest tensor
// that is not a tied copy; shapes must match). The map is copied; the memory it points to must stay
// valid until save_checkpoint returns.
TensorFill fill_from_views(const std::map<std::string, TensorView>& views);

struct InitOptions {
  uint64_t seed = 0;
  DType dtype = DType::bf16;
  uint64_t max_shard_bytes = 5'000'000'000;
  std::string tokenizer_dir;
  bool overwrite = false;
};
// Random initialisation written in the HF layout: normal(0, initializer_range) for embeddings,
// matrices and routers (Philox: tensor i of the manifest draws kernels::random_normal with
// offset i, so values do not depend on the machine or thread count), ones for norms, zeros for
// biases and correction biases. Tensors are generated one at a time while being written. Returns
// the save summary plus model_type, architecture, seed and parameter counts.
Json init_checkpoint(const std::string& dir, const ModelConfig& config, const InitOptions& opts);

}  // namespace r1kit::policy
