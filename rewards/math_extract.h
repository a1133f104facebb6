// Answer extraction and string-level normalisation for the math verifier.
//   extract_answers: candidate answer strings from a completion or a gold solution, in priority
//   order (the verifier tries them in turn): <answer>…</answer>, the last \boxed{…}/\fbox{…}
//   with balanced braces, GSM8K "#### N", "the final answer is …", "Answer: …", and, only when
//   enabled, the last number in the text.
//   normalize_answer: LaTeX/text clean-up before parsing (\left/\right, \dfrac/\tfrac, \text{…},
//   \mathrm, \!, \, spacing, units and degree signs, ^\circ, percentages, thousands separators,
//   dollars, trailing punctuation, "x = …" assignments, "and"/"or" lists).
// Both are linear-time in the input and bounded (max_input_bytes): model output is hostile.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace r1kit::rewards {

enum class AnswerSource {
  answer_tag,
  boxed,
  gsm8k_hashes,
  final_answer_phrase,
  answer_colon,
  last_number,
  whole_text,
  last_math,
  choice
};
const char* answer_source_name(AnswerSource s);

struct ExtractOptions {
  bool answer_tag = true;           // <answer>…</answer> (the last one)
  bool boxed = true;                // last \boxed{…} / \fbox{…} (inside the answer tag if any)
  bool gsm8k_hashes = true;         // "#### N"
  bool final_answer_phrase = true;  // "the final answer is …", "the answer is …"
  bool answer_colon = true;         // "Answer: …"
  bool last_math = false;  // opt-in: the last $…$, $$…$$, \(…\) or \[…\] (before last_number)
  bool last_number = false;  // opt-in fallback
  bool whole_text = false;   // the whole text as one candidate (gold strings such as "3/4")
  // Multiple choice (opt-in): the allowed letters, e.g. "ABCD". When set, a choice letter found
  // by "the answer is (B)", "Answer: B", a leading "B." or, last, a standalone capital letter is
  // the first candidate (source choice).
  std::string choices;
  size_t max_input_bytes = 1 << 20;  // longer inputs: only the last max_input_bytes are searched
  size_t max_candidates = 4;
};

struct Candidate {
  std::string text;  // raw extracted text (before normalisation)
  AnswerSource source;
  // Byte offset in the input just past the candidate's text (for ordering candidates by where
  // they occur without searching the text again); 0 for choice letters, which may be upper-cased.
  size_t end = 0;
};

// In priority order; empty when nothing was found. When the text has an <answer>…</answer> (the
// last one; an unclosed last tag runs to the end), only its content is searched: the boxed,
// "####", phrase, "Answer:", math and number candidates found inside it come first, then the
// whole content (source answer_tag). "Last \boxed" is the complete box that closes last (an
// unclosed, truncated box is ignored); `\boxed 5` takes the argument up to whitespace or `$`.
// Phrase and "Answer:" candidates run to the end of the sentence or line (math kept whole), with
// $…$ / \(…\) delimiters, bold markers and trailing punctuation removed. Duplicate texts are
// dropped; at most max_candidates. The candidates are alternatives for when an earlier one does not
// parse, not several guesses. Linear time and memory; never throws.
std::vector<Candidate> extract_answers(std::string_view text, const ExtractOptions& opts = {});

struct NormalizeOptions {
  bool strip_units = true;
  bool percent_as_fraction = false;  // "50\%" -> "50/100" (else the % sign is dropped: "50")
  bool keep_percent = false;  // keep "\%" for the parser (the verifier: 28\% accepts 28 and 0.28)
  size_t max_bytes = 8192;    // longer answers are cut here
};
std::string normalize_answer(std::string_view answer, const NormalizeOptions& opts = {});

}  // namespace r1kit::rewards
