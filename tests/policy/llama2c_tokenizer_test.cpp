// llama2.c's tokenizer format on stories260K's tok512.bin: the golden greedy ids decode to the
// text llama2.c prints, encode equals a literal transcription of run.c's quadratic encode() on
// random text, round trips, and every class of bad file or bad input is a clear error.
#include "policy/llama2c_tokenizer.h"

#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include "core/fs.h"
#include "core/json.h"
#include "tests/common/test_util.h"

namespace r1kit::policy {
namespace {

using testing::expect_error_contains;
using testing::ScratchDir;

std::string data(const std::string& name) {
  return std::string(R1KIT_SOURCE_DIR) + "/tests/policy/data/stories260K_tok/" + name;
}

const Tokenizer& tok512() {
  static const std::unique_ptr<Tokenizer> tok = load_llama2c_tokenizer(data("tok512.bin"));
  return *tok;
}

// run.c's encode(), transcribed literally (vocabulary scan for every lookup, the quadratic
// best-pair loop), as the oracle for the heap-based implementation.
struct RunC {
  std::vector<std::string> vocab;
  std::vector<float> scores;

  explicit RunC(const std::string& path) {
    const std::string d = read_file(path);
    size_t off = 4;
    while (off < d.size()) {
      float s;
      int32_t len;
      std::memcpy(&s, d.data() + off, 4);
      std::memcpy(&len, d.data() + off + 4, 4);
      vocab.emplace_back(d.data() + off + 8, len);
      scores.push_back(s);
      off += 8 + len;
    }
  }
  int lookup(const std::string& s) const {
    for (size_t i = 0; i < vocab.size(); ++i)
      if (vocab[i] == s) return static_cast<int>(i);
    return -1;
  }
  std::vector<int32_t> encode(const std::string& text, bool bos) const {
    std::vector<int32_t> tokens;
    if (bos) tokens.push_back(1);
    if (!text.empty()) tokens.push_back(lookup(" "));
    std::string buf;
    for (size_t c = 0; c < text.size(); ++c) {
      if ((text[c] & 0xC0) != 0x80) buf.clear();
      buf += text[c];
      if (c + 1 < text.size() && (text[c + 1] & 0xC0) == 0x80 && buf.size() < 4) continue;
      const int id = lookup(buf);
      if (id != -1) {
        tokens.push_back(id);
      } else {
        for (const char b : buf) tokens.push_back(static_cast<unsigned char>(b) + 3);
      }
      buf.clear();
    }
    while (true) {
      float best_score = -1e10f;
      int best_id = -1, best_idx = -1;
      for (size_t i = 0; i + 1 < tokens.size(); ++i) {
        const int id = lookup(vocab[tokens[i]] + vocab[tokens[i + 1]]);
        if (id != -1 && scores[id] > best_score) {
          best_score = scores[id];
          best_id = id;
          best_idx = static_cast<int>(i);
        }
      }
      if (best_idx == -1) break;
      tokens[best_idx] = best_id;
      tokens.erase(tokens.begin() + best_idx + 1);
    }
    return tokens;
  }
};

TEST(Llama2cTokenizer, Vocabulary) {
  const Tokenizer& t = tok512();
  EXPECT_EQ(t.vocab_size(), 512);
  EXPECT_EQ(t.bos_id(), 1);
  EXPECT_EQ(t.eos_ids(), std::vector<int32_t>{2});
  EXPECT_FALSE(t.pad_id().has_value());
  EXPECT_EQ(t.id_to_token(0), "<unk>");
  EXPECT_EQ(t.id_to_token(1), "\n<s>\n");
  EXPECT_EQ(t.id_to_token(2), "\n</s>\n");
  EXPECT_EQ(t.id_to_token(259), " t");
  EXPECT_EQ(t.token_to_id(" t"), 259);
  EXPECT_EQ(t.token_to_id("<0x41>"), 3 + 0x41);
  EXPECT_FALSE(t.token_to_id("no such piece").has_value());
  EXPECT_TRUE(t.is_special(0));
  EXPECT_TRUE(t.is_special(1));
  EXPECT_TRUE(t.is_special(2));
  EXPECT_FALSE(t.is_special(3));
  EXPECT_FALSE(t.is_special(259));
  EXPECT_EQ(t.token_bytes(3 + 0x0A), "\n");
  EXPECT_EQ(t.token_bytes(3 + 0xE4), "\xE4");
  EXPECT_EQ(t.token_bytes(259), " t");
}

// The 256 ids stories260K generates greedily from BOS decode to the text llama2.c prints.
TEST(Llama2cTokenizer, DecodesGreedyGolden) {
  const Json g = read_json_file(data("greedy_t0_256steps.json"));
  std::vector<int32_t> ids = g.at("prompt_tokens").get<std::vector<int32_t>>();
  for (const auto& id : g.at("generated_ids")) ids.push_back(id.get<int32_t>());
  ASSERT_EQ(ids.size(), 257u);
  const std::string text = g.at("text").get<std::string>();
  EXPECT_EQ(tok512().decode(ids, {.skip_special_tokens = true}), text);
  // Unskipped, BOS shows as its stored piece and still strips the next piece's leading space.
  EXPECT_EQ(tok512().decode(ids), "\n<s>\n" + text);
}

TEST(Llama2cTokenizer, EncodeMatchesRunC) {
  const RunC runc(data("tok512.bin"));
  const std::vector<std::string> fixed = {
      "",
      "a",
      " ",
      "Once upon a time, there was a little girl named Lily.",
      "She said, \"I want to play with your ball, but I can't find it.\"\nLily was sad.",
      "  two  spaces   and\ttabs\n\nand newlines ",
      "numbers 1234567890 and symbols !@#$%^&*()_+-=[]{};':,./<>?",
      "héllo wörld — “quotes” 世界 🎉 Привет",
      "<s> </s> <unk> <0x41> are plain text here",
  };
  for (const auto& s : fixed) {
    EXPECT_EQ(tok512().encode(s), runc.encode(s, true)) << s;
    EXPECT_EQ(tok512().encode(s, {.add_special_tokens = false}), runc.encode(s, false)) << s;
  }
  // Random strings over an alphabet rich in mergeable pairs, spaces and multi-byte characters.
  const std::vector<std::string> alphabet = {"a", "e", "h",  "t", "o", "n",  "s", "d",  "r",
                                             "l", "i", " ",  " ", " ", ".",  ",", "\n", "T",
                                             "O", "é", "世", "🎉", "'", "\"", "1", "2"};
  std::mt19937_64 rng(7);
  for (int trial = 0; trial < 300; ++trial) {
    std::string s;
    const int len = static_cast<int>(rng() % 60);
    for (int k = 0; k < len; ++k) s += alphabet[rng() % alphabet.size()];
    ASSERT_EQ(tok512().encode(s), runc.encode(s, true)) << s;
  }
}

TEST(Llama2cTokenizer, RoundTrips) {
  const std::vector<std::string> texts = {
      "Once upon a time, there was a little girl named Lily.",
      "Tabs\tand\nnewlines\r\nand  runs   of spaces ",
      "héllo wörld — 世界 🎉 \x01\x7F control bytes",
      " leading space",
      "",
  };
  for (const auto& s : texts) {
    const auto ids = tok512().encode(s);
    ASSERT_FALSE(ids.empty());
    EXPECT_EQ(ids[0], 1);
    EXPECT_EQ(tok512().decode(ids, {.skip_special_tokens = true}), s);
    // Without BOS the dummy-prefix space is not stripped (run.c strips it only after BOS).
    const auto plain = tok512().encode(s, {.add_special_tokens = false});
    EXPECT_EQ(tok512().decode(plain), s.empty() ? "" : " " + s);
  }
  EXPECT_EQ(tok512().encode(""), std::vector<int32_t>{1});
  EXPECT_TRUE(tok512().encode("", {.add_special_tokens = false}).empty());
}

TEST(Llama2cTokenizer, DecodeReplacesIllFormedBytes) {
  // A lone lead byte, then a complete 2-byte character from two byte pieces.
  EXPECT_EQ(tok512().decode({3 + 0xE4, 3 + 0x41, 3 + 0xC3, 3 + 0xA9}),
            "\xEF\xBF\xBD"
            "A\xC3\xA9");
}

TEST(Llama2cTokenizer, BadInput) {
  expect_error_contains([] { tok512().encode("ab\xC3(cd"); }, {"not valid UTF-8", "offset 2"});
  expect_error_contains([] { tok512().decode({1, 5, 512}); }, {"id 512", "position 2", "512"});
  expect_error_contains([] { tok512().decode({-1}); }, {"id -1", "position 0"});
  expect_error_contains([] { tok512().id_to_token(9999); }, {"id 9999"});
}

TEST(Llama2cTokenizer, BadFiles) {
  ScratchDir dir;
  const std::string full = read_file(data("tok512.bin"));
  const auto write = [&](const std::string& name, const std::string& bytes) {
    write_file_atomic(dir.file(name), bytes);
    return dir.file(name);
  };
  // Cut inside a record: the token index and its offset are named.
  const std::string cut = write("cut.bin", full.substr(0, 101));
  expect_error_contains([&] { load_llama2c_tokenizer(cut); }, {cut, "truncated", "token "});
  const std::string cut_header = write("cut_header.bin", full.substr(0, 4 + 6));
  expect_error_contains([&] { load_llama2c_tokenizer(cut_header); },
                        {cut_header, "truncated: token 0 at byte offset 4"});
  const std::string tiny = write("tiny.bin", "ab");
  expect_error_contains([&] { load_llama2c_tokenizer(tiny); }, {tiny, "too short"});
  // A negative length.
  std::string neg = full;
  const int32_t bad_len = -5;
  std::memcpy(neg.data() + 8, &bad_len, 4);
  const std::string negp = write("neg.bin", neg);
  expect_error_contains([&] { load_llama2c_tokenizer(negp); }, {negp, "token 0", "length -5"});
  // A file cut exactly at a record boundary parses, but not against the model's vocab_size.
  size_t off = 4;
  for (int i = 0; i < 300; ++i) {
    int32_t len;
    std::memcpy(&len, full.data() + off + 4, 4);
    off += 8 + len;
  }
  const std::string short_vocab = full.substr(0, off);
  // (One ScratchDir per test: subdirectories stand for model directories.)
  const std::filesystem::path model = dir.path() / "model";
  std::filesystem::create_directories(model);
  write_file_atomic((model / "tokenizer.bin").string(), short_vocab);
  write_file_atomic((model / "config.json").string(), R"({"vocab_size": 512})");
  expect_error_contains([&] { load_llama2c_tokenizer(model.string()); },
                        {(model / "tokenizer.bin").string(), "holds 300 tokens", "vocab_size 512"});
  const std::string sv = write("short.bin", short_vocab);
  EXPECT_EQ(load_llama2c_tokenizer(sv)->vocab_size(), 300);
  expect_error_contains([&] { load_llama2c_tokenizer(sv, 512); },
                        {sv, "holds 300 tokens", "vocab_size is 512"});
  EXPECT_EQ(load_llama2c_tokenizer(data("tok512.bin"), 512)->vocab_size(), 512);
  // Missing files and directories without tokenizer.bin.
  expect_error_contains([&] { load_llama2c_tokenizer(dir.file("missing.bin")); },
                        {dir.file("missing.bin")});
  const std::filesystem::path empty = dir.path() / "empty";
  std::filesystem::create_directories(empty);
  expect_error_contains([&] { load_llama2c_tokenizer(empty.string()); },
                        {empty.string(), "no tokenizer.bin"});
}

// Corrupted files load or fail with r1kit::Error, never crash; whatever loads encodes and decodes.
TEST(Llama2cTokenizer, CorruptFilesNeverCrash) {
  ScratchDir dir;
  const std::string full = read_file(data("tok512.bin"));
  std::mt19937_64 rng(3);
  int loaded = 0, rejected = 0;
  for (int trial = 0; trial < 160; ++trial) {
    std::string bytes = trial < 80 ? full.substr(0, rng() % full.size()) : full;
    if (trial >= 80)
      for (int k = 0; k < 4; ++k) bytes[rng() % bytes.size()] = static_cast<char>(rng());
    write_file_atomic(dir.file("t.bin"), bytes);
    try {
      const auto t = load_llama2c_tokenizer(dir.file("t.bin"));
      const auto ids = t->encode("Once upon a time, 世界");
      (void)t->decode(ids);
      ++loaded;
    } catch (const Error&) {
      ++rejected;
    }
  }
  EXPECT_GT(loaded, 0);
  EXPECT_GT(rejected, 0);
  // Arbitrary bytes as text: ill-formed UTF-8 is an error, the rest encodes and round-trips.
  for (int trial = 0; trial < 300; ++trial) {
    std::string text(rng() % 24, '\0');
    for (auto& c : text) c = static_cast<char>(rng());
    try {
      const auto ids = tok512().encode(text);
      EXPECT_EQ(tok512().decode(ids, {.skip_special_tokens = true}), text);
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("not valid UTF-8"), std::string::npos);
    }
  }
}

}  // namespace
}  // namespace r1kit::policy
