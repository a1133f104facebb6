// Normalisers, pre-tokenisers and the Oniguruma-to-RE2 regex translation (see pretokenize.h for the
// semantics reproduced and why each rewrite is needed).
#include "policy/pretokenize.h"

#include <re2/re2.h>
#include <utf8proc.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <cstring>

#include "core/error.h"

namespace r1kit::policy {

// --- UTF-8 and byte-level alphabet ---------------------------------------------------------------

uint32_t utf8_next(std::string_view s, size_t* i) {
  const auto* p = reinterpret_cast<const uint8_t*>(s.data()) + *i;
  const uint8_t b = p[0];
  if (b < 0x80) {
    *i += 1;
    return b;
  }
  if (b < 0xE0) {
    *i += 2;
    return (uint32_t(b & 0x1F) << 6) | (p[1] & 0x3F);
  }
  if (b < 0xF0) {
    *i += 3;
    return (uint32_t(b & 0x0F) << 12) | (uint32_t(p[1] & 0x3F) << 6) | (p[2] & 0x3F);
  }
  *i += 4;
  return (uint32_t(b & 0x07) << 18) | (uint32_t(p[1] & 0x3F) << 12) | (uint32_t(p[2] & 0x3F) << 6) |
         (p[3] & 0x3F);
}

void utf8_append(uint32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

// White_Space = Zs ∪ Zl ∪ Zp ∪ {U+0009..U+000D, U+0085}.
bool is_unicode_space(uint32_t cp) {
  if (cp < 0x80) return cp == ' ' || (cp >= 0x09 && cp <= 0x0D);
  if (cp == 0x85) return true;
  const auto cat = utf8proc_category(static_cast<utf8proc_int32_t>(cp));
  return cat == UTF8PROC_CATEGORY_ZS || cat == UTF8PROC_CATEGORY_ZL || cat == UTF8PROC_CATEGORY_ZP;
}

namespace {

struct ByteLevelTables {
  std::array<uint32_t, 256> to_char{};
  std::array<int16_t, 324> to_byte{};  // code points 0 .. 323 (the largest is U+0143)
  ByteLevelTables() {
    to_byte.fill(-1);
    auto printable = [](int b) {
      return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    };
    uint32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      to_char[b] = printable(b) ? static_cast<uint32_t>(b) : next++;
      to_byte[to_char[b]] = static_cast<int16_t>(b);
    }
  }
};

const ByteLevelTables& byte_tables() {
  static const ByteLevelTables t;
  return t;
}

}  // namespace

uint32_t byte_level_char(uint8_t b) {
  return byte_tables().to_char[b];
}

int byte_level_byte(uint32_t cp) {
  const auto& t = byte_tables();
  return cp < t.to_byte.size() ? t.to_byte[cp] : -1;
}

std::string byte_level_encode(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char c : bytes) utf8_append(byte_level_char(static_cast<uint8_t>(c)), &out);
  return out;
}

std::optional<std::string> byte_level_decode(std::string_view token) {
  if (utf8_invalid_offset(token) != std::string_view::npos) return std::nullopt;
  std::string out;
  out.reserve(token.size());
  for (size_t i = 0; i < token.size();) {
    const int b = byte_level_byte(utf8_next(token, &i));
    if (b < 0) return std::nullopt;
    out.push_back(static_cast<char>(b));
  }
  return out;
}

namespace {

// The length of the well-formed character starting at s[i] and the allowed range of its second
// byte (Unicode Table 3-7), or 0 for a byte that cannot start one.
struct LeadInfo {
  int len;
  uint8_t lo, hi;
};
LeadInfo lead_info(uint8_t b) {
  if (b < 0x80) return {1, 0, 0};
  if (b >= 0xC2 && b <= 0xDF) return {2, 0x80, 0xBF};
  if (b == 0xE0) return {3, 0xA0, 0xBF};
  if (b == 0xED) return {3, 0x80, 0x9F};
  if (b >= 0xE1 && b <= 0xEF) return {3, 0x80, 0xBF};
  if (b == 0xF0) return {4, 0x90, 0xBF};
  if (b >= 0xF1 && b <= 0xF3) return {4, 0x80, 0xBF};
  if (b == 0xF4) return {4, 0x80, 0x8F};
  return {0, 0, 0};
}

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD

}  // namespace

std::string utf8_lossy(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  const auto* p = reinterpret_cast<const uint8_t*>(s.data());
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    if (p[i] < 0x80) {
      out.push_back(static_cast<char>(p[i++]));
      continue;
    }
    const LeadInfo li = lead_info(p[i]);
    if (li.len == 0) {
      out += kReplacement;
      ++i;
      continue;
    }
    // Maximal subpart: the lead plus every following byte that keeps the prefix well-formed.
    size_t j = i + 1;
    bool ok = j < n && p[j] >= li.lo && p[j] <= li.hi;
    if (ok) {
      ++j;
      for (int k = 2; k < li.len; ++k) {
        if (j < n && p[j] >= 0x80 && p[j] <= 0xBF) {
          ++j;
        } else {
          ok = false;
          break;
        }
      }
    }
    if (ok) {
      out.append(s.substr(i, j - i));
    } else {
      out += kReplacement;
    }
    i = j;
  }
  return out;
}

size_t utf8_incomplete_tail(std::string_view s) {
  const auto* p = reinterpret_cast<const uint8_t*>(s.data());
  const size_t n = s.size();
  for (size_t k = 1; k <= 3 && k <= n; ++k) {
    const uint8_t b = p[n - k];
    if (b >= 0x80 && b <= 0xBF) continue;  // a continuation byte: look further back
    const LeadInfo li = lead_info(b);
    if (li.len <= static_cast<int>(k)) return 0;  // ASCII, invalid, or a complete character
    if (k >= 2 && (p[n - k + 1] < li.lo || p[n - k + 1] > li.hi)) return 0;
    return k;
  }
  return 0;
}

// --- Oniguruma to RE2 ---------------------------------------------------------------------------

namespace {

// White_Space as a class body (see is_unicode_space).
constexpr std::string_view kSpaceBody = "\\t\\n\\x0B\\f\\r\\x{85}\\p{Z}";
constexpr std::string_view kWordBody = "\\p{L}\\p{M}\\p{Nd}\\p{Pc}";
constexpr std::string_view kLookaheadAlternative = "\\s+(?!\\S)";

[[noreturn]] void unsupported(std::string_view pattern, size_t pos, std::string_view what) {
  R1_THROW(
      "[tokenizer] regex '{}': {} (at byte {}) has no RE2 equivalent; supported are classes, "
      "\\p{{..}} categories, (?i:...), (?:...), quantifiers, ^ and $, and \\s+(?!\\S) as a whole "
      "top-level alternative",
      pattern, what, pos);
}

bool is_ascii_digit(char c) {
  return c >= '0' && c <= '9';
}
bool is_hex(char c) {
  return is_ascii_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

// "{n}", "{n,}", "{n,m}", "{,m}" at p[i]: its length, or 0 when '{' is a literal (as in Oniguruma).
size_t interval_length(std::string_view p, size_t i) {
  size_t j = i + 1;
  size_t digits1 = 0, digits2 = 0;
  while (j < p.size() && is_ascii_digit(p[j])) ++j, ++digits1;
  bool comma = false;
  if (j < p.size() && p[j] == ',') {
    comma = true;
    ++j;
    while (j < p.size() && is_ascii_digit(p[j])) ++j, ++digits2;
  }
  if (j >= p.size() || p[j] != '}') return 0;
  if (digits1 == 0 && (!comma || digits2 == 0)) return 0;
  return j - i + 1;
}

}  // namespace

std::string onig_to_re2(std::string_view p) {
  std::string out;
  out.reserve(p.size() * 2);
  bool in_class = false;
  size_t class_body = 0;         // index of the first byte of the current class's body
  std::vector<int> depth_stack;  // open groups
  bool after_quantifier = false;
  size_t i = 0;
  while (i < p.size()) {
    const char c = p[i];
    const bool was_quantifier = after_quantifier;
    after_quantifier = false;
    if (c == '\\') {
      if (i + 1 >= p.size()) unsupported(p, i, "a trailing backslash");
      const char e = p[i + 1];
      const size_t at = i;
      i += 2;
      switch (e) {
        case 's':
          if (in_class) {
            out += kSpaceBody;
          } else {
            out += '[';
            out += kSpaceBody;
            out += ']';
          }
          break;
        case 'S':
          if (in_class) unsupported(p, at, "\\S inside a class");
          out += "[^";
          out += kSpaceBody;
          out += ']';
          break;
        case 'd':
          out += "\\p{Nd}";
          break;
        case 'D':
          out += "\\P{Nd}";
          break;
        case 'w':
          if (in_class) {
            out += kWordBody;
          } else {
            out += '[';
            out += kWordBody;
            out += ']';
          }
          break;
        case 'W':
          if (in_class) unsupported(p, at, "\\W inside a class");
          out += "[^";
          out += kWordBody;
          out += ']';
          break;
        case 'p':
        case 'P': {
          bool negated = e == 'P';
          if (i < p.size() && p[i] == '{') {
            const size_t close = p.find('}', i);
            if (close == std::string_view::npos) unsupported(p, at, "an unterminated \\p{");
            std::string_view name = p.substr(i + 1, close - i - 1);
            if (!name.empty() && name[0] == '^') {
              negated = !negated;
              name.remove_prefix(1);
            }
            out += negated ? "\\P{" : "\\p{";
            out += name;
            out += '}';
            i = close + 1;
          } else if (i < p.size()) {
            out += negated ? "\\P" : "\\p";
            out += p[i++];
          } else {
            unsupported(p, at, "a \\p without a category");
          }
          break;
        }
        case 'n':
        case 'r':
        case 't':
        case 'f':
          out += '\\';
          out += e;
          break;
        case 'v':
          out += "\\x0B";
          break;
        case 'a':
          out += "\\x07";
          break;
        case 'e':
          out += "\\x1B";
          break;
        case 'A':
        case 'z':
          if (in_class) unsupported(p, at, "an anchor inside a class");
          out += '\\';
          out += e;
          break;
        case 'x': {
          out += "\\x";
          if (i < p.size() && p[i] == '{') {
            const size_t close = p.find('}', i);
            if (close == std::string_view::npos) unsupported(p, at, "an unterminated \\x{");
            out += p.substr(i, close - i + 1);
            i = close + 1;
          } else {
            size_t k = 0;
            std::string hex;
            while (k < 2 && i < p.size() && is_hex(p[i])) hex += p[i++], ++k;
            if (hex.empty()) unsupported(p, at, "\\x without hex digits");
            out += '{';
            out += hex;
            out += '}';
          }
          break;
        }
        case 'u': {
          if (i + 4 > p.size() || !std::all_of(p.begin() + i, p.begin() + i + 4, is_hex))
            unsupported(p, at, "\\u without four hex digits");
          out += "\\x{";
          out += p.substr(i, 4);
          out += '}';
          i += 4;
          break;
        }
        default:
          if (static_cast<unsigned char>(e) >= 0x80) {
            out += e;  // an escaped non-ASCII character is itself; its other bytes follow
          } else if (std::isalnum(static_cast<unsigned char>(e))) {
            unsupported(p, at, fmt::format("the escape \\{}", e));
          } else {
            out += '\\';
            out += e;
          }
      }
      continue;
    }
    if (in_class) {
      if (c == '[') unsupported(p, i, "a nested class or POSIX bracket");
      if (c == '&' && i + 1 < p.size() && p[i + 1] == '&') unsupported(p, i, "class intersection");
      if (c == ']') {
        if (i == class_body) {  // a ']' first in the body is a literal
          out += "\\]";
          ++i;
          continue;
        }
        in_class = false;
        out += ']';
        ++i;
        continue;
      }
      out += c;
      ++i;
      continue;
    }
    switch (c) {
      case '[':
        in_class = true;
        out += '[';
        ++i;
        if (i < p.size() && p[i] == '^') {
          out += '^';
          ++i;
        }
        class_body = i;
        break;
      case '(': {
        const std::string_view rest = p.substr(i + 1);
        if (rest.substr(0, 1) != "?") {
          depth_stack.push_back(0);
          out += "(?:";  // captures are never used: keep RE2 on its DFA
          ++i;
        } else if (rest.substr(0, 2) == "?:") {
          depth_stack.push_back(0);
          out += "(?:";
          i += 3;
        } else if (rest.substr(0, 3) == "?i:" || rest.substr(0, 4) == "?-i:") {
          // Case folding: RE2's Unicode simple folding is Oniguruma's here ('ſ matches (?i:'s)).
          depth_stack.push_back(0);
          const size_t len = rest[1] == 'i' ? 4 : 5;
          out += p.substr(i, len);
          i += len;
        } else if (rest.substr(0, 3) == "?i)" || rest.substr(0, 4) == "?-i)") {
          const size_t len = rest[1] == 'i' ? 4 : 5;
          out += p.substr(i, len);
          i += len;
        } else if (rest.substr(0, 2) == "?#") {
          const size_t close = p.find(')', i);
          if (close == std::string_view::npos) unsupported(p, i, "an unterminated comment");
          i = close + 1;
        } else if (rest.substr(0, 2) == "?=" || rest.substr(0, 2) == "?!" ||
                   rest.substr(0, 3) == "?<=" || rest.substr(0, 3) == "?<!") {
          unsupported(p, i, "look-around");
        } else if (rest.substr(0, 2) == "?>") {
          unsupported(p, i, "an atomic group");
        } else if (rest.substr(0, 2) == "?<" || rest.substr(0, 3) == "?P<") {
          const size_t close = p.find('>', i);
          if (close == std::string_view::npos) unsupported(p, i, "an unterminated group name");
          depth_stack.push_back(0);
          out += "(?:";
          i = close + 1;
        } else {
          unsupported(p, i, "this group flag");
        }
        break;
      }
      case ')':
        if (depth_stack.empty()) unsupported(p, i, "an unbalanced ')'");
        depth_stack.pop_back();
        out += ')';
        ++i;
        break;
      case '+':
      case '*':
      case '?':
        if (was_quantifier && c == '+') unsupported(p, i, "a possessive quantifier");
        out += c;
        ++i;
        after_quantifier = c != '?' || !was_quantifier;  // "??" is lazy, not a new quantifier
        break;
      case '{': {
        const size_t len = interval_length(p, i);
        if (len == 0) {
          out += "\\{";
          ++i;
          break;
        }
        if (p[i + 1] == ',') {
          out += "{0";
          out += p.substr(i + 1, len - 1);
        } else {
          out += p.substr(i, len);
        }
        i += len;
        after_quantifier = true;
        break;
      }
      default:
        out += c;
        ++i;
    }
  }
  if (in_class) unsupported(p, class_body, "an unterminated class");
  if (!depth_stack.empty()) unsupported(p, p.size(), "an unclosed group");
  return out;
}

// --- SplitRegex ---------------------------------------------------------------------------------

namespace {

// The top-level alternatives of an Oniguruma pattern (split at '|' outside groups and classes).
std::vector<std::string_view> top_level_alternatives(std::string_view p) {
  std::vector<std::string_view> alts;
  int depth = 0;
  bool in_class = false;
  size_t class_body = 0;
  size_t start = 0;
  for (size_t i = 0; i < p.size(); ++i) {
    const char c = p[i];
    if (c == '\\') {
      ++i;
      continue;
    }
    if (in_class) {
      if (c == ']' && i != class_body) in_class = false;
      continue;
    }
    if (c == '[') {
      in_class = true;
      class_body = i + 1;
      if (class_body < p.size() && p[class_body] == '^') ++class_body;
    } else if (c == '(') {
      ++depth;
    } else if (c == ')') {
      --depth;
    } else if (c == '|' && depth == 0) {
      alts.push_back(p.substr(start, i - start));
      start = i + 1;
    }
  }
  alts.push_back(p.substr(start));
  return alts;
}

std::unique_ptr<re2::RE2> compile_re2(const std::string& re2_pattern, std::string_view original) {
  re2::RE2::Options o;
  o.set_log_errors(false);
  o.set_max_mem(int64_t{64} << 20);  // large Unicode classes need DFA room
  auto re = std::make_unique<re2::RE2>(re2_pattern, o);
  if (!re->ok())
    R1_THROW("[tokenizer] regex '{}' (as RE2: '{}') does not compile: {}", original, re2_pattern,
             re->error());
  return re;
}

std::string join_alternatives(const std::vector<std::string>& alts, size_t begin, size_t end) {
  std::string s = "(?m)(?:";
  for (size_t k = begin; k < end; ++k) {
    if (k > begin) s += '|';
    s += alts[k];
  }
  s += ')';
  return s;
}

// Dense: matches a letter, a space, a punctuation mark and a newline each at the start (the main
// patterns of GPT-2-style pre-tokenizers, which cut all text into matches).
bool is_dense(const re2::RE2& re) {
  for (const char* probe : {"a", " ", ".", "\n"}) {
    if (!re.Match(probe, 0, std::strlen(probe), re2::RE2::ANCHOR_START, nullptr, 0)) return false;
  }
  return true;
}

// The bytes a match can start with, from RE2's bounds on every match string (min <= m <= max):
// [min[0], max[0]], or everything when the pattern can match the empty string or RE2 cannot tell.
// Sparse patterns (CJK runs) then skip text without such a byte without calling RE2.
void first_byte_range(const re2::RE2& re, uint8_t* lo, uint8_t* hi) {
  std::string min, max;
  *lo = 0;
  *hi = 0xFF;
  if (re.Match("", 0, 0, re2::RE2::ANCHOR_START, nullptr, 0)) return;
  if (!re.PossibleMatchRange(&min, &max, 4) || min.empty() || max.empty()) return;
  *lo = static_cast<uint8_t>(min[0]);
  *hi = static_cast<uint8_t>(max[0]);
}

size_t char_len_at(std::string_view s, size_t i) {
  const LeadInfo li = lead_info(static_cast<uint8_t>(s[i]));
  return li.len > 0 ? std::min<size_t>(li.len, s.size() - i) : 1;
}

}  // namespace

SplitRegex::SplitRegex(std::string_view onig_pattern) : pattern_(onig_pattern) {
  const auto alts = top_level_alternatives(pattern_);
  size_t lookahead_at = alts.size();
  for (size_t k = 0; k < alts.size(); ++k) {
    if (alts[k] == kLookaheadAlternative) {
      if (lookahead_at != alts.size()) unsupported(pattern_, 0, "a second \\s+(?!\\S) alternative");
      lookahead_at = k;
    }
  }
  lookahead_ = lookahead_at != alts.size();
  if (!lookahead_) {
    re2_pattern_ = "(?m)" + onig_to_re2(pattern_);
    main_ = compile_re2(re2_pattern_, pattern_);
    dense_ = is_dense(*main_);
    first_byte_range(*main_, &first_lo_, &first_hi_);
    return;
  }
  if (pattern_.find("(?i)") != std::string::npos || pattern_.find("(?-i)") != std::string::npos)
    unsupported(pattern_, pattern_.find("(?"), "an inline flag next to \\s+(?!\\S)");
  std::vector<std::string> translated;
  for (size_t k = 0; k < alts.size(); ++k) {
    if (k == lookahead_at) {
      translated.push_back("[" + std::string(kSpaceBody) + "]+");
    } else {
      translated.push_back(onig_to_re2(alts[k]));
    }
  }
  re2_pattern_ = join_alternatives(translated, 0, translated.size());
  main_ = compile_re2(re2_pattern_, pattern_);
  dense_ = is_dense(*main_);
  first_byte_range(*main_, &first_lo_, &first_hi_);
  if (lookahead_at > 0)
    before_ = compile_re2(join_alternatives(translated, 0, lookahead_at), pattern_);
  if (lookahead_at + 1 < translated.size())
    after_ =
        compile_re2(join_alternatives(translated, lookahead_at + 1, translated.size()), pattern_);
}

SplitRegex::~SplitRegex() = default;
SplitRegex::SplitRegex(SplitRegex&&) noexcept = default;
SplitRegex& SplitRegex::operator=(SplitRegex&&) noexcept = default;

bool SplitRegex::find(std::string_view text, size_t pos, size_t* begin, size_t* end) const {
  const re2::StringPiece input(text.data(), text.size());
  re2::StringPiece m;
  while (pos <= text.size()) {
    if (first_lo_ > 0 || first_hi_ < 0xFF) {
      const auto* p = reinterpret_cast<const uint8_t*>(text.data());
      while (pos < text.size() && (p[pos] < first_lo_ || p[pos] > first_hi_)) ++pos;
      if (pos >= text.size()) return false;  // (an empty match is impossible here)
    }
    // A dense pattern's next match almost always starts where the previous one ended: an
    // anchored search needs no reverse DFA pass to find the start, and the leftmost-first match
    // at `pos`, when there is one, is the unanchored search's answer too.
    if (!(dense_ && main_->Match(input, pos, text.size(), re2::RE2::ANCHOR_START, &m, 1)) &&
        !main_->Match(input, pos, text.size(), re2::RE2::UNANCHORED, &m, 1))
      return false;
    const size_t b = static_cast<size_t>(m.data() - text.data());
    size_t e = b + m.size();
    if (lookahead_ && e > b && e < text.size()) {
      // Only a whitespace run stopped by a non-space character can differ from `\s+`.
      size_t k = e;
      const bool next_is_space = is_unicode_space(utf8_next(text, &k));
      bool all_space = !next_is_space;
      size_t last = b;
      for (size_t q = b; all_space && q < e;) {
        last = q;
        all_space = is_unicode_space(utf8_next(text, &q));
      }
      if (all_space &&
          !(before_ && before_->Match(input, b, text.size(), re2::RE2::ANCHOR_START, nullptr, 0))) {
        // The `\s+(?!\S)` alternative matched: backtrack one character into the run.
        if (last > b) {
          e = last;
        } else if (after_ && after_->Match(input, b, text.size(), re2::RE2::ANCHOR_START, &m, 1)) {
          e = b + m.size();  // a single space: the alternative fails, a later one matches
        } else {
          pos = b + char_len_at(text, b);  // nothing matches at b
          continue;
        }
      }
    }
    *begin = b;
    *end = e;
    return true;
  }
  return false;
}

namespace {

// Oniguruma's find_iter: calls f(begin, end) for each match.
template <class F>
void for_each_match(const SplitRegex& re, std::string_view text, F&& f) {
  size_t pos = 0;
  bool have_last = false;
  size_t last_match_end = 0;
  while (pos <= text.size()) {
    size_t b, e;
    if (!re.find(text, pos, &b, &e)) return;
    if (b == e) {
      const size_t step = e < text.size() ? char_len_at(text, e) : 1;
      pos = e + step;
      if (have_last && last_match_end == e) continue;
    } else {
      pos = e;
    }
    have_last = true;
    last_match_end = e;
    f(b, e);
  }
}

}  // namespace

std::vector<std::pair<size_t, size_t>> SplitRegex::find_all(std::string_view text) const {
  std::vector<std::pair<size_t, size_t>> r;
  for_each_match(*this, text, [&](size_t b, size_t e) { r.emplace_back(b, e); });
  return r;
}

// --- Normalizers ---------------------------------------------------------------------------------

struct Normalizer::Step {
  enum class Kind { nfc, nfd, nfkc, nfkd, lowercase, replace, prepend, strip } kind;
  std::shared_ptr<const SplitRegex> regex;  // replace with a regex
  std::string pattern;                      // replace with a string
  std::string content;                      // replacement / prepended text
  bool strip_left = false, strip_right = false;
};

Normalizer::Normalizer() = default;
Normalizer::~Normalizer() = default;
Normalizer::Normalizer(const Normalizer&) = default;
Normalizer& Normalizer::operator=(const Normalizer&) = default;
Normalizer::Normalizer(Normalizer&&) noexcept = default;
Normalizer& Normalizer::operator=(Normalizer&&) noexcept = default;

namespace {

using NormStep = Normalizer::Step;

void parse_normalizer(const Json& j, std::string_view where,
                      std::vector<std::shared_ptr<const NormStep>>* steps) {
  if (j.is_null()) return;
  require_object(j, where);
  const std::string type = get_required<std::string>(j, "type", where);
  auto step = std::make_shared<NormStep>();
  if (type == "Sequence") {
    const Json& list = j.contains("normalizers") ? j["normalizers"] : Json();
    if (!list.is_array()) R1_THROW("{}: field 'normalizers' must be an array", where);
    for (size_t k = 0; k < list.size(); ++k)
      parse_normalizer(list[k], json_where(json_where(where, "normalizers"), k), steps);
    return;
  } else if (type == "NFC") {
    step->kind = NormStep::Kind::nfc;
  } else if (type == "NFD") {
    step->kind = NormStep::Kind::nfd;
  } else if (type == "NFKC") {
    step->kind = NormStep::Kind::nfkc;
  } else if (type == "NFKD") {
    step->kind = NormStep::Kind::nfkd;
  } else if (type == "Lowercase") {
    step->kind = NormStep::Kind::lowercase;
  } else if (type == "Prepend") {
    step->kind = NormStep::Kind::prepend;
    step->content = get_required<std::string>(j, "prepend", where);
  } else if (type == "Strip") {
    step->kind = NormStep::Kind::strip;
    step->strip_left = get_optional<bool>(j, "strip_left", where, true);
    step->strip_right = get_optional<bool>(j, "strip_right", where, true);
  } else if (type == "Replace") {
    step->kind = NormStep::Kind::replace;
    step->content = get_required<std::string>(j, "content", where);
    const Json pat = get_required<Json>(j, "pattern", where);
    const std::string pw = json_where(where, "pattern");
    if (pat.is_object() && pat.contains("Regex")) {
      step->regex = std::make_shared<SplitRegex>(get_required<std::string>(pat, "Regex", pw));
    } else if (pat.is_object() && pat.contains("String")) {
      step->pattern = get_required<std::string>(pat, "String", pw);
    } else {
      R1_THROW("{}: must be {{\"String\": ...}} or {{\"Regex\": ...}}", pw);
    }
  } else {
    R1_THROW(
        "[tokenizer] {}: normalizer type '{}' is not supported (supported: Sequence, NFC, NFD, "
        "NFKC, NFKD, Lowercase, Replace, Prepend, Strip)",
        where, type);
  }
  steps->push_back(std::move(step));
}

std::string utf8proc_normalize(std::string_view s, int options) {
  utf8proc_uint8_t* dst = nullptr;
  const utf8proc_ssize_t n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(s.data()),
                                          static_cast<utf8proc_ssize_t>(s.size()), &dst,
                                          static_cast<utf8proc_option_t>(options));
  if (n < 0) R1_THROW("[tokenizer] Unicode normalisation failed: {}", utf8proc_errmsg(n));
  std::string out(reinterpret_cast<const char*>(dst), static_cast<size_t>(n));
  std::free(dst);
  return out;
}

// True when every code point is below `limit` (NFC leaves text below U+0300 unchanged: nothing
// there decomposes differently or composes without a combining mark, which all lie above).
bool all_below(std::string_view s, uint32_t limit) {
  if (limit <= 0x80) {
    return std::all_of(s.begin(), s.end(), [](char c) { return static_cast<uint8_t>(c) < 0x80; });
  }
  for (size_t i = 0; i < s.size();) {
    if (static_cast<uint8_t>(s[i]) < 0x80) {
      ++i;
      continue;
    }
    if (utf8_next(s, &i) >= limit) return false;
  }
  return true;
}

std::string replace_all(std::string_view s, const NormStep& step) {
  std::string out;
  size_t prev = 0;
  if (step.regex) {
    for_each_match(*step.regex, s, [&](size_t b, size_t e) {
      out.append(s.substr(prev, b - prev));
      out += step.content;
      prev = e;
    });
  } else {
    if (step.pattern.empty()) return std::string(s);
    for (size_t at = s.find(step.pattern); at != std::string_view::npos;
         at = s.find(step.pattern, prev)) {
      out.append(s.substr(prev, at - prev));
      out += step.content;
      prev = at + step.pattern.size();
    }
  }
  out.append(s.substr(prev));
  return out;
}

std::string lowercase(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    const uint32_t cp = utf8_next(s, &i);
    if (cp == 0x130) {  // Rust's full mapping: İ -> i + U+0307
      out += "i\xCC\x87";
      continue;
    }
    utf8_append(static_cast<uint32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(cp))), &out);
  }
  return out;
}

std::string strip(std::string_view s, bool left, bool right) {
  size_t b = 0, e = s.size();
  if (left) {
    while (b < e) {
      size_t k = b;
      if (!is_unicode_space(utf8_next(s, &k))) break;
      b = k;
    }
  }
  if (right) {
    while (e > b) {
      size_t start = e - 1;
      while (start > b && (static_cast<uint8_t>(s[start]) & 0xC0) == 0x80) --start;
      size_t k = start;
      if (!is_unicode_space(utf8_next(s, &k))) break;
      e = start;
    }
  }
  return std::string(s.substr(b, e - b));
}

std::string apply_step(const NormStep& step, std::string_view s) {
  switch (step.kind) {
    case NormStep::Kind::nfc:
      if (all_below(s, 0x300)) return std::string(s);
      return utf8proc_normalize(s, UTF8PROC_STABLE | UTF8PROC_COMPOSE);
    case NormStep::Kind::nfd:
      if (all_below(s, 0x80)) return std::string(s);
      return utf8proc_normalize(s, UTF8PROC_STABLE | UTF8PROC_DECOMPOSE);
    case NormStep::Kind::nfkc:
      if (all_below(s, 0x80)) return std::string(s);
      return utf8proc_normalize(s, UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT);
    case NormStep::Kind::nfkd:
      if (all_below(s, 0x80)) return std::string(s);
      return utf8proc_normalize(s, UTF8PROC_STABLE | UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT);
    case NormStep::Kind::lowercase:
      return lowercase(s);
    case NormStep::Kind::replace:
      return replace_all(s, step);
    case NormStep::Kind::prepend:
      return s.empty() ? std::string() : step.content + std::string(s);
    case NormStep::Kind::strip:
      return strip(s, step.strip_left, step.strip_right);
  }
  return std::string(s);
}

}  // namespace

Normalizer Normalizer::from_json(const Json& j, std::string_view where) {
  Normalizer n;
  parse_normalizer(j, where, &n.steps_);
  return n;
}

Normalizer Normalizer::nfc() {
  Normalizer n;
  auto step = std::make_shared<NormStep>();
  step->kind = NormStep::Kind::nfc;
  n.steps_.push_back(std::move(step));
  return n;
}

std::string Normalizer::apply(std::string_view text) const {
  std::string s(text);
  for (const auto& step : steps_) s = apply_step(*step, s);
  return s;
}

// --- Pre-tokenizers ------------------------------------------------------------------------------

struct PreTokenizer::Step {
  enum class Kind { split_regex, split_string, byte_level, digits } kind = Kind::split_regex;
  std::shared_ptr<const SplitRegex> regex;  // split_regex, and byte_level with use_regex
  std::string literal;                      // split_string
  SplitBehavior behavior = SplitBehavior::isolated;
  bool invert = false;
  bool add_prefix_space = false;
  bool individual_digits = false;
};

PreTokenizer::PreTokenizer() = default;
PreTokenizer::~PreTokenizer() = default;
PreTokenizer::PreTokenizer(const PreTokenizer&) = default;
PreTokenizer& PreTokenizer::operator=(const PreTokenizer&) = default;
PreTokenizer::PreTokenizer(PreTokenizer&&) noexcept = default;
PreTokenizer& PreTokenizer::operator=(PreTokenizer&&) noexcept = default;

namespace {

using PreStep = PreTokenizer::Step;

// GPT-2's pattern, which ByteLevel with use_regex applies.
constexpr std::string_view kGpt2Pattern =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
constexpr std::string_view kLlama3Pattern =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
constexpr std::string_view kQwen2Pattern =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
// DeepSeek-V3/R1 (tokenizer.json writes the CR and LF inside the classes as raw characters).
constexpr std::string_view kDeepseekV3Digits = "\\p{N}{1,3}";
constexpr std::string_view kDeepseekV3Cjk = "[一-龥぀-ゟ゠-ヿ]+";
constexpr std::string_view kDeepseekV3Main =
    "[!\"#$%&'()*+,\\-./"
    ":;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+"
    "| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+";
// DeepSeek LLM and DeepSeek Coder (first generation), as llama.cpp lists them from their
// tokenizer.json files.
// clang-format off (the literal holds non-ASCII text clang-format would keep re-splitting)
constexpr std::string_view kDeepseekLlmLetters =
    "\\s?[A-Za-zµÀ-ÖØ-öø-ƺƼ-ƿǄ-ʓʕ-ʯͰ-ͳͶͷͻ-"
    "ͽͿΆΈ-ΊΌΎ-ΡΣ-ϵϷ-ҁҊ-ԯԱ-ՖႠ-ჅᎠ-Ᏽᏸ-ᏽᲐ-ᲺᲽ-"
    "Ჿᴀ-ᴫᵫ-ᵷᵹ-ᶚḀ-ἕἘ-Ἕἠ-ὅὈ-Ὅὐ-ὗὙὛὝὟ-\u1F7Dᾀ-ᾴᾶ-"
    "ᾼ\u1FBEῂ-ῄῆ-ῌῐ-\u1FD3ῖ-\u1FDBῠ-Ῥῲ-ῴῶ-ῼℂℇℊ-ℓℕℙ-ℝℤ\u2126ℨ\u212A"
    "-ℭℯ-ℴℹℼ-ℿⅅ-ⅉⅎↃↄⰀ-ⱻⱾ-ⳤⳫ-ⳮⳲⳳꙀ-ꙭꚀ-ꚛꜢ-ꝯꝱ"
    "-ꞇꞋ-ꞎꭰ-ꮿﬀ-ﬆﬓ-ﬗＡ-Ｚａ-ｚ𐐀-𐑏𐒰-𐓓𐓘-𐓻𐲀-𐲲𐳀-"
    "𐳲𑢠"
    "-𑣟𞤀-𞥃]+";
// clang-format on
constexpr std::string_view kDeepseekLlmPunct = "\\s?[!-/:-~！-／：-～‘-‟　-。]+";
constexpr std::string_view kDeepseekCjkHangul = "[一-龥ࠀ-一가-퟿]+";

std::shared_ptr<const PreStep> split_step(std::string_view pattern) {
  auto s = std::make_shared<PreStep>();
  s->kind = PreStep::Kind::split_regex;
  s->regex = std::make_shared<SplitRegex>(pattern);
  return s;
}

std::shared_ptr<const PreStep> byte_level_step(bool add_prefix_space, bool use_regex) {
  auto s = std::make_shared<PreStep>();
  s->kind = PreStep::Kind::byte_level;
  s->add_prefix_space = add_prefix_space;
  if (use_regex) s->regex = std::make_shared<SplitRegex>(kGpt2Pattern);
  return s;
}

SplitBehavior parse_behavior(const std::string& b, std::string_view where) {
  if (b == "Removed") return SplitBehavior::removed;
  if (b == "Isolated") return SplitBehavior::isolated;
  if (b == "MergedWithPrevious") return SplitBehavior::merged_with_previous;
  if (b == "MergedWithNext") return SplitBehavior::merged_with_next;
  if (b == "Contiguous") return SplitBehavior::contiguous;
  R1_THROW(
      "{}: field 'behavior' must be one of Removed, Isolated, MergedWithPrevious, MergedWithNext, "
      "Contiguous, got '{}'",
      where, b);
}

void parse_pre_tokenizer(const Json& j, std::string_view where,
                         std::vector<std::shared_ptr<const PreStep>>* steps) {
  if (j.is_null()) return;
  require_object(j, where);
  const std::string type = get_required<std::string>(j, "type", where);
  if (type == "Sequence") {
    const Json& list = j.contains("pretokenizers") ? j["pretokenizers"] : Json();
    if (!list.is_array()) R1_THROW("{}: field 'pretokenizers' must be an array", where);
    for (size_t k = 0; k < list.size(); ++k)
      parse_pre_tokenizer(list[k], json_where(json_where(where, "pretokenizers"), k), steps);
    return;
  }
  auto step = std::make_shared<PreStep>();
  if (type == "Split") {
    const Json pat = get_required<Json>(j, "pattern", where);
    const std::string pw = json_where(where, "pattern");
    if (pat.is_object() && pat.contains("Regex")) {
      step->kind = PreStep::Kind::split_regex;
      const std::string re = get_required<std::string>(pat, "Regex", pw);
      try {
        step->regex = std::make_shared<SplitRegex>(re);
      } catch (Error& e) {
        e.add_context(fmt::format("reading {}", pw));
        throw;
      }
    } else if (pat.is_object() && pat.contains("String")) {
      step->kind = PreStep::Kind::split_string;
      step->literal = get_required<std::string>(pat, "String", pw);
    } else {
      R1_THROW("{}: must be {{\"String\": ...}} or {{\"Regex\": ...}}", pw);
    }
    step->behavior = parse_behavior(get_required<std::string>(j, "behavior", where), where);
    step->invert = get_optional<bool>(j, "invert", where, false);
  } else if (type == "ByteLevel") {
    step->kind = PreStep::Kind::byte_level;
    step->add_prefix_space = get_optional<bool>(j, "add_prefix_space", where, true);
    if (get_optional<bool>(j, "use_regex", where, true))
      step->regex = std::make_shared<SplitRegex>(kGpt2Pattern);
  } else if (type == "Digits") {
    step->kind = PreStep::Kind::digits;
    step->individual_digits = get_optional<bool>(j, "individual_digits", where, false);
  } else {
    R1_THROW(
        "[tokenizer] {}: pre-tokenizer type '{}' is not supported (supported: Sequence, Split, "
        "ByteLevel, Digits)",
        where, type);
  }
  steps->push_back(std::move(step));
}

void check_byte_level_last(const std::vector<std::shared_ptr<const PreStep>>& steps,
                           std::string_view where) {
  for (size_t k = 0; k + 1 < steps.size(); ++k) {
    if (steps[k]->kind == PreStep::Kind::byte_level)
      R1_THROW(
          "[tokenizer] {}: a ByteLevel pre-tokenizer followed by other pre-tokenizers is not "
          "supported (ByteLevel must be the last one)",
          where);
  }
}

bool is_numeric(uint32_t cp) {
  if (cp < 0x80) return cp >= '0' && cp <= '9';
  const auto cat = utf8proc_category(static_cast<utf8proc_int32_t>(cp));
  return cat == UTF8PROC_CATEGORY_ND || cat == UTF8PROC_CATEGORY_NL || cat == UTF8PROC_CATEGORY_NO;
}

struct Span {
  size_t b, e;
  bool match;
};

// HF's SplitDelimiterBehavior applied to the ordered matches and gaps of one piece.
std::vector<Span> apply_behavior(std::vector<Span> spans, SplitBehavior behavior, bool invert) {
  if (invert)
    for (auto& s : spans) s.match = !s.match;
  std::vector<Span> out;
  switch (behavior) {
    case SplitBehavior::isolated:
      return spans;
    case SplitBehavior::removed:
      for (const auto& s : spans)
        if (!s.match) out.push_back(s);
      return out;
    case SplitBehavior::merged_with_previous: {
      bool prev_match = false;
      for (const auto& s : spans) {
        if (s.match && !prev_match && !out.empty()) {
          out.back().e = s.e;
        } else {
          out.push_back(s);
        }
        prev_match = s.match;
      }
      return out;
    }
    case SplitBehavior::merged_with_next: {
      bool prev_match = false;
      for (auto it = spans.rbegin(); it != spans.rend(); ++it) {
        if (it->match && !prev_match && !out.empty()) {
          out.back().b = it->b;
        } else {
          out.push_back(*it);
        }
        prev_match = it->match;
      }
      std::reverse(out.begin(), out.end());
      return out;
    }
    case SplitBehavior::contiguous: {
      bool prev_match = false;
      for (const auto& s : spans) {
        if (s.match == prev_match && !out.empty()) {
          out.back().e = s.e;
        } else {
          out.push_back(s);
        }
        prev_match = s.match;
      }
      return out;
    }
  }
  return spans;
}

// Matches and the gaps between them, in order, covering [0, text.size()).
template <class ForEachMatch>
std::vector<Span> spans_of(std::string_view text, ForEachMatch&& each) {
  std::vector<Span> spans;
  size_t prev = 0;
  each([&](size_t b, size_t e) {
    if (b > prev) spans.push_back({prev, b, false});
    spans.push_back({b, e, true});
    prev = e;
  });
  if (prev < text.size()) spans.push_back({prev, text.size(), false});
  return spans;
}

}  // namespace

PreTokenizer PreTokenizer::from_json(const Json& j, std::string_view where) {
  PreTokenizer p;
  parse_pre_tokenizer(j, where, &p.steps_);
  check_byte_level_last(p.steps_, where);
  for (const auto& s : p.steps_) p.byte_level_ |= s->kind == PreStep::Kind::byte_level;
  return p;
}

std::vector<std::string> PreTokenizer::preset_names() {
  return {"deepseek-v3", "qwen2", "llama3", "gpt2", "deepseek-llm", "deepseek-coder"};
}

PreTokenizer PreTokenizer::preset(std::string_view name) {
  PreTokenizer p;
  auto& s = p.steps_;
  if (name == "deepseek-v3" || name == "deepseek-r1" || name == "deepseek3-llm") {
    s = {split_step(kDeepseekV3Digits), split_step(kDeepseekV3Cjk), split_step(kDeepseekV3Main)};
  } else if (name == "qwen2") {
    s = {split_step(kQwen2Pattern)};
  } else if (name == "llama3" || name == "llama-bpe") {
    s = {split_step(kLlama3Pattern)};
  } else if (name == "gpt2" || name == "gpt-2") {
    s = {byte_level_step(false, true)};
  } else if (name == "deepseek-llm") {
    s = {split_step("[\r\n]"), split_step(kDeepseekLlmLetters), split_step(kDeepseekLlmPunct),
         split_step("\\s+$"),  split_step(kDeepseekCjkHangul),  split_step("\\p{N}+")};
  } else if (name == "deepseek-coder") {
    s = {split_step("[\r\n]"), split_step("\\s?\\p{L}+"), split_step("\\s?\\p{P}+"),
         split_step(kDeepseekCjkHangul), split_step("\\p{N}")};
  } else {
    std::string names;
    for (const auto& n : preset_names()) names += (names.empty() ? "" : ", ") + n;
    R1_THROW("[tokenizer] unknown pre-tokenizer preset '{}' (known: {})", name, names);
  }
  if (s.back()->kind != PreStep::Kind::byte_level) s.push_back(byte_level_step(false, false));
  p.byte_level_ = true;
  return p;
}

Normalizer preset_normalizer(std::string_view name) {
  return name == "qwen2" ? Normalizer::nfc() : Normalizer();
}

void PreTokenizer::split(std::string_view text, PieceSink& sink) const {
  if (!text.empty()) run(0, text, sink);
}

std::vector<std::string> PreTokenizer::split(std::string_view text) const {
  struct Collect final : PieceSink {
    std::vector<std::string> pieces;
    void piece(std::string_view p) override { pieces.emplace_back(p); }
  } c;
  split(text, c);
  return std::move(c.pieces);
}

void PreTokenizer::run(size_t step, std::string_view text, PieceSink& sink) const {
  if (step == steps_.size()) {
    sink.piece(text);
    return;
  }
  const PreStep& s = *steps_[step];
  auto emit = [&](size_t b, size_t e) {
    if (e > b) run(step + 1, text.substr(b, e - b), sink);
  };
  switch (s.kind) {
    case PreStep::Kind::byte_level: {
      std::string prefixed;
      if (s.add_prefix_space && text[0] != ' ') {
        prefixed.reserve(text.size() + 1);
        prefixed = " ";
        prefixed += text;
      }
      const std::string_view t = prefixed.empty() ? text : std::string_view(prefixed);
      if (!s.regex) {
        run(step + 1, t, sink);
        return;
      }
      size_t prev = 0;
      for_each_match(*s.regex, t, [&](size_t b, size_t e) {
        if (b > prev) run(step + 1, t.substr(prev, b - prev), sink);
        if (e > b) run(step + 1, t.substr(b, e - b), sink);
        prev = e;
      });
      if (prev < t.size()) run(step + 1, t.substr(prev), sink);
      return;
    }
    case PreStep::Kind::split_regex: {
      if (s.behavior == SplitBehavior::isolated && !s.invert) {  // the common case, no copies
        size_t prev = 0;
        for_each_match(*s.regex, text, [&](size_t b, size_t e) {
          emit(prev, b);
          emit(b, e);
          prev = e;
        });
        emit(prev, text.size());
        return;
      }
      auto spans = spans_of(text, [&](auto&& f) { for_each_match(*s.regex, text, f); });
      for (const auto& sp : apply_behavior(std::move(spans), s.behavior, s.invert))
        emit(sp.b, sp.e);
      return;
    }
    case PreStep::Kind::split_string: {
      auto spans = spans_of(text, [&](auto&& f) {
        if (s.literal.empty()) return;
        for (size_t at = text.find(s.literal); at != std::string_view::npos;
             at = text.find(s.literal, at + s.literal.size()))
          f(at, at + s.literal.size());
      });
      for (const auto& sp : apply_behavior(std::move(spans), s.behavior, s.invert))
        emit(sp.b, sp.e);
      return;
    }
    case PreStep::Kind::digits: {
      auto spans = spans_of(text, [&](auto&& f) {
        for (size_t i = 0; i < text.size();) {
          const size_t b = i;
          if (is_numeric(utf8_next(text, &i))) f(b, i);
        }
      });
      const auto behavior =
          s.individual_digits ? SplitBehavior::isolated : SplitBehavior::contiguous;
      for (const auto& sp : apply_behavior(std::move(spans), behavior, false)) emit(sp.b, sp.e);
      return;
    }
  }
}

}  // namespace r1kit::policy
