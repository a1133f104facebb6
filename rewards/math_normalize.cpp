// normalize_answer (declared in math_extract.h): string clean-up of one extracted answer before
// parse_math. Each step is one linear pass; the output is never longer than 4x the input + 64.
#include <algorithm>
#include <cctype>
#include <cstring>
#include <string>
#include <string_view>

#include "rewards/math_extract.h"

namespace r1kit::rewards {
namespace {

bool is_alpha(char c) {
  return std::isalpha(static_cast<unsigned char>(c)) != 0;
}
bool is_digit(char c) {
  return c >= '0' && c <= '9';
}
bool is_space(char c) {
  return std::isspace(static_cast<unsigned char>(c)) != 0;
}

// LaTeX commands written with a doubled backslash by JSON-escaping mistakes ("\\frac").
bool known_command(std::string_view c) {
  static const char* const kKnown[] = {
      "frac",     "dfrac",      "tfrac",        "cfrac",      "sqrt",  "left",   "right",  "boxed",
      "text",     "le",         "leq",          "ge",         "geq",   "ne",     "neq",    "lt",
      "gt",       "pi",         "infty",        "cdot",       "times", "div",    "pm",     "mp",
      "in",       "cup",        "sin",          "cos",        "tan",   "log",    "ln",     "exp",
      "mathrm",   "mathbf",     "textbf",       "mbox",       "begin", "end",    "approx", "circ",
      "degree",   "theta",      "alpha",        "beta",       "binom", "dbinom", "quad",   "qquad",
      "emptyset", "varnothing", "operatorname", "textnormal", "fbox"};
  for (const char* k : kKnown) {
    if (c == k) return true;
  }
  return false;
}

struct Rep {
  const char* from;
  const char* to;
};

// Unicode forms and a few spellings mapped to LaTeX.
constexpr Rep kUnicode[] = {
    {"\xe2\x88\x92", "-"},            // − minus
    {"\xe2\x80\x93", "-"},            // – en dash
    {"\xc3\x97", "\\times "},         // ×
    {"\xc3\xb7", "\\div "},           // ÷
    {"\xc2\xb7", "\\cdot "},          // ·
    {"\xe2\x8b\x85", "\\cdot "},      // ⋅
    {"\xe2\x88\x9a", "\\sqrt"},       // √
    {"\xcf\x80", "\\pi "},            // π
    {"\xe2\x88\x9e", "\\infty "},     // ∞
    {"\xe2\x89\xa4", "\\le "},        // ≤
    {"\xe2\x89\xa5", "\\ge "},        // ≥
    {"\xe2\x89\xa0", "\\ne "},        // ≠
    {"\xc2\xb1", "\\pm "},            // ±
    {"\xe2\x88\x93", "\\mp "},        // ∓
    {"\xc2\xb0", ""},                 // ° degree
    {"\xc2\xb2", "^2"},               // ²
    {"\xc2\xb3", "^3"},               // ³
    {"\xe2\x88\xaa", "\\cup "},       // ∪
    {"\xe2\x88\x88", "\\in "},        // ∈
    {"\xe2\x88\x85", "\\emptyset "},  // ∅
    {"\xe2\x80\xb2", "'"},            // ′ prime
    {"\xc2\xa0", " "},                // no-break space
    {"\xe2\x82\xac", ""},             // € (a currency sign)
    {"\xc2\xa3", ""},                 // £
    {"\xe2\x89\x88", "\\approx "},    // ≈
};

std::string replace_unicode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    if (static_cast<unsigned char>(s[i]) >= 0x80) {
      bool done = false;
      for (const Rep& r : kUnicode) {
        size_t n = std::strlen(r.from);
        if (s.compare(i, n, r.from) == 0) {
          out += r.to;
          i += n;
          done = true;
          break;
        }
      }
      if (done) continue;
    }
    // "\\frac" -> "\frac" (not the "\\" row break of a matrix)
    if (s[i] == '\\' && i + 2 < s.size() && s[i + 1] == '\\' && is_alpha(s[i + 2]) &&
        (i == 0 || s[i - 1] != '\\')) {
      size_t j = i + 2;
      while (j < s.size() && is_alpha(s[j])) ++j;
      if (known_command(s.substr(i + 2, j - i - 2))) {
        ++i;
        continue;
      }
    }
    out += s[i++];
  }
  return out;
}

// The end of the balanced {…} group starting at open (the index after '}'), or npos.
size_t group_end(const std::string& s, size_t open) {
  int depth = 0;
  for (size_t q = open; q < s.size(); ++q) {
    if (s[q] == '\\' && q + 1 < s.size()) {
      ++q;
      continue;
    }
    if (s[q] == '{') ++depth;
    if (s[q] == '}' && --depth == 0) return q + 1;
  }
  return std::string::npos;
}

std::string trim(std::string_view s) {
  size_t a = 0, b = s.size();
  while (a < b && is_space(s[a])) ++a;
  while (b > a && is_space(s[b - 1])) --b;
  return std::string(s.substr(a, b - a));
}

bool is_text_command(std::string_view c) {
  return c == "text" || c == "textbf" || c == "mbox" || c == "textnormal" || c == "textrm" ||
         c == "textit" || c == "hbox" || c == "textsf" || c == "texttt" || c == "textup";
}

bool word_only(std::string_view t) {
  bool letter = false;
  for (char c : t) {
    if (is_alpha(c)) {
      letter = true;
    } else if (!(is_space(c) || c == '.' || c == '-' || c == '\'' || c == '^' || is_digit(c) ||
                 c == '/' || c == '(' || c == ')' || c == ',')) {
      return false;
    }
  }
  return letter;
}

// Lower-case word at s[i] that is whole (no letters around it).
bool word_at(const std::string& s, size_t i, std::string_view w) {
  if (i + w.size() > s.size()) return false;
  for (size_t k = 0; k < w.size(); ++k) {
    if (std::tolower(static_cast<unsigned char>(s[i + k])) != w[k]) return false;
  }
  if (i > 0 && (is_alpha(s[i - 1]) || s[i - 1] == '\\')) return false;
  if (i + w.size() < s.size() && is_alpha(s[i + w.size()])) return false;
  return true;
}

// \text{ and } -> ","; a unit or word \text{…} after something else is dropped; a lone
// \text{…} is kept (the parser makes it a text value or a number).
std::string handle_text_groups(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    if (s[i] == '\\' && i + 1 < s.size() && is_alpha(s[i + 1])) {
      size_t j = i + 1;
      while (j < s.size() && is_alpha(s[j])) ++j;
      std::string_view cmd(s.data() + i + 1, j - i - 1);
      size_t k = j;
      while (k < s.size() && is_space(s[k])) ++k;
      if (is_text_command(cmd) && k < s.size() && s[k] == '{') {
        size_t end = group_end(s, k);
        if (end == std::string::npos) {
          out += s.substr(i);
          break;
        }
        std::string inner = trim(std::string_view(s).substr(k + 1, end - k - 2));
        std::string lower;
        for (char c : inner)
          lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        if (lower == "and" || lower == "or" || lower == "," || lower == "and," ||
            lower == ", and" || lower == "or,") {
          while (!out.empty() && (is_space(out.back()) || out.back() == ',')) out.pop_back();
          out += ", ";
          i = end;
          while (i < s.size() && (is_space(s[i]) || s[i] == ',')) ++i;
          continue;
        }
        bool lone = trim(out).empty() && trim(std::string_view(s).substr(end)).empty();
        if (!lone && word_only(inner)) {
          // a word after a value ("10\text{ cm}") or between values: dropped, but a word that
          // joins answers ("6 \text{ and } 8" was handled above) keeps them apart
          out += ' ';
          i = end;
          // a unit power after it: \text{cm}^2
          if (i + 1 < s.size() && s[i] == '^') {
            size_t q = i + 1;
            if (q < s.size() && is_digit(s[q])) {
              i = q + 1;
            } else if (q < s.size() && s[q] == '{') {
              size_t e2 = group_end(s, q);
              if (e2 != std::string::npos && e2 - q <= 4) i = e2;
            }
          }
          continue;
        }
      }
    }
    out += s[i++];
  }
  return out;
}

// Units recognised after a number (lower case).
bool is_unit_word(std::string_view w) {
  static const char* const kUnits[] = {
      "cm",       "m",       "km",      "mm",         "meter",   "meters",   "metre",   "metres",
      "inch",     "inches",  "in",      "foot",       "feet",    "ft",       "yard",    "yards",
      "yd",       "mile",    "miles",   "mi",         "unit",    "units",    "s",       "sec",
      "second",   "seconds", "min",     "minute",     "minutes", "h",        "hr",      "hrs",
      "hour",     "hours",   "day",     "days",       "week",    "weeks",    "month",   "months",
      "year",     "years",   "kg",      "g",          "gram",    "grams",    "mg",      "lb",
      "lbs",      "pound",   "pounds",  "oz",         "ounce",   "ounces",   "dollar",  "dollars",
      "cent",     "cents",   "degree",  "degrees",    "deg",     "l",        "liter",   "liters",
      "litre",    "litres",  "ml",      "mph",        "kmh",     "yuan",     "euro",    "euros",
      "square",   "sq",      "cubic",   "people",     "persons", "students", "apples",  "cookies",
      "times",    "radians", "rad",     "percentage", "points",  "cups",     "gallons", "gallon",
      "pages",    "boxes",   "marbles", "books",      "coins",   "tickets",  "bags",    "eggs",
      "pieces",   "items",   "trees",   "cars",       "balls",   "dogs",     "cats",    "kids",
      "children", "men",     "women",   "workers",    "hats",    "pencils",  "pens"};
  for (const char* u : kUnits) {
    if (w == u) return true;
  }
  return false;
}

// Drops unit words that follow a number (or a closing brace) and end the answer or an item:
// "1cm", "3s", "\frac{1}{2} cm", "15 cm^2", "35 cm, 4". "1 < ms < 2" is left alone.
std::string strip_units(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    if (is_alpha(s[i]) && (i == 0 || s[i - 1] != '\\')) {
      // the value just before (skipping spaces) must end in a digit or a closing bracket
      size_t b = out.size();
      while (b > 0 && is_space(out[b - 1])) --b;
      bool after_value = b > 0 && (is_digit(out[b - 1]) || out[b - 1] == '}' || out[b - 1] == ')');
      if (after_value && !(i > 0 && is_alpha(s[i - 1]))) {
        // one or more unit words, then end / ',' / ';' / ')' (with an optional ^2 / ^3)
        size_t j = i;
        bool any = false;
        for (;;) {
          size_t w = j;
          while (w < s.size() && is_alpha(s[w])) ++w;
          std::string word;
          for (size_t k = j; k < w; ++k)
            word += static_cast<char>(std::tolower(static_cast<unsigned char>(s[k])));
          if (w == j || !is_unit_word(word)) break;
          // single-letter units only right at the end
          any = true;
          j = w;
          if (j + 1 < s.size() && s[j] == '^' && (s[j + 1] == '2' || s[j + 1] == '3')) j += 2;
          size_t sp = j;
          while (sp < s.size() && is_space(s[sp])) ++sp;
          if (sp < s.size() && is_alpha(s[sp])) {
            j = sp;
            continue;
          }
          j = sp;
          break;
        }
        bool ends = j >= s.size() || s[j] == ',' || s[j] == ';' || s[j] == ')' || s[j] == '$';
        if (any && ends) {
          while (!out.empty() && is_space(out.back())) out.pop_back();
          i = j;
          continue;
        }
      }
    }
    out += s[i++];
  }
  return out;
}

// "and", "or" between items -> ","; "percent", "pct", "percentage" -> "\%".
std::string replace_words(const std::string& s, const NormalizeOptions& opts) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    if (word_at(s, i, "and") || word_at(s, i, "or")) {
      size_t n = word_at(s, i, "and") ? 3 : 2;
      while (!out.empty() && is_space(out.back())) out.pop_back();
      if (!out.empty() && out.back() != ',') out += ", ";
      i += n;
      while (i < s.size() && (is_space(s[i]) || s[i] == ',')) ++i;
      continue;
    }
    for (std::string_view w :
         {std::string_view("percentage"), std::string_view("percent"), std::string_view("pct")}) {
      if (word_at(s, i, w)) {
        size_t b = out.size();
        while (b > 0 && is_space(out[b - 1])) --b;
        if (b > 0 && (is_digit(out[b - 1]) || out[b - 1] == '}')) {
          out.resize(b);
          out += "\\%";
          i += w.size();
          goto next;
        }
      }
    }
    out += s[i++];
  next:;
  }
  (void)opts;
  return out;
}

// Degree marks, dollars, "\!" spacing inside numbers.
std::string simple_removals(const std::string& s, const NormalizeOptions& opts) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    auto at = [&](std::string_view t) { return s.compare(i, t.size(), t) == 0; };
    if (at("^{\\circ}")) {
      i += 8;
      continue;
    }
    if (at("^\\circ")) {
      i += 6;
      continue;
    }
    if (at("\\circ") || at("\\degree")) {
      i += at("\\circ") ? 5 : 7;
      continue;
    }
    if (at("\\qquad") || at("\\quad")) {  // also "\quadx" (a missing space)
      out += ' ';
      i += at("\\qquad") ? 6 : 5;
      continue;
    }
    if (at("\\$")) {
      i += 2;
      continue;
    }
    if (s[i] == '$') {
      ++i;
      continue;
    }
    if (at("\\%") || s[i] == '%') {
      size_t n = s[i] == '%' ? 1 : 2;
      if (opts.keep_percent) {
        out += "\\%";
      } else if (opts.percent_as_fraction) {
        out += "/100";
      }
      i += n;
      continue;
    }
    out += s[i++];
  }
  return out;
}

// A leading "\boxed{" that never closes (a truncated box) and trailing punctuation.
std::string trim_edges(std::string s) {
  s = trim(s);
  for (int round = 0; round < 4; ++round) {
    size_t before = s.size();
    while (!s.empty() && (s.back() == '.' || s.back() == ',' || s.back() == ';' ||
                          s.back() == ':' || is_space(s.back()))) {
      // keep "\," style spacing commands intact by removing them too
      s.pop_back();
    }
    if (s.size() >= 1 && s.back() == '\\') s.pop_back();
    for (std::string_view tail :
         {std::string_view("\\quad"), std::string_view("\\qquad"), std::string_view("\\text{.}"),
          std::string_view("\\,"), std::string_view("\\;"), std::string_view("\\!")}) {
      if (s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0) {
        s.resize(s.size() - tail.size());
      }
    }
    while (!s.empty() && (s.front() == '=' || is_space(s.front()) || s.front() == ':')) {
      s.erase(s.begin());
    }
    if (s.size() == before) break;
  }
  return s;
}

}  // namespace

std::string normalize_answer(std::string_view answer, const NormalizeOptions& opts) {
  if (answer.size() > opts.max_bytes) answer = answer.substr(0, opts.max_bytes);
  std::string s = replace_unicode(answer);
  // a truncated "\boxed{…" (no closing brace): its content
  for (std::string_view box : {std::string_view("\\boxed{"), std::string_view("\\fbox{")}) {
    size_t p = s.find(box);
    if (p != std::string::npos && group_end(s, p + box.size() - 1) == std::string::npos) {
      s.erase(p, box.size());
    }
  }
  s = simple_removals(s, opts);
  s = handle_text_groups(s);
  s = replace_words(s, opts);
  if (opts.strip_units) s = strip_units(s);
  return trim_edges(std::move(s));
}

}  // namespace r1kit::rewards
