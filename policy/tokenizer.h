// The tokenizer interface every implementation (byte-level BPE from tokenizer.json or
// vocab.json + merges.txt, SentencePiece, llama2.c's tokenizer) provides, loaded from a model
// directory the way transformers does (Tokenizer::load picks the implementation), plus the
// incremental detokeniser used for stop strings and live display.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace r1kit::policy {

struct EncodeOptions {
  // Recognise added/special tokens written in the text ("<｜Assistant｜>") and add the BOS the
  // tokenizer config asks for. false: special-token text is tokenised as plain text, no BOS.
  // (Byte-level BPE, as HF's encode_special_tokens: added tokens that are not special, like
  // Qwen's <think> or DeepSeek's <｜User｜>, are still recognised.)
  bool add_special_tokens = true;
  // Only with add_special_tokens = true: false recognises special-token text but adds no BOS/EOS,
  // for text that already holds them (a rendered chat template; transformers' apply_chat_template
  // encodes so).
  bool add_bos_eos = true;
};

struct DecodeOptions {
  bool skip_special_tokens = false;
};

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // Loads from a model directory: tokenizer.json (+ tokenizer_config.json, special_tokens_map.json)
  // when present, else vocab.json + merges.txt, else tokenizer.model (SentencePiece), else a
  // llama2.c tokenizer file given by path. Errors name the file and what is wrong.
  static std::unique_ptr<Tokenizer> load(const std::string& path);

  // Invalid UTF-8 input is an error naming the byte offset (never a crash).
  virtual std::vector<int32_t> encode(std::string_view text,
                                      const EncodeOptions& opts = {}) const = 0;
  // Ids outside [0, vocab_size()) are an error naming the id and its position.
  virtual std::string decode(const std::vector<int32_t>& ids,
                             const DecodeOptions& opts = {}) const = 0;

  virtual int64_t vocab_size() const = 0;  // largest id + 1, added tokens included
  // The token's string as stored in the vocabulary ("Ġthe", "<｜end▁of▁sentence｜>").
  virtual std::string id_to_token(int32_t id) const = 0;
  virtual std::optional<int32_t> token_to_id(std::string_view token) const = 0;
  virtual bool is_special(int32_t id) const = 0;

  // From tokenizer_config.json / special_tokens_map.json / the model's own metadata.
  virtual std::optional<int32_t> bos_id() const = 0;
  virtual std::vector<int32_t> eos_ids() const = 0;  // may be several (generation_config)
  virtual std::optional<int32_t> pad_id() const = 0;
  // The raw bytes of one token (after byte-level decoding), for the streaming detokeniser.
  virtual std::string token_bytes(int32_t id) const = 0;
};

// Incremental detokeniser: push ids one at a time; text() grows by complete UTF-8 only (a token
// that ends inside a multi-byte character holds its bytes back until the character completes).
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tok, DecodeOptions opts = {});
  // Appends the token and returns the newly completed text (possibly empty).
  std::string push(int32_t id);
  // Flushes held-back bytes (invalid trailing UTF-8 becomes U+FFFD) and returns them.
  std::string finish();
  const std::string& text() const { return text_; }

 private:
  const Tokenizer& tok_;
  DecodeOptions opts_;
  std::string pending_;
  std::string text_;
  std::vector<int32_t> ids_;
  // Tokens of ids_ before this index were emitted already (they give the rest its context).
  size_t prefix_index_ = 0;
};

}  // namespace r1kit::policy
