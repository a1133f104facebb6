// Import of llama2.c checkpoints (karpathy/llama2.c, e.g. the stories* TinyStories models) into
// the Hugging Face Llama layout (`r1kit convert llama2c`).
//
// The legacy ("version 0") checkpoint format, little-endian, as run.c's memory_map_weights reads
// it, with head_size = dim / n_heads and kv_dim = n_kv_heads · head_size:
//   int32 dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len
//       (vocab_size < 0: the classifier is not shared with the embedding; |vocab_size| is V)
//   f32 token_embedding_table (V, dim)
//   f32 rms_att_weight   (n_layers, dim)
//   f32 wq (n_layers, dim, dim)     wk (n_layers, kv_dim, dim)     wv (n_layers, kv_dim, dim)
//   f32 wo (n_layers, dim, dim)
//   f32 rms_ffn_weight   (n_layers, dim)
//   f32 w1 (n_layers, hidden_dim, dim)   w2 (n_layers, dim, hidden_dim)   w3 (n_layers, hidden,
//   dim) f32 rms_final_weight (dim) f32 freq_cis_real, freq_cis_imag (seq_len · head_size / 2 each;
//   unused, skipped) f32 wcls (V, dim)                    only when vocab_size < 0
// Every matrix is (out, in) row-major, as HF's Linear weights: wq/wk/wv/wo are q/k/v/o_proj, w1 the
// gate_proj, w3 the up_proj, w2 the down_proj (run.c: x += w2·(silu(w1·x) ⊙ w3·x)).
//
// RoPE: run.c rotates interleaved pairs (x[2j], x[2j+1]) of each head by pos·10000^(−2j/head_size);
// HF Llama rotates half-split pairs (x[j], x[j + head_size/2]) by the same angles. As HF's
// convert_llama_weights_to_hf.py does, the rows of wq and wk are permuted per head so that new row
// t·(head_size/2) + j is old row 2j + t (t ∈ {0, 1}): q·k is then the same. Other constants of
// run.c: RMSNorm eps 1e-5, rope theta 10000, BOS = 1, EOS = 2.
//
// Tokenizer files (tok512.bin, the default tokenizer.bin): int32 max_token_length, then per token
// f32 score, int32 length, `length` bytes. It is checked to hold exactly V tokens and copied into
// the output directory as tokenizer.bin (llama2.c's format, read by r1kit's tokenizers).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/json.h"
#include "policy/config.h"

namespace r1kit::policy {

struct Llama2cHeader {
  int32_t dim = 0, hidden_dim = 0, n_layers = 0, n_heads = 0, n_kv_heads = 0, vocab_size = 0,
          seq_len = 0;
  bool shared_classifier = true;  // vocab_size was positive in the file
  int64_t head_size() const { return dim / n_heads; }
  int64_t kv_dim() const { return n_kv_heads * head_size(); }
};

// A llama2.c model in HF form: the Llama config and every manifest tensor (f32, HF names, q/k rows
// already permuted to the half-split layout).
struct Llama2cModel {
  Llama2cHeader header;
  ModelConfig config;
  std::map<std::string, std::vector<float>> tensors;
};

// Reads and checks a legacy llama2.c checkpoint; errors name the file and say what is wrong
// (header values, file size against the size the header implies, the version-1/2 export format).
Llama2cModel read_llama2c(const std::string& path);

struct Llama2cTokenizer {
  int32_t max_token_length = 0;
  std::vector<std::string> pieces;
  std::vector<float> scores;
};
// Reads a llama2.c tokenizer file that must hold exactly `vocab_size` tokens.
Llama2cTokenizer read_llama2c_tokenizer(const std::string& path, int64_t vocab_size);

// The permutation of one head's rows from interleaved-pair to half-split RoPE: new row r of a head
// of `head_size` rows is old row permuted_row(r). (HF's `permute` in convert_llama_weights_to_hf.)
int64_t llama2c_rope_row(int64_t new_row, int64_t head_size);

struct Llama2cConvertOptions {
  std::string tokenizer;  // llama2.c tokenizer file to check and copy ("" = none)
  DType dtype = DType::f32;
  bool overwrite = false;
};
// Writes `model_bin` as an HF Llama checkpoint directory `out_dir` (atomic, save_checkpoint), plus
// tokenizer.bin. Returns the save summary with the llama2.c header and parameter count.
Json convert_llama2c(const std::string& model_bin, const std::string& out_dir,
                     const Llama2cConvertOptions& opts);

}  // namespace r1kit::policy
