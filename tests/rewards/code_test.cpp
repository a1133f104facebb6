// Code reward (rewards/code.h): fenced-block extraction, verl's stdin/stdout fixture with its
// expected continuous scores, HumanEval and MBPP canonical solutions pass and broken ones fail
// (a handful: the sandbox suite runs them all), pass fraction vs all-or-nothing, per-test details,
// skips and errors.
#include <gtest/gtest.h>

#include <chrono>

#include "core/error.h"
#include "rewards/code.h"
#include "sandbox/eval.h"

namespace r1kit::rewards {
namespace {

const std::string kShared = R1KIT_SHARED_DIR "/data/";

const sandbox::Sandbox& sb() {
  static sandbox::Sandbox s;
  return s;
}

std::string fenced(const std::string& code, const std::string& tag = "python") {
  return "<think>\nplan\n</think>\n<answer>\n```" + tag + "\n" + code + "\n```\n</answer>";
}

TEST(Code, ExtractLastBlockOfTheLanguage) {
  std::vector<std::string> py = {"python", "py"};
  EXPECT_EQ(extract_code_block("```python\na = 1\n```\ntext\n```py\nb = 2\n```", py), "b = 2\n");
  EXPECT_EQ(extract_code_block("```python\na\n```\n```cpp\nint x;\n```", py), "a\n");
  EXPECT_EQ(extract_code_block("<answer>```Python\nx\n```</answer>", py), "x\n");  // mid-line
  EXPECT_FALSE(extract_code_block("```\nuntagged\n```", py).has_value());
  EXPECT_EQ(extract_code_block("```\nuntagged\n```", py, true), "untagged\n");
  EXPECT_FALSE(extract_code_block("```python\nunclosed", py).has_value());
  EXPECT_EQ(extract_code_block("```python\nok\n```\n```python\nunclosed", py), "ok\n");
  EXPECT_EQ(extract_code_block("inline ```x``` then ```python\ny\n```", py), "y\n");
  EXPECT_FALSE(extract_code_block("no code at all", py).has_value());
  EXPECT_FALSE(extract_code_block("```python", py).has_value());
  // A megabyte of backticks on one line, and of unclosed fences: linear time.
  std::string ticks(1 << 20, '`');
  std::string fences;
  while (fences.size() < (1u << 20)) fences += "```x ";
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_FALSE(extract_code_block(ticks + "\n", py).has_value());
  EXPECT_FALSE(extract_code_block(fences + "\n", py).has_value());
  EXPECT_FALSE(extract_code_block(fences + "\n```python\n" + fences, py).has_value());
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 1.0);
}

TEST(Code, VerlStdioFixture) {
  auto rows = read_jsonl_file(kShared + "rewards/verl_prime_fixtures.jsonl");
  std::vector<Json> code_rows;
  for (const auto& r : rows)
    if (r["kind"] == "code_stdio") code_rows.push_back(r);
  ASSERT_EQ(code_rows.size(), 2u);
  // prime_code's continuous mode tests the first 10 cases: 1.0 and 9/10.
  CodeRewardOptions o;
  o.max_cases = 10;
  CodeReward first10(o, sb());
  for (const auto& row : code_rows) {
    std::string completion = fenced(row["solution"]);
    RewardResult r = first10.score({"", completion, row});
    ASSERT_EQ(r.status, RewardStatus::ok) << r.reason;
    EXPECT_DOUBLE_EQ(r.score, row["expected_continuous_score"].get<double>()) << r.reason;
    EXPECT_EQ(r.details["total"], 10);
    EXPECT_EQ(r.details["tests"].size(), 10u);
  }
  // All 11 cases of the second ground truth: the changed case 3 is the one failure.
  CodeReward all(CodeRewardOptions{}, sb());
  RewardResult r = all.score({"", fenced(code_rows[1]["solution"]), code_rows[1]});
  EXPECT_DOUBLE_EQ(r.score, 10.0 / 11.0);
  EXPECT_FALSE(r.details["tests"][3]["passed"].get<bool>());
  EXPECT_EQ(r.details["tests"][3]["reason"], "wrong answer");
  EXPECT_TRUE(r.details["tests"][4]["passed"].get<bool>());
  CodeRewardOptions aon;
  aon.mode = CodeScoreMode::all_or_nothing;
  RewardResult z =
      CodeReward(aon, sb()).score({"", fenced(code_rows[1]["solution"]), code_rows[1]});
  EXPECT_EQ(z.score, 0.0);
  EXPECT_EQ(z.details["tests"][4]["reason"], "not run");  // stopped at the first failure
}

TEST(Code, HumanEvalCanonicalPassBrokenFail) {
  auto rows = sandbox::read_dataset(kShared + "code/humaneval/HumanEval.jsonl.gz");
  ASSERT_EQ(rows.size(), 164u);
  CodeReward reward(CodeRewardOptions{}, sb());
  for (size_t i : {0u, 12u, 53u, 101u, 163u}) {
    const Json& row = rows[i];
    std::string prompt = row["prompt"], body = row["canonical_solution"];
    RewardResult good = reward.score({"", fenced(prompt + body), row});
    EXPECT_EQ(good.status, RewardStatus::ok) << good.reason;
    EXPECT_EQ(good.score, 1.0) << row["task_id"] << ": " << good.reason;
    EXPECT_EQ(good.details["tests_format"], "humaneval");
    // Only the body, as HumanEval completions come: the prompt is prepended.
    EXPECT_EQ(reward.score({"", fenced(body), row}).score, 1.0) << row["task_id"];
    RewardResult bad = reward.score({"", fenced(prompt + "    raise ValueError('broken')\n"), row});
    EXPECT_EQ(bad.status, RewardStatus::ok);
    EXPECT_EQ(bad.score, 0.0) << row["task_id"];
    EXPECT_FALSE(bad.reason.empty());
  }
}

TEST(Code, MbppCanonicalPassBrokenFailAndFraction) {
  auto rows = sandbox::read_dataset(kShared + "code/mbpp/sanitized-mbpp.json");
  CodeReward reward(CodeRewardOptions{}, sb());
  for (size_t i : {0u, 40u, 200u}) {
    const Json& row = rows[i];
    RewardResult good = reward.score({"", fenced(row["code"]), row});
    EXPECT_EQ(good.score, 1.0) << row["task_id"] << ": " << good.reason;
    EXPECT_EQ(good.details["tests"].size(), row["test_list"].size());  // one test per assert
    RewardResult bad = reward.score({"", fenced("def nothing():\n    pass"), row});
    EXPECT_EQ(bad.score, 0.0) << row["task_id"];
  }
  // A solution right on two of three asserts.
  Json row = {
      {"test_list", {"assert square(1) == 1", "assert square(2) == 4", "assert square(3) == 9"}},
      {"code", "def square(x):\n    return x * x\n"}};
  std::string partial = fenced("def square(x):\n    return x * x if x < 3 else 0");
  RewardResult frac = reward.score({"", partial, row});
  EXPECT_NEAR(frac.score, 2.0 / 3.0, 1e-12);
  EXPECT_EQ(frac.details["passed"], 2);
  CodeRewardOptions aon;
  aon.mode = CodeScoreMode::all_or_nothing;
  EXPECT_EQ(CodeReward(aon, sb()).score({"", partial, row}).score, 0.0);
}

TEST(Code, CppFromTheRowAndCompileErrors) {
  Json row = {
      {"language", "cpp"},
      {"tests", {{{"input", "2 3\n"}, {"output", "5\n"}}, {{"input", "4 4\n"}, {"output", "8"}}}}};
  CodeReward reward(CodeRewardOptions{}, sb());
  std::string ok =
      fenced("#include <cstdio>\nint main(){int a,b;scanf(\"%d %d\",&a,&b);printf(\"%d\\n\",a+b);}",
             "cpp");
  RewardResult r = reward.score({"", ok, row});
  EXPECT_EQ(r.score, 1.0) << r.reason;
  EXPECT_EQ(r.details["language"], "cpp");
  RewardResult ce = reward.score({"", fenced("int main( {", "cpp"), row});
  EXPECT_EQ(ce.status, RewardStatus::ok);
  EXPECT_EQ(ce.score, 0.0);
  EXPECT_TRUE(ce.details.contains("compile_error"));
  // A python block does not count for a C++ row.
  RewardResult wrong_lang = reward.score({"", fenced("print(5)"), row});
  EXPECT_EQ(wrong_lang.score, 0.0);
  EXPECT_NE(wrong_lang.reason.find("no ```cpp"), std::string::npos) << wrong_lang.reason;
}

TEST(Code, SkipsAndErrors) {
  CodeReward reward(CodeRewardOptions{}, sb());
  Json tests = {{"tests", {{{"input", ""}, {"output", "1"}}}}};
  // No code block: 0 with a reason, status ok.
  RewardResult none = reward.score({"", "I would print 1.", tests});
  EXPECT_EQ(none.status, RewardStatus::ok);
  EXPECT_EQ(none.score, 0.0);
  EXPECT_NE(none.reason.find("no ```python"), std::string::npos);
  // No tests: skip. Empty tests: skip. A language the sandbox does not run: skip.
  EXPECT_EQ(reward.score({"", fenced("print(1)"), Json{{"answer", "1"}}}).status,
            RewardStatus::skip);
  EXPECT_EQ(reward.score({"", fenced("print(1)"), Json{{"tests", Json::array()}}}).status,
            RewardStatus::skip);
  Json js = tests;
  js["language"] = "javascript";
  EXPECT_EQ(reward.score({"", fenced("console.log(1)", "javascript"), js}).status,
            RewardStatus::skip);
  // Malformed tests: skip with the reason.
  RewardResult bad = reward.score({"", fenced("print(1)"), Json{{"tests", "not json"}}});
  EXPECT_EQ(bad.status, RewardStatus::skip);
  // The sandbox cannot start: every score is an error.
  sandbox::SandboxOptions refuse;
  refuse.simulate_unavailable = {"seccomp"};
  CodeReward broken(CodeRewardOptions{}, refuse);
  EXPECT_FALSE(broken.sandbox_error().empty());
  RewardResult err = broken.score({"", fenced("print(1)"), tests});
  EXPECT_EQ(err.status, RewardStatus::error);
  EXPECT_NE(err.reason.find("sandbox unavailable"), std::string::npos) << err.reason;
  // Model code that misbehaves is judged, not obeyed: an infinite loop times out.
  CodeRewardOptions quick;
  quick.limits.wall_s = quick.limits.cpu_s = 1.0;
  RewardResult loop = CodeReward(quick, sb()).score({"", fenced("while True: pass"), tests});
  EXPECT_EQ(loop.status, RewardStatus::ok);
  EXPECT_EQ(loop.score, 0.0);
  EXPECT_EQ(loop.details["tests"][0]["status"], "timeout");
}

TEST(Code, OptionsFromJson) {
  auto o = CodeRewardOptions::from_json(
      Json{{"language", "cpp"}, {"score", "all_or_nothing"}, {"max_cases", 3}, {"time_limit_s", 2}},
      "cfg");
  EXPECT_EQ(o.language, sandbox::Language::cpp);
  EXPECT_EQ(o.mode, CodeScoreMode::all_or_nothing);
  EXPECT_EQ(o.max_cases, 3u);
  EXPECT_EQ(o.limits.wall_s, 2.0);
  EXPECT_THROW(CodeRewardOptions::from_json(Json{{"language", "rust"}}, "cfg"), Error);
  EXPECT_THROW(CodeRewardOptions::from_json(Json{{"scroe", "fraction"}}, "cfg"), Error);
  EXPECT_THROW(CodeRewardOptions::from_json(Json{{"time_limit_s", -1}}, "cfg"), Error);
}

}  // namespace
}  // namespace r1kit::rewards
