// Recipes: structure and validation errors (each kind names the stage and key path), overrides,
// `@stage` references, the built-in recipes, the synthetic task generator.
#include "recipes/recipe.h"

#include <filesystem>
#include <set>

#include "gtest/gtest.h"
#include "recipes/builtin.h"
#include "recipes/stages.h"
#include "recipes/synthetic.h"
#include "tests/common/test_util.h"

namespace r1kit::recipes {
namespace {

namespace fs = std::filesystem;
using testing::expect_error_contains;
using testing::ScratchDir;

Json two_stage() {
  return Json::parse(R"({
    "name": "t", "seed": 5,
    "stages": [
      {"name": "data", "type": "data", "config": {"digits": 1, "train_size": 10, "test_size": 5}},
      {"name": "base", "type": "init", "config": {"arch": "qwen2", "preset": "tiny"}},
      {"name": "sft", "type": "sft", "config": {"model": "@base", "train": "@data.sft",
                                                "chat_template": "qwen3"}}
    ]})");
}

TEST(Recipe, ReferencesResolveToEarlierStagesOutputs) {
  const Recipe r = Recipe::from_json(two_stage(), "t.json");
  ASSERT_EQ(r.stages.size(), 3u);
  EXPECT_EQ(resolve_reference(r, 2, "@base", "/run", "w"), "/run/base/model");
  EXPECT_EQ(resolve_reference(r, 2, "@data.sft", "/run", "w"), "/run/data/sft.jsonl");
  EXPECT_EQ(resolve_reference(r, 2, "@data", "/run", "w"), "/run/data/train.jsonl");
  const Json c = resolve_stage_config(r, 2, "/run");
  EXPECT_EQ(c.at("model"), "/run/base/model");
  EXPECT_EQ(c.at("train"), "/run/data/sft.jsonl");
  EXPECT_EQ(c.at("output"), "/run/sft");
  EXPECT_EQ(c.at("seed"), 5);  // the recipe's seed
  // A later stage, the stage itself, an unknown stage, an output the stage lacks.
  expect_error_contains([&] { resolve_reference(r, 0, "@sft", "/run", "stage 'data'"); },
                        {"stage 'data'", "'@sft'", "runs after"});
  expect_error_contains([&] { resolve_reference(r, 1, "@base", "/run", "w"); }, {"runs as"});
  expect_error_contains([&] { resolve_reference(r, 2, "@bsae", "/run", "w"); },
                        {"refers to no stage", "did you mean '@base'"});
  expect_error_contains([&] { resolve_reference(r, 2, "@data.eval", "/run", "w"); },
                        {"a data stage has no output 'eval'", "train, test, sft"});
  // "@@" escapes a literal '@'.
  Json j = two_stage();
  j["stages"][2]["config"]["system_prompt"] = "@@home";
  EXPECT_EQ(resolve_stage_config(Recipe::from_json(j, "t"), 2, "/run").at("system_prompt"),
            "@home");
}

TEST(Recipe, StructureErrorsNameTheStageAndKey) {
  auto expect = [](Json j, std::vector<std::string> parts) {
    expect_error_contains([&] { Recipe::from_json(j, "r.json"); }, parts);
  };
  Json j = two_stage();
  j["stgaes"] = 1;
  expect(j, {"r.json", "stgaes", "stages"});
  j = two_stage();
  j["stages"][1]["type"] = "int";
  expect(j, {"stages[1].type", "unknown stage type 'int'", "did you mean 'init'"});
  j = two_stage();
  j["stages"][2]["name"] = "base";
  expect(j, {"stages[2].name", "a second stage named 'base'"});
  j = two_stage();
  j["stages"][0]["name"] = "a b";
  expect(j, {"stage name 'a b'"});
  j = two_stage();
  j["stages"] = Json::array();
  expect(j, {"'stages' must be a non-empty array"});
  j = two_stage();
  j["stages"][0]["config"] = 3;
  expect(j, {"stages[0].config"});
}

TEST(Recipe, ValidationRunsEachStagesOwnParserOnTheResolvedConfig) {
  ScratchDir dir;
  auto expect = [&](Json j, std::vector<std::string> parts) {
    expect_error_contains(
        [&] { resolve_and_validate(Recipe::from_json(j, "r.json"), dir.file("run")); }, parts);
  };
  // Valid as written.
  const Json ok = resolve_and_validate(Recipe::from_json(two_stage(), "r.json"), dir.file("run"));
  EXPECT_EQ(ok.at("stages")[2].at("config").at("model"), dir.file("run") + "/base/model");
  // An unknown key inside a stage config, a wrong type, an unknown model arch.
  Json j = two_stage();
  j["stages"][2]["config"]["optim"] = {{"lr", 1e-3}, {"warmup_stpes", 3}};
  expect(j, {"stage 'sft' (sft)", "warmup_stpes", "warmup_steps"});
  j = two_stage();
  j["stages"][2]["config"]["max_steps"] = "ten";
  expect(j, {"stage 'sft' (sft)", "max_steps"});
  j = two_stage();
  j["stages"][1]["config"]["arch"] = "gpt5";
  expect(j, {"stage 'base' (init)", "unknown arch 'gpt5'"});
  j = two_stage();
  j["stages"][1]["config"]["config"] = {{"hidden_size", -4}};
  expect(j, {"stage 'base' (init)", "hidden_size"});
  // A missing input file (not a reference) is named with its key path.
  j = two_stage();
  j["stages"][2]["config"]["train"] = dir.file("nope.jsonl");
  expect(j, {"stage 'sft' (sft): config.train", "nope.jsonl", "no such file"});
  // 'output' belongs to the run.
  j = two_stage();
  j["stages"][2]["config"]["output"] = "/tmp/x";
  expect(j, {"stage 'sft' (sft)", "'output' is set by the recipe run"});
  // A reference to a stage that does not exist, inside a nested value.
  j = two_stage();
  j["stages"][2]["config"]["eval"] = "@dta.test";
  expect(j, {"stage 'sft' (sft): config.eval", "did you mean '@data'"});
}

TEST(Recipe, RelativeInputPathsAreResolvedAgainstTheRecipesFolder) {
  ScratchDir dir;
  fs::create_directories(dir.file("recipes/data"));
  std::ofstream(dir.file("recipes/data/train.jsonl")) << R"({"question": "1+1", "answer": "2"})"
                                                      << "\n";
  Json j = two_stage();
  j["stages"][2]["config"]["train"] = "data/train.jsonl";
  Recipe r = Recipe::from_json(j, "r.json");
  r.base_dir = dir.file("recipes");
  const Json v = resolve_and_validate(r, dir.file("run"));
  EXPECT_EQ(v.at("stages")[2].at("config").at("train"), dir.file("recipes/data/train.jsonl"));
  // A built-in template name is not taken for a path.
  EXPECT_EQ(v.at("stages")[2].at("config").at("chat_template"), "qwen3");
}

TEST(Recipe, OverridesSetKeysByStageName) {
  Json j = two_stage();
  apply_override(j, "stages.sft.config.optim.lr=2e-6");
  apply_override(j, "stages.sft.config.chat_template=qwen2.5");
  apply_override(j, "seed=9");
  apply_override(j, R"(stages.data.config.task="addition")");
  EXPECT_DOUBLE_EQ(j["stages"][2]["config"]["optim"]["lr"].get<double>(), 2e-6);
  EXPECT_EQ(j["stages"][2]["config"]["chat_template"], "qwen2.5");  // not JSON: a string
  EXPECT_EQ(j["seed"], 9);
  EXPECT_EQ(j["stages"][0]["config"]["task"], "addition");
  expect_error_contains([&] { apply_override(j, "stages.sfft.config.lr=1"); },
                        {"no stage named 'sfft'", "did you mean 'sft'"});
  expect_error_contains([&] { apply_override(j, "seed"); }, {"expected KEY.PATH=VALUE"});
  expect_error_contains([&] { apply_override(j, "seed.x=1"); }, {"'seed' is a"});
  expect_error_contains([&] { apply_override(j, "stages.sft=1"); }, {"a whole stage"});
}

TEST(Recipe, BuiltInRecipesParseAndValidate) {
  const auto names = builtin_recipe_names();
  EXPECT_NE(std::find(names.begin(), names.end(), "tiny-r1"), names.end());
  ScratchDir dir;
  for (const auto& [name, text] : builtin_recipes()) {
    SCOPED_TRACE(name);
    Recipe r = Recipe::from_json(parse_json(text, name), name);
    r.base_dir = builtin_base_dir();
    if (name == "tiny-r1") {
      const Json v = resolve_and_validate(r, dir.file("run-" + name));
      EXPECT_EQ(v.at("stages").size(), r.stages.size());
    } else {
      // The templates name checkpoints and data that are not here: their stage configs must still
      // be accepted by each stage's parser.
      for (size_t i = 0; i < r.stages.size(); ++i) {
        SCOPED_TRACE(r.stages[i].name);
        try {
          validate_stage_config(r.stages[i].type, resolve_stage_config(r, i, dir.file("run")),
                                r.stages[i].name);
        } catch (const Error& e) {
          ADD_FAILURE() << e.what();
        }
      }
    }
  }
  // A recipe that is neither a file nor a built-in name.
  expect_error_contains([&] { load_recipe_json("tiny-r2", {}); },
                        {"tiny-r2", "no such recipe file", "tiny-r1"});
}

TEST(Synthetic, AdditionProblemsAreDistinctCorrectAndReproducible) {
  SyntheticConfig c;
  c.digits = 2;
  c.train_size = 300;
  c.test_size = 50;
  c.seed = 4;
  const auto a = generate_problems(c), b = generate_problems(c);
  ASSERT_EQ(a.size(), 350u);
  std::set<std::string> q;
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].question, b[i].question);
    EXPECT_TRUE(q.insert(a[i].question).second) << a[i].question;
    int x = 0, y = 0;
    ASSERT_EQ(std::sscanf(a[i].question.c_str(), "What is %d + %d?", &x, &y), 2);
    EXPECT_EQ(a[i].answer, std::to_string(x + y));
    EXPECT_EQ(a[i].trace.rfind("<think>\n", 0), 0u);
    EXPECT_NE(a[i].trace.find("</think>\n<answer>" + a[i].answer + "</answer>"), std::string::npos);
  }
  // The column trace of a carry-heavy sum.
  SyntheticConfig one;
  one.digits = 2;
  const std::string t = generate_problems(one)[0].trace;
  EXPECT_NE(t.find(" = "), std::string::npos);
  // Another seed draws other problems; too many asked is an error.
  c.seed = 5;
  EXPECT_NE(generate_problems(c)[0].question, a[0].question);
  c.digits = 1;
  c.train_size = 60;
  expect_error_contains([&] { generate_problems(c); }, {"more than half", "100 distinct"});
}

TEST(Synthetic, DirectFractionMixesAtAGlanceAnswersIntoTheSftRowsOnly) {
  // The same problems with and without direct answers: only sft.jsonl's completions differ, and
  // about the asked share of them state the result without working.
  ScratchDir dir;
  SyntheticConfig c;
  c.train_size = 400;
  c.test_size = 40;
  c.seed = 2;
  write_synthetic_dataset(c, dir.file("worked"));
  c.direct_fraction = 0.5;
  write_synthetic_dataset(c, dir.file("mixed"));
  for (const char* f : {"train.jsonl", "test.jsonl"})
    EXPECT_EQ(read_jsonl_file(dir.file("worked") + "/" + f),
              read_jsonl_file(dir.file("mixed") + "/" + f))
        << f;
  const auto worked = read_jsonl_file(dir.file("worked") + "/sft.jsonl");
  const auto mixed = read_jsonl_file(dir.file("mixed") + "/sft.jsonl");
  ASSERT_EQ(worked.size(), 400u);
  ASSERT_EQ(mixed.size(), 400u);
  const auto problems = generate_problems(c);
  size_t direct = 0;
  for (size_t i = 0; i < mixed.size(); ++i) {
    EXPECT_EQ(mixed[i].at("question"), worked[i].at("question"));
    const std::string& answer = problems[i].answer;
    EXPECT_EQ(worked[i].at("answer").get<std::string>(), problems[i].trace);
    const std::string m = mixed[i].at("answer").get<std::string>();
    if (m == problems[i].trace) continue;
    EXPECT_EQ(m,
              "<think>\nAt a glance: " + answer + ".\n</think>\n<answer>" + answer + "</answer>");
    ++direct;
  }
  EXPECT_GT(direct, 160u);
  EXPECT_LT(direct, 240u);
  // The share is a fraction; 0 leaves it out of the config echo, which is what older runs hold.
  expect_error_contains(
      [] { SyntheticConfig::from_json(Json::parse(R"({"direct_fraction": 1.5})"), "d"); },
      {"direct_fraction", "[0, 1]", "1.5"});
  EXPECT_FALSE(SyntheticConfig{}.to_json().contains("direct_fraction"));
  EXPECT_EQ(SyntheticConfig::from_json(Json::parse(R"({"direct_fraction": 0.25})"), "d")
                .to_json()
                .at("direct_fraction"),
            0.25);
}

TEST(Synthetic, PretrainingCorpusAndASmallerColdStartSet) {
  // pretrain.jsonl: every training problem as a plain document, worked; sft.jsonl: the first
  // sft_size of them, with the same at-a-glance picks as the full set's first rows.
  ScratchDir dir;
  SyntheticConfig c;
  c.train_size = 300;
  c.test_size = 30;
  c.seed = 3;
  c.direct_fraction = 0.5;
  const Json full = write_synthetic_dataset(c, dir.file("full"));
  c.sft_size = 120;
  const Json small = write_synthetic_dataset(c, dir.file("small"));
  EXPECT_EQ(full.at("pretrain"), 300);
  EXPECT_EQ(full.at("sft"), 300);
  EXPECT_EQ(small.at("sft"), 120);
  EXPECT_EQ(small.at("train"), 300);
  const auto problems = generate_problems(c);
  const auto pre = read_jsonl_file(dir.file("small") + "/pretrain.jsonl");
  ASSERT_EQ(pre.size(), 300u);
  for (size_t i = 0; i < pre.size(); ++i) {
    ASSERT_EQ(pre[i].size(), 1u);
    EXPECT_EQ(pre[i].at("text").get<std::string>(),
              problems[i].question + "\n" + problems[i].trace);
  }
  EXPECT_EQ(pre, read_jsonl_file(dir.file("full") + "/pretrain.jsonl"));
  const auto sft_full = read_jsonl_file(dir.file("full") + "/sft.jsonl");
  const auto sft_small = read_jsonl_file(dir.file("small") + "/sft.jsonl");
  ASSERT_EQ(sft_small.size(), 120u);
  EXPECT_EQ(sft_small, std::vector<Json>(sft_full.begin(), sft_full.begin() + 120));
  for (const char* f : {"train.jsonl", "test.jsonl"})
    EXPECT_EQ(read_jsonl_file(dir.file("full") + "/" + f),
              read_jsonl_file(dir.file("small") + "/" + f))
        << f;
  expect_error_contains(
      [] {
        SyntheticConfig::from_json(Json::parse(R"({"train_size": 50, "sft_size": 60})"), "data");
      },
      {"sft_size", "train_size = 50", "60"});
  EXPECT_FALSE(SyntheticConfig{}.to_json().contains("sft_size"));
  EXPECT_EQ(c.to_json().at("sft_size"), 120);
}

TEST(Synthetic, TraceOfACarrySum) {
  EXPECT_EQ(addition_trace(47, 85),
            "7 + 5 = 12, write 2 carry 1\n4 + 8 + 1 = 13, write 3 carry 1\ncarry 1\n");
  EXPECT_EQ(addition_trace(0, 0), "0 + 0 = 0, write 0\n");
  EXPECT_EQ(addition_trace(5, 123), "5 + 3 = 8, write 8\n0 + 2 = 2, write 2\n0 + 1 = 1, write 1\n");
}

TEST(Synthetic, SumProblemsKeepARunningTotal) {
  EXPECT_EQ(sum_trace({3, 5, 2}), "3 + 5 = 8\n8 + 2 = 10\n");
  SyntheticConfig c;
  c.task = "sum";
  c.digits = 1;
  c.terms = 4;
  c.train_size = 400;
  c.test_size = 40;
  const auto a = generate_problems(c);
  ASSERT_EQ(a.size(), 440u);
  std::set<std::string> q;
  std::set<size_t> lengths;
  for (const Problem& p : a) {
    EXPECT_TRUE(q.insert(p.question).second) << p.question;
    ASSERT_EQ(p.question.rfind("What is ", 0), 0u);
    // Operands "d + d + ..." summed by hand.
    std::vector<int64_t> terms;
    for (const char ch : p.question)
      if (ch >= '0' && ch <= '9') terms.push_back(ch - '0');
    ASSERT_GE(terms.size(), 2u);
    ASSERT_LE(terms.size(), 4u);
    lengths.insert(terms.size());
    int64_t total = 0;
    for (const int64_t t : terms) total += t;
    EXPECT_EQ(p.answer, std::to_string(total)) << p.question;
    EXPECT_EQ(p.trace,
              "<think>\n" + sum_trace(terms) + "</think>\n<answer>" + p.answer + "</answer>");
  }
  EXPECT_EQ(lengths.size(), 3u);  // 2, 3 and 4 operands all drawn
  // 'terms' is the sum task's; addition refuses it, and its range is checked.
  expect_error_contains(
      [] { SyntheticConfig::from_json(Json::parse(R"({"task": "addition", "terms": 3})"), "d"); },
      {"terms", "sum task only"});
  expect_error_contains(
      [] { SyntheticConfig::from_json(Json::parse(R"({"task": "sum", "terms": 9})"), "d"); },
      {"terms", "[2, 8]", "got 9"});
  EXPECT_EQ(SyntheticConfig::from_json(Json::parse(R"({"task": "sum", "terms": 5})"), "d")
                .to_json()
                .at("terms"),
            5);
}

}  // namespace
}  // namespace r1kit::recipes
