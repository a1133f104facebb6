// Requests and completions (rollout/request.h): validation errors that name the field, sampling
// overrides with "did you mean" for unknown keys, the `r1kit generate` rows, and JSON round trips.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>

#include "core/error.h"
#include "rollout/request.h"
#include "tests/common/test_util.h"

namespace r1kit::rollout {
namespace {

using r1kit::testing::expect_error_contains;

void expect_invalid(const std::function<void(SamplingParams&)>& edit,
                    const std::vector<std::string>& needles) {
  SamplingParams p;
  edit(p);
  expect_error_contains([&] { p.validate("rows.jsonl:3: sampling"); }, needles);
}

TEST(Request, SamplingValidationNamesTheField) {
  SamplingParams ok;
  ok.validate();
  ok.temperature = 0;  // greedy
  ok.top_p = 1;
  ok.min_p = 1;
  ok.validate();

  expect_invalid([](auto& p) { p.temperature = -0.5; },
                 {"rows.jsonl:3: sampling: temperature must be", ">= 0", "got -0.5"});
  expect_invalid([](auto& p) { p.temperature = std::nan(""); }, {"temperature must be"});
  expect_invalid([](auto& p) { p.top_p = 0; }, {"top_p must be in (0, 1]", "got 0"});
  expect_invalid([](auto& p) { p.top_p = 1.5; }, {"top_p must be in (0, 1]", "got 1.5"});
  expect_invalid([](auto& p) { p.min_p = -0.1; }, {"min_p must be in [0, 1]"});
  expect_invalid([](auto& p) { p.min_p = 2; }, {"min_p must be in [0, 1]"});
  expect_invalid([](auto& p) { p.top_k = -1; }, {"top_k must be >= 0 (0: off), got -1"});
  expect_invalid([](auto& p) { p.max_new_tokens = 0; }, {"max_new_tokens must be >= 1, got 0"});
  expect_invalid([](auto& p) { p.n = 0; }, {"n (samples per prompt) must be >= 1, got 0"});
  expect_invalid([](auto& p) { p.stop = {"</answer>", ""}; }, {"stop[1] is an empty string"});
  expect_invalid([](auto& p) { p.stop = {"ok\xFF"}; }, {"stop[0] is not valid UTF-8 (byte 2)"});
  expect_invalid(
      [](auto& p) {
        p.stop_token_ids = {2, -3};
      },
      {"stop_token_ids[1] = -3 is not a token id"});
}

TEST(Request, SamplingFromJsonOverridesTheBase) {
  SamplingParams base;
  base.temperature = 0.6;
  base.max_new_tokens = 1024;
  base.stop = {"</answer>"};
  const SamplingParams p = sampling_params_from_json(
      Json{
          {"top_p", 0.95}, {"n", 8}, {"seed", 18446744073709551615ull}, {"stop_token_ids", {1, 2}}},
      "s", base);
  EXPECT_EQ(p.temperature, 0.6);
  EXPECT_EQ(p.max_new_tokens, 1024);
  EXPECT_EQ(p.stop, std::vector<std::string>{"</answer>"});
  EXPECT_EQ(p.top_p, 0.95);
  EXPECT_EQ(p.n, 8);
  EXPECT_EQ(p.seed, std::numeric_limits<uint64_t>::max());
  EXPECT_EQ(p.stop_token_ids, (std::vector<int32_t>{1, 2}));

  // Round trip: every field written, read back the same over a different base.
  SamplingParams q = p;
  q.include_stop_str_in_output = true;
  q.ignore_eos = true;
  q.min_p = 0.05;
  q.top_k = 20;
  SamplingParams other;
  other.temperature = 2;
  EXPECT_EQ(to_json(sampling_params_from_json(to_json(q), "s", other)), to_json(q));

  expect_error_contains(
      [] {
        sampling_params_from_json(Json{{"temprature", 0.7}}, "r.jsonl:2: sampling");
      },
      {"unknown key 'temprature' in r.jsonl:2: sampling", "did you mean 'temperature'?"});
  expect_error_contains(
      [] {
        sampling_params_from_json(Json{{"top_k", 1.5}}, "s");
      },
      {"s: field 'top_k' must be"});
  expect_error_contains(
      [] {
        sampling_params_from_json(Json{{"n", 0}}, "s");
      },
      {"s: n (samples per prompt) must be >= 1"});
  expect_error_contains([] { sampling_params_from_json(Json::array(), "s"); }, {"s", "array"});
}

TEST(Request, GenerateRows) {
  SamplingParams defaults;
  defaults.temperature = 0.7;
  // A text prompt; other fields are the caller's.
  Request r = request_from_json(Json{{"id", "q1"}, {"prompt", "What is 2 + 2?"}, {"answer", "4"}},
                                defaults, "p.jsonl:1");
  EXPECT_EQ(r.prompt_kind, PromptKind::text);
  EXPECT_EQ(r.prompt, "What is 2 + 2?");
  EXPECT_EQ(r.sampling.temperature, 0.7);
  // The empty prompt is allowed (BOS only).
  EXPECT_EQ(request_from_json(Json{{"prompt", ""}}, defaults, "p").prompt, "");

  r = request_from_json(Json{{"prompt_ids", {1, 403, 407}}, {"sampling", {{"n", 4}}}}, defaults,
                        "p.jsonl:2");
  EXPECT_EQ(r.prompt_kind, PromptKind::token_ids);
  EXPECT_EQ(r.prompt_ids, (std::vector<int32_t>{1, 403, 407}));
  EXPECT_EQ(r.sampling.n, 4);
  EXPECT_EQ(r.sampling.temperature, 0.7);

  r = request_from_json(
      Json::parse(R"({"messages": [{"role": "user", "content": "Hi"}], "meta": {"k": 1}})"),
      defaults, "p.jsonl:3");
  EXPECT_EQ(r.prompt_kind, PromptKind::messages);
  ASSERT_EQ(r.messages.size(), 1u);
  EXPECT_EQ(r.messages[0].content, "Hi");

  // Round trip of each prompt kind through to_json.
  for (const char* row :
       {R"({"prompt": "x", "sampling": {"top_k": 5}})", R"({"prompt_ids": [3, 4]})",
        R"({"messages": [{"role": "user", "content": "a", "reasoning": "b"}]})"}) {
    const Request a = request_from_json(Json::parse(row), defaults, "p");
    const Request b = request_from_json(to_json(a), SamplingParams{}, "p");
    EXPECT_EQ(to_json(a), to_json(b)) << row;
  }
}

TEST(Request, GenerateRowErrors) {
  const SamplingParams d;
  expect_error_contains(
      [&] {
        request_from_json(Json{{"promt", "x"}, {"id", 1}}, d, "p.jsonl:4");
      },
      {"p.jsonl:4: the row has no prompt", "did you mean 'prompt' for 'promt'?"});
  expect_error_contains(
      [&] {
        request_from_json(Json{{"id", 1}}, d, "p.jsonl:4");
      },
      {"p.jsonl:4: the row has no prompt (give one of"});
  expect_error_contains(
      [&] {
        request_from_json(Json{{"prompt", "x"}, {"prompt_ids", {1}}}, d, "p.jsonl:5");
      },
      {"p.jsonl:5: the row gives its prompt twice, as 'prompt' and as 'prompt_ids'"});
  expect_error_contains(
      [&] {
        request_from_json(Json{{"prompt", "x"}, {"completions", Json::array()}}, d, "p");
      },
      {"already has a 'completions' field"});
  expect_error_contains(
      [&] {
        request_from_json(Json{{"prompt", "x"}, {"sampling", {{"topp", 0.9}}}}, d, "p.jsonl:6");
      },
      {"unknown key 'topp' in p.jsonl:6: sampling", "did you mean 'top_p'?"});
  expect_error_contains(
      [&] {
        request_from_json(Json{{"prompt", "x"}, {"sampling", {{"top_p", 0}}}}, d, "p.jsonl:7");
      },
      {"p.jsonl:7: sampling: top_p must be in (0, 1]"});
  expect_error_contains(
      [&] {
        request_from_json(Json{{"prompt_ids", Json::array()}}, d, "p");
      },
      {"p: prompt_ids is empty"});
  expect_error_contains(
      [&] {
        request_from_json(Json{{"prompt_ids", {5, -1}}}, d, "p");
      },
      {"p: prompt_ids[1] = -1 is not a token id"});
  expect_error_contains(
      [&] {
        request_from_json(Json{{"prompt", 3}}, d, "p");
      },
      {"p: field 'prompt' must be a string"});
  expect_error_contains(
      [&] { request_from_json(Json::parse(R"({"messages": [{"role": "user"}]})"), d, "p"); },
      {"p: messages[0]", "content"});
  expect_error_contains([&] { request_from_json(Json::array(), d, "p.jsonl:9"); },
                        {"p.jsonl:9", "array"});
}

Completion moe_completion() {
  Completion c;
  c.token_ids = {11, 12, 2};
  c.text = "hi";
  c.logprobs = {-0.1f, -2.5f, -1e-7f};
  c.finish_reason = FinishReason::eos;
  c.expert_layers = 2;
  c.experts_per_token = 2;
  c.experts = {0, 3, 1, 2, 5, 4, 7, 6, 1, 0, 3, 3};  // (3 tokens, 2 layers, 2 experts)
  return c;
}

TEST(Request, CompletionJson) {
  const Completion c = moe_completion();
  const Json j = to_json(c);
  EXPECT_EQ(j.at("finish_reason"), "eos");
  EXPECT_EQ(j.at("experts"), Json::parse("[[[0,3],[1,2]],[[5,4],[7,6]],[[1,0],[3,3]]]"));
  const Completion back = completion_from_json(Json::parse(j.dump()), "c");
  EXPECT_EQ(back.token_ids, c.token_ids);
  EXPECT_EQ(back.text, c.text);
  EXPECT_EQ(back.logprobs, c.logprobs);  // float -> JSON -> float is exact
  EXPECT_EQ(back.finish_reason, FinishReason::eos);
  EXPECT_EQ(back.experts, c.experts);
  EXPECT_EQ(back.expert_layers, 2);
  EXPECT_EQ(back.experts_per_token, 2);

  // A dense completion has no "experts".
  Completion dense;
  dense.token_ids = {5};
  dense.logprobs = {-1};
  dense.finish_reason = FinishReason::stop;
  EXPECT_FALSE(to_json(dense).contains("experts"));
  EXPECT_TRUE(completion_from_json(to_json(dense), "c").experts.empty());
  for (FinishReason f : {FinishReason::stop, FinishReason::length, FinishReason::eos})
    EXPECT_EQ(parse_finish_reason(finish_reason_name(f), "c"), f);

  // The output row keeps the input's fields.
  const Json row = generate_output_row(Json{{"id", "q1"}, {"prompt", "x"}}, {c, dense});
  EXPECT_EQ(row.at("id"), "q1");
  ASSERT_EQ(row.at("completions").size(), 2u);
  EXPECT_EQ(row.at("completions")[1], to_json(dense));
  // MoE rows carry the prompt's routing as [P − 1][L][K].
  EXPECT_EQ(row.at("prompt_experts"), Json::array());
  const Json moe_row =
      generate_output_row(Json{{"prompt_ids", {1, 2, 3}}}, {c}, {1, 2, 3, 4, 5, 6, 7, 8});
  EXPECT_EQ(moe_row.at("prompt_experts"), Json::parse("[[[1,2],[3,4]],[[5,6],[7,8]]]"));
  EXPECT_FALSE(generate_output_row(Json{{"prompt", "x"}}, {dense}).contains("prompt_experts"));
  testing::expect_error_contains(
      [&] {
        generate_output_row(Json{{"prompt", "x"}}, {c}, {1, 2, 3});
      },
      {"prompt_experts holds 3 ids, not a multiple of 2 layers × 2"});
}

TEST(Request, CompletionErrors) {
  Json j = to_json(moe_completion());
  auto with = [&](const char* key, Json v) {
    Json k = j;
    k[key] = std::move(v);
    return k;
  };
  expect_error_contains(
      [&] { completion_from_json(with("finish_reason", "lenght"), "o.jsonl:2"); },
      {"o.jsonl:2: finish_reason: unknown finish_reason 'lenght'", "did you mean 'length'?"});
  expect_error_contains([&] { completion_from_json(with("logprob", Json::array()), "c"); },
                        {"unknown key 'logprob'", "did you mean 'logprobs'?"});
  expect_error_contains([&] { completion_from_json(with("logprobs", {-1.0}), "c"); },
                        {"c: 1 logprobs for 3 token_ids"});
  expect_error_contains(
      [&] {
        completion_from_json(with("experts", Json::parse("[[[0,3],[1,2]],[[5,4]],[[1,0],[3,3]]]")),
                             "c");
      },
      {"c: experts[1]: 1 layers, but token 0 has 2"});
  expect_error_contains(
      [&] {
        completion_from_json(
            with("experts", Json::parse("[[[0,3],[1,2]],[[5,4],[7]],[[1,0],[3,3]]]")), "c");
      },
      {"c: experts[1][1]: 1 experts"});
  expect_error_contains([&] { completion_from_json(with("experts", Json::parse("[[[0]]]")), "c"); },
                        {"c: experts: expected an array with one entry per token (3)"});
  Completion bad = moe_completion();
  bad.experts.pop_back();
  expect_error_contains([&] { bad.validate("c"); }, {"c: experts holds 11 ids"});
  expect_error_contains(
      [&] {
        generate_output_row(Json{{"completions", 1}}, {});
      },
      {"without 'completions'"});
}

}  // namespace
}  // namespace r1kit::rollout
