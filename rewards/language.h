// Language consistency reward (DeepSeek-R1 §2.3.3): the share of the reasoning's words that are
// in the target language, judged by Unicode script (ICU's uscript_getScript).
//   Words: every Han, Hiragana, Katakana or Hangul letter is one word (CJK text has no spaces);
//   other words are maximal runs of letters (general category L, with combining marks M joined to
//   the letter before) of one script. A letter of script Common/Inherited (e.g. U+30FC "ー") joins
//   the word it touches and never starts one. Digits, punctuation, symbols and whitespace
//   separate words and are not words. Ill-formed UTF-8 bytes separate words too (no crash).
//   Skipped entirely: LaTeX commands (a backslash and the ASCII letters after it: \frac, \alpha;
//   the arguments of \text{…} are still read), and, by default, math spans ($…$, $$…$$, \(…\),
//   \[…\]: variable names are no language) and fenced code blocks (```…```).
//   Target: a language code mapped to scripts (en, fr, de, … -> Latin; zh -> Han; ja -> Han,
//   Hiragana, Katakana; ko -> Hangul; ru, uk, … -> Cyrillic; others through ICU's locale data),
//   or script names ("Latin", "Cyrl").
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "rewards/reward.h"

namespace r1kit::rewards {

// ICU UScriptCode values for a language code or a script name; std::nullopt when unknown.
std::optional<std::vector<int>> scripts_for_language(std::string_view code);
// "Latin", "Han", ... (ICU's long script name).
std::string script_name(int script);

struct WordStats {
  size_t words = 0;
  size_t target_words = 0;
  std::map<std::string, size_t> by_script;  // script name -> words
};

struct WordOptions {
  bool skip_math = true;
  bool skip_code = true;
};

WordStats count_words(std::string_view text, const std::vector<int>& target_scripts,
                      const WordOptions& opts = {});

enum class TextSection { think, answer, completion };
// The reasoning (<think>…</think>; with no opening tag, the text before </think>), the answer
// (<answer>…</answer>, else the text after </think>), or everything. *found is false when the
// section's tags are absent; the whole completion is returned then.
std::string_view text_section(std::string_view completion, TextSection section, bool* found);

struct LanguageOptions {
  std::string language;        // target language code or script name (e.g. "en", "zh")
  std::string language_field;  // a reference string here overrides `language`
  TextSection section = TextSection::think;
  WordOptions words;
  double empty_score = 0.0;          // the score when the section has no words
  size_t max_input_bytes = 1 << 20;  // only the first max_input_bytes are read
  static LanguageOptions from_json(const Json& j, std::string_view where);
};

class LanguageReward : public Reward {
 public:
  // Throws r1kit::Error when neither a language nor a language field is given, or the language
  // is unknown.
  explicit LanguageReward(LanguageOptions opts);
  std::string name() const override { return "language"; }
  RewardResult score(const RewardInput& in) const override;

 private:
  LanguageOptions opts_;
  std::vector<int> scripts_;  // of opts_.language (empty when only the field gives it)
};

}  // namespace r1kit::rewards
