// Tokenizer::load (which implementation a model directory or file gets) and the streaming
// detokeniser.
#include "policy/tokenizer.h"

#include <filesystem>

#include "core/error.h"
#include "core/fs.h"
#include "core/json.h"
#include "policy/bpe_tokenizer.h"
#include "policy/pretokenize.h"

// R1KIT_TOKENIZER_BPE_ONLY: byte-level BPE alone (the instrumented fuzz build).
#if !defined(R1KIT_TOKENIZER_BPE_ONLY) && __has_include("policy/sp_tokenizer.h")
#include "policy/sp_tokenizer.h"
#define R1KIT_HAVE_SP_TOKENIZER 1
#endif
#if !defined(R1KIT_TOKENIZER_BPE_ONLY) && __has_include("policy/llama2c_tokenizer.h")
#include "policy/llama2c_tokenizer.h"
#define R1KIT_HAVE_LLAMA2C_TOKENIZER 1
#endif

namespace r1kit::policy {

namespace {

namespace fs = std::filesystem;

std::unique_ptr<Tokenizer> load_sentencepiece(const std::string& path) {
#if defined(R1KIT_HAVE_SP_TOKENIZER)
  return load_sentencepiece_tokenizer(path);
#else
  R1_THROW("[tokenizer] {}: SentencePiece models are not supported by this build", path);
#endif
}

std::unique_ptr<Tokenizer> load_llama2c(const std::string& path) {
#if defined(R1KIT_HAVE_LLAMA2C_TOKENIZER)
  return load_llama2c_tokenizer(path);
#else
  R1_THROW("[tokenizer] {}: llama2.c tokenizer files are not supported by this build", path);
#endif
}

// tokenizer.json: byte-level BPE here; anything else falls back to a tokenizer.model beside it.
std::unique_ptr<Tokenizer> load_tokenizer_json(const std::string& file, const std::string& dir) {
  const Json j = read_json_file(file);
  if (!BpeTokenizer::is_byte_level_bpe(j)) {
    const fs::path sp = fs::path(dir) / "tokenizer.model";
    if (fs::is_regular_file(sp)) return load_sentencepiece(sp.string());
  }
  return BpeTokenizer::from_tokenizer_json(j, dir, file);
}

}  // namespace

std::unique_ptr<Tokenizer> Tokenizer::load(const std::string& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    const fs::path d(path);
    if (fs::is_regular_file(d / "tokenizer.json"))
      return load_tokenizer_json((d / "tokenizer.json").string(), path);
    if (fs::is_regular_file(d / "vocab.json") && fs::is_regular_file(d / "merges.txt"))
      return BpeTokenizer::from_vocab_merges(path);
    if (fs::is_regular_file(d / "tokenizer.model")) return load_sentencepiece(path);
    if (fs::is_regular_file(d / "tokenizer.bin"))
      return load_llama2c((d / "tokenizer.bin").string());
    R1_THROW(
        "[tokenizer] {}: no tokenizer found (looked for tokenizer.json, vocab.json + merges.txt, "
        "tokenizer.model, tokenizer.bin)",
        path);
  }
  if (!fs::is_regular_file(path, ec)) R1_THROW("[tokenizer] {}: no such file or directory", path);
  const fs::path p(path);
  const std::string ext = p.extension().string();
  const fs::path parent = p.parent_path().empty() ? fs::path(".") : p.parent_path();
  if (ext == ".json") return load_tokenizer_json(path, parent.string());
  if (ext == ".model") return load_sentencepiece(path);
  if (ext == ".bin") return load_llama2c(path);
  // Unknown extension: a JSON document starts with '{'.
  const std::string head = read_file(path).substr(0, 1);
  if (head == "{") return load_tokenizer_json(path, parent.string());
  return load_llama2c(path);
}

// --- StreamDecoder -------------------------------------------------------------------------------
// As HF tokenizers' DecodeStream: decode the ids since the last emitted chunk together with that
// chunk (its context: SentencePiece drops a leading space only at the very start, for instance),
// and emit what extends the context's text, once the raw bytes end on a character boundary.

StreamDecoder::StreamDecoder(const Tokenizer& tok, DecodeOptions opts)
    : tok_(tok), opts_(std::move(opts)) {}

std::string StreamDecoder::push(int32_t id) {
  if (id < 0 || id >= tok_.vocab_size())
    R1_THROW("[tokenizer] StreamDecoder: id {} at position {} is outside [0, {})", id, ids_.size(),
             tok_.vocab_size());
  ids_.push_back(id);
  if (opts_.skip_special_tokens && tok_.is_special(id)) return {};
  // Hold back while the raw bytes since the context end inside a character.
  std::string raw;
  for (size_t k = prefix_index_; k < ids_.size(); ++k) {
    if (opts_.skip_special_tokens && tok_.is_special(ids_[k])) continue;
    raw += tok_.token_bytes(ids_[k]);
  }
  if (utf8_incomplete_tail(raw) > 0) return {};
  const std::string text = tok_.decode(ids_, opts_);
  if (text.size() <= pending_.size()) return {};
  std::string fresh;
  if (text.compare(0, pending_.size(), pending_) == 0) {
    fresh = text.substr(pending_.size());
  } else {
    // The context decodes differently with the new ids (no tokenizer here does this): emit what
    // follows the common prefix.
    size_t common = 0;
    while (common < pending_.size() && text[common] == pending_[common]) ++common;
    fresh = text.substr(std::max(common, pending_.size()));
  }
  ids_.erase(ids_.begin(), ids_.begin() + static_cast<ptrdiff_t>(prefix_index_));
  pending_ = tok_.decode(ids_, opts_);
  prefix_index_ = ids_.size();
  text_ += fresh;
  return fresh;
}

std::string StreamDecoder::finish() {
  std::string fresh;
  if (prefix_index_ < ids_.size()) {
    const std::string text = tok_.decode(ids_, opts_);
    if (text.size() > pending_.size()) fresh = text.substr(pending_.size());
  }
  ids_.clear();
  pending_.clear();
  prefix_index_ = 0;
  text_ += fresh;
  return fresh;
}

}  // namespace r1kit::policy
