// The rollout engine (rollout/engine.h) on tiny random models (f32 CPU) and the real stories260K:
// greedy decoding equals the argmax of a full forward at every step and the engine's log-probs
// (and MoE experts) equal the training forward's (dense GQA, MLA + MoE); stories260K reproduces
// llama2.c's greedy output; a request's tokens do not depend on the batch or on preemption; the n
// samples of a request hold the prompt's full blocks once; stop strings across tokens, stop ids,
// EOS, max_new_tokens, the empty prompt, a prompt longer than the context; the jobs' metrics.
#include "rollout/engine.h"

#include <algorithm>
#include <cmath>
#include <random>

#include "core/fs.h"
#include "policy/llama2c.h"
#include "policy/policy.h"
#include "policy/presets.h"
#include "rollout/jobs.h"
#include "tests/common/test_util.h"
#include "tests/rollout/requests.h"

namespace r1kit::rollout {
namespace {

using policy::ModelArch;
using policy::Policy;
using testing::cpu_ctx;
using testing::ScratchDir;

// Every tensor uniform in a kind-dependent range, so that logits are far from ties.
void randomize(Policy& p, uint64_t seed) {
  std::mt19937_64 rng(seed);
  auto fill = [&](const policy::ModelParams& arena, double lo, double hi) {
    for (const auto& e : arena.entries()) {
      const TensorView v = arena.get(e.name);
      std::uniform_real_distribution<double> d(lo, hi);
      std::vector<double> vals(static_cast<size_t>(v.numel()));
      for (auto& x : vals) x = (e.kind == policy::ParamKind::norm ? 1.0 : 0.0) + d(rng);
      testing::fill_from_double(v, vals);
    }
  };
  fill(p.params(), -0.5, 0.5);
  fill(p.buffers(), -0.1, 0.1);
}

Policy tiny_policy(ModelArch arch) {
  Policy p = Policy::init(policy::preset_config(arch, "tiny"), 7, cpu_ctx());
  randomize(p, 11);
  return p;
}

using test_requests::ids_request;
using test_requests::random_prompt;

// One full (training-path) forward over prompt + completion: at each completion token t, the
// argmax of the logits at position P - 1 + t (greedy) and the log-prob of the token under
// temperature tau, and for MoE the routed experts there, against what the engine reported.
// `replay` (MoE): the engine's routing of every position (replay_experts). With apply_replay the
// forward routes by it and the log-probs must still match; without, the forward's own routing
// must equal it at every position but the last (which the engine never ran).
void expect_matches_full_forward(Policy& p, const std::vector<int32_t>& prompt, const Completion& c,
                                 double tau, bool greedy, const std::vector<Tensor>& replay = {},
                                 bool apply_replay = false) {
  Context& ctx = cpu_ctx();
  std::vector<int32_t> seq = prompt;
  seq.insert(seq.end(), c.token_ids.begin(), c.token_ids.end());
  const policy::TokenBatch batch = policy::TokenBatch::from_sequences({seq}, ctx);
  const Tensor targets = policy::shifted_targets({seq}, 1, ctx.host_allocator());
  policy::ForwardOptions fo;
  fo.targets = targets;
  fo.logits = true;
  fo.for_backward = false;
  fo.temperature = tau;
  if (apply_replay)
    for (const Tensor& t : replay)
      fo.replay_topk_idx.push_back(t.defined() ? t.view() : TensorView{});
  const policy::ForwardContext f = p.forward(batch, fo, ctx);
  const int64_t V = p.config().vocab_size;
  const int64_t P = static_cast<int64_t>(prompt.size());
  const float* logits = f.logits.ptr<float>();
  const float* lp = f.logprob.ptr<float>();
  for (size_t t = 0; t < c.token_ids.size(); ++t) {
    const int64_t pos = P - 1 + static_cast<int64_t>(t);
    if (greedy) {
      const float* row = logits + pos * V;
      const int64_t best = std::max_element(row, row + V) - row;
      ASSERT_EQ(c.token_ids[t], best) << "step " << t;
    }
    EXPECT_NEAR(c.logprobs[t], lp[pos], 1e-5) << "step " << t;
  }
  // Experts: the layers' (T, K) routing at the positions the tokens were drawn from.
  if (c.expert_layers > 0) {
    const int64_t K = c.experts_per_token, L = c.expert_layers;
    size_t moe_seen = 0;
    for (const policy::MoeLayerStats& m : f.moe) {
      if (m.layer >= p.config().num_hidden_layers) continue;  // MTP blocks
      const int32_t* idx = m.topk_idx.ptr<int32_t>();
      for (size_t t = 0; t < c.token_ids.size(); ++t) {
        const int64_t pos = P - 1 + static_cast<int64_t>(t);
        for (int64_t k = 0; k < K; ++k)
          EXPECT_EQ(c.experts[(t * L + moe_seen) * K + k], idx[pos * K + k])
              << "token " << t << " moe layer " << moe_seen;
      }
      ++moe_seen;
    }
    EXPECT_EQ(static_cast<int64_t>(moe_seen), L);
  }
  if (!replay.empty() && !apply_replay) {
    const int64_t T = static_cast<int64_t>(seq.size());
    size_t j = 0;
    for (const policy::MoeLayerStats& m : f.moe) {
      if (m.layer >= p.config().num_hidden_layers) continue;
      const Tensor& want = replay[static_cast<size_t>(m.layer)];
      ASSERT_TRUE(want.defined()) << "layer " << m.layer;
      const int64_t K = want.view().shape[1];
      for (int64_t i = 0; i < (T - 1) * K; ++i)
        EXPECT_EQ(want.ptr<int32_t>()[i], m.topk_idx.ptr<int32_t>()[i])
            << "layer " << m.layer << " position " << i / K;
      ++j;
    }
    EXPECT_GT(j, 0u);
  }
}

void check_greedy_and_logprobs(ModelArch arch) {
  Policy p = tiny_policy(arch);
  EngineOptions eo;
  eo.block_size = 4;
  eo.num_blocks = 64;
  eo.max_batch_tokens = 7;  // prompts prefill in chunks, decodes share steps with them
  Engine engine(p, nullptr, eo, cpu_ctx());
  std::mt19937_64 rng(3);
  std::vector<Request> reqs;
  for (int64_t len : {1, 5, 9, 13})
    reqs.push_back(ids_request(random_prompt(rng, len, p.config().vocab_size),
                               static_cast<uint64_t>(len), 10, 0.0));
  // Sampled with a temperature and filters: the log-prob is the unfiltered one at tau.
  Request s = ids_request(random_prompt(rng, 6, p.config().vocab_size), 99, 10, 0.7, 2);
  s.sampling.top_k = 20;
  s.sampling.top_p = 0.9;
  reqs.push_back(s);
  const std::vector<RequestOutput> out = engine.generate(reqs);
  ASSERT_EQ(out.size(), reqs.size());
  for (size_t r = 0; r < reqs.size(); ++r) {
    ASSERT_TRUE(out[r].ok()) << out[r].error;
    const bool greedy = reqs[r].sampling.temperature == 0;
    ASSERT_EQ(out[r].completions.size(), static_cast<size_t>(reqs[r].sampling.n));
    const int64_t P = static_cast<int64_t>(reqs[r].prompt_ids.size());
    for (size_t i = 0; i < out[r].completions.size(); ++i) {
      const Completion& c = out[r].completions[i];
      c.validate("completion");
      EXPECT_EQ(c.token_ids.size(), 10u);
      EXPECT_EQ(c.finish_reason, FinishReason::length);
      EXPECT_EQ(c.expert_layers > 0, p.config().is_moe());
      expect_matches_full_forward(p, reqs[r].prompt_ids, c, greedy ? 1.0 : 0.7, greedy);
      const std::vector<Tensor> replay =
          replay_experts(p.config(), out[r], i, cpu_ctx().host_allocator());
      EXPECT_EQ(replay.empty(), !p.config().is_moe());
      EXPECT_EQ(out[r].prompt_experts.size(),
                static_cast<size_t>(
                    p.config().is_moe() ? (P - 1) * c.expert_layers * c.experts_per_token : 0));
      if (!replay.empty()) {
        expect_matches_full_forward(p, reqs[r].prompt_ids, c, greedy ? 1.0 : 0.7, greedy, replay);
        expect_matches_full_forward(p, reqs[r].prompt_ids, c, greedy ? 1.0 : 0.7, greedy, replay,
                                    true);
      }
    }
  }
  EXPECT_EQ(engine.allocator().num_used_blocks(), 0);
}

TEST(Engine, GreedyAndLogprobsMatchTheFullForwardDense) {
  check_greedy_and_logprobs(ModelArch::qwen2);
}

TEST(Engine, GreedyLogprobsAndExpertsMatchTheFullForwardMlaMoe) {
  check_greedy_and_logprobs(ModelArch::deepseek_v3);
}

TEST(Engine, RefreshWeightsUsesTheNewWeights) {
  Policy p = tiny_policy(ModelArch::deepseek_v3);
  Engine engine(p, nullptr, {}, cpu_ctx());
  const std::vector<Request> reqs = {ids_request({3, 4, 5}, 0, 6, 0.0)};
  const auto before = generate(engine, reqs);
  randomize(p, 12);  // as an optimizer step would
  engine.refresh_weights();
  const auto after = generate(engine, reqs);
  expect_matches_full_forward(p, reqs[0].prompt_ids, after[0][0], 1.0, true);
  EXPECT_NE(before[0][0].logprobs, after[0][0].logprobs);
}

// ---- Reproducibility ------------------------------------------------------------------------

TEST(Engine, TokensDoNotDependOnTheBatchOrOnPreemption) {
  Policy p = tiny_policy(ModelArch::qwen2);
  const int64_t V = p.config().vocab_size;
  std::mt19937_64 rng(5);
  Request target = ids_request(random_prompt(rng, 7, V), 5, 24, 1.0, 2);
  target.sampling.top_p = 0.95;
  std::vector<Request> batch;
  for (uint64_t i = 0; i < 64; ++i) {
    if (i == 5) {
      batch.push_back(target);
      continue;
    }
    batch.push_back(ids_request(random_prompt(rng, 3 + static_cast<int64_t>(i % 9), V), i,
                                8 + static_cast<int64_t>(i % 17), 0.9, 1 + (i % 3 == 0)));
  }
  EngineOptions roomy;
  roomy.block_size = 4;
  roomy.num_blocks = 512;
  Engine alone_engine(p, nullptr, roomy, cpu_ctx());
  const auto alone = generate(alone_engine, {target});

  Engine batch_engine(p, nullptr, roomy, cpu_ctx());
  const auto together = generate(batch_engine, batch);
  EXPECT_EQ(batch_engine.stats().preemptions, 0);
  EXPECT_GT(batch_engine.stats().peak_batch_sequences, 60);

  EngineOptions tight = roomy;
  tight.num_blocks = 16;  // one sequence needs at most ceil(31 / 4) = 8
  tight.max_batch_tokens = 16;
  Engine tight_engine(p, nullptr, tight, cpu_ctx());
  const auto pressed = generate(tight_engine, batch);
  EXPECT_GT(tight_engine.stats().preemptions, 0);
  EXPECT_EQ(tight_engine.allocator().num_used_blocks(), 0);

  for (int64_t s = 0; s < 2; ++s) {
    const auto& a = alone[0][static_cast<size_t>(s)];
    EXPECT_EQ(a.token_ids.size(), 24u);
    EXPECT_EQ(together[5][static_cast<size_t>(s)].token_ids, a.token_ids) << "sample " << s;
    EXPECT_EQ(pressed[5][static_cast<size_t>(s)].token_ids, a.token_ids) << "sample " << s;
    for (size_t t = 0; t < a.logprobs.size(); ++t)
      EXPECT_NEAR(pressed[5][static_cast<size_t>(s)].logprobs[t], a.logprobs[t], 1e-5);
  }
  EXPECT_NE(alone[0][0].token_ids, alone[0][1].token_ids);  // the samples draw differently
  for (size_t r = 0; r < batch.size(); ++r)
    for (size_t s = 0; s < together[r].size(); ++s)
      EXPECT_EQ(pressed[r][s].token_ids, together[r][s].token_ids) << "request " << r;
}

TEST(Engine, SamplesOfOnePromptHoldItsFullBlocksOnce) {
  Policy p = tiny_policy(ModelArch::qwen2);
  std::mt19937_64 rng(9);
  const Request r = ids_request(random_prompt(rng, 40, p.config().vocab_size), 0, 4, 1.0, 4);
  EngineOptions eo;
  eo.block_size = 16;
  eo.num_blocks = 32;
  Engine engine(p, nullptr, eo, cpu_ctx());
  int32_t max_ref = 0;
  int64_t peak_sharing_used = 0;
  engine.on_blocks = [&](const KvBlockAllocator& a) {
    int32_t m = 0;
    for (int32_t b = 0; b < a.num_blocks(); ++b) m = std::max(m, a.ref_count(b));
    max_ref = std::max(max_ref, m);
    if (a.num_sequences() == 4)
      peak_sharing_used = std::max(peak_sharing_used, a.num_used_blocks());
  };
  const auto out = generate(engine, {r});
  ASSERT_EQ(out[0].size(), 4u);
  // 40 tokens: two full blocks held by all four samples, and each sample's own copy of the
  // partial third block (three copies on write; the last writer keeps the original).
  EXPECT_EQ(max_ref, 4);
  EXPECT_EQ(peak_sharing_used, 2 + 4);
  EXPECT_EQ(engine.stats().peak_used_blocks, 2 + 4);
  EXPECT_EQ(engine.stats().copy_on_writes, 3);
  // Against no sharing: 4 × 3 blocks.
  EXPECT_LT(engine.stats().peak_used_blocks, 4 * 3);
  EXPECT_EQ(engine.allocator().num_used_blocks(), 0);
}

// ---- stories260K: the real model and tokenizer ---------------------------------------------

struct Stories {
  ScratchDir dir;
  std::unique_ptr<Policy> policy;
  std::unique_ptr<policy::Tokenizer> tok;
  Stories() {
    const std::string data = std::string(R1KIT_SOURCE_DIR) + "/tests/policy/data/stories260K/";
    policy::Llama2cConvertOptions o;
    o.tokenizer = data + "tok512.bin";
    policy::convert_llama2c(data + "stories260K.bin", dir.file("m"), o);
    policy = std::make_unique<Policy>(Policy::load(dir.file("m"), cpu_ctx()));
    tok = policy::Tokenizer::load(dir.file("m"));
  }
};

Stories& stories() {
  static Stories s;  // shared by the tests of this file
  return s;
}

Request text_request(std::string prompt, int64_t max_new) {
  Request r;
  r.prompt_kind = PromptKind::text;
  r.prompt = std::move(prompt);
  r.sampling.temperature = 0;
  r.sampling.max_new_tokens = max_new;
  r.sampling.ignore_eos = true;
  return r;
}

std::vector<int32_t> golden_ids() {
  const Json g = read_json_file(std::string(R1KIT_SOURCE_DIR) +
                                "/tests/policy/data/stories260K/greedy_t0_256steps.json");
  return g.at("generated_ids").get<std::vector<int32_t>>();
}

TEST(Engine, Stories260KGreedyFromBosReproducesLlama2c) {
  Stories& s = stories();
  Engine engine(*s.policy, s.tok.get(), {}, cpu_ctx());
  const auto out = generate(engine, {text_request("", 256)});  // "" is BOS only
  const std::vector<int32_t> expected = golden_ids();
  ASSERT_EQ(expected.size(), 256u);
  EXPECT_EQ(out[0][0].token_ids, expected);
  EXPECT_EQ(out[0][0].finish_reason, FinishReason::length);
  EXPECT_EQ(out[0][0].text, s.tok->decode(expected, {true}));
}

TEST(Engine, StopStringsSpanningTokensStopIdsEosAndLength) {
  Stories& s = stories();
  const std::vector<int32_t> golden = golden_ids();
  EngineOptions eo;
  Engine engine(*s.policy, s.tok.get(), eo, cpu_ctx());

  // The pieces of the greedy text; a stop string made of the end of piece 6 and the start of
  // piece 7 can only complete at token 7.
  policy::StreamDecoder dec(*s.tok, {true});
  std::vector<std::string> pieces;
  for (size_t i = 0; i < 12; ++i) pieces.push_back(dec.push(golden[i]));
  ASSERT_GE(pieces[6].size(), 2u);
  ASSERT_GE(pieces[7].size(), 2u);
  const std::string stop = pieces[6].substr(pieces[6].size() - 2) + pieces[7].substr(0, 2);
  std::string before;
  for (size_t i = 0; i < 7; ++i) before += pieces[i];
  const std::string full = before + pieces[7];
  const size_t at = full.find(stop);
  ASSERT_EQ(at, before.size() - 2) << "pick pieces whose junction is the first match";

  Request with_stop = text_request("", 50);
  with_stop.sampling.stop = {stop};
  Request included = with_stop;
  included.sampling.include_stop_str_in_output = true;
  Request stop_id = text_request("", 50);
  stop_id.sampling.stop_token_ids = {golden[4]};
  Request length = text_request("", 5);
  const auto out = generate(engine, {with_stop, included, stop_id, length});

  const std::vector<int32_t> first8(golden.begin(), golden.begin() + 8);
  EXPECT_EQ(out[0][0].finish_reason, FinishReason::stop);
  EXPECT_EQ(out[0][0].token_ids, first8);
  EXPECT_EQ(out[0][0].text, full.substr(0, at));
  EXPECT_EQ(out[1][0].text, full.substr(0, at + stop.size()));
  const size_t first_stop_id = std::find(golden.begin(), golden.end(), golden[4]) - golden.begin();
  EXPECT_EQ(out[2][0].finish_reason, FinishReason::stop);
  EXPECT_EQ(out[2][0].token_ids.size(), first_stop_id + 1);  // the stop token is kept
  EXPECT_EQ(out[3][0].finish_reason, FinishReason::length);
  EXPECT_EQ(out[3][0].token_ids, std::vector<int32_t>(golden.begin(), golden.begin() + 5));
  EXPECT_EQ(out[3][0].text, s.tok->decode(out[3][0].token_ids, {true}));

  // EOS (an extra EOS id here: the tokenizer's EOS is rare in the greedy story): ends with eos,
  // the token kept, its text not; ignore_eos runs past it.
  EngineOptions eos_opts;
  eos_opts.extra_eos = {golden[3]};
  Engine eos_engine(*s.policy, s.tok.get(), eos_opts, cpu_ctx());
  Request eos = text_request("", 20);
  eos.sampling.ignore_eos = false;
  const auto e = generate(eos_engine, {eos, text_request("", 20)});
  const size_t first_eos = std::find(golden.begin(), golden.end(), golden[3]) - golden.begin();
  EXPECT_EQ(e[0][0].finish_reason, FinishReason::eos);
  EXPECT_EQ(e[0][0].token_ids.size(), first_eos + 1);
  EXPECT_EQ(
      e[0][0].text,
      s.tok->decode(std::vector<int32_t>(golden.begin(), golden.begin() + first_eos), {true}));
  EXPECT_EQ(e[1][0].token_ids.size(), 20u);
}

TEST(Engine, PromptLongerThanTheContextIsAnErrorForThatRequest) {
  Stories& s = stories();
  Engine engine(*s.policy, s.tok.get(), {}, cpu_ctx());
  const int64_t ctx_len = s.policy->config().max_position_embeddings;
  Request too_long = ids_request(std::vector<int32_t>(static_cast<size_t>(ctx_len), 5), 0, 4);
  Request fine = text_request("Once upon", 3);
  Request near = ids_request(std::vector<int32_t>(static_cast<size_t>(ctx_len - 2), 5), 2, 10);
  near.sampling.temperature = 0;
  const auto out = engine.generate({too_long, fine, near});
  ASSERT_FALSE(out[0].ok());
  EXPECT_NE(out[0].error.find("request 0: the prompt has"), std::string::npos) << out[0].error;
  EXPECT_NE(out[0].error.find("max_position_embeddings"), std::string::npos);
  ASSERT_TRUE(out[1].ok()) << out[1].error;
  EXPECT_EQ(out[1].completions[0].token_ids.size(), 3u);
  // Two positions left: generation stops at the context with finish reason length.
  ASSERT_TRUE(out[2].ok()) << out[2].error;
  EXPECT_EQ(out[2].completions[0].token_ids.size(), 2u);
  EXPECT_EQ(out[2].completions[0].finish_reason, FinishReason::length);
  testing::expect_error_contains([&] { generate(engine, {too_long}); },
                                 {"[generate] request 0", "max_position_embeddings"});
}

// ---- Jobs -------------------------------------------------------------------------------------

TEST(Jobs, PassAtKIsTheUnbiasedEstimator) {
  EXPECT_DOUBLE_EQ(pass_at_k(10, 0, 3), 0.0);
  EXPECT_DOUBLE_EQ(pass_at_k(10, 10, 3), 1.0);
  EXPECT_NEAR(pass_at_k(10, 3, 1), 0.3, 1e-12);
  // 1 - C(7, 2) / C(10, 2) = 1 - 21 / 45
  EXPECT_NEAR(pass_at_k(10, 3, 2), 1.0 - 21.0 / 45.0, 1e-12);
  EXPECT_DOUBLE_EQ(pass_at_k(4, 2, 3), 1.0);
  testing::expect_error_contains([] { pass_at_k(4, 5, 1); }, {"[pass_at_k]"});
}

TEST(Jobs, SampleAndEvaluateUseTheScorer) {
  Policy p = tiny_policy(ModelArch::qwen2);
  Engine engine(p, nullptr, {}, cpu_ctx());
  const std::vector<Request> reqs = {ids_request({1, 2, 3}, 0, 4), ids_request({4, 5}, 1, 4)};
  // Score: the first token's parity.
  const auto kept = sample(
      engine, reqs, 6, [](size_t, const Completion& c) { return c.token_ids[0] % 2 == 0; }, 0.5);
  ASSERT_EQ(kept.size(), 2u);
  for (const auto& per : kept) {
    ASSERT_EQ(per.size(), 6u);
    for (const auto& s : per) EXPECT_EQ(s.kept, s.completion.token_ids[0] % 2 == 0);
  }
  // Request 0 always correct with answer "a"; request 1 correct only when the first token is even,
  // the answer being the parity.
  const EvalResult res = evaluate(engine, reqs, 6, {1, 2, 6}, [](size_t r, const Completion& c) {
    const bool even = c.token_ids[0] % 2 == 0;
    return r == 0 ? EvalScore{true, "a"} : EvalScore{even, even ? "even" : "odd"};
  });
  EXPECT_EQ(res.prompts, 2);
  int64_t even = 0;
  for (const auto& s : kept[1]) even += s.kept ? 1 : 0;  // same seeds, same draws
  ASSERT_EQ(res.correct, (std::vector<int64_t>{6, even}));
  EXPECT_NEAR(res.pass_at_1, (1.0 + even / 6.0) / 2, 1e-12);
  EXPECT_NEAR(res.pass_at_k.at(2), (1.0 + pass_at_k(6, even, 2)) / 2, 1e-12);
  EXPECT_NEAR(res.pass_at_k.at(6), (1.0 + (even > 0 ? 1.0 : 0.0)) / 2, 1e-12);
  // maj@6 of request 1: "even" wins with more than 3 votes, or with 3 when it came first.
  const bool maj_even = even > 3 || (even == 3 && kept[1][0].kept);
  EXPECT_NEAR(res.maj_at_n, (1.0 + (maj_even ? 1.0 : 0.0)) / 2, 1e-12);
  EXPECT_NEAR(res.maj_at_k.at(6), res.maj_at_n, 1e-12);
  // maj@1: the first sample's answer.
  EXPECT_NEAR(res.maj_at_k.at(1), (1.0 + (kept[1][0].kept ? 1.0 : 0.0)) / 2, 1e-12);
}

}  // namespace
}  // namespace r1kit::rollout
