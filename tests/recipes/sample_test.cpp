// The rejection-sampling stage: hand-made candidates with known verdicts give exactly the expected
// accepted rows and statistics (every filter, every select mode, max_per_prompt, dedupe, the
// length histogram, ill-formed UTF-8); the stage end to end on a warmed-up tiny model accepts only
// completions the reward scores correct, its counts add up and a rerun (with another batch size)
// writes the same files; configs with mistakes are refused naming the key.
#include "recipes/sample.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "gtest/gtest.h"
#include "policy/chat_template.h"
#include "policy/tokenizer.h"
#include "rewards/compose.h"
#include "sft/chat_data.h"
#include "tests/common/test_util.h"
#include "tests/common/training_fixtures.h"

namespace r1kit::recipes {
namespace {

using rewards::RewardStatus;
using rollout::FinishReason;
using testing::expect_error_contains;
using testing::ScratchDir;
using namespace testing::training;

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

Json three_rewards() {
  return Json::parse(R"({"rewards": [{"type": "accuracy"}, {"type": "format"},
                                     {"type": "language", "options": {"language": "en"}}]})");
}

// A config block that parses (the model is not read by from_json).
Json minimal_config(const std::string& out = "/tmp/never") {
  Json j = Json::object();
  j["model"] = "/nonexistent/model";
  j["prompts"] = "/nonexistent/prompts.jsonl";
  j["output"] = out;
  j["rewards"] = three_rewards();
  j["sampling"] = {{"max_new_tokens", 16}};
  return j;
}

struct Scores {
  double reward = 1;
  double accuracy = 1, format = 1, language = 1;
};

Candidate cand(int64_t sample, std::string text, int64_t length, Scores s = {},
               FinishReason fr = FinishReason::eos, RewardStatus st = RewardStatus::ok) {
  Candidate c;
  c.sample = sample;
  c.text = std::move(text);
  c.length = length;
  c.finish_reason = fr;
  c.status = st;
  c.reward = s.reward;
  c.components = {{"accuracy", s.accuracy}, {"format", s.format}, {"language", s.language}};
  return c;
}

Json comps(double acc = 1, double fmt = 1, double lang = 1) {
  return Json{{"accuracy", acc}, {"format", fmt}, {"language", lang}};
}

TEST(SampleFilters, RepetitionRateCountsRepeatedWordFourGrams) {
  EXPECT_EQ(repetition_rate(""), 0.0);
  EXPECT_EQ(repetition_rate("a b c"), 0.0);  // no 4-gram at all
  EXPECT_EQ(repetition_rate("a b c d e f"), 0.0);
  // 12 words, 9 four-grams, 4 distinct: 1 − 4/9.
  EXPECT_DOUBLE_EQ(repetition_rate("a b c d a b c d a b c d"), 1.0 - 4.0 / 9.0);
  // Any whitespace separates words; 5 four-grams, 4 distinct.
  EXPECT_DOUBLE_EQ(repetition_rate("a\tb\nc  d a b c d"), 1.0 - 4.0 / 5.0);
  EXPECT_DOUBLE_EQ(repetition_rate("x x x x x x"), 1.0 - 1.0 / 3.0);
}

TEST(SampleFilters, EachFilterRejectsInTheDocumentedOrder) {
  SampleFilters f = SampleConfig::from_json(
                        [] {
                          Json j = minimal_config();
                          j["filters"] = {{"min_reward", 0.5},
                                          {"require_format", true},
                                          {"min_language", 0.8},
                                          {"max_tokens", 10}};
                          return j;
                        }(),
                        "test")
                        .filters;
  EXPECT_EQ(judge(cand(0, "ok", 10), f), Rejection::none);  // max_tokens is inclusive
  EXPECT_EQ(judge(cand(0, " \n\t", 2), f), Rejection::empty);
  EXPECT_EQ(judge(cand(0, "", 1), f), Rejection::empty);
  EXPECT_EQ(judge(cand(0, "cut", 16, {}, FinishReason::length), f), Rejection::truncated);
  EXPECT_EQ(judge(cand(0, "ok", 11), f), Rejection::max_tokens);
  EXPECT_EQ(judge(cand(0, "a b c d a b c d a b c d", 6), f), Rejection::repetition);
  EXPECT_EQ(judge(cand(0, "ok", 2, {}, FinishReason::eos, RewardStatus::skip), f),
            Rejection::reward);
  EXPECT_EQ(judge(cand(0, "ok", 2, {}, FinishReason::eos, RewardStatus::error), f),
            Rejection::reward);
  EXPECT_EQ(judge(cand(0, "ok", 2, {.accuracy = 0}), f), Rejection::correct);
  EXPECT_EQ(judge(cand(0, "ok", 2, {.format = 0.99}), f), Rejection::format);
  EXPECT_EQ(judge(cand(0, "ok", 2, {.language = 0.79}), f), Rejection::language);
  EXPECT_EQ(judge(cand(0, "ok", 2, {.language = 0.8}), f), Rejection::none);
  EXPECT_EQ(judge(cand(0, "ok", 2, {.reward = 0.49}), f), Rejection::min_reward);
  // The first failing filter names the rejection; reward-free ones come before the reward.
  EXPECT_EQ(judge(cand(0, "a b c d a b c d a b c d", 16, {.accuracy = 0}, FinishReason::length,
                       RewardStatus::skip),
                  f),
            Rejection::truncated);
  EXPECT_EQ(judge(cand(0, "ok", 2, {.reward = 0, .accuracy = 0, .format = 0}), f),
            Rejection::correct);
  // A component the result lacks fails its filter.
  Candidate no_acc = cand(0, "ok", 2);
  no_acc.components.erase("accuracy");
  EXPECT_EQ(judge(no_acc, f), Rejection::correct);

  // Switched off, the same candidates pass.
  SampleFilters off;
  off.require_correct = false;
  off.drop_truncated = false;
  off.max_repetition = 0;
  EXPECT_EQ(judge(cand(0, "cut", 16, {}, FinishReason::length), off), Rejection::none);
  EXPECT_EQ(judge(cand(0, "a b c d a b c d a b c d", 6), off), Rejection::none);
  EXPECT_EQ(
      judge(cand(0, "ok", 500, {.reward = -3, .accuracy = 0, .format = 0, .language = 0}), off),
      Rejection::none);
  EXPECT_EQ(judge(cand(0, " ", 1), off), Rejection::empty);  // always on
  EXPECT_EQ(judge(cand(0, "ok", 2, {}, FinishReason::eos, RewardStatus::skip), off),
            Rejection::reward);  // always on
}

// The main check: a fixed set of candidates with known scores through the tally and the writer.
TEST(SampleStage, KnownVerdictsGiveExactlyTheExpectedRowsAndStats) {
  ScratchDir dir;
  Json j = minimal_config(dir.file("out"));
  j["filters"] = {{"min_reward", 0.5},    {"require_correct", true}, {"require_format", true},
                  {"min_language", 0.8},  {"max_tokens", 10},        {"drop_truncated", true},
                  {"max_repetition", 0.5}};
  const SampleConfig cfg = SampleConfig::from_json(j, "test");
  SampleTally tally(cfg);

  PromptSamples p1;
  p1.line = 1;
  p1.messages = {{"user", "1+1", std::nullopt}};
  p1.candidates = {
      cand(0, "x = 2", 3, {.reward = 3}),                                // kept
      cand(1, "  \n", 1),                                                // empty
      cand(2, "cut", 16, {}, FinishReason::length),                      // truncated
      cand(3, "long one", 11),                                           // max_tokens
      cand(4, "a b c d a b c d a b c d", 6),                             // repetition
      cand(5, "skipped", 2, {}, FinishReason::eos, RewardStatus::skip),  // reward
      cand(6, "wrong", 2, {.accuracy = 0}),                              // correct
      cand(7, "no format", 2, {.format = 0}),                            // format
      cand(8, "mixed", 2, {.language = 0.5}),                            // language
      cand(9, "low", 2, {.reward = 0.4}),                                // min_reward
      cand(10, "x = 2", 4, {.reward = 3}),                               // duplicate
      cand(11, "y", 2, {.reward = 2.5}, FinishReason::stop),             // kept
      cand(12, "no acc", 2, {.reward = 3}),                              // correct (missing)
  };
  p1.candidates[12].components.erase("accuracy");
  PromptSamples p2;
  p2.line = 3;
  p2.messages = {{"user", "9+9", std::nullopt}};
  p2.candidates = {cand(0, "nope", 2, {.accuracy = 0}),
                   cand(1, "trunc", 16, {}, FinishReason::length)};
  PromptSamples p3;
  p3.line = 4;
  p3.messages = {{"system", "Be brief.", std::nullopt}, {"user", "2+2", std::nullopt}};
  // Ill-formed UTF-8 that nobody sanitised: the writer must not throw.
  p3.candidates = {cand(0, "z\xff", 10, {.reward = 1}, FinishReason::stop)};

  const Selection s1 = tally.add(p1);
  EXPECT_EQ(s1.kept, (std::vector<size_t>{0, 11}));
  EXPECT_EQ(s1.passed, 3);
  const std::vector<Rejection> want1 = {
      Rejection::none,       Rejection::empty,      Rejection::truncated, Rejection::max_tokens,
      Rejection::repetition, Rejection::reward,     Rejection::correct,   Rejection::format,
      Rejection::language,   Rejection::min_reward, Rejection::duplicate, Rejection::none,
      Rejection::correct};
  EXPECT_EQ(s1.verdicts, want1);
  tally.add(p2);
  tally.add(p3);
  const SampleResult r = write_sample_outputs(cfg, tally);
  EXPECT_EQ(r.prompts, 3);
  EXPECT_EQ(r.samples, 16);
  EXPECT_EQ(r.accepted, 3);
  EXPECT_EQ(r.prompts_with_any, 2);

  const std::vector<Json> rows = read_jsonl_file(r.accepted_path);
  const std::vector<Json> want_rows = {
      {{"messages",
        {{{"role", "user"}, {"content", "1+1"}}, {{"role", "assistant"}, {"content", "x = 2"}}}},
       {"prompt_line", 1},
       {"sample", 0},
       {"reward", 3.0},
       {"components", comps()},
       {"length", 3},
       {"finish_reason", "eos"}},
      {{"messages",
        {{{"role", "user"}, {"content", "1+1"}}, {{"role", "assistant"}, {"content", "y"}}}},
       {"prompt_line", 1},
       {"sample", 11},
       {"reward", 2.5},
       {"components", comps()},
       {"length", 2},
       {"finish_reason", "stop"}},
      {{"messages",
        {{{"role", "system"}, {"content", "Be brief."}},
         {{"role", "user"}, {"content", "2+2"}},
         {{"role", "assistant"}, {"content", "z\xEF\xBF\xBD"}}}},
       {"prompt_line", 4},
       {"sample", 0},
       {"reward", 1.0},
       {"components", comps()},
       {"length", 10},
       {"finish_reason", "stop"}},
  };
  ASSERT_EQ(rows.size(), want_rows.size());
  for (size_t i = 0; i < rows.size(); ++i) EXPECT_EQ(rows[i], want_rows[i]) << "row " << i;

  std::vector<int64_t> counts(17, 0);  // max_new_tokens 16: bin width 1, lengths 0..16
  counts[2] = counts[3] = counts[10] = 1;
  const Json want_stats = {
      {"prompts", 3},
      {"skipped_prompts", 0},
      {"failed_prompts", 0},
      {"samples", 16},
      {"accepted", 3},
      {"acceptance_rate", 3.0 / 16.0},
      {"rejected_by",
       {{"empty", 1},
        {"truncated", 2},
        {"max_tokens", 1},
        {"repetition", 1},
        {"reward", 1},
        {"correct", 3},
        {"format", 1},
        {"language", 1},
        {"min_reward", 1},
        {"duplicate", 1},
        {"select", 0}}},
      {"duplicates", 1},
      {"invalid_utf8", 1},
      {"prompts_with_any", 2},
      {"per_prompt",
       {{{"line", 1}, {"samples", 13}, {"passed", 3}, {"kept", 2}},
        {{"line", 3}, {"samples", 2}, {"passed", 0}, {"kept", 0}},
        {{"line", 4}, {"samples", 1}, {"passed", 1}, {"kept", 1}}}},
      {"length_histogram", {{"bin_width", 1}, {"counts", counts}}},
  };
  const Json stats = read_json_file(r.stats_path);
  EXPECT_EQ(stats, want_stats) << stats.dump(2);
  EXPECT_EQ(read_json_file(r.config_path), cfg.to_json());
}

// One prompt's passing candidates under every select mode, with and without dedupe and limits.
TEST(SampleStage, SelectModesOrderDedupeAndLimit) {
  SampleFilters f;
  f.require_correct = false;
  const std::vector<Candidate> c = {
      cand(0, "a", 5, {.reward = 2}), cand(1, "b", 7, {.reward = 3}),
      cand(2, "c", 4, {.reward = 3}), cand(3, "d", 4, {.reward = 3}),
      cand(4, "c", 4, {.reward = 3}),  // the same text as sample 2
      cand(5, "e", 3, {.reward = 1}), cand(6, "f", 16, {.reward = 9}, FinishReason::length),
  };
  using V = std::vector<size_t>;
  auto kept = [&](SampleSelect s, int64_t m, bool dedupe) {
    return select_candidates(c, f, s, m, dedupe).kept;
  };
  // all: sample order.
  EXPECT_EQ(kept(SampleSelect::all, 0, true), (V{0, 1, 2, 3, 5}));
  EXPECT_EQ(kept(SampleSelect::all, 0, false), (V{0, 1, 2, 3, 4, 5}));
  EXPECT_EQ(kept(SampleSelect::all, 2, true), (V{0, 1}));
  // best: reward desc, then shorter, then the lower sample index.
  EXPECT_EQ(kept(SampleSelect::best, 0, true), (V{2}));
  EXPECT_EQ(kept(SampleSelect::best, 3, true), (V{2, 3, 1}));
  EXPECT_EQ(kept(SampleSelect::best, 3, false), (V{2, 3, 4}));
  EXPECT_EQ(kept(SampleSelect::best, 100, true), (V{2, 3, 1, 0, 5}));
  // shortest: fewer tokens, then the higher reward, then the lower sample index.
  EXPECT_EQ(kept(SampleSelect::shortest, 0, true), (V{5}));
  EXPECT_EQ(kept(SampleSelect::shortest, 4, true), (V{5, 2, 3, 0}));
  EXPECT_EQ(kept(SampleSelect::shortest, 4, false), (V{5, 2, 3, 4}));

  const Selection s = select_candidates(c, f, SampleSelect::best, 2, true);
  EXPECT_EQ(s.passed, 6);
  EXPECT_EQ(s.verdicts, (std::vector<Rejection>{
                            Rejection::select, Rejection::select, Rejection::none, Rejection::none,
                            Rejection::duplicate, Rejection::select, Rejection::truncated}));

  // Through the tally: rows in selection order, the histogram's bins at width ceil(40 / 16) = 3.
  ScratchDir dir;
  Json j = minimal_config(dir.file("out"));
  j["filters"] = {{"require_correct", false}};
  j["select"] = "best";
  j["max_per_prompt"] = 3;
  j["sampling"] = {{"max_new_tokens", 40}};
  SampleTally tally(SampleConfig::from_json(j, "test"));
  PromptSamples p;
  p.line = 7;
  p.messages = {{"user", "q", std::nullopt}};
  p.candidates = c;
  tally.add(p);
  ASSERT_EQ(tally.rows().size(), 3u);
  EXPECT_EQ(tally.rows()[0].at("sample"), 2);
  EXPECT_EQ(tally.rows()[1].at("sample"), 3);
  EXPECT_EQ(tally.rows()[2].at("sample"), 1);
  const Json st = tally.stats();
  const std::vector<int64_t> counts = {0, 2, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};  // 4, 4, 7
  EXPECT_EQ(st.at("length_histogram"), (Json{{"bin_width", 3}, {"counts", counts}}));
  EXPECT_EQ(st.at("rejected_by").at("select"), 2);
  EXPECT_EQ(st.at("rejected_by").at("duplicate"), 1);
  EXPECT_EQ(st.at("rejected_by").at("truncated"), 1);
  EXPECT_EQ(st.at("duplicates"), 1);
}

TEST(SampleStage, Utf8SanitizeReplacesEachIllFormedByte) {
  int64_t n = -1;
  EXPECT_EQ(utf8_sanitize("plain é", &n), "plain é");
  EXPECT_EQ(n, 0);
  EXPECT_EQ(utf8_sanitize("a\xff\xfe"
                          "b\xc3",
                          &n),
            "a\xEF\xBF\xBD\xEF\xBF\xBD"
            "b\xEF\xBF\xBD");
  EXPECT_EQ(n, 3);
  EXPECT_EQ(utf8_sanitize("\xed\xa0\x80", &n).find('\xed'), std::string::npos);  // a surrogate
}

TEST(SampleStage, PromptMessagesFollowTheLoadersRule) {
  const Json q = Json::parse(R"({"question": "1+1", "answer": "2"})");
  auto as_pairs = [](const std::vector<policy::ChatMessage>& m) {
    std::vector<std::pair<std::string, std::string>> v;
    for (const auto& x : m) v.emplace_back(x.role, x.content);
    return v;
  };
  using P = std::vector<std::pair<std::string, std::string>>;
  EXPECT_EQ(as_pairs(prompt_messages(q, "", "")), (P{{"user", "1+1"}}));
  EXPECT_EQ(as_pairs(prompt_messages(q, "", "sys")), (P{{"system", "sys"}, {"user", "1+1"}}));
  EXPECT_EQ(as_pairs(prompt_messages(q, "answer", "")), (P{{"user", "2"}}));
  const Json m = Json::parse(
      R"({"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}]})");
  // A messages array is used as written (no system prompt added).
  EXPECT_EQ(as_pairs(prompt_messages(m, "", "sys")), (P{{"system", "S"}, {"user", "U"}}));
}

TEST(SampleConfig, DefaultsAndRoundTrip) {
  Json j = minimal_config();
  j.erase("sampling");
  j["rewards"] = accuracy_reward();
  const SampleConfig c = SampleConfig::from_json(j, "test");
  EXPECT_EQ(c.samples_per_prompt, 8);
  EXPECT_EQ(c.sampling.n, 8);
  EXPECT_FALSE(c.filters.min_reward.has_value());
  EXPECT_TRUE(c.filters.require_correct);
  EXPECT_FALSE(c.filters.require_format);
  EXPECT_FALSE(c.filters.min_language.has_value());
  EXPECT_EQ(c.filters.max_tokens, 0);
  EXPECT_TRUE(c.filters.drop_truncated);
  EXPECT_EQ(c.filters.max_repetition, 0.5);
  EXPECT_EQ(c.select, SampleSelect::all);
  EXPECT_EQ(c.max_per_prompt, 0);
  EXPECT_TRUE(c.dedupe);
  EXPECT_EQ(c.device, "auto");
  EXPECT_EQ(SampleConfig::from_json(c.to_json(), "again").to_json(), c.to_json());

  Json k = minimal_config();
  k["samples_per_prompt"] = 3;
  k["sampling"] = {{"temperature", 0.7}, {"max_new_tokens", 32}, {"stop", {"</answer>"}}};
  k["filters"] = {{"min_reward", 1.5}, {"require_format", true},  {"min_language", 0.9},
                  {"max_tokens", 20},  {"drop_truncated", false}, {"max_repetition", nullptr}};
  k["select"] = "shortest";
  k["max_per_prompt"] = 2;
  k["dedupe"] = false;
  k["prompts_per_batch"] = 5;
  k["engine"] = {{"num_blocks", 64}, {"cuda_graphs", false}};
  k["seed"] = 9;
  k["device"] = "cpu";
  const SampleConfig d = SampleConfig::from_json(k, "test");
  EXPECT_EQ(d.sampling.n, 3);
  EXPECT_EQ(d.sampling.seed, 9u);
  EXPECT_EQ(d.filters.max_repetition, 0.0);
  EXPECT_EQ(*d.filters.min_reward, 1.5);
  EXPECT_EQ(d.engine.num_blocks, 64);
  const Json dj = d.to_json();
  EXPECT_EQ(SampleConfig::from_json(dj, "again").to_json(), dj);
  EXPECT_EQ(dj.at("select"), "shortest");
  EXPECT_EQ(dj.at("filters").at("min_language"), 0.9);
  EXPECT_TRUE(c.to_json().at("filters").at("min_reward").is_null());
}

TEST(SampleConfig, MistakesAreRefusedNamingTheKey) {
  auto refuse = [](const std::function<void(Json&)>& edit, std::vector<std::string> needles) {
    Json j = minimal_config();
    edit(j);
    expect_error_contains([&] { SampleConfig::from_json(j, "stages.rs"); }, needles);
  };
  refuse([](Json& j) { j["samples_per_promt"] = 4; },
         {"unknown key 'samples_per_promt'", "stages.rs", "did you mean 'samples_per_prompt'"});
  refuse([](Json& j) { j["samples_per_prompt"] = "8"; },
         {"stages.rs", "'samples_per_prompt'", "integer"});
  refuse([](Json& j) { j["dedupe"] = 1; }, {"stages.rs", "'dedupe'", "boolean"});
  refuse([](Json& j) { j.erase("model"); }, {"stages.rs", "'model'"});
  refuse([](Json& j) { j.erase("prompts"); }, {"stages.rs", "'prompts'"});
  refuse([](Json& j) { j.erase("rewards"); }, {"stages.rs", "'rewards' is required"});
  refuse([](Json& j) { j.erase("output"); }, {"stages.rs", "'output'"});
  refuse([](Json& j) { j["rewards"] = 3; }, {"stages.rs", "'rewards' must be"});
  refuse([](Json& j) { j["rewards"] = {{"rewards", {{{"type", "acuracy"}}}}}; }, {"acuracy"});
  refuse([](Json& j) { j["select"] = "bset"; },
         {"stages.rs", "'select' must be one of all, best, shortest", "did you mean \"best\""});
  refuse(
      [](Json& j) {
        j["filters"] = {{"min_rewrd", 1}};
      },
      {"unknown key 'min_rewrd'", "stages.rs: filters", "did you mean 'min_reward'"});
  refuse(
      [](Json& j) {
        j["filters"] = {{"min_reward", "high"}};
      },
      {"stages.rs: filters", "'min_reward'", "number"});
  refuse(
      [](Json& j) {
        j["filters"] = {{"max_repetition", 1.5}};
      },
      {"stages.rs: filters", "'max_repetition' must be in [0, 1]"});
  refuse(
      [](Json& j) {
        j["filters"] = {{"max_tokens", -1}};
      },
      {"stages.rs: filters", "'max_tokens' must be >= 0"});
  refuse([](Json& j) { j["filters"] = 3; }, {"stages.rs: filters"});
  refuse([](Json& j) { j["sampling"] = {{"n", 4}}; }, {"stages.rs", "samples_per_prompt"});
  refuse([](Json& j) { j["sampling"] = {{"top_p", 0}}; }, {"stages.rs: sampling", "top_p"});
  refuse([](Json& j) { j["sampling"] = {{"temprature", 1}}; }, {"temprature", "temperature"});
  refuse([](Json& j) { j["samples_per_prompt"] = 0; }, {"'samples_per_prompt' must be >= 1"});
  refuse([](Json& j) { j["max_per_prompt"] = -1; }, {"'max_per_prompt' must be >= 0"});
  refuse([](Json& j) { j["engine"] = {{"num_blocks", 0}}; }, {"stages.rs: engine"});
  refuse([](Json& j) { j["device"] = "tpu"; }, {"stages.rs", "tpu"});
  refuse([](Json& j) { j["chat_template"] = "qwen3", j["prompt_template"] = "{prompt}"; },
         {"not both"});
  // A filter that reads a component the rewards do not have.
  refuse([](Json& j) { j["rewards"] = Json::parse(R"({"rewards": [{"type": "format"}]})"); },
         {"stages.rs", "filters.require_correct", "'accuracy'", "they have: format",
          "\"require_correct\": false"});
  refuse(
      [](Json& j) {
        j["rewards"] = accuracy_reward();
        j["filters"] = {{"require_format", true}};
      },
      {"filters.require_format", "'format'"});
  refuse(
      [](Json& j) {
        j["rewards"] = accuracy_reward();
        j["filters"] = {{"min_language", 0.5}};
      },
      {"filters.min_language", "'language'", "null"});
  // A reward config path that does not exist.
  refuse([](Json& j) { j["rewards"] = "/nonexistent/rewards.json"; },
         {"/nonexistent/rewards.json"});
}

// The stage on a tiny model warmed up on a + b: whatever it accepts the reward scores correct,
// every sample is accepted or rejected once, the rows load as SFT data, and a rerun with another
// batch size writes byte-identical files.
TEST(SampleStage, EndToEndOnAWarmedUpTinyModel) {
  ScratchDir dir;
  const std::string model = write_model(dir, "m", policy::ModelArch::qwen2, 8);
  const std::string warm = warm_up(dir, model, "sft", 40);
  const std::string prompts = dir.file("prompts.jsonl");
  write_text(prompts, sum_prompts(4));

  Json j = Json::object();
  j["model"] = warm;
  j["prompts"] = prompts;
  j["chat_template"] = "qwen3";
  j["rewards"] = accuracy_reward();
  j["sampling"] = {{"temperature", 1.0},
                   {"max_new_tokens", 16},
                   {"stop", {"</answer>"}},
                   {"include_stop_str_in_output", true}};
  j["samples_per_prompt"] = 4;
  j["device"] = "cpu";
  j["threads"] = 2;
  j["seed"] = 5;
  j["output"] = dir.file("a");
  j["prompts_per_batch"] = 16;
  std::vector<Json> progress;
  const SampleResult r =
      run_sample(SampleConfig::from_json(j, "test"), [&](const Json& p) { progress.push_back(p); });
  ASSERT_EQ(progress.size(), 1u);
  EXPECT_EQ(progress[0].at("prompts_done"), 16);
  EXPECT_EQ(r.prompts, 16);
  EXPECT_EQ(r.samples, 64);
  EXPECT_GT(r.accepted, 0) << "the warmed-up model should get some sums right";

  const Json st = read_json_file(r.stats_path);
  EXPECT_EQ(st.at("samples"), 64);
  EXPECT_EQ(st.at("accepted"), r.accepted);
  int64_t rejected = 0;
  for (const auto& [k, v] : st.at("rejected_by").items()) rejected += v.get<int64_t>();
  EXPECT_EQ(rejected + r.accepted, 64);
  int64_t kept = 0, samples = 0, with_any = 0;
  for (const Json& p : st.at("per_prompt")) {
    kept += p.at("kept").get<int64_t>();
    samples += p.at("samples").get<int64_t>();
    with_any += p.at("kept").get<int64_t>() > 0;
    EXPECT_LE(p.at("kept").get<int64_t>(), p.at("passed").get<int64_t>());
  }
  EXPECT_EQ(kept, r.accepted);
  EXPECT_EQ(samples, 64);
  EXPECT_EQ(with_any, st.at("prompts_with_any").get<int64_t>());
  int64_t hist = 0;
  for (const Json& n : st.at("length_histogram").at("counts")) hist += n.get<int64_t>();
  EXPECT_EQ(hist, r.accepted);

  // Re-scored with the same reward, every accepted completion is correct.
  const std::vector<Json> rows = read_jsonl_file(r.accepted_path);
  ASSERT_EQ(static_cast<int64_t>(rows.size()), r.accepted);
  const std::vector<Json> prompt_rows = read_jsonl_file(prompts);
  const auto reward = rewards::ComposedReward::from_json(accuracy_reward(), "test");
  for (const Json& row : rows) {
    const Json& msgs = row.at("messages");
    ASSERT_EQ(msgs.size(), 2u);
    const int64_t line = row.at("prompt_line").get<int64_t>();
    const Json& ref = prompt_rows.at(static_cast<size_t>(line - 1));
    EXPECT_EQ(msgs[0].at("content"), ref.at("question"));
    const std::string text = msgs[1].at("content").get<std::string>();
    const rewards::RewardResult rr =
        reward->score({ref.at("question").get_ref<const std::string&>(), text, ref,
                       static_cast<size_t>(row.at("length").get<int64_t>()), nullptr});
    EXPECT_EQ(rr.status, RewardStatus::ok) << text;
    EXPECT_EQ(rr.components.at("accuracy"), 1.0) << text;
    EXPECT_EQ(rr.score, row.at("reward").get<double>());
    EXPECT_NE(row.at("finish_reason"), "length");
  }

  // The rows are SFT data (strict: any bad row would be an error).
  sft::DataConfig dc;
  dc.strict = true;
  const auto tok = policy::Tokenizer::load(warm);
  const auto chat = policy::ChatTemplate::for_model(warm, "qwen3");
  EXPECT_EQ(
      static_cast<int64_t>(sft::load_sft_dataset(r.accepted_path, dc, chat, *tok).examples.size()),
      r.accepted);

  // Deterministic: the same seed with another batch size gives the same files.
  j["output"] = dir.file("b");
  j["prompts_per_batch"] = 5;
  const SampleResult r2 = run_sample(SampleConfig::from_json(j, "test"));
  EXPECT_EQ(read_text(r2.accepted_path), read_text(r.accepted_path));
  EXPECT_EQ(read_text(r2.stats_path), read_text(r.stats_path));
  EXPECT_EQ(read_json_file(r2.config_path).at("prompts_per_batch"), 5);
}

}  // namespace
}  // namespace r1kit::recipes
