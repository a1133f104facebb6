// SentencePiece tokenizers on stories260K's tok512.model: the same ids as llama2.c's tok512.bin on
// the same texts, encode/decode round trips, the golden greedy ids decode to llama2.c's text,
// special-token text, the side configs of a model directory, and clear errors for bad files.
#include "policy/sp_tokenizer.h"

#include <filesystem>
#include <random>

#include "core/fs.h"
#include "core/json.h"
#include "policy/llama2c_tokenizer.h"
#include "tests/common/test_util.h"

namespace r1kit::policy {
namespace {

using testing::expect_error_contains;
using testing::ScratchDir;

std::string data(const std::string& name) {
  return std::string(R1KIT_SOURCE_DIR) + "/tests/policy/data/stories260K_tok/" + name;
}

const Tokenizer& sp512() {
  static const std::unique_ptr<Tokenizer> tok = load_sentencepiece_tokenizer(data("tok512.model"));
  return *tok;
}
const Tokenizer& bin512() {
  static const std::unique_ptr<Tokenizer> tok = load_llama2c_tokenizer(data("tok512.bin"));
  return *tok;
}

const std::vector<std::string>& texts() {
  static const std::vector<std::string> t = {
      "Once upon a time, there was a little girl named Lily.",
      "She said, \"I want to play with your ball, but I can't find it.\"",
      "Lily's mom said, \"Lily, let's go to the park.\" Lily was sad and didn't know what to do.",
      "numbers 1234567890 and symbols !@#$%^&*()_+-=[]{};':,./<>?",
      "héllo wörld — “quotes” 世界 🎉 Привет",
      "The end",
      "a",
      "x y z",
  };
  return t;
}

TEST(SentencePieceTokenizer, Vocabulary) {
  const Tokenizer& t = sp512();
  EXPECT_EQ(t.vocab_size(), 512);
  EXPECT_EQ(t.bos_id(), 1);
  EXPECT_EQ(t.eos_ids(), std::vector<int32_t>{2});
  EXPECT_EQ(t.id_to_token(0), "<unk>");
  EXPECT_EQ(t.id_to_token(1), "<s>");
  EXPECT_EQ(t.id_to_token(2), "</s>");
  EXPECT_EQ(t.id_to_token(259), "\xE2\x96\x81t");  // "▁t"
  EXPECT_EQ(t.token_to_id("\xE2\x96\x81t"), 259);
  EXPECT_EQ(t.token_to_id("<unk>"), 0);
  EXPECT_FALSE(t.token_to_id("no such piece").has_value());
  EXPECT_TRUE(t.is_special(0));
  EXPECT_TRUE(t.is_special(1));
  EXPECT_TRUE(t.is_special(2));
  EXPECT_FALSE(t.is_special(3));
  EXPECT_EQ(t.token_bytes(3 + 0x0A), "\n");
  EXPECT_EQ(t.token_bytes(259), " t");
  // Every piece agrees with the llama2.c export of the same vocabulary ("▁" written as a space,
  // BOS/EOS as "\n<s>\n" / "\n</s>\n").
  for (int32_t id = 3; id < 512; ++id) EXPECT_EQ(t.token_bytes(id), bin512().token_bytes(id)) << id;
}

// The same ids from libsentencepiece and from run.c's algorithm on the llama2.c export.
TEST(SentencePieceTokenizer, AgreesWithLlama2cExport) {
  for (const auto& s : texts()) {
    EXPECT_EQ(sp512().encode(s), bin512().encode(s)) << s;
    EXPECT_EQ(sp512().encode(s, {.add_special_tokens = false}),
              bin512().encode(s, {.add_special_tokens = false}))
        << s;
  }
  // Random words joined by single spaces: tok512.model's normaliser removes leading, trailing and
  // repeated whitespace (SentencePiece's remove_extra_whitespaces), run.c keeps it (below).
  const std::vector<std::string> alphabet = {"a", "e", "h", "t", "o", "n", "s",  "d", "r", "l",
                                             "i", ".", ",", "T", "O", "é", "世", "'", "1", "\n"};
  std::mt19937_64 rng(11);
  for (int trial = 0; trial < 300; ++trial) {
    std::string s;
    const int words = static_cast<int>(rng() % 12);
    for (int w = 0; w < words; ++w) {
      if (w > 0) s += ' ';
      const int len = 1 + static_cast<int>(rng() % 8);
      for (int k = 0; k < len; ++k) s += alphabet[rng() % alphabet.size()];
    }
    ASSERT_EQ(sp512().encode(s), bin512().encode(s)) << s;
  }
}

// Where the two formats differ: SentencePiece normalises whitespace, run.c does not.
TEST(SentencePieceTokenizer, WhitespaceNormalisationDiffersFromRunC) {
  EXPECT_EQ(sp512().encode("a  b   c "), sp512().encode("a b c"));
  EXPECT_EQ(sp512().encode(" a"), sp512().encode("a"));
  EXPECT_NE(bin512().encode("a  b   c "), bin512().encode("a b c"));
  EXPECT_EQ(bin512().decode(bin512().encode("a  b   c ")), "\n<s>\na  b   c ");
}

TEST(SentencePieceTokenizer, RoundTrips) {
  std::vector<std::string> all = texts();
  all.push_back("Tabs\tand\nnewlines\n\nand\ttabs");
  all.push_back("");
  for (const auto& s : all) {
    const auto ids = sp512().encode(s);
    ASSERT_FALSE(ids.empty());
    EXPECT_EQ(ids[0], 1);
    EXPECT_EQ(sp512().decode(ids, {.skip_special_tokens = true}), s);
    EXPECT_EQ(sp512().decode(sp512().encode(s, {.add_special_tokens = false})), s);
  }
}

TEST(SentencePieceTokenizer, DecodesGreedyGolden) {
  const Json g = read_json_file(data("greedy_t0_256steps.json"));
  std::vector<int32_t> ids = g.at("prompt_tokens").get<std::vector<int32_t>>();
  for (const auto& id : g.at("generated_ids")) ids.push_back(id.get<int32_t>());
  const std::string text = g.at("text").get<std::string>();
  EXPECT_EQ(sp512().decode(ids, {.skip_special_tokens = true}), text);
  EXPECT_EQ(sp512().decode(ids), "<s>" + text);
}

TEST(SentencePieceTokenizer, SpecialTokenText) {
  const auto with = sp512().encode("Hi</s>there");
  const auto without = sp512().encode("Hi</s>there", {.add_special_tokens = false});
  EXPECT_NE(std::find(with.begin(), with.end(), 2), with.end());
  EXPECT_EQ(std::find(without.begin(), without.end(), 2), without.end());
  // Each segment is encoded on its own (with its dummy prefix), as the legacy LlamaTokenizer does.
  std::vector<int32_t> expected = {1};
  for (const int32_t id : sp512().encode("Hi", {.add_special_tokens = false}))
    expected.push_back(id);
  expected.push_back(2);
  for (const int32_t id : sp512().encode("there", {.add_special_tokens = false}))
    expected.push_back(id);
  EXPECT_EQ(with, expected);
  EXPECT_EQ(sp512().decode(with), "<s>Hi</s>there");
  EXPECT_EQ(sp512().decode(with, {.skip_special_tokens = true}), "Hi there");
}

TEST(SentencePieceTokenizer, ModelDirectoryConfigs) {
  ScratchDir dir;
  const std::string model = read_file(data("tok512.model"));
  write_file_atomic(dir.file("tokenizer.model"), model);
  write_file_atomic(dir.file("tokenizer_config.json"),
                    R"({"add_bos_token": false, "add_eos_token": true, "legacy": true})");
  write_file_atomic(dir.file("generation_config.json"), R"({"eos_token_id": [2, 5]})");
  const auto t = load_sentencepiece_tokenizer(dir.str());
  const auto ids = t->encode("Once");
  ASSERT_GE(ids.size(), 2u);
  EXPECT_NE(ids.front(), 1);
  EXPECT_EQ(ids.back(), 2);
  EXPECT_EQ(t->eos_ids(), (std::vector<int32_t>{2, 5}));

  write_file_atomic(dir.file("tokenizer_config.json"), R"({"add_bos_token": "yes"})");
  expect_error_contains([&] { load_sentencepiece_tokenizer(dir.str()); },
                        {"tokenizer_config.json", "add_bos_token"});
  write_file_atomic(dir.file("tokenizer_config.json"), "{}");
  write_file_atomic(dir.file("generation_config.json"), R"({"eos_token_id": 9999})");
  expect_error_contains([&] { load_sentencepiece_tokenizer(dir.str()); },
                        {"generation_config.json", "9999"});
}

TEST(SentencePieceTokenizer, BadInput) {
  expect_error_contains([] { sp512().encode("ok\xFF"); }, {"not valid UTF-8", "offset 2"});
  expect_error_contains([] { sp512().decode({1, 600}); }, {"id 600", "position 1"});
}

TEST(SentencePieceTokenizer, BadFiles) {
  ScratchDir dir;
  std::filesystem::create_directories(dir.path() / "empty");
  const std::string empty = (dir.path() / "empty").string();
  expect_error_contains([&] { load_sentencepiece_tokenizer(empty); },
                        {empty, "no tokenizer.model"});
  write_file_atomic(dir.file("garbage.model"), "this is not a protobuf \xFF\xFF\xFF\xFF");
  expect_error_contains([&] { load_sentencepiece_tokenizer(dir.file("garbage.model")); },
                        {dir.file("garbage.model"), "not a SentencePiece model"});
  expect_error_contains([&] { load_sentencepiece_tokenizer(dir.file("missing.model")); },
                        {dir.file("missing.model")});
  const std::string model = read_file(data("tok512.model"));
  write_file_atomic(dir.file("cut.model"), model.substr(0, model.size() / 2));
  expect_error_contains([&] { load_sentencepiece_tokenizer(dir.file("cut.model")); },
                        {dir.file("cut.model"), "not a SentencePiece model"});
}

// Damaged models fail with r1kit::Error, never crash; random ids always decode.
TEST(SentencePieceTokenizer, CorruptModelsAndRandomIdsNeverCrash) {
  ScratchDir dir;
  const std::string model = read_file(data("tok512.model"));
  std::mt19937_64 rng(5);
  for (int trial = 0; trial < 100; ++trial) {
    std::string bytes = trial < 50 ? model.substr(0, rng() % model.size()) : model;
    if (trial >= 50)
      for (int k = 0; k < 4; ++k) bytes[rng() % bytes.size()] = static_cast<char>(rng());
    write_file_atomic(dir.file("m.model"), bytes);
    try {
      const auto t = load_sentencepiece_tokenizer(dir.file("m.model"));
      (void)t->decode(t->encode("Once upon a time"));
    } catch (const Error&) {
    }
  }
  for (int trial = 0; trial < 200; ++trial) {
    std::vector<int32_t> ids(rng() % 16);
    for (auto& id : ids) id = static_cast<int32_t>(rng() % 512);
    (void)sp512().decode(ids);
    (void)sp512().decode(ids, {.skip_special_tokens = true});
  }
}

}  // namespace
}  // namespace r1kit::policy
