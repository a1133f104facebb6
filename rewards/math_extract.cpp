// Answer extraction for the math verifier: byte-level scans over (the tail of) a completion, each
// a single forward pass (a brace stack for \boxed, a math-mode state machine for $…$), so the
// cost is linear in the input whatever it contains (1 MB of braces, unclosed boxes, NUL bytes,
// invalid UTF-8). The scans never index past the text and never throw.
#include "rewards/math_extract.h"

#include <algorithm>
#include <functional>
#include <optional>

namespace r1kit::rewards {
namespace {

constexpr size_t kMaxSentence = 4096;  // a phrase / "Answer:" candidate is cut here
constexpr int kMaxUnwrap = 8;          // \boxed{\boxed{…}} unwrapped at most this often

using Span = std::string_view;

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f';
}
bool is_alpha(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
bool is_digit(char c) {
  return c >= '0' && c <= '9';
}
bool is_alnum(char c) {
  return is_alpha(c) || is_digit(c);
}
char lower(char c) {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}
char upper(char c) {
  return c >= 'a' && c <= 'z' ? static_cast<char>(c - 'a' + 'A') : c;
}

// Whether s[i…] starts with `lower_pat` (ASCII lower case), ignoring case.
bool ieq_at(Span s, size_t i, Span lower_pat) {
  if (i > s.size() || s.size() - i < lower_pat.size()) return false;
  for (size_t k = 0; k < lower_pat.size(); ++k)
    if (lower(s[i + k]) != lower_pat[k]) return false;
  return true;
}
bool starts_with(Span s, size_t i, Span pat) {
  return i <= s.size() && s.size() - i >= pat.size() && s.compare(i, pat.size(), pat) == 0;
}

Span trim(Span s) {
  size_t b = 0, e = s.size();
  while (b < e && is_space(s[b])) ++b;
  while (e > b && is_space(s[e - 1])) --e;
  return s.substr(b, e - b);
}

// --- \boxed{…} ----------------------------------------------------------------------------------

// Length of a \boxed / \fbox command name at s[i] (0 when there is none): the name must not run on
// into more letters (\boxedx is another macro).
size_t box_command_at(Span s, size_t i) {
  for (Span name : {Span("\\boxed"), Span("\\fbox")}) {
    if (starts_with(s, i, name) && (i + name.size() == s.size() || !is_alpha(s[i + name.size()])))
      return name.size();
  }
  return 0;
}

struct BoxSpan {
  size_t begin = 0, end = 0;  // content [begin, end)
};

// The complete box that closes last. One pass with a stack of open braces, each marked with the
// content start of the box it opens (or npos): an unclosed box never completes, `\{`, `\}` and
// `\\` are escapes, not braces. A brace-less `\boxed 5` takes the argument up to whitespace, `$`
// or a brace.
std::optional<BoxSpan> last_box(Span s) {
  std::optional<BoxSpan> best;
  std::vector<size_t> open;  // per open brace: the box content start, or npos
  size_t i = 0;
  const size_t n = s.size();
  while (i < n) {
    const char c = s[i];
    if (c == '\\') {
      // `\\boxed` (a doubly escaped backslash, common in JSON-mangled text) counts as \boxed:
      // a line break followed by the letters "boxed" means nothing in LaTeX.
      if (i + 1 < n && s[i + 1] == '\\' && box_command_at(s, i + 1)) ++i;
      if (size_t len = box_command_at(s, i)) {
        size_t j = i + len;
        while (j < n && (s[j] == ' ' || s[j] == '\t')) ++j;
        if (j < n && s[j] == '{') {
          open.push_back(j + 1);
          i = j + 1;
          continue;
        }
        if (j > i + len && j < n && s[j] != '$' && s[j] != '}' && !is_space(s[j])) {
          size_t e = j;
          while (e < n && !is_space(s[e]) && s[e] != '$' && s[e] != '{' && s[e] != '}') ++e;
          best = BoxSpan{j, e};
          i = e;
          continue;
        }
        i = j;
        continue;
      }
      i += 2;  // an escaped character (\{, \}, \\, \$) or a command's first letter
      continue;
    }
    if (c == '{') {
      open.push_back(std::string_view::npos);
    } else if (c == '}' && !open.empty()) {
      const size_t start = open.back();
      open.pop_back();
      if (start != std::string_view::npos) best = BoxSpan{start, i};
    }
    ++i;
  }
  return best;
}

// \boxed{\boxed{x}} -> x (a bounded number of times: each step rescans the content).
Span unwrap_boxes(Span t) {
  for (int k = 0; k < kMaxUnwrap; ++k) {
    t = trim(t);
    if (starts_with(t, 0, "\\\\") && box_command_at(t, 1)) t.remove_prefix(1);
    const size_t len = box_command_at(t, 0);
    if (!len) break;
    size_t arg = len;  // where this box's content must start
    while (arg < t.size() && (t[arg] == ' ' || t[arg] == '\t')) ++arg;
    if (arg < t.size() && t[arg] == '{') ++arg;
    auto b = last_box(t);
    if (!b || b->begin != arg) break;  // the last box is a later one: "\boxed{1} + \boxed{2}"
    size_t close = b->end;
    if (close < t.size() && t[close] == '}') ++close;  // the brace form
    if (trim(t.substr(close)).empty()) {
      t = t.substr(b->begin, b->end - b->begin);
    } else {
      break;
    }
  }
  return trim(t);
}

// --- math segments ------------------------------------------------------------------------------

enum class MathMode { none, dollar, double_dollar, paren, bracket };

// Scans s, calling on_segment(content_begin, content_end, whole_begin, whole_end) for
// every complete math segment. `\$` is an escaped dollar; `$$` opens display math only outside
// inline math.
template <class F>
void scan_math(Span s, F&& on_segment) {
  MathMode mode = MathMode::none;
  size_t start = 0, whole = 0;
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    const char c = s[i];
    if (c == '\\' && i + 1 < n) {
      const char d = s[i + 1];
      if (mode == MathMode::none && (d == '(' || d == '[')) {
        mode = d == '(' ? MathMode::paren : MathMode::bracket;
        whole = i;
        start = i + 2;
      } else if ((mode == MathMode::paren && d == ')') || (mode == MathMode::bracket && d == ']')) {
        on_segment(start, i, whole, i + 2);
        mode = MathMode::none;
      }
      i += 2;
      continue;
    }
    if (c == '$') {
      const bool dd = i + 1 < n && s[i + 1] == '$';
      if (mode == MathMode::none) {
        mode = dd ? MathMode::double_dollar : MathMode::dollar;
        whole = i;
        start = i + (dd ? 2 : 1);
        i = start;
        continue;
      }
      if (mode == MathMode::dollar) {
        on_segment(start, i, whole, i + 1);
        mode = MathMode::none;
      } else if (mode == MathMode::double_dollar && dd) {
        on_segment(start, i, whole, i + 2);
        mode = MathMode::none;
        ++i;
      }
    }
    ++i;
  }
}

// When t starts with a math segment and what follows it is only words (units, "square
// centimeters") or punctuation, the segment's content; else t.
Span strip_math(Span t) {
  t = trim(t);
  if (t.empty() || !(t[0] == '$' || starts_with(t, 0, "\\(") || starts_with(t, 0, "\\["))) return t;
  std::optional<std::pair<size_t, size_t>> first;
  size_t first_end = 0;
  scan_math(t, [&](size_t b, size_t e, size_t whole_b, size_t whole_e) {
    if (!first && whole_b == 0) {
      first = std::make_pair(b, e);
      first_end = whole_e;
    }
  });
  if (!first) return t;
  for (size_t i = first_end; i < t.size(); ++i) {
    const char c = t[i];
    if (!(is_alpha(c) || is_space(c) || c == '.' || c == ',' || c == ';' || c == ':' || c == '*' ||
          c == '-' || c == '\'' || static_cast<unsigned char>(c) >= 0x80))
      return t;
  }
  return trim(t.substr(first->first, first->second - first->first));
}

// --- phrases ------------------------------------------------------------------------------------

// Removes bold/italic markers, surrounding math delimiters and trailing punctuation. A phrase
// that holds a complete box ("the answer is $\frac{8!}{4} = \boxed{10080}$") is that box's content.
Span clean_phrase(Span t) {
  if (auto b = last_box(t)) return unwrap_boxes(t.substr(b->begin, b->end - b->begin));
  for (int k = 0; k < 4; ++k) {
    const Span before = t;
    t = trim(t);
    while (!t.empty() && (t.front() == '*' || t.front() == '_')) t.remove_prefix(1);
    while (!t.empty() && (t.back() == '*' || t.back() == '.' || t.back() == ',' ||
                          t.back() == ';' || t.back() == ':' || is_space(t.back())))
      t.remove_suffix(1);
    t = strip_math(t);
    if (t == before) break;
  }
  return unwrap_boxes(t);
}

// The sentence starting at `pos` (after leading whitespace; a phrase at a line's end continues on
// the next non-blank line). It ends at a line break or at `.`, `?`, `;` followed by a non-alnum
// outside math, at a blank line or at "<|" / "</" (a special token or closing tag) anywhere, and
// after kMaxSentence bytes.
Span sentence_at(Span s, size_t pos) {
  const size_t n = s.size();
  while (pos < n && is_space(s[pos])) ++pos;
  const size_t start = pos;
  MathMode mode = MathMode::none;
  size_t i = start;
  while (i < n && i - start < kMaxSentence) {
    const char c = s[i];
    if (c == '\n' && (mode == MathMode::none || (i + 1 < n && s[i + 1] == '\n'))) break;
    if (c == '<' && i + 1 < n && (s[i + 1] == '|' || s[i + 1] == '/')) break;
    if (c == '\\' && i + 1 < n) {
      const char d = s[i + 1];
      if (mode == MathMode::none && (d == '(' || d == '['))
        mode = d == '(' ? MathMode::paren : MathMode::bracket;
      else if ((mode == MathMode::paren && d == ')') || (mode == MathMode::bracket && d == ']'))
        mode = MathMode::none;
      i += 2;
      continue;
    }
    if (c == '$') {
      const bool dd = i + 1 < n && s[i + 1] == '$';
      if (mode == MathMode::none) {
        mode = dd ? MathMode::double_dollar : MathMode::dollar;
        i += dd ? 2 : 1;
        continue;
      }
      if (mode == MathMode::dollar) {
        mode = MathMode::none;
      } else if (mode == MathMode::double_dollar && dd) {
        mode = MathMode::none;
        ++i;
      }
      ++i;
      continue;
    }
    if (mode == MathMode::none && (c == '.' || c == '?' || c == ';') &&
        (i + 1 == n || !is_alnum(s[i + 1])))
      break;
    ++i;
  }
  return s.substr(start, std::min(i, n) - start);
}

struct PhraseHits {
  size_t answer_is = std::string_view::npos;  // just after "answer is"
  size_t colon = std::string_view::npos;      // just after "answer:"
};

// The last "answer is" and the last "answer:" (ignoring case, "answer" not inside a longer word;
// "**Answer:**" and "Answer :" count as "answer:").
PhraseHits find_phrases(Span s) {
  PhraseHits h;
  const size_t n = s.size();
  for (size_t i = 0; i + 6 <= n; ++i) {
    if (lower(s[i]) != 'a' || !ieq_at(s, i, "answer")) continue;
    if (i > 0 && is_alpha(s[i - 1])) continue;
    size_t j = i + 6;
    if (j < n && lower(s[j]) == 's') ++j;  // "answers:"
    size_t k = j;
    while (k < n && (s[k] == ' ' || s[k] == '*')) ++k;
    if (k < n && s[k] == ':') {
      h.colon = k + 1;
    } else if (j < n && s[j] == ' ' && ieq_at(s, j + 1, "is") &&
               (j + 3 == n || !is_alpha(s[j + 3]))) {
      size_t p = j + 3;
      while (p < n && (s[p] == ' ' || s[p] == '*')) ++p;
      if (p < n && s[p] == ':') ++p;
      h.answer_is = p;
    }
    i = j - 1;
  }
  return h;
}

// "Answer: The volume of $V$ is 120" -> "120": a sentence that starts with a word and has
// " is " outside math keeps what follows the last one.
Span after_last_is(Span t) {
  if (t.empty() || !is_alpha(t[0])) return t;
  size_t last = std::string_view::npos;
  bool in_math = false;
  for (size_t i = 0; i + 4 <= t.size(); ++i) {
    if (t[i] == '$') in_math = !in_math;
    if (!in_math && t.compare(i, 4, " is ") == 0) last = i + 4;
  }
  return last == std::string_view::npos ? t : t.substr(last);
}

// A phrase's content without leading filler words ("the answer is that x = 5", "is equal to 5"),
// or empty when it is a judgement or a pointer rather than an answer ("our answer is correct",
// "the answer is not 5", "the answer is below").
Span phrase_answer(Span t) {
  static constexpr std::string_view kFiller[] = {
      "that",  "therefore", "thus",   "then",      "simply", "clearly",   "indeed",
      "just",  "also",      "now",    "hence",     "so",     "actually",  "exactly",
      "still", "equal",     "equals", "precisely", "surely", "obviously", "finally"};
  static constexpr std::string_view kNotAnswer[] = {
      "not",     "correct",  "incorrect", "right",    "wrong",      "below",     "above", "as",
      "given",   "shown",    "in",        "on",       "at",         "from",      "this",  "these",
      "those",   "what",     "which",     "how",      "when",       "where",     "why",   "unknown",
      "unclear", "obtained", "found",     "computed", "calculated", "incomplete"};
  bool after_equal = false;
  for (int k = 0; k < 4; ++k) {
    t = trim(t);
    size_t w = 0;
    while (w < t.size() && is_alpha(t[w])) ++w;
    if (w == 0 || (w < t.size() && (is_digit(t[w]) || t[w] == '_' || t[w] == '^' || t[w] == '(')))
      return t;  // not a word (a number, x_1, f(x))
    std::string word;
    for (size_t i = 0; i < w; ++i) word += lower(t[i]);
    if (after_equal && word == "to") {
      t.remove_prefix(w);
      after_equal = false;
      continue;
    }
    bool filler = false;
    for (std::string_view f : kFiller) filler = filler || f == word;
    if (filler && w < t.size()) {
      after_equal = word == "equal";
      t.remove_prefix(w);
      while (!t.empty() && (t.front() == ',' || t.front() == ':' || is_space(t.front())))
        t.remove_prefix(1);
      continue;
    }
    for (std::string_view n : kNotAnswer)
      if (n == word) return Span();
    return t;
  }
  return t;
}

// --- GSM8K --------------------------------------------------------------------------------------

// After the last "####", the rest of the line, when it looks like a number (has a digit and no
// word outside a LaTeX command: "#### 3. Final check" is a markdown heading, not an answer).
std::optional<Span> gsm8k_answer(Span s) {
  const size_t p = s.rfind("####");
  if (p == std::string_view::npos) return std::nullopt;
  size_t b = p + 4, e = b;
  while (e < s.size() && s[e] != '\n' && !(s[e] == '<' && e + 1 < s.size() && s[e + 1] == '|')) ++e;
  Span t = trim(s.substr(b, e - b));
  bool digit = false;
  for (size_t i = 0; i < t.size(); ++i) {
    if (is_digit(t[i])) digit = true;
    if (is_alpha(t[i])) {
      size_t w = i;
      while (w < t.size() && is_alpha(t[w])) ++w;
      const bool command = i > 0 && t[i - 1] == '\\';
      if (w - i >= 2 && !command) return std::nullopt;
      i = w - 1;
    }
  }
  if (!digit) return std::nullopt;
  while (!t.empty() && (t.back() == '.' || is_space(t.back()))) t.remove_suffix(1);
  return t;
}

// --- last number --------------------------------------------------------------------------------

// Length of a thousands separator at s[i] followed by exactly three digits: ",", ",\!", "{,}".
size_t thousands_sep_at(Span s, size_t i) {
  size_t len = 0;
  if (starts_with(s, i, ",\\!"))
    len = 3;
  else if (starts_with(s, i, "{,}"))
    len = 3;
  else if (starts_with(s, i, ","))
    len = 1;
  else
    return 0;
  const size_t d = i + len;
  if (d + 3 > s.size() || !is_digit(s[d]) || !is_digit(s[d + 1]) || !is_digit(s[d + 2])) return 0;
  if (d + 3 < s.size() && is_digit(s[d + 3])) return 0;
  return len;
}

// The last number: optional sign, digits with thousands separators, a decimal part, a plain
// fraction "/d" and a percent sign; not preceded by a letter ("AZYUK2A" has no number).
std::optional<Span> last_number(Span s) {
  std::optional<Span> best;
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    const bool lead_dot = s[i] == '.' && i + 1 < n && is_digit(s[i + 1]);
    if (!is_digit(s[i]) && !lead_dot) {
      ++i;
      continue;
    }
    size_t b = i;
    if (b > 0 && (is_alpha(s[b - 1]) || s[b - 1] == '_')) {  // x2, a_1: part of a name
      while (i < n && (is_digit(s[i]) || s[i] == '.')) ++i;
      continue;
    }
    if (b > 0 && s[b - 1] == '-' && (b < 2 || !is_alnum(s[b - 2]))) --b;
    size_t e = i;
    while (e < n && is_digit(s[e])) ++e;
    while (size_t len = thousands_sep_at(s, e)) e += len + 3;
    if (e + 1 < n && s[e] == '.' && is_digit(s[e + 1])) {
      ++e;
      while (e < n && is_digit(s[e])) ++e;
    }
    if (e + 1 < n && s[e] == '/' && is_digit(s[e + 1])) {
      ++e;
      while (e < n && is_digit(s[e])) ++e;
    }
    if (e < n && s[e] == '%')
      ++e;
    else if (starts_with(s, e, "\\%"))
      e += 2;
    best = s.substr(b, e - b);
    i = std::max(e, i + 1);
  }
  return best;
}

// --- multiple choice ----------------------------------------------------------------------------

// A choice letter at the start of t, optionally wrapped: "B", "(B)", "[b]", "**B**", "\text{B}".
// `whole`: nothing but closing wrappers and punctuation may follow; else a non-alnum must.
std::optional<char> choice_at_start(Span t, const std::string& choices, bool whole,
                                    bool allow_lower) {
  t = trim(t);
  size_t i = 0;
  for (int k = 0; k < 4 && i < t.size(); ++k) {
    if (t[i] == '(' || t[i] == '[' || t[i] == '*' || t[i] == '{' || t[i] == '$')
      ++i;
    else if (starts_with(t, i, "\\text{") || starts_with(t, i, "\\mathrm{"))
      i = t.find('{', i) + 1;
    else
      break;
  }
  if (i >= t.size()) return std::nullopt;
  char c = t[i];
  if (allow_lower) c = upper(c);
  if (!is_alpha(c) || choices.find(c) == std::string::npos) return std::nullopt;
  if (i + 1 < t.size() && is_alnum(t[i + 1])) return std::nullopt;
  if (whole) {
    for (size_t j = i + 1; j < t.size(); ++j) {
      const char d = t[j];
      if (!(d == ')' || d == ']' || d == '*' || d == '}' || d == '$' || d == '.' || is_space(d)))
        return std::nullopt;
    }
  }
  return c;
}

std::optional<char> find_choice(Span scope, const std::optional<Span>& boxed,
                                const PhraseHits& hits, const std::string& choices) {
  if (boxed) {
    if (auto c = choice_at_start(*boxed, choices, true, true)) return c;
  }
  for (size_t pos : {hits.answer_is, hits.colon}) {
    if (pos == std::string_view::npos) continue;
    if (auto c = choice_at_start(sentence_at(scope, pos), choices, false, true)) return c;
  }
  // A leading "B." / "(B)" / "B:" / "B)".
  const Span t = trim(scope);
  if (auto c = choice_at_start(t, choices, false, false)) {
    size_t i = 0;
    while (i < t.size() && t[i] != *c) ++i;
    if (i + 1 >= t.size() || t[i + 1] == '.' || t[i + 1] == ')' || t[i + 1] == ':' ||
        t[i + 1] == ']')
      return c;
  }
  // The last standalone capital letter (not a command's: \A).
  for (size_t i = scope.size(); i-- > 0;) {
    const char c = scope[i];
    if (!(c >= 'A' && c <= 'Z') || choices.find(c) == std::string::npos) continue;
    if (i > 0 && (is_alnum(scope[i - 1]) || scope[i - 1] == '\\' || scope[i - 1] == '\'')) continue;
    if (i + 1 < scope.size() && (is_alnum(scope[i + 1]) || scope[i + 1] == '\'')) continue;
    return c;
  }
  return std::nullopt;
}

// --- assembly -----------------------------------------------------------------------------------

// The content of the last <answer>…</answer> (an unclosed last tag runs to the end), or nullopt.
std::optional<Span> answer_tag_content(Span s) {
  const size_t p = s.rfind("<answer>");
  if (p == std::string_view::npos) return std::nullopt;
  const size_t b = p + 8;
  size_t e = s.find("</answer>", b);
  if (e == std::string_view::npos) e = s.size();
  return s.substr(b, e - b);
}

// The last `max` bytes, starting at a UTF-8 character boundary.
Span tail(Span s, size_t max) {
  if (s.size() <= max) return s;
  size_t b = s.size() - max;
  for (int k = 0; k < 3 && b < s.size() && (static_cast<unsigned char>(s[b]) & 0xC0) == 0x80; ++k)
    ++b;
  return s.substr(b);
}

std::vector<Candidate> extract_impl(const Span input, const ExtractOptions& opts) {
  std::vector<Candidate> out;
  if (opts.max_candidates == 0) return out;
  const Span text = tail(input, opts.max_input_bytes);
  auto add = [&](Span t, AnswerSource src) {
    t = trim(t);
    if (t.empty() || out.size() >= opts.max_candidates) return;
    for (const auto& c : out)
      if (c.text == t) return;
    // Every candidate but a choice letter is a view into the input.
    const bool inside =
        std::less_equal<const char*>()(input.data(), t.data()) &&
        std::less_equal<const char*>()(t.data() + t.size(), input.data() + input.size());
    const size_t end = inside ? static_cast<size_t>(t.data() - input.data()) + t.size() : 0;
    out.push_back(Candidate{std::string(t), src, end});
  };

  Span scope = text;
  bool in_tag = false;
  if (opts.answer_tag) {
    if (auto content = answer_tag_content(text); content && !trim(*content).empty()) {
      scope = *content;
      in_tag = true;
    }
  }

  std::optional<Span> boxed;
  if (opts.boxed || !opts.choices.empty()) {
    if (auto b = last_box(scope)) boxed = unwrap_boxes(scope.substr(b->begin, b->end - b->begin));
  }
  const PhraseHits hits = (opts.final_answer_phrase || opts.answer_colon || !opts.choices.empty())
                              ? find_phrases(scope)
                              : PhraseHits{};

  if (!opts.choices.empty()) {
    if (auto c = find_choice(scope, boxed, hits, opts.choices))
      add(Span(&*c, 1), AnswerSource::choice);
  }
  if (opts.boxed && boxed) add(*boxed, AnswerSource::boxed);
  if (opts.gsm8k_hashes) {
    if (auto g = gsm8k_answer(scope)) add(*g, AnswerSource::gsm8k_hashes);
  }
  if (opts.final_answer_phrase && hits.answer_is != std::string_view::npos)
    add(clean_phrase(phrase_answer(clean_phrase(sentence_at(scope, hits.answer_is)))),
        AnswerSource::final_answer_phrase);
  if (opts.answer_colon && hits.colon != std::string_view::npos)
    add(clean_phrase(phrase_answer(
            clean_phrase(after_last_is(clean_phrase(sentence_at(scope, hits.colon)))))),
        AnswerSource::answer_colon);
  if (opts.last_math) {
    std::optional<Span> last;
    scan_math(scope, [&](size_t b, size_t e, size_t, size_t) {
      if (!trim(scope.substr(b, e - b)).empty()) last = scope.substr(b, e - b);
    });
    if (last) {
      if (auto b = last_box(*last)) *last = unwrap_boxes(last->substr(b->begin, b->end - b->begin));
      add(unwrap_boxes(*last), AnswerSource::last_math);
    }
  }
  if (in_tag) add(clean_phrase(scope), AnswerSource::answer_tag);
  if (opts.last_number) {
    if (auto num = last_number(scope)) add(*num, AnswerSource::last_number);
  }
  if (opts.whole_text) add(text, AnswerSource::whole_text);
  return out;
}

}  // namespace

const char* answer_source_name(AnswerSource s) {
  switch (s) {
    case AnswerSource::answer_tag:
      return "answer_tag";
    case AnswerSource::boxed:
      return "boxed";
    case AnswerSource::gsm8k_hashes:
      return "gsm8k_hashes";
    case AnswerSource::final_answer_phrase:
      return "final_answer_phrase";
    case AnswerSource::answer_colon:
      return "answer_colon";
    case AnswerSource::last_number:
      return "last_number";
    case AnswerSource::whole_text:
      return "whole_text";
    case AnswerSource::last_math:
      return "last_math";
    case AnswerSource::choice:
      return "choice";
  }
  return "unknown";
}

std::vector<Candidate> extract_answers(std::string_view text, const ExtractOptions& opts) {
  try {
    return extract_impl(text, opts);
  } catch (...) {  // only std::bad_alloc can get here; a verifier must not throw
    return {};
  }
}

}  // namespace r1kit::rewards
