// The eval stage (recipes/eval.h): the metric math against hand-computed values, the table, the
// config block (defaults, round trip, mistakes refused), the ready-made configs (they parse, and
// their scorers accept the gold answers of the real data files), and a run end to end on a tiny
// warmed-up model: counts, bounds, determinism, and metrics that agree with the logged samples.
#include "recipes/eval.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "gtest/gtest.h"
#include "rewards/code.h"
#include "rewards/compose.h"
#include "sandbox/eval.h"
#include "tests/common/test_util.h"
#include "tests/common/training_fixtures.h"

namespace r1kit::recipes {
namespace {

namespace fs = std::filesystem;
using testing::expect_error_contains;
using testing::ScratchDir;
using namespace testing::training;

// --- pass@k -------------------------------------------------------------------------------------

// 1 - C(n - c, k) / C(n, k) with exact binomials, for small n.
double pass_at_k_exact(int64_t n, int64_t c, int64_t k) {
  auto binom = [](int64_t a, int64_t b) {
    if (b < 0 || b > a) return 0.0;
    double r = 1;
    for (int64_t i = 1; i <= b; ++i)
      r = r * static_cast<double>(a - b + i) / static_cast<double>(i);
    return r;
  };
  return 1.0 - binom(n - c, k) / binom(n, k);
}

TEST(EvalMetrics, PassAtKHandComputed) {
  // n = 5, c = 2, k = 2: 1 - C(3,2)/C(5,2) = 1 - 3/10.
  EXPECT_NEAR(pass_at_k(5, 2, 2), 0.7, 1e-12);
  // k = 1 is c / n.
  EXPECT_NEAR(pass_at_k(5, 2, 1), 0.4, 1e-12);
  EXPECT_NEAR(pass_at_k(16, 5, 1), 5.0 / 16.0, 1e-12);
  // n = 10, c = 3, k = 5: 1 - C(7,5)/C(10,5) = 1 - 21/252.
  EXPECT_NEAR(pass_at_k(10, 3, 5), 1.0 - 21.0 / 252.0, 1e-12);
  // Edges: nothing right, everything right, fewer wrong samples than k.
  EXPECT_EQ(pass_at_k(5, 0, 3), 0.0);
  EXPECT_EQ(pass_at_k(5, 5, 3), 1.0);
  EXPECT_EQ(pass_at_k(5, 4, 2), 1.0);  // n - c = 1 < k
  EXPECT_EQ(pass_at_k(1, 1, 1), 1.0);
  EXPECT_EQ(pass_at_k(1, 0, 1), 0.0);
  for (int64_t n = 1; n <= 12; ++n)
    for (int64_t c = 0; c <= n; ++c)
      for (int64_t k = 1; k <= n; ++k)
        EXPECT_NEAR(pass_at_k(n, c, k), pass_at_k_exact(n, c, k), 1e-12)
            << "n=" << n << " c=" << c << " k=" << k;
  // Stable where C(n, k) overflows a double: n = 2000, c = 1 is k / n exactly.
  EXPECT_NEAR(pass_at_k(2000, 1, 1000), 0.5, 1e-12);
  const double big = pass_at_k(2000, 10, 500);
  EXPECT_TRUE(std::isfinite(big));
  EXPECT_GT(big, 0.9);
  EXPECT_LE(big, 1.0);
  expect_error_contains([] { pass_at_k(4, 2, 5); }, {"pass_at_k", "k=5"});
  expect_error_contains([] { pass_at_k(4, 5, 1); }, {"pass_at_k", "c=5"});
}

// --- Majority vote ------------------------------------------------------------------------------

TEST(EvalMetrics, MajorityVote) {
  {
    const MajorityVote v = majority_vote({"5", "4", "5", "7"}, {true, false, true, false});
    EXPECT_EQ(v.answer, "5");
    EXPECT_EQ(v.votes, 2);
    EXPECT_EQ(v.index, 0);
    EXPECT_TRUE(v.correct);
  }
  {  // A tie goes to the answer seen first.
    const MajorityVote v = majority_vote({"3", "5", "5", "3"}, {false, true, true, false});
    EXPECT_EQ(v.answer, "3");
    EXPECT_EQ(v.index, 0);
    EXPECT_FALSE(v.correct);
    const MajorityVote w = majority_vote({"5", "3", "3", "5"}, {true, false, false, true});
    EXPECT_EQ(w.answer, "5");
    EXPECT_TRUE(w.correct);
  }
  {  // Empty answers do not vote, however many there are.
    const MajorityVote v = majority_vote({"", "", "8", ""}, {false, false, true, false});
    EXPECT_EQ(v.answer, "8");
    EXPECT_EQ(v.index, 2);
    EXPECT_EQ(v.votes, 1);
    EXPECT_TRUE(v.correct);
  }
  {  // Correctness is the first sample's giving the winning answer.
    const MajorityVote v = majority_vote({"1", "2", "2"}, {true, false, true});
    EXPECT_EQ(v.answer, "2");
    EXPECT_EQ(v.index, 1);
    EXPECT_FALSE(v.correct);
  }
  {
    const MajorityVote v = majority_vote({"", ""}, {true, true});
    EXPECT_EQ(v.index, -1);
    EXPECT_FALSE(v.correct);
    EXPECT_EQ(majority_vote({}, {}).index, -1);
  }
  expect_error_contains(
      [] {
        majority_vote({"1"}, {true, false});
      },
      {"majority_vote", "1 answers", "2 correctness"});
}

// --- Aggregation --------------------------------------------------------------------------------

SampleScore score(bool correct, std::string answer, int64_t length = 4, bool truncated = false) {
  SampleScore s;
  s.correct = correct;
  s.answer = std::move(answer);
  s.reward = correct ? 1.0 : 0.0;
  s.length = length;
  s.truncated = truncated;
  return s;
}

TEST(EvalMetrics, SummarizeScoresHandComputed) {
  // Problem 0: c = 2 of 3; the first k = 2 samples vote "4" (right) and "5" (wrong): a tie that
  // "4" wins. Problem 1: c = 0, votes "6", "6". Problem 2: c = 3, no answers (no vote: wrong).
  std::vector<std::vector<SampleScore>> s(3);
  s[0] = {score(true, "4", 10), score(false, "5", 20, true), score(true, "4", 30)};
  s[1] = {score(false, "6"), score(false, "6"), score(false, "")};
  s[2] = {score(true, ""), score(true, ""), score(true, "")};
  s[1][2].scored = false;  // a scorer skip
  s[1][2].reward = 0;
  s[2][0].format = 1.0;
  s[2][1].format = 0.0;
  const DatasetMetrics m = summarize_scores("d", s, 2, true);
  EXPECT_EQ(m.problems, 3);
  EXPECT_EQ(m.samples_per_problem, 3);
  EXPECT_EQ(m.samples, 9);
  EXPECT_EQ(m.k, 2);
  EXPECT_EQ(m.correct, (std::vector<int64_t>{2, 0, 3}));
  EXPECT_NEAR(m.pass_at_1, (2.0 / 3.0 + 0.0 + 1.0) / 3.0, 1e-12);
  // pass@2: problem 0 has n - c = 1 < 2 → 1; problem 1 → 0; problem 2 → 1.
  EXPECT_NEAR(m.pass_at_k, 2.0 / 3.0, 1e-12);
  ASSERT_TRUE(m.maj_at_k.has_value());
  EXPECT_NEAR(*m.maj_at_k, 1.0 / 3.0, 1e-12);
  ASSERT_TRUE(m.format_rate.has_value());
  EXPECT_NEAR(*m.format_rate, 0.5, 1e-12);
  EXPECT_NEAR(m.response_length_mean, (10 + 20 + 30 + 6 * 4) / 9.0, 1e-12);
  EXPECT_NEAR(m.truncated_fraction, 1.0 / 9.0, 1e-12);
  ASSERT_TRUE(m.reward_mean.has_value());
  EXPECT_NEAR(*m.reward_mean, 5.0 / 8.0, 1e-12);  // 5 right of the 8 scored
  EXPECT_EQ(m.scorer_skipped, 1);
  EXPECT_EQ(m.scorer_errors, 0);
  EXPECT_GE(m.pass_at_k, m.pass_at_1);

  // No voting (code): maj@k is null; JSON keeps the nulls.
  const DatasetMetrics c = summarize_scores("code", s, 2, false);
  EXPECT_FALSE(c.maj_at_k.has_value());
  const Json j = c.to_json();
  EXPECT_TRUE(j.at("maj@k").is_null());
  EXPECT_EQ(j.at("pass@1").get<double>(), c.pass_at_1);
  EXPECT_EQ(j.at("correct"), Json::array({2, 0, 3}));
  const std::vector<std::vector<SampleScore>> one(1, std::vector<SampleScore>{score(false, "")});
  EXPECT_TRUE(summarize_scores("d", one, 1, true).to_json().at("format_rate").is_null());

  expect_error_contains([&] { summarize_scores("d", s, 4, true); }, {"k = 4", "3"});
  s[1].pop_back();
  expect_error_contains([&] { summarize_scores("d", s, 2, true); }, {"problem 1 has 2 samples"});
}

// --- Table --------------------------------------------------------------------------------------

TEST(EvalTable, AlignedInConfigOrderWithDashesForNull) {
  Json results = Json::object();
  results["datasets"]["zeta"] = {{"problems", 30},
                                 {"samples_per_problem", 16},
                                 {"samples", 480},
                                 {"k", 16},
                                 {"pass@1", 0.2876},
                                 {"pass@k", 0.5},
                                 {"maj@k", 0.4},
                                 {"format_rate", nullptr},
                                 {"response_length_mean", 1234.5678},
                                 {"truncated_fraction", 0.0625},
                                 {"reward_mean", 0.2875}};
  results["datasets"]["alpha-code"] = {{"problems", 164},
                                       {"samples_per_problem", 16},
                                       {"samples", 2624},
                                       {"k", 16},
                                       {"pass@1", 0.75},
                                       {"pass@k", 0.9},
                                       {"maj@k", nullptr},
                                       {"format_rate", nullptr},
                                       {"response_length_mean", 88.0},
                                       {"truncated_fraction", 0.0},
                                       {"reward_mean", nullptr}};
  results["config"]["datasets"] = Json::array({{{"name", "zeta"}}, {{"name", "alpha-code"}}});
  const std::string t = format_eval_table(results);
  std::vector<std::string> lines;
  for (size_t a = 0, b; a < t.size(); a = b + 1) {
    b = t.find('\n', a);
    lines.push_back(t.substr(a, b - a));
  }
  ASSERT_EQ(lines.size(), 4u) << t;
  EXPECT_EQ(lines[0].rfind("dataset", 0), 0u) << t;
  for (const char* col : {"problems", "pass@1", "pass@k", "maj@k", "format", "length", "reward"})
    EXPECT_NE(lines[0].find(col), std::string::npos) << col;
  EXPECT_EQ(lines[1].find_first_not_of('-'), std::string::npos);
  // Config order (zeta first, not alphabetical); every line the same width (right-aligned).
  EXPECT_EQ(lines[2].rfind("zeta", 0), 0u) << t;
  EXPECT_EQ(lines[3].rfind("alpha-code", 0), 0u) << t;
  for (const auto& l : lines) EXPECT_EQ(l.size(), lines[0].size()) << t;
  EXPECT_NE(lines[2].find("0.288"), std::string::npos) << t;  // 3 decimals
  EXPECT_NE(lines[2].find("1234.6"), std::string::npos) << t;
  EXPECT_NE(lines[3].find(" -"), std::string::npos) << t;
  // The pass@1 column lines up: its last character is at the same offset in both rows.
  const size_t p1 = lines[0].find("pass@1") + 5;
  EXPECT_EQ(lines[2][p1], '8') << t;  // 0.288
  EXPECT_EQ(lines[3][p1], '0') << t;  // 0.750
  // No config: datasets by name; no datasets: the header alone.
  results.erase("config");
  const std::string u = format_eval_table(results);
  EXPECT_LT(u.find("alpha-code"), u.find("zeta"));
  const std::string none = format_eval_table(Json::object());
  EXPECT_EQ(std::count(none.begin(), none.end(), '\n'), 2) << none;
}

// --- Config -------------------------------------------------------------------------------------

Json minimal_config() {
  return Json::parse(R"({"model": "/m", "datasets": [{"name": "gsm8k", "path": "g.jsonl"}]})");
}

TEST(EvalConfig, DefaultsAndRoundTrip) {
  const EvalConfig c = EvalConfig::from_json(minimal_config(), "eval");
  EXPECT_EQ(c.samples, 1);
  EXPECT_EQ(c.k, 1);
  EXPECT_DOUBLE_EQ(c.sampling.temperature, 0.6);
  EXPECT_DOUBLE_EQ(c.sampling.top_p, 0.95);
  EXPECT_EQ(c.sampling.max_new_tokens, 32768);
  EXPECT_EQ(c.sampling.n, 1);
  ASSERT_EQ(c.datasets.size(), 1u);
  EXPECT_EQ(c.datasets[0].rewards, Json::parse(R"({"rewards": [{"type": "accuracy"}]})"));
  EXPECT_EQ(c.datasets[0].max_problems, 0);
  EXPECT_EQ(c.datasets[0].prompt_field, "");
  EXPECT_EQ(c.device, "auto");
  EXPECT_EQ(c.output, "");
  EXPECT_EQ(c.input_paths(), (std::vector<std::string>{"/m", "g.jsonl"}));

  Json j = minimal_config();
  j["samples"] = 8;
  j["sampling"] = {{"max_new_tokens", 16}, {"stop", {"</answer>"}}};
  j["seed"] = 5;
  j["datasets"].push_back({{"name", "code"},
                           {"path", "c.jsonl"},
                           {"rewards", "rewards.json"},
                           {"max_problems", 3},
                           {"prompt_field", "prompt"},
                           {"max_prompt_tokens", 100}});
  j["engine"] = {{"num_blocks", 64}};
  const EvalConfig d = EvalConfig::from_json(j, "eval");
  EXPECT_EQ(d.k, 8);  // k defaults to samples
  EXPECT_EQ(d.sampling.n, 8);
  EXPECT_EQ(d.sampling.seed, 5u);
  EXPECT_EQ(d.sampling.max_new_tokens, 16);
  EXPECT_DOUBLE_EQ(d.sampling.temperature, 0.6);  // untouched keys keep the eval defaults
  EXPECT_EQ(d.engine.num_blocks, 64);
  EXPECT_EQ(d.input_paths(),
            (std::vector<std::string>{"/m", "g.jsonl", "c.jsonl", "rewards.json"}));
  const Json out = d.to_json();
  EXPECT_FALSE(out.at("sampling").contains("n"));
  EXPECT_FALSE(out.at("sampling").contains("seed"));
  EXPECT_EQ(EvalConfig::from_json(out, "again").to_json(), out);
  EXPECT_EQ(EvalConfig::from_json(c.to_json(), "again").to_json(), c.to_json());
  // Greedy is fine with one sample.
  Json g = minimal_config();
  g["sampling"] = {{"temperature", 0}};
  EXPECT_EQ(EvalConfig::from_json(g, "eval").sampling.temperature, 0.0);
}

TEST(EvalConfig, MistakesAreRefusedNamingTheKey) {
  auto refuse = [](const std::function<void(Json&)>& edit, std::vector<std::string> needles) {
    Json j = minimal_config();
    edit(j);
    expect_error_contains([&] { EvalConfig::from_json(j, "eval.json"); }, needles);
  };
  refuse([](Json& j) { j["smaples"] = 4; },
         {"unknown key 'smaples'", "eval.json", "did you mean 'samples'"});
  refuse([](Json& j) { j["datasets"][0]["max_problem"] = 4; },
         {"unknown key 'max_problem'", "eval.json: datasets[0]", "did you mean 'max_problems'"});
  refuse([](Json& j) { j["samples"] = "4"; }, {"eval.json", "'samples'", "string"});
  refuse([](Json& j) { j["datasets"][0]["max_problems"] = 2.5; },
         {"eval.json: datasets[0]", "'max_problems'"});
  refuse([](Json& j) { j["datasets"] = "g.jsonl"; }, {"eval.json: datasets", "non-empty array"});
  refuse([](Json& j) { j["datasets"] = Json::array(); }, {"eval.json: datasets", "empty array"});
  refuse([](Json& j) { j.erase("datasets"); }, {"eval.json", "'datasets' is required"});
  refuse([](Json& j) { j.erase("model"); }, {"eval.json", "'model'"});
  refuse(
      [](Json& j) {
        j["datasets"].push_back({{"name", "gsm8k"}, {"path", "other.jsonl"}});
      },
      {"eval.json: datasets[1]", "duplicate dataset name 'gsm8k'", "datasets[0]"});
  refuse([](Json& j) { j["datasets"][0].erase("path"); }, {"eval.json: datasets[0]", "'path'"});
  refuse([](Json& j) { j["datasets"][0]["name"] = "a/b"; }, {"datasets[0]", "\"a/b\""});
  refuse(
      [](Json& j) {
        j["samples"] = 4;
        j["k"] = 5;
      },
      {"eval.json", "'k'", "samples = 4", "got 5"});
  refuse([](Json& j) { j["k"] = 0; }, {"eval.json", "'k'"});
  refuse([](Json& j) { j["samples"] = 0; }, {"eval.json", "'samples' must be >= 1"});
  refuse([](Json& j) { j["sampling"] = {{"n", 4}}; }, {"'samples', not sampling.n"});
  refuse([](Json& j) { j["sampling"] = {{"seed", 4}}; }, {"stage's 'seed'"});
  refuse(
      [](Json& j) {
        j["sampling"] = {{"temprature", 1}};
      },
      {"eval.json: sampling", "did you mean 'temperature'"});
  refuse([](Json& j) { j["sampling"] = {{"top_p", 0}}; }, {"sampling", "top_p"});
  refuse(
      [](Json& j) {
        j["samples"] = 4;
        j["sampling"] = {{"temperature", 0}};
      },
      {"greedy", "identical"});
  refuse([](Json& j) { j["datasets"][0]["rewards"] = 3; },
         {"datasets[0].rewards", "reward config object"});
  refuse(
      [](Json& j) {
        j["datasets"][0]["rewards"] = Json::parse(R"({"rewards": [{"type": "acuracy"}]})");
      },
      {"datasets[0].rewards", "acuracy"});
  refuse([](Json& j) { j["device"] = "tpu"; }, {"eval.json", "'device'"});
  refuse(
      [](Json& j) {
        j["engine"] = {{"num_block", 3}};
      },
      {"eval.json: engine", "did you mean 'num_blocks'"});
  refuse(
      [](Json& j) {
        j["chat_template"] = "qwen3";
        j["prompt_template"] = "{prompt}";
      },
      {"not both"});
}

// Files are not opened by from_json; run_eval checks them first, naming the dataset and path.
TEST(EvalConfig, MissingFilesAreRunTimeErrorsNamingTheDataset) {
  ScratchDir dir;
  write_text(dir.file("a.jsonl"), sum_prompts(2));
  Json j = minimal_config();
  j["model"] = dir.file("no-model");  // never reached: the datasets are checked first
  j["datasets"] = Json::array({{{"name", "here"}, {"path", dir.file("a.jsonl")}},
                               {{"name", "gone"}, {"path", dir.file("missing.jsonl")}}});
  j["output"] = dir.file("out");
  const EvalConfig c = EvalConfig::from_json(j, "eval");  // parses: paths are not checked here
  expect_error_contains([&] { run_eval(c); }, {"dataset 'gone'", "missing.jsonl"});
  j["datasets"][1] = {{"name", "r"}, {"path", dir.file("a.jsonl")}, {"rewards", "nope.json"}};
  expect_error_contains([&] { run_eval(EvalConfig::from_json(j, "eval")); },
                        {"dataset 'r'", "nope.json"});
  j.erase("output");
  expect_error_contains([&] { run_eval(EvalConfig::from_json(j, "eval")); }, {"'output'"});
}

// --- The ready-made configs ---------------------------------------------------------------------

std::string eval_dir() {
  return std::string(R1KIT_SOURCE_DIR) + "/recipes/eval";
}

// The data file a ready-made path ("data/math/gsm8k/test.jsonl") names, in the tests' copy of the
// shared data or the shared folder beside the repository; "" when neither has it.
std::string shared_data_file(const std::string& path) {
  if (path.rfind("data/", 0) != 0) return "";
  for (const std::string& root :
       {std::string(R1KIT_SHARED_DIR), std::string(R1KIT_SOURCE_DIR) + "/../shared"}) {
    const std::string p = root + "/" + path;
    if (fs::is_regular_file(p)) return p;
  }
  return "";
}

// A completion that gives the row's gold answer, and one that gives a wrong answer.
std::pair<std::string, std::string> gold_and_wrong(const std::string& name, const Json& row) {
  if (name == "humaneval")
    return {"```python\n" + row.at("prompt").get<std::string>() +
                row.at("canonical_solution").get<std::string>() + "\n```",
            "```python\ndef " + row.at("entry_point").get<std::string>() +
                "(*args):\n    return None\n```"};
  if (name == "mbpp")
    return {"```python\n" + row.at("code").get<std::string>() + "\n```",
            "```python\nprint('no')\n```"};
  if (name == "gsm8k") {
    const std::string a = row.at("answer").get<std::string>();
    const std::string n = a.substr(a.rfind("#### ") + 5);
    return {"So she makes $\\boxed{" + n + "}$.", "So she makes $\\boxed{" + n + "1}$."};
  }
  const Json& a = row.at("answer");
  const std::string s = a.is_string() ? a.get<std::string>() : a.dump();
  return {"The final answer is $\\boxed{" + s + "}$.",
          "The final answer is $\\boxed{" + s + "+1}$."};
}

TEST(EvalConfig, ReadyMadeConfigsParseAndScoreTheirData) {
  std::set<std::string> names;
  for (const auto& e : fs::directory_iterator(eval_dir()))
    if (e.path().extension() == ".json") names.insert(e.path().stem().string());
  EXPECT_EQ(names, (std::set<std::string>{"aime2024", "aime2025", "amc2023", "gsm8k", "humaneval",
                                          "math500", "mbpp"}));
  int scored = 0;
  for (const std::string& name : names) {
    const std::string path = eval_dir() + "/" + name + ".json";
    SCOPED_TRACE(path);
    Json j = read_json_file(path);
    ASSERT_EQ(j.at("model"), "MODEL_DIR");  // the documented placeholder
    j["model"] = "/no/such/model";
    const EvalConfig c = EvalConfig::from_json(j, path);
    ASSERT_EQ(c.datasets.size(), 1u);
    const EvalDataset& d = c.datasets[0];
    EXPECT_EQ(d.name, name);
    EXPECT_EQ(d.path.rfind("data/", 0), 0u) << d.path;
    EXPECT_GE(c.samples, 1);
    EXPECT_EQ(EvalConfig::from_json(c.to_json(), path).to_json(), c.to_json());

    // The scorer against the data file's first row: its gold answer is right, another is wrong.
    const std::string file = shared_data_file(d.path);
    if (file.empty()) continue;  // aime / amc are not in tests/shared
    const std::vector<Json> rows = sandbox::read_dataset(file);
    ASSERT_FALSE(rows.empty());
    const Json& row = rows.front();
    EXPECT_TRUE(row.contains(d.prompt_field)) << d.prompt_field;
    const auto reward = rewards::ComposedReward::from_json(d.rewards, path);
    const bool code = name == "humaneval" || name == "mbpp";
    if (code) {
      const auto* cr =
          dynamic_cast<const rewards::CodeReward*>(reward->components()[0].reward.get());
      ASSERT_NE(cr, nullptr);
      if (!cr->sandbox_error().empty()) continue;  // no sandbox on this kernel
    }
    const auto [gold, wrong] = gold_and_wrong(name, row);
    const std::string q = row.at(d.prompt_field).get<std::string>();
    const std::string comp = code ? "code" : "accuracy";
    const rewards::RewardResult good = reward->score({q, gold, row, 0, nullptr});
    ASSERT_EQ(good.status, rewards::RewardStatus::ok) << good.reason;
    EXPECT_EQ(good.components.at(comp), 1.0) << gold;
    const rewards::RewardResult bad = reward->score({q, wrong, row, 0, nullptr});
    ASSERT_EQ(bad.status, rewards::RewardStatus::ok) << bad.reason;
    EXPECT_EQ(bad.components.at(comp), 0.0) << wrong;
    ++scored;
  }
  EXPECT_GE(scored, 2);  // at least gsm8k and math500 (in tests/shared)
}

// --- End to end ---------------------------------------------------------------------------------

struct EvalRun {
  EvalResult result;
  std::vector<Json> samples;
};

TEST(EvalStage, TinyModelOnTwoDatasets) {
  ScratchDir dir;
  // A tiny policy warmed up on a + b so that some of its answers are right.
  const std::string model =
      warm_up(dir, write_model(dir, "m0", policy::ModelArch::qwen2, 4), "warm", 60);
  write_text(dir.file("sums.jsonl"), sum_prompts(3));
  // The same problems as a JSON array (rewritten as JSONL by the stage), cut to the first 4.
  Json arr = Json::array();
  for (const Json& r : read_jsonl_file(dir.file("sums.jsonl"))) arr.push_back(r);
  write_text(dir.file("sums_head.json"), arr.dump());

  Json j = Json::object();
  j["model"] = model;
  j["chat_template"] = "qwen3";
  j["device"] = "cpu";
  j["threads"] = 2;
  j["seed"] = 7;
  j["samples"] = 4;
  j["k"] = 2;
  j["log_samples"] = 1000;  // every sample, so the metrics can be recomputed from the traces
  j["sampling"] = {{"temperature", 1.0},
                   {"max_new_tokens", 16},
                   {"stop", {"</answer>"}},
                   {"include_stop_str_in_output", true}};
  j["datasets"] = Json::array(
      {{{"name", "sums"}, {"path", dir.file("sums.jsonl")}},
       {{"name", "sums_head"}, {"path", dir.file("sums_head.json")}, {"max_problems", 4}},
       {{"name", "sums_format"},
        {"path", dir.file("sums.jsonl")},
        {"max_problems", 2},
        {"rewards",
         Json::parse(R"({"rewards": [{"type": "format", "options": {"mode": "lenient"}}]})")}}});
  auto run = [&](const std::string& out) {
    j["output"] = dir.file(out);
    EvalRun r;
    r.result = run_eval(EvalConfig::from_json(j, "eval"));
    r.samples = read_jsonl_file(dir.file(out) + "/samples.jsonl");
    return r;
  };
  const EvalRun a = run("a");
  const Json& res = a.result.results;
  ASSERT_EQ(a.result.datasets.size(), 3u);
  EXPECT_EQ(a.result.datasets[0].name, "sums");
  EXPECT_EQ(res.at("model"), model);
  EXPECT_EQ(res.at("config"), EvalConfig::from_json(j, "eval").to_json());
  EXPECT_EQ(read_json_file(dir.file("a") + "/results.json"), res);
  EXPECT_EQ(read_json_file(dir.file("a") + "/config.json"), res.at("config"));
  EXPECT_TRUE(fs::is_regular_file(dir.file("a") + "/inputs/sums_head.jsonl"));

  const Json& full = res.at("datasets").at("sums");
  const Json& head = res.at("datasets").at("sums_head");
  const Json& fmt = res.at("datasets").at("sums_format");
  EXPECT_EQ(full.at("problems"), 9);
  EXPECT_EQ(full.at("samples"), 36);
  EXPECT_EQ(full.at("samples_per_problem"), 4);
  EXPECT_EQ(full.at("k"), 2);
  EXPECT_EQ(head.at("problems"), 4);
  EXPECT_EQ(head.at("samples"), 16);
  EXPECT_EQ(fmt.at("problems"), 2);
  for (const auto& [name, m] : res.at("datasets").items()) {
    SCOPED_TRACE(name);
    for (const char* key :
         {"pass@1", "pass@k", "maj@k", "format_rate", "truncated_fraction", "reward_mean"}) {
      if (m.at(key).is_null()) continue;
      EXPECT_GE(m.at(key).get<double>(), 0.0) << key;
      EXPECT_LE(m.at(key).get<double>(), 1.0) << key;
    }
    EXPECT_GE(m.at("pass@k").get<double>(), m.at("pass@1").get<double>() - 1e-12);
    EXPECT_GT(m.at("response_length_mean").get<double>(), 0.0);
    EXPECT_LE(m.at("response_length_mean").get<double>(), 16.0);
    EXPECT_EQ(m.at("scorer_errors"), 0);
  }
  // The warm-up makes some answers right, not all.
  const double p1 = full.at("pass@1").get<double>();
  EXPECT_GT(p1, 0.0);
  EXPECT_LT(p1, 1.0);
  EXPECT_FALSE(full.at("maj@k").is_null());
  EXPECT_TRUE(full.at("format_rate").is_null());  // accuracy only
  // A format-only scorer: correctness is its total, nothing to vote with, a format rate.
  EXPECT_TRUE(fmt.at("maj@k").is_null());
  EXPECT_FALSE(fmt.at("format_rate").is_null());
  EXPECT_EQ(fmt.at("format_rate"), fmt.at("pass@1"));
  // Problem p's samples depend on (seed, p) only: the cut dataset repeats the first 4 problems.
  std::vector<int64_t> first4 = full.at("correct").get<std::vector<int64_t>>();
  first4.resize(4);
  EXPECT_EQ(head.at("correct").get<std::vector<int64_t>>(), first4);

  // The metrics from the traces: every sample is logged.
  ASSERT_EQ(a.samples.size(), 36u + 16u + 8u);
  std::map<std::string, std::map<int64_t, std::vector<Json>>> by;
  for (const Json& s : a.samples)
    by[s.at("dataset").get<std::string>()][s.at("problem").get<int64_t>()].push_back(s);
  for (const char* name : {"sums", "sums_head"}) {
    const Json& m = res.at("datasets").at(name);
    double pass1 = 0, maj = 0;
    std::vector<int64_t> cs;
    for (const auto& [p, ss] : by.at(name)) {
      ASSERT_EQ(ss.size(), 4u);
      int64_t c = 0;
      std::vector<std::string> answers;
      std::vector<bool> flags;
      for (const Json& s : ss) {
        c += s.at("correct").get<bool>() ? 1 : 0;
        EXPECT_EQ(s.at("line").get<int64_t>(), p + 1);
        // A right answer is the verifier's parse of the gold.
        if (s.at("correct").get<bool>()) {
          EXPECT_EQ(s.at("answer"), Json(std::to_string((p / 3 + 1) + (p % 3 + 1))));
        }
        if (answers.size() < 2) {
          answers.push_back(s.at("answer").is_null() ? "" : s.at("answer").get<std::string>());
          flags.push_back(s.at("correct").get<bool>());
        }
      }
      cs.push_back(c);
      pass1 += static_cast<double>(c) / 4.0;
      maj += majority_vote(answers, flags).correct ? 1.0 : 0.0;
    }
    const double P = static_cast<double>(cs.size());
    EXPECT_EQ(m.at("correct").get<std::vector<int64_t>>(), cs) << name;
    EXPECT_NEAR(m.at("pass@1").get<double>(), pass1 / P, 1e-12) << name;
    EXPECT_NEAR(m.at("maj@k").get<double>(), maj / P, 1e-12) << name;
    double pk = 0;
    for (const int64_t c : cs) pk += pass_at_k(4, c, 2);
    EXPECT_NEAR(m.at("pass@k").get<double>(), pk / P, 1e-12) << name;
  }
  // The table names every dataset.
  for (const char* name : {"sums", "sums_head", "sums_format"})
    EXPECT_NE(a.result.table.find(name), std::string::npos) << a.result.table;

  // Deterministic: a second run gives the same metrics and traces.
  const EvalRun b = run("b");
  EXPECT_EQ(b.result.results.at("datasets"), res.at("datasets"));
  EXPECT_EQ(b.samples, a.samples);
}

}  // namespace
}  // namespace r1kit::recipes
