// StreamDecoder: pushing ids one by one yields only complete UTF-8, and the pieces (plus finish())
// add up to decode(ids) exactly, for byte-level BPE (emoji and CJK split across byte tokens,
// invalid byte sequences, skipped special tokens) and for a tokenizer whose decode drops a leading
// space at the start only (SentencePiece's dummy prefix), which needs the previous chunk as
// context.
#include <gtest/gtest.h>

#include <random>

#include "core/error.h"
#include "core/json.h"
#include "policy/pretokenize.h"
#include "policy/tokenizer.h"
#include "tests/common/test_util.h"

namespace r1kit::policy {
namespace {

using testing::expect_error_contains;
using Ids = std::vector<int32_t>;

std::string fixture(const std::string& rel) {
  return std::string(R1KIT_SOURCE_DIR) + "/tests/policy/data/tokenizers/" + rel;
}

bool valid_utf8(const std::string& s) {
  return utf8_invalid_offset(s) == std::string_view::npos;
}

// Streams ids through a decoder; checks every chunk is whole UTF-8; returns the chunks.
std::vector<std::string> stream(const Tokenizer& tok, const Ids& ids, DecodeOptions o = {}) {
  StreamDecoder d(tok, o);
  std::vector<std::string> chunks;
  for (int32_t id : ids) {
    chunks.push_back(d.push(id));
    EXPECT_TRUE(valid_utf8(chunks.back())) << Json(ids).dump();
  }
  chunks.push_back(d.finish());
  std::string all;
  for (const auto& c : chunks) all += c;
  EXPECT_EQ(d.text(), all);
  return chunks;
}

std::string join(const std::vector<std::string>& chunks) {
  std::string s;
  for (const auto& c : chunks) s += c;
  return s;
}

TEST(StreamDecoder, ByteLevelPiecesAddUpToDecode) {
  auto tok = Tokenizer::load(fixture("qwen3-mini"));
  const Json v = read_json_file(fixture("qwen3-mini/vectors.json"));
  DecodeOptions skip;
  skip.skip_special_tokens = true;
  for (const auto& row : v["encode"]) {
    const Ids ids = row["ids"];
    EXPECT_EQ(join(stream(*tok, ids)), tok->decode(ids)) << row["text"].dump();
    EXPECT_EQ(join(stream(*tok, ids, skip)), tok->decode(ids, skip)) << row["text"].dump();
  }
}

TEST(StreamDecoder, HoldsBytesUntilTheCharacterCompletes) {
  auto tok = Tokenizer::load(fixture("qwen3-mini"));
  // The mini vocabulary has no emoji tokens: 😀 is four byte tokens.
  const Ids ids = tok->encode("a😀b", {false});
  ASSERT_EQ(ids.size(), 6u);
  const auto chunks = stream(*tok, ids);
  EXPECT_EQ(chunks, (std::vector<std::string>{"a", "", "", "", "😀", "b", ""}));
  // Cut inside the character: finish() gives U+FFFD, as decode does.
  const Ids cut(ids.begin(), ids.begin() + 3);
  const auto cut_chunks = stream(*tok, cut);
  EXPECT_EQ(cut_chunks.back(), "\uFFFD");
  EXPECT_EQ(join(cut_chunks), tok->decode(cut));
}

TEST(StreamDecoder, InvalidBytesAndRandomSequences) {
  auto tok = Tokenizer::load(fixture("deepseek-v3-mini"));
  const int32_t lead = *tok->token_to_id("ð");  // 0xF0 alone
  const int32_t cont = *tok->token_to_id("Ł");  // 0x80 alone (continuation)
  const int32_t a = *tok->token_to_id("a");
  for (const Ids& ids : {Ids{cont, a}, Ids{lead, a, lead}, Ids{lead, cont, cont, cont, a},
                         Ids{lead, lead, cont}, Ids{a, cont, cont, lead, cont, cont}}) {
    EXPECT_EQ(join(stream(*tok, ids)), tok->decode(ids)) << Json(ids).dump();
  }
  std::mt19937_64 rng(3);
  const int64_t v = tok->vocab_size();
  for (int i = 0; i < 200; ++i) {
    Ids ids;
    for (int k = 0, n = 1 + static_cast<int>(rng() % 30); k < n; ++k) {
      // Mostly single bytes (most likely to split characters), some of anything.
      int32_t id = rng() % 3 ? static_cast<int32_t>(3 + rng() % 256)
                             : static_cast<int32_t>(rng() % static_cast<uint64_t>(v));
      if (tok->decode({id}).empty() && !tok->is_special(id)) id = a;  // a hole
      ids.push_back(id);
    }
    EXPECT_EQ(join(stream(*tok, ids)), tok->decode(ids)) << Json(ids).dump();
    DecodeOptions skip;
    skip.skip_special_tokens = true;
    EXPECT_EQ(join(stream(*tok, ids, skip)), tok->decode(ids, skip)) << Json(ids).dump();
  }
}

// Pieces "▁x" as SentencePiece stores them; decode drops the first piece's leading space.
class DummyPrefixTokenizer final : public Tokenizer {
 public:
  std::vector<int32_t> encode(std::string_view, const EncodeOptions&) const override { return {}; }
  std::string decode(const std::vector<int32_t>& ids, const DecodeOptions&) const override {
    std::string s;
    for (int32_t id : ids) s += token_bytes(id);
    if (!s.empty() && s[0] == ' ') s.erase(0, 1);
    return s;
  }
  int64_t vocab_size() const override { return 3; }
  std::string id_to_token(int32_t id) const override { return token_bytes(id); }
  std::optional<int32_t> token_to_id(std::string_view) const override { return std::nullopt; }
  bool is_special(int32_t) const override { return false; }
  std::optional<int32_t> bos_id() const override { return std::nullopt; }
  std::vector<int32_t> eos_ids() const override { return {}; }
  std::optional<int32_t> pad_id() const override { return std::nullopt; }
  std::string token_bytes(int32_t id) const override {
    static const char* pieces[] = {" Once", " upon", " a"};
    return pieces[id];
  }
};

TEST(StreamDecoder, KeepsThePreviousChunkAsContext) {
  DummyPrefixTokenizer tok;
  const auto chunks = stream(tok, {0, 1, 2, 1});
  EXPECT_EQ(chunks, (std::vector<std::string>{"Once", " upon", " a", " upon", ""}));
  EXPECT_EQ(join(chunks), tok.decode({0, 1, 2, 1}, {}));
}

TEST(StreamDecoder, OutOfRangeIdIsAnError) {
  auto tok = Tokenizer::load(fixture("qwen3-mini"));
  StreamDecoder d(*tok);
  expect_error_contains([&] { d.push(1 << 30); }, {"id 1073741824", "position 0"});
}

}  // namespace
}  // namespace r1kit::policy
