// Normalisers and pre-tokenisers of Hugging Face tokenizer.json files, with the semantics of HF
// `tokenizers` (Oniguruma regexes) reproduced on RE2, plus GPT-2's byte-level alphabet and the
// named pre-tokeniser presets of DeepSeek-V3, DeepSeek LLM/Coder, Qwen2, GPT-2 and Llama-3.
//
// Regexes. tokenizer.json patterns are Oniguruma (Ruby syntax) patterns; RE2 differs in ways that
// change token boundaries, so every pattern goes through onig_to_re2 first:
//   - \s, \S are Unicode White_Space in Oniguruma (U+0085, U+00A0, U+3000, ... and \v) but ASCII in
//     RE2: they become [\t\n\x0B\f\r\x{85}\p{Z}] (White_Space is exactly Z plus those controls);
//     \d is \p{Nd}, \w is [\p{L}\p{M}\p{Nd}\p{Pc}];
//   - (?i:...) keeps RE2's Unicode simple case folding, which is Oniguruma's for these patterns
//     ('ſ matches (?i:'s) in both);
//   - ^ and $ are line anchors in Ruby syntax: the pattern runs under RE2's (?m);
//   - look-around is not in RE2. The one form tokenizers use, a whole top-level alternative
//     `\s+(?!\S)`, is emulated exactly (SplitRegex::find): it runs as `\s+`, and when that
//     alternative is the one that matched (no earlier alternative matches at the start) and the
//     whitespace run is followed by a non-space character, the run gives back its last character,
//     which is what backtracking into the look-ahead does; a single space there makes the
//     alternative fail, and the later alternatives are tried at that position. Any other
//     look-around, atomic group, possessive quantifier or back-reference is an error that names the
//     pattern.
// Unicode categories (\p{L}, \p{N}, ...) are RE2's tables; category tests outside regexes use
// utf8proc. Both are real Unicode libraries, no hand-written tables.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/json.h"

namespace re2 {
class RE2;
}

namespace r1kit::policy {

// --- UTF-8 and byte-level alphabet ---------------------------------------------------------------

// Decodes the code point starting at s[i] (s must be valid UTF-8) and advances i past it.
uint32_t utf8_next(std::string_view s, size_t* i);
void utf8_append(uint32_t cp, std::string* out);
// Unicode White_Space (char::is_whitespace in Rust, \s in Oniguruma).
bool is_unicode_space(uint32_t cp);

// GPT-2's bytes_to_unicode: byte b is written as the code point byte_level_char(b) (the printable
// bytes ! .. ~, ¡ .. ¬, ® .. ÿ as themselves, the other 68 shifted to U+0100 ..).
uint32_t byte_level_char(uint8_t b);
// The byte that code point `cp` stands for, or -1 when cp is not in the byte-level alphabet.
int byte_level_byte(uint32_t cp);
// " the" -> "Ġthe".
std::string byte_level_encode(std::string_view bytes);
// "Ġthe" -> " the"; nullopt when some code point of `token` is not in the byte-level alphabet.
std::optional<std::string> byte_level_decode(std::string_view token);

// Rust's String::from_utf8_lossy, as HF decoders use it: each maximal ill-formed subsequence (the
// Unicode "maximal subpart" rule) becomes one U+FFFD.
std::string utf8_lossy(std::string_view bytes);
// Length of the tail of `bytes` that is a proper prefix of a well-formed UTF-8 character (0..3):
// the bytes a streaming decoder must hold back.
size_t utf8_incomplete_tail(std::string_view bytes);

// --- Regexes with Oniguruma semantics ---------------------------------------------------------

// The RE2 translation of an Oniguruma pattern (see the file comment); throws naming the pattern for
// constructs RE2 cannot express. `\s+(?!\S)` is rejected here: SplitRegex handles it.
std::string onig_to_re2(std::string_view pattern);

class SplitRegex {
 public:
  // Throws r1kit::Error naming the pattern when it cannot be translated or compiled.
  explicit SplitRegex(std::string_view onig_pattern);
  ~SplitRegex();
  SplitRegex(SplitRegex&&) noexcept;
  SplitRegex& operator=(SplitRegex&&) noexcept;

  // The first match starting at or after byte `pos` of `text` (leftmost, then the first
  // alternative, as a backtracking engine picks): true and [*begin, *end), or false. ^, $ and the
  // look-ahead see all of `text`.
  bool find(std::string_view text, size_t pos, size_t* begin, size_t* end) const;
  // Every match, as Oniguruma's find_iter yields them (an empty match right after the previous
  // match is skipped by one character).
  std::vector<std::pair<size_t, size_t>> find_all(std::string_view text) const;

  const std::string& pattern() const { return pattern_; }
  const std::string& re2_pattern() const { return re2_pattern_; }

 private:
  std::string pattern_;
  std::string re2_pattern_;
  std::unique_ptr<re2::RE2> main_;
  // Around the emulated `\s+(?!\S)` alternative: the alternatives before it and after it, each
  // matched anchored at a position (null when there are none, or no look-ahead).
  std::unique_ptr<re2::RE2> before_;
  std::unique_ptr<re2::RE2> after_;
  bool lookahead_ = false;
  bool dense_ = false;  // matches start almost everywhere: try an anchored search first
  uint8_t first_lo_ = 0, first_hi_ = 0xFF;  // every match starts with a byte in this range
};

// --- Normalizers ---------------------------------------------------------------------------------

// A tokenizer.json "normalizer": NFC, NFD, NFKC, NFKD (utf8proc), Lowercase, Replace (string or
// regex), Prepend, Strip and Sequence. Others (Precompiled, BertNormalizer, ...) are errors.
class Normalizer {
 public:
  Normalizer();  // the identity
  ~Normalizer();
  Normalizer(const Normalizer&);
  Normalizer& operator=(const Normalizer&);
  Normalizer(Normalizer&&) noexcept;
  Normalizer& operator=(Normalizer&&) noexcept;

  // `j` is the "normalizer" value (null: identity); `where` names it in errors.
  static Normalizer from_json(const Json& j, std::string_view where);
  static Normalizer nfc();

  bool is_identity() const { return steps_.empty(); }
  // The normalised text (valid UTF-8 in, valid UTF-8 out).
  std::string apply(std::string_view text) const;

  struct Step;

 private:
  std::vector<std::shared_ptr<const Step>> steps_;
};

// --- Pre-tokenizers ------------------------------------------------------------------------------

enum class SplitBehavior { removed, isolated, merged_with_previous, merged_with_next, contiguous };

// Receives the pieces a pre-tokenizer cuts a text into, in order (never empty; views are valid
// only during the call).
class PieceSink {
 public:
  virtual void piece(std::string_view p) = 0;

 protected:
  ~PieceSink() = default;
};

// A tokenizer.json "pre_tokenizer": Sequence, Split (regex or string pattern, every behaviour,
// invert), ByteLevel (add_prefix_space, use_regex: GPT-2's pattern) and Digits. The text stays raw
// bytes: ByteLevel's character mapping is the BPE model's business, so ByteLevel must be the last
// step. Others (Metaspace, Whitespace, ...) are errors naming the type.
class PreTokenizer {
 public:
  PreTokenizer();  // no pre-tokenisation: the whole text is one piece
  ~PreTokenizer();
  PreTokenizer(const PreTokenizer&);
  PreTokenizer& operator=(const PreTokenizer&);
  PreTokenizer(PreTokenizer&&) noexcept;
  PreTokenizer& operator=(PreTokenizer&&) noexcept;

  static PreTokenizer from_json(const Json& j, std::string_view where);
  // The pre-tokenizer of a known model family, exactly as its tokenizer.json writes it:
  //   "deepseek-v3" (also "deepseek-r1", llama.cpp's "deepseek-v3"): \p{N}{1,3} and CJK runs
  //     isolated, then the main pattern, then ByteLevel;
  //   "qwen2" (Qwen1.5 .. Qwen3): single digits; "llama3" ("llama-bpe"): digits in threes;
  //   "gpt2" ("gpt-2"): ByteLevel with GPT-2's regex;
  //   "deepseek-llm", "deepseek-coder": DeepSeek's first-generation split sequences.
  // Throws listing the names for an unknown one.
  static PreTokenizer preset(std::string_view name);
  static std::vector<std::string> preset_names();

  void split(std::string_view text, PieceSink& sink) const;
  std::vector<std::string> split(std::string_view text) const;

  // Whether a ByteLevel step is present (the model then works on bytes).
  bool byte_level() const { return byte_level_; }

  struct Step;

 private:
  void run(size_t step, std::string_view text, PieceSink& sink) const;
  std::vector<std::shared_ptr<const Step>> steps_;
  bool byte_level_ = false;
};

// The normaliser a preset's tokenizer.json has: NFC for "qwen2", the identity for the others.
Normalizer preset_normalizer(std::string_view name);

}  // namespace r1kit::policy
