// SentencePiece tokenizers through libsentencepiece (behaviour in sp_tokenizer.h): loading with
// the transformers-style side configs, special-token splitting, BOS/EOS, decoding by runs.
#include "policy/sp_tokenizer.h"

#include <sentencepiece_processor.h>

#include <algorithm>
#include <filesystem>

#include "core/error.h"
#include "core/fs.h"
#include "core/json.h"

namespace r1kit::policy {
namespace {

namespace fs = std::filesystem;

// Whether BOS/EOS are added: add_special_tokens, and EncodeOptions::add_bos_eos where the
// interface has it (special-token text recognised, no BOS/EOS added: for rendered chats).
template <class Options>
bool adds_bos_eos(const Options& o) {
  if constexpr (requires { o.add_bos_eos; }) {
    return o.add_special_tokens && o.add_bos_eos;
  } else {
    return o.add_special_tokens;
  }
}

class SpTokenizer final : public Tokenizer {
 public:
  SpTokenizer(const std::string& path, const std::string& model_bytes) : path_(path) {
    const auto status = sp_.LoadFromSerializedProto(model_bytes);
    if (!status.ok()) R1_THROW("{}: not a SentencePiece model ({})", path_, status.ToString());
    const int n = sp_.GetPieceSize();
    if (n <= 0) R1_THROW("{}: the SentencePiece model has no pieces", path_);
    for (int id = 0; id < n; ++id) {
      if (!(sp_.IsControl(id) || sp_.IsUnknown(id))) continue;
      const std::string& piece = sp_.IdToPiece(id);
      if (!piece.empty()) specials_.emplace_back(piece, id);
    }
    // Longest first, so a special whose text contains another one wins at the same position.
    std::stable_sort(specials_.begin(), specials_.end(),
                     [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
    if (sp_.eos_id() >= 0) eos_ids_.push_back(sp_.eos_id());
    if (sp_.pad_id() >= 0) pad_ = sp_.pad_id();
  }

  // tokenizer_config.json: add_bos_token / add_eos_token (LlamaTokenizer's defaults: true/false).
  void read_tokenizer_config(const std::string& file) {
    const Json j = read_json_file(file);
    require_object(j, file);
    add_bos_ = get_optional<bool>(j, "add_bos_token", file, true);
    add_eos_ = get_optional<bool>(j, "add_eos_token", file, false);
  }

  // generation_config.json: eos_token_id, one id or a list; added to the model's own EOS.
  void read_generation_config(const std::string& file) {
    const Json j = read_json_file(file);
    require_object(j, file);
    const auto it = j.find("eos_token_id");
    if (it == j.end() || it->is_null()) return;
    std::vector<int32_t> ids;
    if (it->is_array()) {
      ids = json_value_as<std::vector<int32_t>>(*it, "eos_token_id", file);
    } else {
      ids.push_back(json_value_as<int32_t>(*it, "eos_token_id", file));
    }
    for (const int32_t id : ids) {
      if (id < 0 || id >= sp_.GetPieceSize())
        R1_THROW("{}: eos_token_id {} is outside the vocabulary [0, {}) of {}", file, id,
                 sp_.GetPieceSize(), path_);
      if (std::find(eos_ids_.begin(), eos_ids_.end(), id) == eos_ids_.end()) eos_ids_.push_back(id);
    }
  }

  std::vector<int32_t> encode(std::string_view text, const EncodeOptions& opts) const override {
    const size_t bad = utf8_invalid_offset(text);
    if (bad != std::string_view::npos)
      R1_THROW("[sentencepiece tokenizer] the text is not valid UTF-8 at byte offset {}", bad);
    std::vector<int32_t> out;
    if (!opts.add_special_tokens) {
      encode_plain(text, out);
      return out;
    }
    const bool bos_eos = adds_bos_eos(opts);
    if (bos_eos && add_bos_ && sp_.bos_id() >= 0) out.push_back(sp_.bos_id());
    size_t pos = 0;
    while (pos <= text.size()) {
      // The earliest special-token text at or after pos (the longest one there).
      size_t best = std::string_view::npos;
      int32_t best_id = -1;
      size_t best_len = 0;
      for (const auto& [piece, id] : specials_) {
        const size_t at = text.find(piece, pos);
        if (at < best) {
          best = at;
          best_id = id;
          best_len = piece.size();
        }
      }
      encode_plain(text.substr(pos, best == std::string_view::npos ? text.npos : best - pos), out);
      if (best == std::string_view::npos) break;
      out.push_back(best_id);
      pos = best + best_len;
    }
    if (bos_eos && add_eos_ && sp_.eos_id() >= 0) out.push_back(sp_.eos_id());
    return out;
  }

  std::string decode(const std::vector<int32_t>& ids, const DecodeOptions& opts) const override {
    for (size_t pos = 0; pos < ids.size(); ++pos) check_id(ids[pos], pos);
    std::string out;
    std::vector<int> run;
    const auto flush = [&] {
      if (run.empty()) return;
      std::string text;
      const auto status = sp_.Decode(run, &text);
      if (!status.ok()) R1_THROW("{}: SentencePiece decode failed ({})", path_, status.ToString());
      out += text;
      run.clear();
    };
    for (const int32_t id : ids) {
      if (is_special(id)) {
        if (opts.skip_special_tokens) continue;  // the rest decodes as one run, as transformers
        flush();
        out += sp_.IdToPiece(id);
        continue;
      }
      run.push_back(id);
    }
    flush();
    return out;
  }

  int64_t vocab_size() const override { return sp_.GetPieceSize(); }
  std::string id_to_token(int32_t id) const override {
    check_id(id, 0);
    return sp_.IdToPiece(id);
  }
  std::optional<int32_t> token_to_id(std::string_view token) const override {
    const int id = sp_.PieceToId(token);  // the unknown id when the piece is not in the model
    if (id < 0 || sp_.IdToPiece(id) != token) return std::nullopt;
    return id;
  }
  bool is_special(int32_t id) const override {
    return id >= 0 && id < sp_.GetPieceSize() && (sp_.IsControl(id) || sp_.IsUnknown(id));
  }
  std::optional<int32_t> bos_id() const override {
    return sp_.bos_id() >= 0 ? std::optional<int32_t>(sp_.bos_id()) : std::nullopt;
  }
  std::vector<int32_t> eos_ids() const override { return eos_ids_; }
  std::optional<int32_t> pad_id() const override { return pad_; }
  std::string token_bytes(int32_t id) const override {
    check_id(id, 0);
    const std::string& piece = sp_.IdToPiece(id);
    if (sp_.IsByte(id)) {
      // Byte pieces are "<0xHH>".
      return std::string(1, static_cast<char>(std::stoi(piece.substr(3, 2), nullptr, 16)));
    }
    if (is_special(id)) return piece;
    // "▁" (U+2581) stands for a space.
    std::string out;
    for (size_t i = 0; i < piece.size();) {
      if (piece.compare(i, 3, "\xE2\x96\x81") == 0) {
        out += ' ';
        i += 3;
      } else {
        out += piece[i++];
      }
    }
    return out;
  }

 private:
  void encode_plain(std::string_view text, std::vector<int32_t>& out) const {
    if (text.empty()) return;
    std::vector<int> ids;
    const auto status = sp_.Encode(text, &ids);
    if (!status.ok()) R1_THROW("{}: SentencePiece encode failed ({})", path_, status.ToString());
    out.insert(out.end(), ids.begin(), ids.end());
  }

  void check_id(int32_t id, size_t pos) const {
    if (id < 0 || id >= sp_.GetPieceSize())
      R1_THROW("[sentencepiece tokenizer] id {} at position {} is outside the vocabulary [0, {})",
               id, pos, sp_.GetPieceSize());
  }

  std::string path_;
  sentencepiece::SentencePieceProcessor sp_;
  std::vector<std::pair<std::string, int32_t>> specials_;  // control and unknown pieces
  bool add_bos_ = true;
  bool add_eos_ = false;
  std::vector<int32_t> eos_ids_;
  std::optional<int32_t> pad_;
};

}  // namespace

std::unique_ptr<Tokenizer> load_sentencepiece_tokenizer(const std::string& dir_or_file) {
  std::error_code ec;
  const bool is_dir = fs::is_directory(dir_or_file, ec);
  std::string model = dir_or_file;
  if (is_dir) {
    model = (fs::path(dir_or_file) / "tokenizer.model").string();
    if (!fs::exists(model, ec))
      R1_THROW("{}: no tokenizer.model (SentencePiece model) in this directory", dir_or_file);
  }
  auto tok = std::make_unique<SpTokenizer>(model, read_file(model));
  if (is_dir) {
    const fs::path dir(dir_or_file);
    const std::string config = (dir / "tokenizer_config.json").string();
    if (fs::is_regular_file(config, ec)) tok->read_tokenizer_config(config);
    const std::string gen = (dir / "generation_config.json").string();
    if (fs::is_regular_file(gen, ec)) tok->read_generation_config(gen);
  }
  return tok;
}

}  // namespace r1kit::policy
