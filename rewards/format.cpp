// Format, tag-count, code-format and reasoning-steps rewards (see format.h).
#include "rewards/format.h"

#include <re2/re2.h>

#include "core/error.h"

namespace r1kit::rewards {
namespace {

// Latin-1 so that `.` matches every byte: model output need not be valid UTF-8, and every literal
// in these patterns is ASCII.
std::unique_ptr<re2::RE2> compile(const std::string& pattern) {
  re2::RE2::Options o;
  o.set_encoding(re2::RE2::Options::EncodingLatin1);
  o.set_log_errors(false);
  auto re = std::make_unique<re2::RE2>(pattern, o);
  R1_CHECK(re->ok(), "[rewards] bad pattern '{}': {}", pattern, re->error());
  return re;
}

bool full_match_from_start(const re2::RE2& re, std::string_view text) {
  return re2::RE2::PartialMatch(re2::StringPiece(text.data(), text.size()), re);
}

// Non-overlapping occurrences, as Python's str.count.
size_t count_substr(std::string_view text, std::string_view needle) {
  size_t n = 0, pos = 0;
  while ((pos = text.find(needle, pos)) != std::string_view::npos) {
    ++n;
    pos += needle.size();
  }
  return n;
}

std::string too_long(size_t n, size_t max) {
  return "completion is " + std::to_string(n) + " bytes, over max_input_bytes " +
         std::to_string(max);
}

// The exact R1 layout (open-r1): anchored at the start; the final (?m:$) matches at the end or
// before any newline, as Python's `$` under MULTILINE.
const char* kExactPattern = R"((?s)\A<think>\n.*?\n</think>\n<answer>\n.*?\n</answer>(?m:$))";
const char* kLenientPattern = R"((?s)\A\s*<think>.*?</think>\s*<answer>(.*?)</answer>\s*\z)";

std::string code_format_pattern(std::string_view language) {
  return R"((?s)\A<think>\n.*?\n</think>\n<answer>\n.*?```)" +
         re2::RE2::QuoteMeta(re2::StringPiece(language.data(), language.size())) +
         R"(.*?```.*?\n</answer>(?m:$))";
}

std::optional<std::string> with_prefix(const std::string& prefix, std::string_view completion,
                                       size_t max_bytes, std::string* why) {
  if (completion.size() + prefix.size() > max_bytes) {
    *why = too_long(completion.size(), max_bytes);
    return std::nullopt;
  }
  std::string s;
  s.reserve(prefix.size() + completion.size());
  s += prefix;
  s += completion;
  return s;
}

}  // namespace

// --- format -------------------------------------------------------------------------------------

FormatOptions FormatOptions::from_json(const Json& j, std::string_view where) {
  reject_unknown_keys(j, {"mode", "prefix", "max_input_bytes"}, where);
  FormatOptions o;
  std::string mode = get_optional<std::string>(j, "mode", where, "exact");
  if (mode == "exact") {
    o.mode = FormatMode::exact;
  } else if (mode == "lenient") {
    o.mode = FormatMode::lenient;
  } else {
    R1_THROW("{}: mode '{}': expected 'exact' or 'lenient'", where, mode);
  }
  o.prefix = get_optional<std::string>(j, "prefix", where, "");
  o.max_input_bytes = get_optional<uint64_t>(j, "max_input_bytes", where, o.max_input_bytes);
  return o;
}

FormatReward::FormatReward(FormatOptions opts)
    : opts_(std::move(opts)), exact_(compile(kExactPattern)), lenient_(compile(kLenientPattern)) {}
FormatReward::~FormatReward() = default;

bool FormatReward::matches(std::string_view text) const {
  if (opts_.mode == FormatMode::exact) return full_match_from_start(*exact_, text);
  for (const char* tag : {"<think>", "</think>", "<answer>", "</answer>"})
    if (count_substr(text, tag) != 1) return false;
  re2::StringPiece answer;
  if (!re2::RE2::PartialMatch(re2::StringPiece(text.data(), text.size()), *lenient_, &answer))
    return false;
  return std::string_view(answer.data(), answer.size()).find_first_not_of(" \t\r\n\f\v") !=
         std::string_view::npos;
}

RewardResult FormatReward::score(const RewardInput& in) const {
  std::string why;
  auto text = with_prefix(opts_.prefix, in.completion, opts_.max_input_bytes, &why);
  if (!text) return reward_ok(0.0, why);
  bool ok = matches(*text);
  return reward_ok(ok ? 1.0 : 0.0,
                   ok ? "" : "not in the <think>…</think><answer>…</answer> format");
}

// --- tag_count ----------------------------------------------------------------------------------

TagCountOptions TagCountOptions::from_json(const Json& j, std::string_view where) {
  reject_unknown_keys(j, {"prefix", "max_input_bytes"}, where);
  TagCountOptions o;
  o.prefix = get_optional<std::string>(j, "prefix", where, "");
  o.max_input_bytes = get_optional<uint64_t>(j, "max_input_bytes", where, o.max_input_bytes);
  return o;
}

double tag_count_score(std::string_view text) {
  double s = 0;
  for (const char* tag : {"<think>\n", "\n</think>\n", "\n<answer>\n", "\n</answer>"})
    if (count_substr(text, tag) == 1) s += 0.25;
  return s;
}

RewardResult TagCountReward::score(const RewardInput& in) const {
  std::string why;
  auto text = with_prefix(opts_.prefix, in.completion, opts_.max_input_bytes, &why);
  if (!text) return reward_ok(0.0, why);
  return reward_ok(tag_count_score(*text));
}

// --- code_format --------------------------------------------------------------------------------

CodeFormatOptions CodeFormatOptions::from_json(const Json& j, std::string_view where) {
  reject_unknown_keys(j, {"language", "language_field", "prefix", "max_input_bytes"}, where);
  CodeFormatOptions o;
  o.language = get_optional<std::string>(j, "language", where, o.language);
  R1_CHECK(!o.language.empty() && o.language.size() <= 32, "{}: language must be 1 to 32 bytes",
           where);
  o.language_field = get_optional<std::string>(j, "language_field", where, "");
  o.prefix = get_optional<std::string>(j, "prefix", where, "");
  o.max_input_bytes = get_optional<uint64_t>(j, "max_input_bytes", where, o.max_input_bytes);
  return o;
}

CodeFormatReward::CodeFormatReward(CodeFormatOptions opts)
    : opts_(std::move(opts)), re_(compile(code_format_pattern(opts_.language))) {}
CodeFormatReward::~CodeFormatReward() = default;

RewardResult CodeFormatReward::score(const RewardInput& in) const {
  std::string why;
  auto text = with_prefix(opts_.prefix, in.completion, opts_.max_input_bytes, &why);
  if (!text) return reward_ok(0.0, why);
  const re2::RE2* re = re_.get();
  std::unique_ptr<re2::RE2> row_re;
  std::string language = opts_.language;
  if (!opts_.language_field.empty()) {
    auto lang = reference_text(in.reference, {opts_.language_field});
    if (lang && *lang != opts_.language) {
      if (lang->empty() || lang->size() > 32)
        return reward_skip("reference field '" + opts_.language_field +
                           "' is not a usable language name");
      row_re = compile(code_format_pattern(*lang));
      re = row_re.get();
      language = *lang;
    }
  }
  bool ok = full_match_from_start(*re, *text);
  return reward_ok(ok ? 1.0 : 0.0, ok ? "" : "no ```" + language + " block in the R1 format");
}

// --- reasoning_steps ----------------------------------------------------------------------------

ReasoningStepsOptions ReasoningStepsOptions::from_json(const Json& j, std::string_view where) {
  reject_unknown_keys(j, {"steps_for_full", "max_input_bytes"}, where);
  ReasoningStepsOptions o;
  o.steps_for_full = get_optional<double>(j, "steps_for_full", where, o.steps_for_full);
  R1_CHECK(o.steps_for_full > 0, "{}: steps_for_full must be positive", where);
  o.max_input_bytes = get_optional<uint64_t>(j, "max_input_bytes", where, o.max_input_bytes);
  return o;
}

ReasoningStepsReward::ReasoningStepsReward(ReasoningStepsOptions opts)
    : opts_(opts),
      start_(compile(R"(\A\d+\.)")),
      markers_(compile(R"(Step \d+:|\n-|\n\*|First,|Second,|Next,|Finally,)")) {}
ReasoningStepsReward::~ReasoningStepsReward() = default;

// open-r1's `^\d+\.` has no MULTILINE flag, so it only counts at the start of the text; it is
// matched once there, and the other markers (none can start inside "12.") are counted over all.
size_t ReasoningStepsReward::count_steps(std::string_view text) const {
  re2::StringPiece in(text.data(), text.size());
  size_t n = re2::RE2::PartialMatch(in, *start_) ? 1 : 0;
  while (re2::RE2::FindAndConsume(&in, *markers_)) ++n;
  return n;
}

RewardResult ReasoningStepsReward::score(const RewardInput& in) const {
  if (in.completion.size() > opts_.max_input_bytes)
    return reward_ok(0.0, too_long(in.completion.size(), opts_.max_input_bytes));
  double n = double(count_steps(in.completion));
  return reward_ok(std::min(1.0, n / opts_.steps_for_full));
}

}  // namespace r1kit::rewards
