// Language consistency reward (see language.h).
#include "rewards/language.h"

#include <unicode/uchar.h>
#include <unicode/uscript.h>
#include <unicode/utf8.h>

#include <algorithm>

#include "core/error.h"

namespace r1kit::rewards {
namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = char(std::tolower(uint8_t(c)));
  return out;
}

bool is_cjk_script(UScriptCode s) {
  return s == USCRIPT_HAN || s == USCRIPT_HIRAGANA || s == USCRIPT_KATAKANA || s == USCRIPT_HANGUL;
}

bool is_ascii_letter(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

}  // namespace

std::optional<std::vector<int>> scripts_for_language(std::string_view code) {
  // The primary subtag: "en-US" -> "en", "zh_Hans" -> "zh".
  std::string lang = lower(code.substr(0, code.find_first_of("-_")));
  static const std::map<std::string, std::vector<int>> table = {
      {"zh", {USCRIPT_HAN}},      {"ja", {USCRIPT_HAN, USCRIPT_HIRAGANA, USCRIPT_KATAKANA}},
      {"ko", {USCRIPT_HANGUL}},   {"ru", {USCRIPT_CYRILLIC}},
      {"uk", {USCRIPT_CYRILLIC}}, {"bg", {USCRIPT_CYRILLIC}},
      {"sr", {USCRIPT_CYRILLIC}}, {"el", {USCRIPT_GREEK}},
      {"ar", {USCRIPT_ARABIC}},   {"fa", {USCRIPT_ARABIC}},
      {"he", {USCRIPT_HEBREW}},   {"hi", {USCRIPT_DEVANAGARI}},
      {"th", {USCRIPT_THAI}},
  };
  if (auto it = table.find(lang); it != table.end()) return it->second;
  // Latin-script languages need no table: ICU's locale data knows them (en, fr, de, es, vi, ...),
  // as it knows script names and codes ("Latin", "Latn", "Cyrl").
  UScriptCode buf[8];
  UErrorCode err = U_ZERO_ERROR;
  std::string name(code);
  int32_t n = uscript_getCode(name.c_str(), buf, 8, &err);
  if (U_FAILURE(err) || n <= 0) return std::nullopt;
  std::vector<int> out;
  for (int32_t i = 0; i < n; ++i)
    if (buf[i] != USCRIPT_COMMON && buf[i] != USCRIPT_INHERITED && buf[i] != USCRIPT_UNKNOWN)
      out.push_back(buf[i]);
  if (out.empty()) return std::nullopt;
  return out;
}

std::string script_name(int script) {
  const char* n = uscript_getName(UScriptCode(script));
  return n ? n : "Unknown";
}

WordStats count_words(std::string_view text, const std::vector<int>& target_scripts,
                      const WordOptions& opts) {
  WordStats st;
  const char* s = text.data();
  const int32_t len = int32_t(std::min<size_t>(text.size(), INT32_MAX));
  int32_t i = 0;
  UScriptCode word_script = USCRIPT_INVALID_CODE;  // the open word's script, if any
  bool in_word = false;
  auto close_word = [&] {
    if (in_word && word_script != USCRIPT_INVALID_CODE) {
      ++st.words;
      ++st.by_script[script_name(word_script)];
      if (std::find(target_scripts.begin(), target_scripts.end(), int(word_script)) !=
          target_scripts.end())
        ++st.target_words;
    }
    in_word = false;
    word_script = USCRIPT_INVALID_CODE;
  };
  auto starts = [&](int32_t at, std::string_view p) {
    return size_t(len - at) >= p.size() && std::string_view(s + at, p.size()) == p;
  };
  // Skips from `at` (just after the opener) past `close`; false when there is no closer, and
  // then the opener is read as ordinary text (so the scan stays linear: no later opener of the
  // same kind can close either).
  bool no_close_dollar = false, no_close_ddollar = false, no_close_paren = false,
       no_close_bracket = false, no_close_fence = false;
  auto skip_to = [&](int32_t at, std::string_view close, bool* none) {
    if (*none) return false;
    size_t e = text.substr(0, size_t(len)).find(close, size_t(at));
    if (e == std::string_view::npos) {
      *none = true;
      return false;
    }
    i = int32_t(e + close.size());
    return true;
  };
  while (i < len) {
    char c = s[i];
    if (opts.skip_code && starts(i, "```")) {
      close_word();
      if (skip_to(i + 3, "```", &no_close_fence)) continue;
    }
    if (opts.skip_math) {
      if (starts(i, "$$")) {
        close_word();
        if (skip_to(i + 2, "$$", &no_close_ddollar)) continue;
      } else if (c == '$') {
        close_word();
        if (skip_to(i + 1, "$", &no_close_dollar)) continue;
      } else if (starts(i, "\\(")) {
        close_word();
        if (skip_to(i + 2, "\\)", &no_close_paren)) continue;
      } else if (starts(i, "\\[")) {
        close_word();
        if (skip_to(i + 2, "\\]", &no_close_bracket)) continue;
      }
    }
    if (c == '\\' && i + 1 < len && is_ascii_letter(s[i + 1])) {  // a LaTeX command
      close_word();
      ++i;
      while (i < len && is_ascii_letter(s[i])) ++i;
      continue;
    }
    UChar32 cp;
    U8_NEXT(s, i, len, cp);  // advances i; cp < 0 for an ill-formed sequence
    if (cp < 0) {
      close_word();
      continue;
    }
    int8_t type = u_charType(cp);
    bool letter = type == U_UPPERCASE_LETTER || type == U_LOWERCASE_LETTER ||
                  type == U_TITLECASE_LETTER || type == U_MODIFIER_LETTER || type == U_OTHER_LETTER;
    bool mark =
        type == U_NON_SPACING_MARK || type == U_ENCLOSING_MARK || type == U_COMBINING_SPACING_MARK;
    if (mark && in_word) continue;
    if (!letter) {
      close_word();
      continue;
    }
    UErrorCode err = U_ZERO_ERROR;
    UScriptCode sc = uscript_getScript(cp, &err);
    if (U_FAILURE(err)) sc = USCRIPT_UNKNOWN;
    if (sc == USCRIPT_COMMON || sc == USCRIPT_INHERITED) {
      in_word = true;  // joins the word it touches, starts none
      continue;
    }
    if (is_cjk_script(sc)) {
      close_word();
      in_word = true;
      word_script = sc;
      close_word();
      continue;
    }
    if (in_word && word_script != USCRIPT_INVALID_CODE && word_script != sc) close_word();
    in_word = true;
    word_script = sc;
  }
  close_word();
  return st;
}

std::string_view text_section(std::string_view completion, TextSection section, bool* found) {
  *found = true;
  if (section == TextSection::completion) return completion;
  size_t close = completion.find("</think>");
  if (section == TextSection::think) {
    if (close != std::string_view::npos) {
      size_t open = completion.rfind("<think>", close);
      size_t b = open == std::string_view::npos ? 0 : open + 7;
      return completion.substr(b, close - b);
    }
    *found = false;
    return completion;
  }
  size_t open = completion.rfind("<answer>");
  if (open != std::string_view::npos) {
    size_t b = open + 8;
    size_t e = completion.find("</answer>", b);
    return completion.substr(b, e == std::string_view::npos ? std::string_view::npos : e - b);
  }
  if (close != std::string_view::npos) return completion.substr(close + 8);
  *found = false;
  return completion;
}

LanguageOptions LanguageOptions::from_json(const Json& j, std::string_view where) {
  reject_unknown_keys(j,
                      {"language", "language_field", "section", "skip_math", "skip_code",
                       "empty_score", "max_input_bytes"},
                      where);
  LanguageOptions o;
  o.language = get_optional<std::string>(j, "language", where, "");
  o.language_field = get_optional<std::string>(j, "language_field", where, "");
  R1_CHECK(!o.language.empty() || !o.language_field.empty(),
           "{}: give 'language' (e.g. \"en\") or 'language_field' (a reference field)", where);
  std::string sec = get_optional<std::string>(j, "section", where, "think");
  if (sec == "think") {
    o.section = TextSection::think;
  } else if (sec == "answer") {
    o.section = TextSection::answer;
  } else if (sec == "completion") {
    o.section = TextSection::completion;
  } else {
    R1_THROW("{}: section '{}': expected think, answer or completion", where, sec);
  }
  o.words.skip_math = get_optional<bool>(j, "skip_math", where, true);
  o.words.skip_code = get_optional<bool>(j, "skip_code", where, true);
  o.empty_score = get_optional<double>(j, "empty_score", where, 0.0);
  o.max_input_bytes = get_optional<uint64_t>(j, "max_input_bytes", where, o.max_input_bytes);
  if (!o.language.empty())
    R1_CHECK(scripts_for_language(o.language).has_value(),
             "{}: unknown language '{}' (a code such as en, zh, ja, ko, ru, or a script name)",
             where, o.language);
  return o;
}

LanguageReward::LanguageReward(LanguageOptions opts) : opts_(std::move(opts)) {
  R1_CHECK(!opts_.language.empty() || !opts_.language_field.empty(),
           "[language reward] give a language or a language field");
  if (!opts_.language.empty()) {
    auto s = scripts_for_language(opts_.language);
    R1_CHECK(s.has_value(), "[language reward] unknown language '{}'", opts_.language);
    scripts_ = *s;
  }
}

RewardResult LanguageReward::score(const RewardInput& in) const {
  std::vector<int> scripts = scripts_;
  std::string lang = opts_.language;
  if (!opts_.language_field.empty()) {
    if (auto row = reference_text(in.reference, {opts_.language_field})) {
      auto s = scripts_for_language(*row);
      if (!s) return reward_skip("unknown target language '" + utf8_clip(*row, 64) + "'");
      scripts = *s;
      lang = *row;
    }
  }
  if (scripts.empty())
    return reward_skip("no target language (reference field '" + opts_.language_field +
                       "' is missing)");
  std::string_view text = in.completion.substr(0, opts_.max_input_bytes);
  bool found = false;
  std::string_view part = text_section(text, opts_.section, &found);
  WordStats st = count_words(part, scripts, opts_.words);
  RewardResult r;
  std::string note = found ? "" : "section tags not found: the whole completion was read";
  if (st.words == 0) {
    r = reward_ok(opts_.empty_score, note.empty() ? "no words" : note + "; no words");
  } else {
    r = reward_ok(double(st.target_words) / double(st.words), note);
  }
  r.details = {{"language", utf8_clip(lang, 64)},
               {"words", st.words},
               {"target_words", st.target_words},
               {"by_script", st.by_script}};
  return r;
}

}  // namespace r1kit::rewards
