// Byte-level BPE (GPT-2, Llama-3, Qwen2/3, DeepSeek LLM/Coder/V3/R1), loaded from a Hugging Face
// tokenizer.json or from vocab.json + merges.txt, with the encode/decode behaviour of HF
// `tokenizers` (and transformers' special-token configuration) reproduced id for id.
//
// encode(text): invalid UTF-8 -> error naming the byte offset; then, as HF's AddedVocabulary does,
//   1. added tokens with normalized = false are cut out of the raw text (leftmost-longest match;
//      single_word, lstrip and rstrip applied; special ones only with add_special_tokens),
//   2. each remaining segment is normalised (NFC, ...) and cut at normalized = true added tokens,
//   3. each remaining segment is pre-tokenised (regex splits, ByteLevel),
//   4. each piece's bytes are merged by rank (lowest first, leftmost on ties) into ids,
//   5. with add_special_tokens, the post-processor's ids (BOS/EOS) are put around the result.
// BOS/EOS: the post_processor's TemplateProcessing (or Roberta/Bert processing) gives them; when
// tokenizer_config.json has add_bos_token / add_eos_token, that decides (as transformers' Llama
// tokenizers rebuild the template from it; DeepSeek-V3/R1's config says add_bos_token: true).
//
// The BPE merge loop: pieces up to 64 bytes scan the pair ranks (an array of packed
// rank|merged-id per adjacent pair, the lowest taken, its two neighbours re-ranked); longer pieces
// use a linked list of symbols and a priority queue of candidate merges (O(n log n)). Merge ranks
// live in an open-addressing table keyed by the (left id, right id) pair. Results of pieces up to
// 32 bytes are cached (sharded, locked, bounded), so repeated words cost one lookup.
//
// decode: every token contributes its bytes (a vocabulary string mapped back through the byte-level
// alphabet; a string with code points outside the alphabet, like "<｜end▁of▁sentence｜>",
// contributes its UTF-8 as is, exactly as HF's ByteLevel decoder), special tokens are dropped with
// skip_special_tokens, and ill-formed UTF-8 in the result becomes U+FFFD per maximal subpart
// (Rust's from_utf8_lossy).
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/json.h"
#include "policy/pretokenize.h"
#include "policy/tokenizer.h"

namespace r1kit::policy {

struct AddedToken {
  std::string content;
  int32_t id = -1;
  bool special = false;
  bool lstrip = false;
  bool rstrip = false;
  bool single_word = false;
  bool normalized = false;
};

// Everything a byte-level BPE tokenizer is made of, whichever files it came from.
struct BpeSpec {
  std::string source;  // names the origin in error messages
  // Tokens in their byte-level spelling ("Ġthe") with their ids; ids may have holes.
  std::vector<std::pair<std::string, int32_t>> vocab;
  std::vector<std::pair<std::string, std::string>> merges;  // highest priority first
  std::vector<AddedToken> added_tokens;
  Normalizer normalizer;
  PreTokenizer pre_tokenizer;  // must be byte-level
  bool ignore_merges = false;  // a piece that is a whole vocabulary token is that token
  std::optional<std::string> unk_token;
  bool fuse_unk = false;
  // Put around the ids with add_special_tokens (the post-processor's single-sequence template).
  std::vector<int32_t> prefix_ids;
  std::vector<int32_t> suffix_ids;
  std::optional<int32_t> bos_id;
  std::vector<int32_t> eos_ids;
  std::optional<int32_t> pad_id;
  std::vector<int32_t> extra_special_ids;  // config special tokens that are not added tokens
};

class BpeTokenizer final : public Tokenizer {
 public:
  explicit BpeTokenizer(BpeSpec spec);  // validates; errors name spec.source
  ~BpeTokenizer() override;

  // `path`: a tokenizer.json file or a directory holding one (with tokenizer_config.json,
  // special_tokens_map.json and generation_config.json beside it when present).
  static std::unique_ptr<BpeTokenizer> from_tokenizer_json(const std::string& path);
  // The same from an already parsed tokenizer.json (`dir` holds the config files, may be empty).
  static std::unique_ptr<BpeTokenizer> from_tokenizer_json(const Json& j, const std::string& dir,
                                                           const std::string& label);
  // vocab.json + merges.txt (+ added_tokens.json, tokenizer_config.json, special_tokens_map.json)
  // in `dir`. The pre-tokenizer follows tokenizer_config.json's tokenizer_class as the slow
  // transformers classes do: Qwen2Tokenizer -> "qwen2" (with NFC), GPT2Tokenizer or no config ->
  // "gpt2"; other classes are an error (use tokenizer.json). `preset` overrides the choice.
  static std::unique_ptr<BpeTokenizer> from_vocab_merges(const std::string& dir,
                                                         std::string_view preset = {});
  // Whether a parsed tokenizer.json is a byte-level BPE this class loads (false: a SentencePiece-
  // style BPE, Unigram, WordPiece ...).
  static bool is_byte_level_bpe(const Json& tokenizer_json);

  std::vector<int32_t> encode(std::string_view text, const EncodeOptions& opts = {}) const override;
  std::string decode(const std::vector<int32_t>& ids,
                     const DecodeOptions& opts = {}) const override;
  int64_t vocab_size() const override;
  std::string id_to_token(int32_t id) const override;
  std::optional<int32_t> token_to_id(std::string_view token) const override;
  bool is_special(int32_t id) const override;
  std::optional<int32_t> bos_id() const override;
  std::vector<int32_t> eos_ids() const override;
  std::optional<int32_t> pad_id() const override;
  std::string token_bytes(int32_t id) const override;

  // The BPE model alone on one pre-tokenised piece (raw bytes), without the cache.
  std::vector<int32_t> encode_piece(std::string_view piece) const;
  // The pieces encode would hand to the BPE model for `text` (after added-token splitting and
  // normalisation), for tests and debugging.
  std::vector<std::string> pre_tokenize(std::string_view text,
                                        bool add_special_tokens = true) const;
  const std::vector<AddedToken>& added_tokens() const;
  size_t merge_count() const;
  const std::string& source() const;

  struct Impl;

 private:
  static std::unique_ptr<BpeTokenizer> load_tokenizer_json(const Json& j, const std::string& dir,
                                                           const std::string& label);
  std::unique_ptr<Impl> impl_;
};

}  // namespace r1kit::policy
