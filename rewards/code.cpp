// Code execution reward (see code.h).
#include "rewards/code.h"

#include <algorithm>

#include "core/error.h"
#include "sandbox/eval.h"

namespace r1kit::rewards {
namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = char(std::tolower(uint8_t(c)));
  return out;
}

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v';
}

}  // namespace

std::optional<std::string> extract_code_block(std::string_view text,
                                              const std::vector<std::string>& tags,
                                              bool allow_untagged) {
  std::optional<std::string> last;
  size_t pos = 0;
  size_t nl = 0;  // the first newline at or after the current fence (cached: linear time when
                  // a line holds many backticks)
  bool have_nl = false;
  while ((pos = text.find("```", pos)) != std::string_view::npos) {
    size_t info_begin = pos + 3;
    while (info_begin < text.size() && text[info_begin] == '`') ++info_begin;  // ```` fences
    if (!have_nl || nl < info_begin) {
      nl = text.find('\n', info_begin);
      have_nl = true;
    }
    if (nl == std::string_view::npos) break;
    std::string_view info = text.substr(info_begin, nl - info_begin);
    if (info.find('`') != std::string_view::npos) {  // not an opening fence ("```x```")
      pos = info_begin;
      continue;
    }
    size_t b = 0;
    while (b < info.size() && is_space(info[b])) ++b;
    size_t e = b;
    while (e < info.size() && !is_space(info[e]) && info[e] != '{') ++e;
    std::string tag = lower(info.substr(b, e - b));
    size_t close = text.find("```", nl + 1);
    if (close == std::string_view::npos) break;  // unclosed: incomplete code
    bool wanted =
        tag.empty() ? allow_untagged : std::find(tags.begin(), tags.end(), tag) != tags.end();
    if (wanted) last = std::string(text.substr(nl + 1, close - nl - 1));
    pos = close + 3;
    while (pos < text.size() && text[pos] == '`') ++pos;
  }
  return last;
}

std::vector<std::string> default_fence_tags(sandbox::Language lang) {
  switch (lang) {
    case sandbox::Language::python:
      return {"python", "py", "python3"};
    case sandbox::Language::cpp:
      return {"cpp", "c++", "cxx", "cc"};
    case sandbox::Language::bash:
      return {"bash", "sh", "shell"};
  }
  return {};
}

CodeRewardOptions CodeRewardOptions::from_json(const Json& j, std::string_view where) {
  reject_unknown_keys(j,
                      {"language", "language_field", "fence_tags", "allow_untagged", "tests_format",
                       "score", "max_cases", "max_code_bytes", "compare", "time_limit_s",
                       "memory_mb", "allow_weaker_isolation"},
                      where);
  CodeRewardOptions o;
  std::string lang = get_optional<std::string>(j, "language", where, "python");
  auto l = sandbox::language_from_name(lang);
  R1_CHECK(l.has_value(), "{}: language '{}': expected python, cpp or bash", where, lang);
  o.language = *l;
  o.language_field = get_optional<std::string>(j, "language_field", where, o.language_field);
  o.fence_tags = get_optional<std::vector<std::string>>(j, "fence_tags", where, {});
  for (auto& t : o.fence_tags) t = lower(t);
  o.allow_untagged = get_optional<bool>(j, "allow_untagged", where, false);
  std::string fmt = get_optional<std::string>(j, "tests_format", where, "auto");
  if (fmt == "auto") {
    o.format = CodeTestFormat::auto_detect;
  } else if (fmt == "humaneval") {
    o.format = CodeTestFormat::humaneval;
  } else if (fmt == "mbpp") {
    o.format = CodeTestFormat::mbpp;
  } else if (fmt == "stdio") {
    o.format = CodeTestFormat::stdio;
  } else {
    R1_THROW("{}: tests_format '{}': expected auto, humaneval, mbpp or stdio", where, fmt);
  }
  std::string mode = get_optional<std::string>(j, "score", where, "fraction");
  if (mode == "fraction") {
    o.mode = CodeScoreMode::fraction;
  } else if (mode == "all_or_nothing") {
    o.mode = CodeScoreMode::all_or_nothing;
  } else {
    R1_THROW("{}: score '{}': expected fraction or all_or_nothing", where, mode);
  }
  o.max_cases = get_optional<uint64_t>(j, "max_cases", where, 0);
  o.max_code_bytes = get_optional<uint64_t>(j, "max_code_bytes", where, o.max_code_bytes);
  std::string cmp = get_optional<std::string>(j, "compare", where, "whitespace");
  auto c = sandbox::compare_from_name(cmp);
  R1_CHECK(c.has_value(), "{}: compare '{}': expected exact, whitespace or float", where, cmp);
  o.compare = *c;
  double t = get_optional<double>(j, "time_limit_s", where, o.limits.wall_s);
  o.limits.wall_s = t;
  o.limits.cpu_s = t;
  o.limits.memory_bytes = get_optional<uint64_t>(j, "memory_mb", where, 1024) << 20;
  sandbox::validate_limits(o.limits);
  o.allow_weaker_isolation = get_optional<bool>(j, "allow_weaker_isolation", where, false);
  return o;
}

CodeReward::CodeReward(CodeRewardOptions opts)
    : CodeReward(opts, [&] {
        sandbox::SandboxOptions so;
        so.allow_weaker_isolation = opts.allow_weaker_isolation;
        return so;
      }()) {}

CodeReward::CodeReward(CodeRewardOptions opts, const sandbox::SandboxOptions& so)
    : opts_(std::move(opts)) {
  try {
    own_ = std::make_unique<sandbox::Sandbox>(so);
    sb_ = own_.get();
  } catch (const std::exception& e) {
    sandbox_error_ = std::string("sandbox unavailable: ") + e.what();
  }
}

CodeReward::CodeReward(CodeRewardOptions opts, const sandbox::Sandbox& sb)
    : opts_(std::move(opts)), sb_(&sb) {}

CodeReward::~CodeReward() = default;

namespace {

struct TestOutcome {
  bool passed = false;
  sandbox::Status status = sandbox::Status::ok;
  std::string reason;
  int64_t wall_ms = 0;
};

Json outcome_json(const TestOutcome& t) {
  Json j = {{"passed", t.passed}, {"status", std::string(sandbox::status_name(t.status))}};
  if (!t.reason.empty()) j["reason"] = utf8_clip(t.reason, 512);
  j["wall_ms"] = t.wall_ms;
  return j;
}

// Which harness a reference row needs, or std::nullopt (no tests).
std::optional<CodeTestFormat> detect_format(const Json& ref) {
  if (!ref.is_object()) return std::nullopt;
  if (ref.contains("entry_point") && ref.contains("test") && ref.contains("prompt"))
    return CodeTestFormat::humaneval;
  if (ref.contains("test_list")) return CodeTestFormat::mbpp;
  if (ref.contains("tests") || ref.contains("test") || ref.contains("input_output"))
    return CodeTestFormat::stdio;
  if (ref.contains("verification_info") && ref["verification_info"].is_object() &&
      ref["verification_info"].contains("test_cases"))
    return CodeTestFormat::stdio;
  return std::nullopt;
}

// A stdio row in one of the forms stdio_cases() reads: verl's {"tests": {inputs, outputs}} and
// open-r1's {"verification_info": {"test_cases": [...]}} are rewritten to those.
Json stdio_row(const Json& ref) {
  if (!ref.is_object()) return ref;
  if (ref.contains("tests") && ref["tests"].is_object()) {
    Json r = Json::object();
    r["input_output"] = ref["tests"];
    return r;
  }
  if (!ref.contains("tests") && !ref.contains("test") && !ref.contains("input_output") &&
      ref.contains("verification_info") && ref["verification_info"].is_object() &&
      ref["verification_info"].contains("test_cases")) {
    Json r = Json::object();
    r["tests"] = ref["verification_info"]["test_cases"];
    return r;
  }
  return ref;
}

}  // namespace

RewardResult CodeReward::score(const RewardInput& in) const {
  try {
    const Json& ref = in.reference;
    // The reference first: without tests there is nothing to judge.
    std::optional<CodeTestFormat> fmt = opts_.format == CodeTestFormat::auto_detect
                                            ? detect_format(ref)
                                            : std::optional<CodeTestFormat>(opts_.format);
    if (!fmt)
      return reward_skip("no tests in the reference (expected humaneval, mbpp or stdio fields)");

    sandbox::Language lang = opts_.language;
    std::string lang_name(sandbox::language_name(lang));
    const Json* lang_src = nullptr;
    if (ref.is_object() && !opts_.language_field.empty() && ref.contains(opts_.language_field))
      lang_src = &ref[opts_.language_field];
    else if (ref.is_object() && ref.contains("verification_info") &&
             ref["verification_info"].is_object() && ref["verification_info"].contains("language"))
      lang_src = &ref["verification_info"]["language"];
    if (lang_src && lang_src->is_string()) {
      lang_name = lang_src->get<std::string>();
      auto l = sandbox::language_from_name(lang_name == "python3" ? "python" : lang_name);
      if (!l)
        return reward_skip("language '" + utf8_clip(lang_name, 64) + "' is not run by the sandbox");
      lang = *l;
    }
    if (*fmt != CodeTestFormat::stdio && lang != sandbox::Language::python)
      return reward_skip("function tests (humaneval/mbpp) are Python only, the row says " +
                         utf8_clip(lang_name, 64));

    auto tags = opts_.fence_tags.empty() ? default_fence_tags(lang) : opts_.fence_tags;
    auto code = extract_code_block(in.completion, tags, opts_.allow_untagged);
    if (!code) return reward_ok(0.0, "no ```" + tags.front() + " code block in the completion");
    if (code->size() > opts_.max_code_bytes)
      return reward_ok(
          0.0, "code block is " + std::to_string(code->size()) + " bytes, over max_code_bytes");
    if (!sb_) return reward_error(sandbox_error_);

    std::vector<TestOutcome> tests;
    Json details = Json::object();
    details["language"] = std::string(sandbox::language_name(lang));
    std::string first_failure;
    bool internal = false;
    std::string internal_reason;
    const std::string where = "reference";

    if (*fmt == CodeTestFormat::stdio) {
      details["tests_format"] = "stdio";
      Json row = stdio_row(ref);
      std::vector<sandbox::StdioCase> cases;
      try {
        cases = sandbox::stdio_cases(row, where);
      } catch (const std::exception& e) {
        return reward_skip(std::string("unusable tests: ") + e.what());
      }
      if (cases.empty()) return reward_skip("the reference has an empty test list");
      if (opts_.max_cases && cases.size() > opts_.max_cases) cases.resize(opts_.max_cases);
      sandbox::StdioOptions so;
      so.compare = opts_.compare;
      if (ref.is_object() && ref.contains("compare") && ref["compare"].is_string()) {
        auto c = sandbox::compare_from_name(ref["compare"].get<std::string>());
        if (c) so.compare = *c;
      }
      so.limits = opts_.limits;
      so.stop_at_first_failure = opts_.mode == CodeScoreMode::all_or_nothing;
      auto rep = sandbox::run_stdio_tests(*sb_, lang, *code, cases, so);
      if (rep.status == sandbox::Status::compile_error) {
        details["compile_error"] = utf8_clip(rep.compile.stderr_data, 2048);
        if (rep.compile.status == sandbox::Status::internal_error)
          return reward_error("sandbox failed during the compile step: " + rep.compile.message);
      }
      for (size_t i = 0; i < cases.size(); ++i) {
        TestOutcome t;
        if (i < rep.cases.size()) {
          const auto& c = rep.cases[i];
          t.passed = c.passed;
          t.status = c.run.status;
          t.reason = c.reason;
          t.wall_ms = c.run.wall_ms;
          if (c.run.status == sandbox::Status::internal_error) {
            internal = true;
            internal_reason = c.run.message;
          }
        } else {
          t.status = rep.status == sandbox::Status::compile_error ? sandbox::Status::compile_error
                                                                  : sandbox::Status::ok;
          t.reason = rep.status == sandbox::Status::compile_error ? "compile error" : "not run";
        }
        tests.push_back(std::move(t));
      }
      if (!rep.passed) first_failure = rep.reason;
    } else {
      std::vector<sandbox::FunctionTest> fts;
      try {
        if (*fmt == CodeTestFormat::humaneval) {
          details["tests_format"] = "humaneval";
          fts.push_back(sandbox::humaneval_function_test(ref, *code, where));
        } else {
          details["tests_format"] = "mbpp";
          if (opts_.mode == CodeScoreMode::fraction && ref.is_object() &&
              ref.contains("test_list") && ref["test_list"].is_array() &&
              ref["test_list"].size() > 1) {
            for (const auto& assertion : ref["test_list"]) {
              Json one = ref;
              one["test_list"] = Json::array({assertion});
              fts.push_back(sandbox::mbpp_function_test(one, *code, where));
            }
          } else {
            fts.push_back(sandbox::mbpp_function_test(ref, *code, where));
          }
        }
      } catch (const std::exception& e) {
        return reward_skip(std::string("unusable tests: ") + e.what());
      }
      if (fts.empty() || fts.front().test_code.empty())
        return reward_skip("the reference has an empty test list");
      for (const auto& ft : fts) {
        auto rep = sandbox::run_function_tests(*sb_, ft, opts_.limits);
        TestOutcome t;
        t.passed = rep.passed;
        t.status = rep.status;
        t.reason = rep.reason;
        t.wall_ms = rep.run.wall_ms;
        if (rep.status == sandbox::Status::internal_error) {
          internal = true;
          internal_reason = rep.run.message;
        }
        if (!t.passed && first_failure.empty()) first_failure = rep.reason;
        bool stop = !t.passed && opts_.mode == CodeScoreMode::all_or_nothing;
        tests.push_back(std::move(t));
        if (stop) break;
      }
      for (size_t i = tests.size(); i < fts.size(); ++i) tests.push_back({false, {}, "not run", 0});
    }

    if (internal) return reward_error("sandbox failed: " + utf8_clip(internal_reason, 512));
    size_t passed = 0;
    Json per_test = Json::array();
    for (const auto& t : tests) {
      passed += t.passed;
      per_test.push_back(outcome_json(t));
    }
    details["passed"] = passed;
    details["total"] = tests.size();
    details["tests"] = std::move(per_test);
    double frac = double(passed) / double(tests.size());
    RewardResult r = reward_ok(
        opts_.mode == CodeScoreMode::fraction ? frac : (passed == tests.size() ? 1.0 : 0.0));
    if (passed < tests.size())
      r.reason = std::to_string(passed) + "/" + std::to_string(tests.size()) + " tests passed" +
                 (first_failure.empty() ? "" : "; first failure: " + utf8_clip(first_failure, 256));
    r.details = std::move(details);
    return r;
  } catch (const std::exception& e) {
    // Nothing a completion contains should get here; report instead of throwing.
    return reward_error(std::string("code reward failed: ") + e.what());
  }
}

}  // namespace r1kit::rewards
