// Byte-level BPE: loading (tokenizer.json, vocab.json + merges.txt, the transformers config files),
// the added-token matcher, the merge loop and the cache. Semantics: see bpe_tokenizer.h.
#include "policy/bpe_tokenizer.h"

#include <utf8proc.h>

#include <algorithm>
#include <climits>
#include <cstring>
#include <filesystem>
#include <functional>
#include <mutex>
#include <queue>

#include "core/error.h"
#include "core/fs.h"

namespace r1kit::policy {

namespace {

namespace fs = std::filesystem;

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
using StringMap = std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>>;

// --- Merge ranks: (left id, right id) -> rank << 32 | merged id -------------------------------

constexpr uint64_t kNoMerge = ~uint64_t{0};

class MergeTable {
 public:
  void build(const std::vector<std::array<int32_t, 3>>& merges) {  // {left, right, merged}
    size_t cap = 16;
    while (cap < merges.size() * 2) cap *= 2;
    keys_.assign(cap, kEmpty);
    vals_.assign(cap, kNoMerge);
    mask_ = cap - 1;
    shift_ = 64;
    for (size_t c = cap; c > 1; c >>= 1) --shift_;
    for (size_t rank = 0; rank < merges.size(); ++rank) {
      const auto& m = merges[rank];
      const uint64_t key = pack(m[0], m[1]);
      size_t at = slot(key);
      while (keys_[at] != kEmpty && keys_[at] != key) at = (at + 1) & mask_;
      // A repeated pair keeps its last rank, as HF's HashMap collect does.
      keys_[at] = key;
      vals_[at] = (uint64_t(rank) << 32) | uint32_t(m[2]);
    }
    size_ = merges.size();
  }
  uint64_t find(int32_t a, int32_t b) const {
    const uint64_t key = pack(a, b);
    for (size_t at = slot(key);; at = (at + 1) & mask_) {
      if (keys_[at] == key) return vals_[at];
      if (keys_[at] == kEmpty) return kNoMerge;
    }
  }
  size_t size() const { return size_; }

 private:
  static constexpr uint64_t kEmpty = ~uint64_t{0};
  static uint64_t pack(int32_t a, int32_t b) { return (uint64_t(uint32_t(a)) << 32) | uint32_t(b); }
  size_t slot(uint64_t key) const { return (key * 0x9E3779B97F4A7C15ull) >> shift_; }
  std::vector<uint64_t> keys_{kEmpty};
  std::vector<uint64_t> vals_{kNoMerge};
  size_t mask_ = 0;
  int shift_ = 63;
  size_t size_ = 0;
};

// --- Added tokens: a byte trie, longest match at a position ------------------------------------

class AddedMatcher {
 public:
  void add(std::string_view content, int32_t index) {
    if (content.empty()) return;
    if (nodes_.empty()) nodes_.emplace_back();
    int32_t n = 0;
    for (char ch : content) {
      const auto c = static_cast<uint8_t>(ch);
      auto& next = nodes_[n].next;
      auto it = std::find_if(next.begin(), next.end(), [c](const auto& e) { return e.first == c; });
      if (it == next.end()) {
        const auto child = static_cast<int32_t>(nodes_.size());
        nodes_[n].next.emplace_back(c, child);
        nodes_.emplace_back();
        n = child;
      } else {
        n = it->second;
      }
    }
    if (nodes_[n].token < 0) nodes_[n].token = index;  // the first of duplicate contents wins
    first_[static_cast<uint8_t>(content[0])] = true;
  }
  bool empty() const { return nodes_.empty(); }
  bool may_start(uint8_t b) const { return first_[b]; }
  // The longest token starting at s[i]: {index, length}, or {-1, 0}.
  std::pair<int32_t, size_t> longest_at(std::string_view s, size_t i) const {
    int32_t n = 0, best = -1;
    size_t best_len = 0;
    for (size_t k = i; k < s.size(); ++k) {
      const auto c = static_cast<uint8_t>(s[k]);
      const auto& next = nodes_[n].next;
      auto it = std::find_if(next.begin(), next.end(), [c](const auto& e) { return e.first == c; });
      if (it == next.end()) break;
      n = it->second;
      if (nodes_[n].token >= 0) {
        best = nodes_[n].token;
        best_len = k + 1 - i;
      }
    }
    return {best, best_len};
  }

 private:
  struct Node {
    std::vector<std::pair<uint8_t, int32_t>> next;
    int32_t token = -1;
  };
  std::vector<Node> nodes_;
  std::array<bool, 256> first_{};
};

// Rust's regex_syntax::is_word_character (Unicode \w), for single_word.
bool is_word_char(uint32_t cp) {
  if (cp < 0x80) return std::isalnum(static_cast<int>(cp)) || cp == '_';
  switch (utf8proc_category(static_cast<utf8proc_int32_t>(cp))) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
    case UTF8PROC_CATEGORY_MN:
    case UTF8PROC_CATEGORY_MC:
    case UTF8PROC_CATEGORY_ME:
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_PC:
      return true;
    default:
      return cp == 0x200C || cp == 0x200D;  // Join_Control
  }
}

size_t prev_char_start(std::string_view s, size_t end) {
  size_t i = end - 1;
  while (i > 0 && (static_cast<uint8_t>(s[i]) & 0xC0) == 0x80) --i;
  return i;
}

bool ends_with_word(std::string_view s) {
  if (s.empty()) return false;
  size_t i = prev_char_start(s, s.size());
  return is_word_char(utf8_next(s, &i));
}

bool starts_with_word(std::string_view s) {
  if (s.empty()) return false;
  size_t i = 0;
  return is_word_char(utf8_next(s, &i));
}

// The offset just after the last non-space character of s (0 when s is all spaces).
size_t space_leftmost_at_end(std::string_view s) {
  size_t end = s.size();
  while (end > 0) {
    const size_t start = prev_char_start(s, end);
    size_t k = start;
    if (!is_unicode_space(utf8_next(s, &k))) return end;
    end = start;
  }
  return 0;
}

// The offset of the first non-space character of s (s.size() when s is all spaces).
size_t space_rightmost_at_start(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const size_t start = i;
    if (!is_unicode_space(utf8_next(s, &i))) return start;
  }
  return s.size();
}

// --- Cache of piece -> ids ---------------------------------------------------------------------

class PieceCache {
 public:
  static constexpr size_t kMaxPieceBytes = 32;

  bool get(std::string_view piece, size_t hash, std::vector<int32_t>* out) const {
    const Shard& s = shards_[hash % kShards];
    std::lock_guard<std::mutex> lock(s.mu);
    auto it = s.map.find(piece);
    if (it == s.map.end()) return false;
    out->insert(out->end(), it->second.begin(), it->second.end());
    return true;
  }
  void put(std::string_view piece, size_t hash, const int32_t* ids, size_t n) {
    Shard& s = shards_[hash % kShards];
    std::lock_guard<std::mutex> lock(s.mu);
    if (s.map.size() >= kMaxPerShard) s.map.clear();  // bounded; a full shard starts over
    s.map.emplace(std::string(piece), std::vector<int32_t>(ids, ids + n));
  }

 private:
  static constexpr size_t kShards = 64;
  static constexpr size_t kMaxPerShard = 4096;
  struct Shard {
    mutable std::mutex mu;
    std::unordered_map<std::string, std::vector<int32_t>, StringHash, std::equal_to<>> map;
  };
  std::array<Shard, kShards> shards_;
};

}  // namespace

// --- The tokenizer -------------------------------------------------------------------------------

struct BpeTokenizer::Impl {
  std::string source;
  Normalizer normalizer;
  PreTokenizer pre_tokenizer;
  bool ignore_merges = false;
  std::optional<int32_t> unk_id;
  bool fuse_unk = false;

  std::vector<std::string> id_token;  // by id; holes are empty with present = 0
  std::vector<std::string> id_bytes;
  std::vector<uint8_t> present;
  std::vector<uint8_t> special;
  StringMap token_id;  // added tokens first, then the model vocabulary
  StringMap bytes_id;  // model vocabulary by raw bytes (ignore_merges)
  std::array<int32_t, 256> byte_id{};
  MergeTable merges;

  std::vector<AddedToken> added;
  AddedMatcher raw_matcher;         // normalized = false
  AddedMatcher normalized_matcher;  // normalized = true

  std::vector<int32_t> prefix_ids, suffix_ids;
  std::optional<int32_t> bos;
  std::vector<int32_t> eos;
  std::optional<int32_t> pad;

  mutable PieceCache cache;

  void bpe(std::string_view piece, std::vector<int32_t>* out) const;
  void bpe_cached(std::string_view piece, std::vector<int32_t>* out) const;
  void bpe_long(const int32_t* sym, size_t n, std::vector<int32_t>* out) const;

  // HF's AddedVocabulary::find_matches on one segment: on_text(segment) for text between tokens,
  // on_token(id) for each token.
  template <class OnText, class OnToken>
  void split_added(std::string_view s, const AddedMatcher& m, bool skip_special, OnText&& on_text,
                   OnToken&& on_token) const;
  // Steps 1 to 3 of encode; on_piece gets each pre-tokenised piece, on_token each added token.
  template <class OnPiece, class OnToken>
  void segment(std::string_view text, bool match_special, OnPiece&& on_piece,
               OnToken&& on_token) const;
  void check_id(int32_t id, size_t pos, std::string_view what) const;
};

namespace {

// Adapts a callable to the pre-tokenizer's sink interface.
template <class F>
struct FnSink final : PieceSink {
  explicit FnSink(F& f) : f_(f) {}
  void piece(std::string_view p) override { f_(p); }
  F& f_;
};

}  // namespace

template <class OnText, class OnToken>
void BpeTokenizer::Impl::split_added(std::string_view s, const AddedMatcher& m, bool skip_special,
                                     OnText&& on_text, OnToken&& on_token) const {
  if (m.empty()) {
    if (!s.empty()) on_text(s);
    return;
  }
  size_t start_offset = 0;
  size_t i = 0;
  while (i < s.size()) {
    if (!m.may_start(static_cast<uint8_t>(s[i]))) {
      ++i;
      continue;
    }
    const auto [index, len] = m.longest_at(s, i);
    if (index < 0) {
      ++i;
      continue;
    }
    size_t start = i, stop = i + len;
    i = stop;  // matches never overlap; a rejected one is skipped whole, like HF's find_iter
    const AddedToken& t = added[static_cast<size_t>(index)];
    if (skip_special && t.special) continue;
    if (t.single_word) {
      const bool start_space = start == 0 || !ends_with_word(s.substr(0, start));
      const bool stop_space = stop == s.size() || !starts_with_word(s.substr(stop));
      if (!start_space || !stop_space) continue;
    }
    if (t.lstrip) start = std::max(space_leftmost_at_end(s.substr(0, start)), start_offset);
    if (t.rstrip) {
      stop += space_rightmost_at_start(s.substr(stop));
      i = stop;
    }
    if (start_offset < start) on_text(s.substr(start_offset, start - start_offset));
    on_token(t.id);
    start_offset = stop;
  }
  if (start_offset < s.size()) on_text(s.substr(start_offset));
}

template <class OnPiece, class OnToken>
void BpeTokenizer::Impl::segment(std::string_view text, bool match_special, OnPiece&& on_piece,
                                 OnToken&& on_token) const {
  FnSink<OnPiece> sink(on_piece);
  auto pre_tokenize = [&](std::string_view seg) { pre_tokenizer.split(seg, sink); };
  auto normalize = [&](std::string_view seg) {
    if (normalizer.is_identity()) {
      split_added(seg, normalized_matcher, !match_special, pre_tokenize, on_token);
    } else {
      const std::string n = normalizer.apply(seg);
      split_added(n, normalized_matcher, !match_special, pre_tokenize, on_token);
    }
  };
  split_added(text, raw_matcher, !match_special, normalize, on_token);
}

void BpeTokenizer::Impl::bpe_cached(std::string_view piece, std::vector<int32_t>* out) const {
  if (piece.size() < 2 || piece.size() > PieceCache::kMaxPieceBytes) {
    bpe(piece, out);
    return;
  }
  const size_t h = StringHash{}(piece);
  if (cache.get(piece, h, out)) return;
  const size_t before = out->size();
  bpe(piece, out);
  cache.put(piece, h, out->data() + before, out->size() - before);
}

void BpeTokenizer::Impl::bpe(std::string_view piece, std::vector<int32_t>* out) const {
  if (ignore_merges) {
    if (auto it = bytes_id.find(piece); it != bytes_id.end()) {
      out->push_back(it->second);
      return;
    }
  }
  constexpr size_t kSmall = 64;
  int32_t small_sym[kSmall];
  std::vector<int32_t> big_sym;
  int32_t* sym = small_sym;
  if (piece.size() > kSmall) {
    big_sym.resize(piece.size());
    sym = big_sym.data();
  }
  // One symbol per byte; bytes without a token become unk (fused when asked) or vanish, as HF's
  // BPE does for characters missing from the vocabulary.
  size_t n = 0;
  for (char ch : piece) {
    const int32_t id = byte_id[static_cast<uint8_t>(ch)];
    if (id >= 0) {
      sym[n++] = id;
    } else if (unk_id) {
      if (!(fuse_unk && n > 0 && sym[n - 1] == *unk_id)) sym[n++] = *unk_id;
    }
  }
  if (n > kSmall) {
    bpe_long(sym, n, out);
    return;
  }
  // rank[i]: the packed merge of (sym[i], sym[i + 1]).
  uint64_t rank[kSmall];
  for (size_t i = 0; i + 1 < n; ++i) rank[i] = merges.find(sym[i], sym[i + 1]);
  while (n > 1) {
    size_t best_i = 0;
    uint64_t best = kNoMerge;
    for (size_t i = 0; i + 1 < n; ++i) {
      if (rank[i] < best) {
        best = rank[i];
        best_i = i;
      }
    }
    if (best == kNoMerge) break;
    sym[best_i] = static_cast<int32_t>(best & 0xFFFFFFFFu);
    // Drop symbol best_i + 1 and pair best_i; re-rank the merged symbol's two pairs.
    std::memmove(sym + best_i + 1, sym + best_i + 2, (n - best_i - 2) * sizeof(int32_t));
    std::memmove(rank + best_i, rank + best_i + 1, (n - best_i - 2) * sizeof(uint64_t));
    --n;
    if (best_i > 0) rank[best_i - 1] = merges.find(sym[best_i - 1], sym[best_i]);
    if (best_i + 1 < n) rank[best_i] = merges.find(sym[best_i], sym[best_i + 1]);
  }
  out->insert(out->end(), sym, sym + n);
}

// HF's merge_word: symbols in a linked list, candidate merges in a min-heap ordered by (rank,
// position); stale candidates are recognised by re-looking-up their pair.
void BpeTokenizer::Impl::bpe_long(const int32_t* init, size_t n, std::vector<int32_t>* out) const {
  struct Sym {
    int32_t id, prev, next;
  };
  std::vector<Sym> s(n);
  for (size_t i = 0; i < n; ++i)
    s[i] = {init[i], static_cast<int32_t>(i) - 1, i + 1 < n ? static_cast<int32_t>(i + 1) : -1};
  using Cand = std::pair<uint64_t, int32_t>;  // (packed rank|merged id, left position)
  std::priority_queue<Cand, std::vector<Cand>, std::greater<>> heap;
  for (size_t i = 0; i + 1 < n; ++i) {
    const uint64_t m = merges.find(s[i].id, s[i + 1].id);
    if (m != kNoMerge) heap.emplace(m, static_cast<int32_t>(i));
  }
  while (!heap.empty()) {
    const auto [m, pos] = heap.top();
    heap.pop();
    Sym& left = s[static_cast<size_t>(pos)];
    if (left.id < 0 || left.next < 0) continue;
    Sym& right = s[static_cast<size_t>(left.next)];
    if (merges.find(left.id, right.id) != m) continue;  // stale
    left.id = static_cast<int32_t>(m & 0xFFFFFFFFu);
    right.id = -1;
    left.next = right.next;
    if (left.next >= 0) s[static_cast<size_t>(left.next)].prev = pos;
    if (left.prev >= 0) {
      const uint64_t mp = merges.find(s[static_cast<size_t>(left.prev)].id, left.id);
      if (mp != kNoMerge) heap.emplace(mp, left.prev);
    }
    if (left.next >= 0) {
      const uint64_t mn = merges.find(left.id, s[static_cast<size_t>(left.next)].id);
      if (mn != kNoMerge) heap.emplace(mn, pos);
    }
  }
  for (int32_t i = 0; i >= 0; i = s[static_cast<size_t>(i)].next) out->push_back(s[i].id);
}

void BpeTokenizer::Impl::check_id(int32_t id, size_t pos, std::string_view what) const {
  if (id < 0 || static_cast<size_t>(id) >= id_token.size())
    R1_THROW("[tokenizer] {}: id {}{} is outside [0, {}) of {}", what, id,
             pos == SIZE_MAX ? std::string() : fmt::format(" at position {}", pos), id_token.size(),
             source);
}

// --- Construction --------------------------------------------------------------------------------

BpeTokenizer::BpeTokenizer(BpeSpec spec) : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.source = spec.source;
  m.normalizer = std::move(spec.normalizer);
  m.pre_tokenizer = std::move(spec.pre_tokenizer);
  m.ignore_merges = spec.ignore_merges;
  m.fuse_unk = spec.fuse_unk;
  if (!m.pre_tokenizer.byte_level())
    R1_THROW(
        "[tokenizer] {}: the pre-tokenizer has no ByteLevel step; only byte-level BPE is "
        "supported here (SentencePiece-style BPE loads from tokenizer.model)",
        m.source);

  int32_t max_id = -1;
  for (const auto& [tok, id] : spec.vocab) {
    if (id < 0) R1_THROW("[tokenizer] {}: token '{}' has a negative id {}", m.source, tok, id);
    max_id = std::max(max_id, id);
  }
  for (const auto& t : spec.added_tokens) {
    if (t.id < 0)
      R1_THROW("[tokenizer] {}: added token '{}' has a negative id {}", m.source, t.content, t.id);
    max_id = std::max(max_id, t.id);
  }
  // Real vocabularies stay below 2^18; a larger id is a broken file, not a reason to allocate.
  constexpr int32_t kMaxIds = 1 << 24;
  if (max_id >= kMaxIds)
    R1_THROW("[tokenizer] {}: id {} is too large (ids must be below {})", m.source, max_id,
             kMaxIds);
  const auto v = static_cast<size_t>(max_id + 1);
  m.id_token.resize(v);
  m.id_bytes.resize(v);
  m.present.assign(v, 0);
  m.special.assign(v, 0);

  auto bytes_of = [](const std::string& tok) {
    auto b = byte_level_decode(tok);
    return b ? std::move(*b) : tok;  // HF's ByteLevel decoder keeps such a token's UTF-8
  };
  StringMap model_vocab;
  model_vocab.reserve(spec.vocab.size());
  for (auto& [tok, id] : spec.vocab) {
    const auto at = static_cast<size_t>(id);
    if (!model_vocab.emplace(tok, id).second)
      R1_THROW("[tokenizer] {}: token '{}' appears twice in the vocabulary", m.source, tok);
    if (!m.present[at]) {
      m.id_token[at] = tok;
      m.id_bytes[at] = bytes_of(tok);
      m.present[at] = 1;
    }
  }
  for (const auto& t : spec.added_tokens) {
    const auto at = static_cast<size_t>(t.id);
    m.id_token[at] = t.content;  // an added token's content wins for its id, as in HF
    m.id_bytes[at] = bytes_of(t.content);
    m.present[at] = 1;
    if (t.special) m.special[at] = 1;
  }
  for (int32_t id : spec.extra_special_ids)
    if (id >= 0 && static_cast<size_t>(id) < v) m.special[static_cast<size_t>(id)] = 1;

  m.token_id.reserve(model_vocab.size() + spec.added_tokens.size());
  for (const auto& t : spec.added_tokens) m.token_id.emplace(t.content, t.id);
  for (const auto& [tok, id] : model_vocab) m.token_id.emplace(tok, id);
  if (m.ignore_merges) {
    for (const auto& [tok, id] : model_vocab) m.bytes_id.emplace(bytes_of(tok), id);
  }

  for (int b = 0; b < 256; ++b) {
    const std::string tok = byte_level_encode(std::string(1, static_cast<char>(b)));
    auto it = model_vocab.find(tok);
    m.byte_id[b] = it == model_vocab.end() ? -1 : it->second;
  }
  if (spec.unk_token) {
    auto it = model_vocab.find(*spec.unk_token);
    if (it == model_vocab.end())
      R1_THROW("[tokenizer] {}: unk_token '{}' is not in the vocabulary", m.source,
               *spec.unk_token);
    m.unk_id = it->second;
  }

  std::vector<std::array<int32_t, 3>> merges;
  merges.reserve(spec.merges.size());
  for (size_t k = 0; k < spec.merges.size(); ++k) {
    const std::string& a = spec.merges[k].first;   // not a structured binding: clang 14 cannot
    const std::string& b = spec.merges[k].second;  // capture those
    auto find = [&](const std::string& tok) {
      auto it = model_vocab.find(tok);
      if (it == model_vocab.end())
        R1_THROW("[tokenizer] {}: merge {} ('{} {}'): '{}' is not in the vocabulary", m.source,
                 k + 1, a, b, tok);
      return it->second;
    };
    merges.push_back({find(a), find(b), find(a + b)});
  }
  m.merges.build(merges);

  m.added = std::move(spec.added_tokens);
  for (size_t k = 0; k < m.added.size(); ++k) {
    auto& matcher = m.added[k].normalized ? m.normalized_matcher : m.raw_matcher;
    matcher.add(m.added[k].content, static_cast<int32_t>(k));
  }
  m.prefix_ids = std::move(spec.prefix_ids);
  m.suffix_ids = std::move(spec.suffix_ids);
  m.bos = spec.bos_id;
  m.eos = std::move(spec.eos_ids);
  m.pad = spec.pad_id;
  for (int32_t id : m.prefix_ids) m.check_id(id, SIZE_MAX, "post-processor");
  for (int32_t id : m.suffix_ids) m.check_id(id, SIZE_MAX, "post-processor");
}

BpeTokenizer::~BpeTokenizer() = default;

// --- Config files ----------------------------------------------------------------------------

namespace {

std::optional<Json> read_optional_json(const std::string& dir, const std::string& name) {
  if (dir.empty()) return std::nullopt;
  const std::string path = (fs::path(dir) / name).string();
  if (!fs::is_regular_file(path)) return std::nullopt;
  return read_json_file(path);
}

// A special token given as "text", {"content": "text", ...} or null.
std::optional<std::string> token_content(const Json& v, std::string_view where) {
  if (v.is_null()) return std::nullopt;
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string())
    return v["content"].get<std::string>();
  R1_THROW("{}: a special token must be a string or an object with 'content', got {}", where,
           json_type_name(v));
}

AddedToken added_token_from_json(const Json& j, std::string_view where,
                                 std::optional<int32_t> id = std::nullopt) {
  require_object(j, where);
  AddedToken t;
  t.id = id ? *id : get_required<int32_t>(j, "id", where);
  t.content = get_required<std::string>(j, "content", where);
  t.special = get_optional<bool>(j, "special", where, false);
  t.lstrip = get_optional<bool>(j, "lstrip", where, false);
  t.rstrip = get_optional<bool>(j, "rstrip", where, false);
  t.single_word = get_optional<bool>(j, "single_word", where, false);
  t.normalized = get_optional<bool>(j, "normalized", where, !t.special);
  return t;
}

struct TransformersConfig {
  std::string dir;
  std::optional<Json> config;       // tokenizer_config.json
  std::optional<Json> special_map;  // special_tokens_map.json
  std::optional<Json> generation;   // generation_config.json

  explicit TransformersConfig(std::string d) : dir(std::move(d)) {
    config = read_optional_json(dir, "tokenizer_config.json");
    special_map = read_optional_json(dir, "special_tokens_map.json");
    generation = read_optional_json(dir, "generation_config.json");
  }
  // The named special token (bos_token, ...) from tokenizer_config.json, else the map.
  std::optional<std::string> token(const std::string& key) const {
    if (config && config->contains(key))
      return token_content((*config)[key], "tokenizer_config.json: " + key);
    if (special_map && special_map->contains(key))
      return token_content((*special_map)[key], "special_tokens_map.json: " + key);
    return std::nullopt;
  }
  std::vector<std::string> additional() const {
    std::vector<std::string> r;
    for (const auto* src : {&config, &special_map}) {
      if (!*src || !(*src)->contains("additional_special_tokens")) continue;
      const Json& list = (**src)["additional_special_tokens"];
      if (!list.is_array()) continue;
      for (const auto& v : list)
        if (auto c = token_content(v, "additional_special_tokens")) r.push_back(*c);
      break;
    }
    return r;
  }
  std::optional<bool> flag(const std::string& key) const {
    if (!config || !config->contains(key) || (*config)[key].is_null()) return std::nullopt;
    return get_required<bool>(*config, key, "tokenizer_config.json");
  }
  std::vector<int32_t> generation_eos() const {
    std::vector<int32_t> r;
    if (!generation || !generation->contains("eos_token_id")) return r;
    const Json& v = (*generation)["eos_token_id"];
    const char* w = "generation_config.json";
    if (v.is_number_integer()) r.push_back(json_value_as<int32_t>(v, "eos_token_id", w));
    if (v.is_array())
      for (const auto& e : v) r.push_back(json_value_as<int32_t>(e, "eos_token_id", w));
    return r;
  }
};

// Resolves the config's special tokens against the spec (added tokens first, then the vocab),
// registers named special tokens that are not added tokens yet (transformers does the same), and
// applies add_bos_token / add_eos_token to the post-processor's template.
void apply_transformers_config(const TransformersConfig& cfg, BpeSpec* spec) {
  auto lookup = [&](const std::string& tok) -> std::optional<int32_t> {
    for (const auto& t : spec->added_tokens)
      if (t.content == tok) return t.id;
    for (const auto& [v, id] : spec->vocab)
      if (v == tok) return id;
    return std::nullopt;
  };
  auto ensure_special = [&](const std::string& tok) -> std::optional<int32_t> {
    for (auto& t : spec->added_tokens)
      if (t.content == tok) {
        if (!t.special) spec->extra_special_ids.push_back(t.id);
        return t.id;
      }
    auto id = lookup(tok);
    if (id) {
      AddedToken t;
      t.content = tok;
      t.id = *id;
      t.special = true;
      spec->added_tokens.push_back(t);
    }
    return id;
  };
  std::optional<std::string> bos = cfg.token("bos_token"), eos = cfg.token("eos_token"),
                             pad = cfg.token("pad_token"), unk = cfg.token("unk_token");
  if (bos) spec->bos_id = ensure_special(*bos);
  if (eos) {
    if (auto id = ensure_special(*eos)) spec->eos_ids.push_back(*id);
  }
  if (pad) spec->pad_id = ensure_special(*pad);
  if (unk) ensure_special(*unk);
  for (const auto& t : cfg.additional()) ensure_special(t);
  for (int32_t id : cfg.generation_eos())
    if (std::find(spec->eos_ids.begin(), spec->eos_ids.end(), id) == spec->eos_ids.end())
      spec->eos_ids.push_back(id);

  if (auto add_bos = cfg.flag("add_bos_token"); add_bos && spec->bos_id) {
    auto& p = spec->prefix_ids;
    if (!p.empty() && p.front() == *spec->bos_id) p.erase(p.begin());
    if (*add_bos) p.insert(p.begin(), *spec->bos_id);
  }
  if (auto add_eos = cfg.flag("add_eos_token"); add_eos && !spec->eos_ids.empty()) {
    auto& s = spec->suffix_ids;
    const int32_t e = spec->eos_ids.front();
    if (!s.empty() && s.back() == e) s.pop_back();
    if (*add_eos) s.push_back(e);
  }
}

// The ids a post_processor puts around a single sequence.
void parse_post_processor(const Json& j, std::string_view where, BpeSpec* spec) {
  if (j.is_null()) return;
  require_object(j, where);
  const std::string type = get_required<std::string>(j, "type", where);
  if (type == "ByteLevel") return;  // offsets only
  if (type == "Sequence") {
    const Json& list = j.contains("processors") ? j["processors"] : Json();
    if (!list.is_array()) R1_THROW("{}: field 'processors' must be an array", where);
    for (size_t k = 0; k < list.size(); ++k)
      parse_post_processor(list[k], json_where(json_where(where, "processors"), k), spec);
    return;
  }
  if (type == "TemplateProcessing") {
    const Json single = get_required<Json>(j, "single", where);
    const Json specials = get_optional<Json>(j, "special_tokens", where, Json::object());
    if (!single.is_array()) R1_THROW("{}: field 'single' must be an array", where);
    require_object(specials, json_where(where, "special_tokens"));
    bool seen_sequence = false;
    for (size_t k = 0; k < single.size(); ++k) {
      const std::string iw = json_where(json_where(where, "single"), k);
      const Json& item = single[k];
      require_object(item, iw);
      if (item.contains("Sequence")) {
        seen_sequence = true;
        continue;
      }
      if (!item.contains("SpecialToken")) R1_THROW("{}: expected SpecialToken or Sequence", iw);
      require_object(item["SpecialToken"], json_where(iw, "SpecialToken"));
      const std::string name = get_required<std::string>(item["SpecialToken"], "id", iw);
      if (!specials.contains(name))
        R1_THROW("{}: special token '{}' is not in special_tokens", iw, name);
      const std::string sw = json_where(json_where(where, "special_tokens"), name);
      require_object(specials[name], sw);
      const auto ids = get_required<std::vector<int32_t>>(specials[name], "ids", sw);
      auto& dst = seen_sequence ? spec->suffix_ids : spec->prefix_ids;
      dst.insert(dst.end(), ids.begin(), ids.end());
    }
    return;
  }
  if (type == "RobertaProcessing" || type == "BertProcessing") {
    auto pair_id = [&](const char* key) {
      const Json p = get_required<Json>(j, key, where);
      if (!p.is_array() || p.size() != 2)
        R1_THROW("{}: field '{}' must be [token, id]", where, key);
      return json_value_as<int32_t>(p[1], key, where);
    };
    spec->prefix_ids.push_back(pair_id("cls"));
    spec->suffix_ids.push_back(pair_id("sep"));
    return;
  }
  R1_THROW(
      "[tokenizer] {}: post-processor type '{}' is not supported (supported: ByteLevel, "
      "TemplateProcessing, RobertaProcessing, BertProcessing, Sequence)",
      where, type);
}

void check_decoder(const Json& j, std::string_view where) {
  if (j.is_null())
    R1_THROW("[tokenizer] {}: a byte-level BPE needs the ByteLevel decoder, got null", where);
  require_object(j, where);
  const std::string type = get_required<std::string>(j, "type", where);
  if (type == "ByteLevel") return;
  if (type == "Sequence" && j.contains("decoders") && j["decoders"].is_array()) {
    for (size_t k = 0; k < j["decoders"].size(); ++k)
      check_decoder(j["decoders"][k], json_where(json_where(where, "decoders"), k));
    return;
  }
  R1_THROW("[tokenizer] {}: decoder type '{}' is not supported for byte-level BPE (only ByteLevel)",
           where, type);
}

std::pair<std::string, std::string> split_merge(std::string_view line, std::string_view where,
                                                size_t index) {
  const size_t sp = line.find(' ');
  if (sp == std::string_view::npos || line.find(' ', sp + 1) != std::string_view::npos)
    R1_THROW("{}: merge {} '{}' must be two tokens separated by one space", where, index + 1, line);
  return {std::string(line.substr(0, sp)), std::string(line.substr(sp + 1))};
}

}  // namespace

namespace {

// Whether a pre_tokenizer value (possibly a Sequence) has a ByteLevel step.
bool has_byte_level(const Json& p) {
  if (!p.is_object()) return false;
  if (p.value("type", Json()) == "ByteLevel") return true;
  if (p.contains("pretokenizers") && p["pretokenizers"].is_array())
    for (const auto& q : p["pretokenizers"])
      if (has_byte_level(q)) return true;
  return false;
}

}  // namespace

bool BpeTokenizer::is_byte_level_bpe(const Json& j) {
  if (!j.is_object() || !j.contains("model") || !j["model"].is_object()) return false;
  const Json& model = j["model"];
  const Json type = model.value("type", Json(model.contains("merges") ? "BPE" : ""));
  return type == "BPE" && j.contains("pre_tokenizer") && has_byte_level(j["pre_tokenizer"]);
}

std::unique_ptr<BpeTokenizer> BpeTokenizer::from_tokenizer_json(const std::string& path) {
  const bool is_dir = fs::is_directory(path);
  const std::string file = is_dir ? (fs::path(path) / "tokenizer.json").string() : path;
  const fs::path parent = fs::path(path).parent_path();
  const std::string dir = is_dir ? path : (parent.empty() ? std::string(".") : parent.string());
  const Json j = read_json_file(file);
  return from_tokenizer_json(j, dir, file);
}

std::unique_ptr<BpeTokenizer> BpeTokenizer::from_tokenizer_json(const Json& j,
                                                                const std::string& dir,
                                                                const std::string& label) {
  try {
    return load_tokenizer_json(j, dir, label);
  } catch (const Json::exception& e) {  // a value of an unexpected type somewhere
    R1_THROW("[tokenizer] {}: malformed tokenizer.json: {}", label, e.what());
  }
}

std::unique_ptr<BpeTokenizer> BpeTokenizer::load_tokenizer_json(const Json& j,
                                                                const std::string& dir,
                                                                const std::string& label) {
  require_object(j, label);
  BpeSpec spec;
  spec.source = label;
  const Json model = get_required<Json>(j, "model", label);
  const std::string mw = json_where(label, "model");
  require_object(model, mw);
  const std::string type = get_optional<std::string>(model, "type", mw, "BPE");
  if (type != "BPE")
    R1_THROW(
        "[tokenizer] {}: model type '{}' is not BPE (only byte-level BPE loads from "
        "tokenizer.json here; SentencePiece models load from tokenizer.model)",
        mw, type);
  if (auto d = get_optional<double>(model, "dropout", mw); d && *d > 0)
    R1_THROW("[tokenizer] {}: dropout {} is not supported (encoding must be deterministic)", mw,
             *d);
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    if (auto s = get_optional<std::string>(model, key, mw); s && !s->empty())
      R1_THROW("[tokenizer] {}: {} '{}' is not supported (byte-level BPE has none)", mw, key, *s);
  }
  spec.unk_token = get_optional<std::string>(model, "unk_token", mw);
  spec.fuse_unk = get_optional<bool>(model, "fuse_unk", mw, false);
  spec.ignore_merges = get_optional<bool>(model, "ignore_merges", mw, false);

  const Json& vocab = model.contains("vocab") ? model["vocab"] : Json();
  if (!vocab.is_object()) R1_THROW("{}: field 'vocab' must be an object of token: id", mw);
  spec.vocab.reserve(vocab.size());
  for (auto it = vocab.begin(); it != vocab.end(); ++it)
    spec.vocab.emplace_back(it.key(), json_value_as<int32_t>(it.value(), it.key(), mw + ".vocab"));
  const Json& merges = model.contains("merges") ? model["merges"] : Json();
  if (!merges.is_array()) R1_THROW("{}: field 'merges' must be an array", mw);
  spec.merges.reserve(merges.size());
  for (size_t k = 0; k < merges.size(); ++k) {
    const Json& mj = merges[k];
    if (mj.is_string()) {
      spec.merges.push_back(split_merge(mj.get_ref<const std::string&>(), mw + ".merges", k));
    } else if (mj.is_array() && mj.size() == 2 && mj[0].is_string() && mj[1].is_string()) {
      spec.merges.emplace_back(mj[0].get<std::string>(), mj[1].get<std::string>());
    } else {
      R1_THROW("{}.merges[{}]: a merge must be \"a b\" or [\"a\", \"b\"]", mw, k);
    }
  }

  if (j.contains("added_tokens") && !j["added_tokens"].is_null()) {
    const Json& list = j["added_tokens"];
    if (!list.is_array()) R1_THROW("{}: field 'added_tokens' must be an array", label);
    for (size_t k = 0; k < list.size(); ++k)
      spec.added_tokens.push_back(
          added_token_from_json(list[k], json_where(json_where(label, "added_tokens"), k)));
  }
  spec.normalizer =
      Normalizer::from_json(j.value("normalizer", Json()), json_where(label, "normalizer"));
  spec.pre_tokenizer =
      PreTokenizer::from_json(j.value("pre_tokenizer", Json()), json_where(label, "pre_tokenizer"));
  parse_post_processor(j.value("post_processor", Json()), json_where(label, "post_processor"),
                       &spec);
  check_decoder(j.value("decoder", Json()), json_where(label, "decoder"));
  if (!dir.empty()) apply_transformers_config(TransformersConfig(dir), &spec);
  return std::make_unique<BpeTokenizer>(std::move(spec));
}

std::unique_ptr<BpeTokenizer> BpeTokenizer::from_vocab_merges(const std::string& dir,
                                                              std::string_view preset) {
  const std::string vocab_path = (fs::path(dir) / "vocab.json").string();
  const std::string merges_path = (fs::path(dir) / "merges.txt").string();
  BpeSpec spec;
  spec.source = vocab_path;
  const Json vocab = read_json_file(vocab_path);
  if (!vocab.is_object())
    R1_THROW("[tokenizer] {}: must be an object of token: id, got {}", vocab_path,
             json_type_name(vocab));
  spec.vocab.reserve(vocab.size());
  for (auto it = vocab.begin(); it != vocab.end(); ++it)
    spec.vocab.emplace_back(it.key(), json_value_as<int32_t>(it.value(), it.key(), vocab_path));
  const std::string text = read_file(merges_path);
  size_t line_no = 0;
  for (size_t pos = 0; pos < text.size();) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    std::string_view line(text.data() + pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty() || (line_no == 1 && line.substr(0, 9) == "#version:")) continue;
    spec.merges.push_back(
        split_merge(line, fmt::format("{}:{}", merges_path, line_no), spec.merges.size()));
  }

  TransformersConfig cfg(dir);
  // Added tokens: tokenizer_config.json's added_tokens_decoder, else added_tokens.json (a
  // {content: id} object as transformers writes it, or a list of token objects).
  if (cfg.config && cfg.config->contains("added_tokens_decoder")) {
    const Json& d = (*cfg.config)["added_tokens_decoder"];
    require_object(d, "tokenizer_config.json: added_tokens_decoder");
    for (auto it = d.begin(); it != d.end(); ++it) {
      int32_t id = 0;
      try {
        id = std::stoi(it.key());
      } catch (const std::exception&) {
        R1_THROW("tokenizer_config.json: added_tokens_decoder: key '{}' is not an id", it.key());
      }
      spec.added_tokens.push_back(added_token_from_json(
          it.value(), "tokenizer_config.json: added_tokens_decoder." + it.key(), id));
    }
  } else if (auto added = read_optional_json(dir, "added_tokens.json")) {
    if (added->is_object()) {
      for (auto it = added->begin(); it != added->end(); ++it) {
        AddedToken t;
        t.content = it.key();
        t.id = json_value_as<int32_t>(it.value(), it.key(), "added_tokens.json");
        spec.added_tokens.push_back(t);
      }
    } else if (added->is_array()) {
      for (size_t k = 0; k < added->size(); ++k)
        spec.added_tokens.push_back(
            added_token_from_json((*added)[k], json_where("added_tokens.json", k)));
    }
  }
  std::string name(preset);
  if (name.empty()) {
    const std::string cls = cfg.config ? get_optional<std::string>(*cfg.config, "tokenizer_class",
                                                                   "tokenizer_config.json", "")
                                       : "";
    if (cls.empty() || cls == "GPT2Tokenizer" || cls == "GPT2TokenizerFast") {
      name = "gpt2";
    } else if (cls == "Qwen2Tokenizer" || cls == "Qwen2TokenizerFast") {
      name = "qwen2";
    } else {
      R1_THROW(
          "[tokenizer] {}: vocab.json + merges.txt with tokenizer_class '{}': its pre-tokenizer "
          "is not known (GPT2Tokenizer and Qwen2Tokenizer are); give the directory a "
          "tokenizer.json",
          dir, cls);
    }
  }
  spec.pre_tokenizer = PreTokenizer::preset(name);
  spec.normalizer = preset_normalizer(name);
  if (name == "gpt2" && !cfg.config && !cfg.special_map) {
    // GPT2Tokenizer's defaults: <|endoftext|> is BOS, EOS and UNK.
    for (const auto& [tok, id] : spec.vocab)
      if (tok == "<|endoftext|>") {
        spec.added_tokens.push_back({tok, id, true, false, false, false, false});
        spec.bos_id = id;
        spec.eos_ids = {id};
      }
  }
  apply_transformers_config(cfg, &spec);
  return std::make_unique<BpeTokenizer>(std::move(spec));
}

// --- Tokenizer interface -------------------------------------------------------------------------

std::vector<int32_t> BpeTokenizer::encode(std::string_view text, const EncodeOptions& opts) const {
  if (const size_t bad = utf8_invalid_offset(text); bad != std::string_view::npos)
    R1_THROW(
        "[tokenizer] encode: the text is not valid UTF-8 at byte offset {} (byte 0x{:02x}); "
        "decode it to UTF-8 first",
        bad, static_cast<unsigned>(static_cast<uint8_t>(text[bad])));
  const Impl& m = *impl_;
  const bool post = opts.add_special_tokens && opts.add_bos_eos;
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 4 + 8);
  if (post) ids = m.prefix_ids;
  m.segment(
      text, opts.add_special_tokens, [&](std::string_view piece) { m.bpe_cached(piece, &ids); },
      [&](int32_t id) { ids.push_back(id); });
  if (post) ids.insert(ids.end(), m.suffix_ids.begin(), m.suffix_ids.end());
  return ids;
}

std::vector<std::string> BpeTokenizer::pre_tokenize(std::string_view text,
                                                    bool add_special_tokens) const {
  if (const size_t bad = utf8_invalid_offset(text); bad != std::string_view::npos)
    R1_THROW("[tokenizer] pre_tokenize: the text is not valid UTF-8 at byte offset {}", bad);
  std::vector<std::string> pieces;
  impl_->segment(
      text, add_special_tokens, [&](std::string_view p) { pieces.emplace_back(p); },
      [&](int32_t id) { pieces.push_back(impl_->id_token[static_cast<size_t>(id)]); });
  return pieces;
}

std::vector<int32_t> BpeTokenizer::encode_piece(std::string_view piece) const {
  std::vector<int32_t> ids;
  impl_->bpe(piece, &ids);
  return ids;
}

std::string BpeTokenizer::decode(const std::vector<int32_t>& ids, const DecodeOptions& opts) const {
  const Impl& m = *impl_;
  std::string bytes;
  for (size_t k = 0; k < ids.size(); ++k) {
    const int32_t id = ids[k];
    m.check_id(id, k, "decode");
    const auto at = static_cast<size_t>(id);
    if (!m.present[at]) continue;  // a hole in the ids: nothing, as HF
    if (opts.skip_special_tokens && m.special[at]) continue;
    bytes += m.id_bytes[at];
  }
  return utf8_lossy(bytes);
}

int64_t BpeTokenizer::vocab_size() const {
  return static_cast<int64_t>(impl_->id_token.size());
}

std::string BpeTokenizer::id_to_token(int32_t id) const {
  impl_->check_id(id, SIZE_MAX, "id_to_token");
  if (!impl_->present[static_cast<size_t>(id)])
    R1_THROW("[tokenizer] id_to_token: id {} has no token in {}", id, impl_->source);
  return impl_->id_token[static_cast<size_t>(id)];
}

std::optional<int32_t> BpeTokenizer::token_to_id(std::string_view token) const {
  auto it = impl_->token_id.find(token);
  if (it == impl_->token_id.end()) return std::nullopt;
  return it->second;
}

bool BpeTokenizer::is_special(int32_t id) const {
  return id >= 0 && static_cast<size_t>(id) < impl_->special.size() &&
         impl_->special[static_cast<size_t>(id)];
}

std::optional<int32_t> BpeTokenizer::bos_id() const {
  return impl_->bos;
}
std::vector<int32_t> BpeTokenizer::eos_ids() const {
  return impl_->eos;
}
std::optional<int32_t> BpeTokenizer::pad_id() const {
  return impl_->pad;
}

std::string BpeTokenizer::token_bytes(int32_t id) const {
  impl_->check_id(id, SIZE_MAX, "token_bytes");
  return impl_->id_bytes[static_cast<size_t>(id)];
}

const std::vector<AddedToken>& BpeTokenizer::added_tokens() const {
  return impl_->added;
}
size_t BpeTokenizer::merge_count() const {
  return impl_->merges.size();
}
const std::string& BpeTokenizer::source() const {
  return impl_->source;
}

}  // namespace r1kit::policy
