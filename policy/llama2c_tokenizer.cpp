// llama2.c's tokenizer (format and behaviour in llama2c_tokenizer.h): the file reader, run.c's
// encode (with a heap in place of its quadratic pair scan, making the same choices) and decode.
#include "policy/llama2c_tokenizer.h"

#include <array>
#include <bit>
#include <cstring>
#include <filesystem>
#include <queue>
#include <unordered_map>

#include "core/error.h"
#include "core/fs.h"
#include "core/json.h"

namespace r1kit::policy {
namespace {

static_assert(std::endian::native == std::endian::little, "llama2.c files are little-endian");

// run.c's fixed ids and its merge threshold (best_score starts at -1e10 and must be beaten).
constexpr int32_t kUnkId = 0;
constexpr int32_t kBosId = 1;
constexpr int32_t kEosId = 2;
constexpr float kMergeScoreFloor = -1e10f;

// Length of the well-formed UTF-8 sequence starting at s[i], or 0 when it is ill-formed.
size_t utf8_sequence_length(std::string_view s, size_t i) {
  const auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = b(i);
  if (c < 0x80) return 1;
  size_t n;
  unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte (excludes overlongs etc.)
  if (c >= 0xC2 && c <= 0xDF) {
    n = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    n = 3;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;  // no surrogates
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;  // nothing above U+10FFFF
  } else {
    return 0;
  }
  if (i + n > s.size()) return 0;
  if (b(i + 1) < lo || b(i + 1) > hi) return 0;
  for (size_t k = 2; k < n; ++k)
    if ((b(i + k) & 0xC0) != 0x80) return 0;
  return n;
}

// Replaces every byte that does not start a well-formed UTF-8 sequence with U+FFFD.
std::string replace_ill_formed_utf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    const size_t n = utf8_sequence_length(s, i);
    if (n == 0) {
      out += "\xEF\xBF\xBD";
      ++i;
    } else {
      out.append(s.substr(i, n));
      i += n;
    }
  }
  return out;
}

// The byte of a byte-fallback piece "<0xHH>" (upper- or lower-case hex), or -1.
int byte_piece_value(std::string_view piece) {
  if (piece.size() != 6 || piece.substr(0, 3) != "<0x" || piece[5] != '>') return -1;
  int v = 0;
  for (size_t k = 3; k < 5; ++k) {
    const char c = piece[k];
    int d;
    if (c >= '0' && c <= '9') {
      d = c - '0';
    } else if (c >= 'A' && c <= 'F') {
      d = c - 'A' + 10;
    } else if (c >= 'a' && c <= 'f') {
      d = c - 'a' + 10;
    } else {
      return -1;
    }
    v = v * 16 + d;
  }
  return v;
}

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

struct Llama2cVocab {
  int32_t max_token_length = 0;
  std::vector<std::string> pieces;
  std::vector<float> scores;
};

Llama2cVocab read_llama2c_vocab(const std::string& path) {
  const std::string data = read_file(path);
  Llama2cVocab v;
  if (data.size() < 4)
    R1_THROW("{}: not a llama2.c tokenizer: {} bytes, too short for the int32 max_token_length",
             path, data.size());
  std::memcpy(&v.max_token_length, data.data(), 4);
  if (v.max_token_length <= 0 || v.max_token_length > (1 << 20))
    R1_THROW("{}: not a llama2.c tokenizer: max_token_length is {} (expected 1..{})", path,
             v.max_token_length, 1 << 20);
  size_t off = 4;
  while (off < data.size()) {
    const size_t index = v.pieces.size();
    if (data.size() - off < 8)
      R1_THROW(
          "{}: truncated: token {} at byte offset {} needs 8 bytes for its score and length, the "
          "file ends {} bytes later",
          path, index, off, data.size() - off);
    float score;
    int32_t len;
    std::memcpy(&score, data.data() + off, 4);
    std::memcpy(&len, data.data() + off + 4, 4);
    if (len < 0 || len > v.max_token_length)
      R1_THROW("{}: token {} at byte offset {} has length {}, outside 0..max_token_length ({})",
               path, index, off, len, v.max_token_length);
    if (data.size() - off - 8 < static_cast<size_t>(len))
      R1_THROW(
          "{}: truncated: token {} at byte offset {} needs {} bytes of text, the file ends {} "
          "bytes later",
          path, index, off, len, data.size() - off - 8);
    v.pieces.emplace_back(data.data() + off + 8, static_cast<size_t>(len));
    v.scores.push_back(score);
    off += 8 + static_cast<size_t>(len);
  }
  if (v.pieces.size() < 3)
    R1_THROW("{}: holds {} tokens; a llama2.c vocabulary has at least <unk>, BOS and EOS (ids 0-2)",
             path, v.pieces.size());
  return v;
}

class Llama2cTokenizer final : public Tokenizer {
 public:
  Llama2cTokenizer(std::string path, Llama2cVocab vocab)
      : path_(std::move(path)),
        pieces_(std::move(vocab.pieces)),
        scores_(std::move(vocab.scores)),
        byte_value_(pieces_.size(), -1) {
    byte_id_.fill(-1);
    piece_to_id_.reserve(pieces_.size() * 2);
    for (size_t id = 0; id < pieces_.size(); ++id) {
      piece_to_id_.emplace(pieces_[id], static_cast<int32_t>(id));  // keeps the lowest id
      const int b = byte_piece_value(pieces_[id]);
      byte_value_[id] = static_cast<int16_t>(b);
      if (b >= 0 && byte_id_[b] < 0) byte_id_[b] = static_cast<int32_t>(id);
    }
  }

  std::vector<int32_t> encode(std::string_view text, const EncodeOptions& opts) const override {
    const size_t bad = utf8_invalid_offset(text);
    if (bad != std::string_view::npos)
      R1_THROW("[llama2c tokenizer] the text is not valid UTF-8 at byte offset {}", bad);
    std::vector<int32_t> tokens;
    tokens.reserve(text.size() + 2);
    if (adds_bos_eos(opts)) tokens.push_back(kBosId);
    if (!text.empty()) {
      const auto dummy = lookup(" ");
      if (!dummy)
        R1_THROW("{}: the vocabulary has no \" \" piece for the dummy prefix run.c adds", path_);
      tokens.push_back(*dummy);
    }
    // One token per character when the character is a piece, else one per byte (byte fallback).
    for (size_t i = 0; i < text.size();) {
      const size_t n = utf8_sequence_length(text, i);
      const std::string_view ch = text.substr(i, n);
      if (const auto id = lookup(ch)) {
        tokens.push_back(*id);
      } else {
        for (const char c : ch) {
          const int32_t bid = byte_id_[static_cast<unsigned char>(c)];
          if (bid < 0)
            R1_THROW("{}: byte 0x{:02X} at offset {} has no piece and no <0x{:02X}> fallback piece",
                     path_, static_cast<unsigned char>(c), i, static_cast<unsigned char>(c));
          tokens.push_back(bid);
        }
      }
      i += n;
    }
    merge_pairs(tokens);
    return tokens;
  }

  std::string decode(const std::vector<int32_t>& ids, const DecodeOptions& opts) const override {
    std::string out;
    int32_t prev = -1;
    for (size_t pos = 0; pos < ids.size(); ++pos) {
      const int32_t id = ids[pos];
      check_id(id, pos);
      if (opts.skip_special_tokens && is_special(id)) {
        prev = id;
        continue;
      }
      std::string_view piece = pieces_[id];
      // run.c: following BOS, the SentencePiece decoder strips the leading whitespace.
      if (prev == kBosId && !piece.empty() && piece[0] == ' ') piece.remove_prefix(1);
      if (byte_value_[id] >= 0) {
        out += static_cast<char>(byte_value_[id]);
      } else {
        out.append(piece);
      }
      prev = id;
    }
    return replace_ill_formed_utf8(out);
  }

  int64_t vocab_size() const override { return static_cast<int64_t>(pieces_.size()); }
  std::string id_to_token(int32_t id) const override {
    check_id(id, 0);
    return pieces_[id];
  }
  std::optional<int32_t> token_to_id(std::string_view token) const override {
    return lookup(token);
  }
  bool is_special(int32_t id) const override {
    return id == kUnkId || id == kBosId || id == kEosId;
  }
  std::optional<int32_t> bos_id() const override { return kBosId; }
  std::vector<int32_t> eos_ids() const override { return {kEosId}; }
  std::optional<int32_t> pad_id() const override { return std::nullopt; }
  std::string token_bytes(int32_t id) const override {
    check_id(id, 0);
    if (byte_value_[id] >= 0) return std::string(1, static_cast<char>(byte_value_[id]));
    return pieces_[id];
  }

 private:
  std::optional<int32_t> lookup(std::string_view piece) const {
    // C++20 has no heterogeneous lookup for unordered_map without a custom hash; the copy is small.
    const auto it = piece_to_id_.find(std::string(piece));
    if (it == piece_to_id_.end()) return std::nullopt;
    return it->second;
  }

  void check_id(int32_t id, size_t pos) const {
    if (id < 0 || id >= static_cast<int32_t>(pieces_.size()))
      R1_THROW("[llama2c tokenizer] id {} at position {} is outside the vocabulary [0, {})", id,
               pos, pieces_.size());
  }

  // run.c merges, until none is left, the adjacent pair whose concatenation is the vocabulary piece
  // with the highest score (> -1e10), the leftmost among equal scores. Here every mergeable
  // adjacent pair sits in a max-heap keyed by (score, -position); merging never reorders tokens,
  // so the original index of the left token orders pairs as run.c's left-to-right scan does.
  // Entries whose tokens changed since they were pushed are skipped when popped.
  void merge_pairs(std::vector<int32_t>& tokens) const {
    const int n = static_cast<int>(tokens.size());
    if (n < 2) return;
    std::vector<int> prev(n), next(n);
    for (int i = 0; i < n; ++i) {
      prev[i] = i - 1;
      next[i] = i + 1 < n ? i + 1 : -1;
    }
    struct Candidate {
      float score;
      int left, right;
      int32_t left_tok, right_tok, merged;
    };
    const auto worse = [](const Candidate& a, const Candidate& b) {
      if (a.score != b.score) return a.score < b.score;
      return a.left > b.left;
    };
    std::priority_queue<Candidate, std::vector<Candidate>, decltype(worse)> heap(worse);
    std::string buf;
    const auto push = [&](int l, int r) {
      if (l < 0 || r < 0) return;
      buf.assign(pieces_[tokens[l]]);
      buf += pieces_[tokens[r]];
      const auto it = piece_to_id_.find(buf);
      if (it == piece_to_id_.end()) return;
      const float score = scores_[it->second];
      if (!(score > kMergeScoreFloor)) return;
      heap.push({score, l, r, tokens[l], tokens[r], it->second});
    };
    for (int i = 0; i + 1 < n; ++i) push(i, i + 1);
    std::vector<char> alive(n, 1);
    while (!heap.empty()) {
      const Candidate c = heap.top();
      heap.pop();
      if (!alive[c.left] || !alive[c.right] || next[c.left] != c.right ||
          tokens[c.left] != c.left_tok || tokens[c.right] != c.right_tok)
        continue;
      tokens[c.left] = c.merged;
      alive[c.right] = 0;
      next[c.left] = next[c.right];
      if (next[c.right] >= 0) prev[next[c.right]] = c.left;
      push(prev[c.left], c.left);
      push(c.left, next[c.left]);
    }
    size_t w = 0;
    for (int i = 0; i < n; ++i)
      if (alive[i]) tokens[w++] = tokens[i];
    tokens.resize(w);
  }

  std::string path_;
  std::vector<std::string> pieces_;
  std::vector<float> scores_;
  std::vector<int16_t> byte_value_;  // per id: the byte of a "<0xHH>" piece, or -1
  std::array<int32_t, 256> byte_id_{};
  std::unordered_map<std::string, int32_t> piece_to_id_;
};

std::string resolve_path(const std::string& file) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::is_directory(file, ec)) {
    const std::string p = (fs::path(file) / "tokenizer.bin").string();
    if (!fs::exists(p, ec))
      R1_THROW("{}: no tokenizer.bin (llama2.c tokenizer) in this directory", file);
    return p;
  }
  return file;
}

}  // namespace

std::unique_ptr<Tokenizer> load_llama2c_tokenizer(const std::string& file, int64_t vocab_size) {
  const std::string path = resolve_path(file);
  Llama2cVocab v = read_llama2c_vocab(path);
  if (static_cast<int64_t>(v.pieces.size()) != vocab_size)
    R1_THROW("{}: holds {} tokens, but the model's vocab_size is {}", path, v.pieces.size(),
             vocab_size);
  return std::make_unique<Llama2cTokenizer>(path, std::move(v));
}

std::unique_ptr<Tokenizer> load_llama2c_tokenizer(const std::string& file) {
  namespace fs = std::filesystem;
  const std::string path = resolve_path(file);
  Llama2cVocab v = read_llama2c_vocab(path);
  const std::string config = (fs::path(path).parent_path() / "config.json").string();
  std::error_code ec;
  if (fs::is_regular_file(config, ec)) {
    const Json j = read_json_file(config);
    if (j.is_object()) {
      if (const auto vs = get_optional<int64_t>(j, "vocab_size", config);
          vs && *vs != static_cast<int64_t>(v.pieces.size()))
        R1_THROW("{}: holds {} tokens, but {} says vocab_size {}", path, v.pieces.size(), config,
                 *vs);
    }
  }
  return std::make_unique<Llama2cTokenizer>(path, std::move(v));
}

}  // namespace r1kit::policy
