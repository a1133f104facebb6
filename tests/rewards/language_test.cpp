// Language consistency (rewards/language.h): word segmentation (CJK characters, letter runs,
// script changes, marks), what is not a word (digits, LaTeX commands, math, code), the language
// to script mapping, the think section, and ill-formed UTF-8.
#include <gtest/gtest.h>

#include "core/error.h"
#include "rewards/language.h"

namespace r1kit::rewards {
namespace {

std::vector<int> scripts(const char* lang) {
  auto s = scripts_for_language(lang);
  EXPECT_TRUE(s.has_value()) << lang;
  return s.value_or(std::vector<int>{});
}

TEST(Language, Segmentation) {
  auto en = scripts("en");
  WordStats a = count_words("Hello, world! 42 apples.", en);
  EXPECT_EQ(a.words, 3u);  // Hello, world, apples (42 is no word)
  EXPECT_EQ(a.target_words, 3u);
  // Every Han character is a word; the Latin run is one.
  WordStats b = count_words("我们计算 x", scripts("zh"));
  EXPECT_EQ(b.words, 5u);
  EXPECT_EQ(b.target_words, 4u);
  EXPECT_EQ(b.by_script.at("Han"), 4u);
  EXPECT_EQ(b.by_script.at("Latin"), 1u);
  // A script change inside a letter run splits it.
  WordStats c = count_words("abcабв", en);
  EXPECT_EQ(c.words, 2u);
  EXPECT_EQ(c.target_words, 1u);
  // Combining marks stay in their word: "e" + U+0301, Devanagari vowel signs.
  EXPECT_EQ(count_words("caf\x65\xCC\x81 ok", en).words, 2u);
  EXPECT_EQ(count_words("\xE0\xA4\xA8\xE0\xA4\xAE\xE0\xA4\xB8\xE0\xA5\x8D\xE0\xA4\xA4\xE0\xA5\x87",
                        scripts("hi"))
                .target_words,
            1u);  // नमस्ते
  // Japanese: kana and kanji all count for ja; the long-vowel mark (Common) starts no word.
  WordStats j = count_words("コーヒーを飲む", scripts("ja"));
  EXPECT_EQ(j.words, j.target_words);
  EXPECT_EQ(j.words, 5u);  // コ ヒ を 飲 む
  // Korean: each Hangul syllable is a word.
  EXPECT_EQ(count_words("안녕 하세요", scripts("ko")).target_words, 5u);
}

TEST(Language, LatexMathAndCodeAreNotWords) {
  auto zh = scripts("zh");
  WordStats s =
      count_words("所以 \\frac{a}{b} 等于 $x + y$ 和 \\(z\\) 与 \\[w\\] ```py\nprint(x)\n```", zh);
  // Words: 所 以 等 于 和 与 (one per Han character), and \frac's arguments a and b, which are
  // letters outside math; \frac itself, the math spans and the code block are not read.
  EXPECT_EQ(s.words, 8u);
  EXPECT_EQ(s.by_script.at("Latin"), 2u);
  EXPECT_EQ(s.target_words, 6u);
  WordOptions keep;
  keep.skip_math = false;
  keep.skip_code = false;
  WordStats k = count_words("$x + y$ ```py\nprint(x)\n```", scripts("en"), keep);
  EXPECT_EQ(k.words, 5u);  // x y py print x
  // \text{…} keeps its words.
  EXPECT_EQ(count_words("\\text{hello there}", scripts("en")).words, 2u);
  // An unclosed $ is plain text, and the scan stays linear.
  EXPECT_EQ(count_words("costs $5 today", scripts("en")).words, 2u);
}

TEST(Language, Mapping) {
  EXPECT_EQ(scripts("en").size(), 1u);
  EXPECT_EQ(script_name(scripts("en")[0]), "Latin");
  EXPECT_EQ(script_name(scripts("fr")[0]), "Latin");
  EXPECT_EQ(script_name(scripts("ru")[0]), "Cyrillic");
  EXPECT_EQ(script_name(scripts("zh-CN")[0]), "Han");
  EXPECT_EQ(scripts("ja").size(), 3u);
  EXPECT_EQ(script_name(scripts("ko")[0]), "Hangul");
  EXPECT_EQ(script_name(scripts("Cyrl")[0]), "Cyrillic");
  EXPECT_FALSE(scripts_for_language("xx-nonsense").has_value());
}

TEST(Language, IllFormedUtf8DoesNotCrash) {
  std::string bad = "ab\xff\xfe\xc0\x80 cd\xe4\xb8 \xed\xa0\x80 ef";
  WordStats s = count_words(bad, scripts("en"));
  EXPECT_EQ(s.words, 3u);        // ab cd ef; the ill-formed bytes separate words
  std::string cut = "\xe6\x88";  // a cut 3-byte sequence at the end
  EXPECT_EQ(count_words(cut, scripts("zh")).words, 0u);
}

TEST(Language, RewardReadsTheThinkSection) {
  LanguageOptions o;
  o.language = "en";
  LanguageReward r(o);
  Json ref = Json::object();
  auto res = r.score({"", "<think>We compute 这个 value</think><answer>这是答案</answer>", ref});
  EXPECT_EQ(res.status, RewardStatus::ok);
  EXPECT_DOUBLE_EQ(res.score, 3.0 / 5.0);  // We compute value / 这 个
  EXPECT_EQ(res.details["words"], 5);
  // The prompt opened <think>: the text before </think> is the reasoning.
  EXPECT_DOUBLE_EQ(r.score({"", "only English here</think>中文", ref}).score, 1.0);
  // No tags: the whole completion, with a note.
  auto whole = r.score({"", "all English", ref});
  EXPECT_DOUBLE_EQ(whole.score, 1.0);
  EXPECT_NE(whole.reason.find("not found"), std::string::npos);
  // No words: empty_score.
  EXPECT_EQ(r.score({"", "<think>$x$ 1 + 2</think>", ref}).score, 0.0);
  // The row's language wins; an unknown one skips.
  LanguageOptions f;
  f.language_field = "lang";
  LanguageReward by_row(f);
  EXPECT_DOUBLE_EQ(by_row.score({"", "<think>这是中文</think>", Json{{"lang", "zh"}}}).score, 1.0);
  EXPECT_EQ(by_row.score({"", "<think>x</think>", Json{{"lang", "qqq-zz"}}}).status,
            RewardStatus::skip);
  EXPECT_EQ(by_row.score({"", "<think>x</think>", Json::object()}).status, RewardStatus::skip);
  // Config errors.
  EXPECT_THROW(LanguageOptions::from_json(Json::object(), "cfg"), Error);
  EXPECT_THROW(LanguageOptions::from_json(Json{{"language", "klingon-x"}}, "cfg"), Error);
  EXPECT_THROW(LanguageOptions::from_json(Json{{"language", "en"}, {"sektion", "think"}}, "cfg"),
               Error);
}

}  // namespace
}  // namespace r1kit::rewards
