// The rollout path on the GPU: CachedForward over the paged cache on a CUDA context against the
// CPU (f32: within the reduction-order bound; bf16: within the rounding bound below), the engine on
// the GPU against the GPU training forward (greedy tokens = argmax of the full forward, log-probs,
// experts; bf16 log-probs with and without router replay), stories260K's greedy reference, a
// request's tokens independent of a batch of 64 and of preemption, and CUDA-graph decode steps
// bit-identical to eager ones.
//
// bf16 bound: the cached and the training paths round the same activations to bf16 at up to R =
// 6·L + 4 places (norm outputs, q/k/v or the MLA latents, attention output, o_proj, MLP/MoE
// output, residual adds; embedding and head), not always at the same intermediate values (MLA's
// absorbed form reorders the products). To first order each rounding moves the final hidden state
// by at most u = 2⁻⁸ relative, so the logits move by at most R·u·max|z| and a log-prob
// (z_t − logsumexp z) by twice that.
#include <algorithm>
#include <cmath>
#include <random>

#include "core/fs.h"
#include "core/json.h"
#include "kernels/elementwise.h"
#include "policy/decode.h"
#include "policy/llama2c.h"
#include "policy/policy.h"
#include "policy/presets.h"
#include "policy/tokenizer.h"
#include "rollout/engine.h"
#include "tests/common/test_util.h"
#include "tests/gpu/gpu_util.h"
#include "tests/rollout/requests.h"

namespace r1kit::rollout {
namespace {

using policy::CachedBatch;
using policy::CachedForward;
using policy::CachedOutput;
using policy::ModelArch;
using policy::ModelConfig;
using policy::PagedKvCache;
using policy::Policy;
using testing::cpu_ctx;
using testing::gpu_ctx;

std::vector<ModelConfig> configs() {
  return {policy::preset_config(ModelArch::qwen2, "tiny"),
          policy::preset_config(ModelArch::deepseek_v3, "tiny")};
}

// Every tensor uniform in ±0.5 (norms around 1), so that logits are far from ties.
Policy cpu_policy(const ModelConfig& c, uint64_t seed) {
  Policy p = Policy::init(c, 7, cpu_ctx());
  std::mt19937_64 rng(seed);
  for (policy::ModelParams* arena : {&p.params(), &p.buffers()})
    for (const auto& e : arena->entries()) {
      const TensorView v = arena->get(e.name);
      std::uniform_real_distribution<double> d(-0.5, 0.5);
      std::vector<double> vals(static_cast<size_t>(v.numel()));
      for (auto& x : vals) x = (e.kind == policy::ParamKind::norm ? 1.0 : 0.0) + d(rng);
      testing::fill_from_double(v, vals);
    }
  return p;
}

// Rounds the CPU policy's parameters to bf16 values (kept in f32), so that the CPU and a bf16 GPU
// copy hold the same numbers.
void round_to_bf16(Policy& p) {
  Context& cpu = cpu_ctx();
  const TensorView flat = p.params().flat();
  Tensor b = cpu.empty(flat.dims(), DType::bf16, "bf16");
  kernels::cast(b, flat, cpu);
  kernels::cast(flat, b, cpu);
}

// The same parameters on the GPU in `dtype`.
Policy gpu_copy(const Policy& pc, DType dtype) {
  Context& gpu = gpu_ctx();
  policy::PolicyOptions po;
  po.dtype = dtype;
  Policy pg = Policy::init(pc.config(), 7, gpu, po);
  const std::pair<const policy::ModelParams*, policy::ModelParams*> arenas[] = {
      {&pc.params(), &pg.params()}, {&pc.buffers(), &pg.buffers()}};
  for (auto [src, dst] : arenas) {
    if (!src->defined()) continue;
    const Tensor up = testing::to_device(src->flat());
    if (dst->dtype() == up.dtype()) {
      gpu.copy(dst->flat(), up);
    } else {
      kernels::cast(dst->flat(), up, gpu);
    }
  }
  return pg;
}

policy::KvCacheSpec spec(int64_t blocks, int64_t block_size, DType dtype = DType::f32) {
  policy::KvCacheSpec s;
  s.num_blocks = blocks;
  s.block_size = block_size;
  s.dtype = dtype;
  return s;
}

// Two sequences in shuffled blocks: a 6-token prefill and a 3-token one, then steps of one and two
// new tokens; the GPU logits against the CPU's at every step. f32 tolerance (cuBLASLt in true
// fp32, paged attention in fp32): testing::tolerance of one f32 product over the widest reduction,
// once per sublayer the error passes through (attention and MLP of each layer, the head).
void compare_cached_forward(DType dtype) {
  R1_REQUIRE_GPU();
  Context& cpu = cpu_ctx();
  Context& gpu = gpu_ctx();
  for (const ModelConfig& c : configs()) {
    SCOPED_TRACE(std::string(policy::model_arch_name(c.arch)));
    Policy pc = cpu_policy(c, 9);
    if (dtype == DType::bf16) round_to_bf16(pc);
    Policy pg = gpu_copy(pc, dtype);
    CachedForward fc(pc, cpu), fg(pg, gpu);
    PagedKvCache kc = PagedKvCache::make(c, spec(8, 4), cpu);
    PagedKvCache kg = PagedKvCache::make(c, spec(8, 4, dtype), gpu);
    CachedBatch b{{5, 17, 3, 99, 42, 7, 3, 30, 60}, {0, 0}, {6, 3}, {{5, 1, 7}, {2, 0}}};
    const int64_t L = c.num_hidden_layers;
    const double f32_tol =
        static_cast<double>(2 * L + 1) *
        testing::tolerance(DType::f32,
                           std::max({c.hidden_size, c.intermediate_size, c.vocab_size}));
    const double bf16_tol = static_cast<double>(6 * L + 4) * std::ldexp(1.0, -8);
    for (int s = 0; s < 3; ++s) {
      SCOPED_TRACE(s);
      const CachedOutput oc = fc.step(b, kc, cpu), og = fg.step(b, kg, gpu);
      testing::expect_close(og.logits, oc.logits, dtype == DType::f32 ? f32_tol : bf16_tol,
                            "logits");
      if (dtype == DType::f32) {
        EXPECT_EQ(og.experts, oc.experts);
      }
      b.cached_len = {b.cached_len[0] + b.new_len[0], b.cached_len[1] + b.new_len[1]};
      b.new_len = {1, 2};
      b.tokens = {static_cast<int32_t>(10 + s), static_cast<int32_t>(20 + s), 40};
    }
  }
}

TEST(RolloutGpu, CachedForwardF32MatchesCpu) {
  compare_cached_forward(DType::f32);
}

TEST(RolloutGpu, CachedForwardBf16MatchesCpuOnTheSameWeights) {
  compare_cached_forward(DType::bf16);
}

using test_requests::ids_request;
using test_requests::random_prompt;

// The GPU training forward over prompt + completion: logits (host f32), log-probs at tau, and the
// routing of each main MoE layer.
struct FullForward {
  std::vector<double> logits, logprob;
  std::vector<std::vector<int32_t>> topk;
};

FullForward full_forward(Policy& p, const std::vector<int32_t>& seq, double tau,
                         const std::vector<Tensor>& replay = {}) {
  Context& gpu = gpu_ctx();
  const policy::TokenBatch batch = policy::TokenBatch::from_sequences({seq}, gpu);
  const Tensor targets = policy::shifted_targets({seq}, 1, gpu.host_allocator());
  policy::ForwardOptions fo;
  fo.targets = targets;
  fo.logits = true;
  fo.for_backward = false;
  fo.temperature = tau;
  for (const Tensor& t : replay)
    fo.replay_topk_idx.push_back(t.defined() ? t.view() : TensorView{});
  const policy::ForwardContext f = p.forward(batch, fo, gpu);
  FullForward r;
  r.logits = testing::to_double(testing::to_host(f.logits));
  r.logprob = testing::to_double(testing::to_host(f.logprob));
  for (const policy::MoeLayerStats& m : f.moe) {
    if (m.layer >= p.config().num_hidden_layers) continue;
    const Tensor h = testing::to_host(m.topk_idx);
    r.topk.emplace_back(h.ptr<int32_t>(), h.ptr<int32_t>() + h.numel());
  }
  return r;
}

// Engine on the GPU: greedy tokens are the full forward's argmax (f32), log-probs within `tol` of
// the training forward's (with router replay too, for MoE), experts those of the training router.
void check_engine(ModelArch arch, DType dtype) {
  R1_REQUIRE_GPU();
  const ModelConfig c = policy::preset_config(arch, "tiny");
  Policy pc = cpu_policy(c, 11);
  Policy pg = gpu_copy(pc, dtype);
  EngineOptions eo;
  eo.block_size = 4;
  eo.num_blocks = 64;
  eo.max_batch_tokens = 7;
  Engine engine(pg, nullptr, eo, gpu_ctx());
  std::mt19937_64 rng(3);
  std::vector<Request> reqs;
  for (int64_t len : {1, 5, 9, 13})
    reqs.push_back(ids_request(random_prompt(rng, len, c.vocab_size), static_cast<uint64_t>(len),
                               10, dtype == DType::f32 ? 0.0 : 1.0));
  reqs.push_back(ids_request(random_prompt(rng, 6, c.vocab_size), 99, 10, 0.7, 2));
  const std::vector<RequestOutput> out = engine.generate(reqs);
  const int64_t V = c.vocab_size, L = c.num_hidden_layers;
  for (size_t r = 0; r < reqs.size(); ++r) {
    ASSERT_TRUE(out[r].ok()) << out[r].error;
    const double tau = reqs[r].sampling.temperature == 0 ? 1.0 : reqs[r].sampling.temperature;
    const bool greedy = reqs[r].sampling.temperature == 0;
    const int64_t P = static_cast<int64_t>(reqs[r].prompt_ids.size());
    for (size_t i = 0; i < out[r].completions.size(); ++i) {
      SCOPED_TRACE(fmt::format("request {} sample {}", r, i));
      const Completion& comp = out[r].completions[i];
      ASSERT_EQ(comp.token_ids.size(), 10u);
      std::vector<int32_t> seq = reqs[r].prompt_ids;
      seq.insert(seq.end(), comp.token_ids.begin(), comp.token_ids.end());
      const std::vector<Tensor> replay = replay_experts(c, out[r], i, gpu_ctx().host_allocator());
      const std::vector<Tensor> none;
      for (const bool with_replay : {false, true}) {
        if (with_replay && replay.empty()) continue;
        const FullForward f = full_forward(pg, seq, tau, with_replay ? replay : none);
        double zmax = 0;
        for (double z : f.logits) zmax = std::max(zmax, std::abs(z));
        const double tol = dtype == DType::f32
                               ? 1e-4
                               : 2 * static_cast<double>(6 * L + 4) * std::ldexp(1.0, -8) * zmax;
        for (size_t t = 0; t < comp.token_ids.size(); ++t) {
          const int64_t pos = P - 1 + static_cast<int64_t>(t);
          if (greedy) {
            const double* row = f.logits.data() + pos * V;
            EXPECT_EQ(comp.token_ids[t], std::max_element(row, row + V) - row) << "step " << t;
          }
          EXPECT_NEAR(comp.logprobs[t], f.logprob[static_cast<size_t>(pos)], tol)
              << "step " << t << (with_replay ? " (router replay)" : "");
        }
        // The engine's routing is the training router's (f32: no rounding flips a choice).
        if (!with_replay && dtype == DType::f32 && !replay.empty()) {
          size_t j = 0;
          for (int64_t l = 0; l < L; ++l) {
            if (!replay[static_cast<size_t>(l)].defined()) continue;
            const Tensor& want = replay[static_cast<size_t>(l)];
            const int64_t K = want.view().shape[1];
            const std::vector<int32_t>& got = f.topk[j++];
            for (int64_t e = 0; e < (static_cast<int64_t>(seq.size()) - 1) * K; ++e)
              EXPECT_EQ(got[static_cast<size_t>(e)], want.ptr<int32_t>()[e]) << "layer " << l;
          }
        }
      }
    }
  }
  EXPECT_EQ(engine.allocator().num_used_blocks(), 0);
}

TEST(RolloutGpu, EngineMatchesTheTrainingForwardDenseF32) {
  check_engine(ModelArch::qwen2, DType::f32);
}
TEST(RolloutGpu, EngineMatchesTheTrainingForwardMlaMoeF32) {
  check_engine(ModelArch::deepseek_v3, DType::f32);
}
TEST(RolloutGpu, EngineLogprobsWithinTheBf16BoundDense) {
  check_engine(ModelArch::qwen2, DType::bf16);
}
TEST(RolloutGpu, EngineLogprobsWithinTheBf16BoundMlaMoe) {
  check_engine(ModelArch::deepseek_v3, DType::bf16);
}

TEST(RolloutGpu, Stories260KGreedyFromBosReproducesLlama2c) {
  R1_REQUIRE_GPU();
  const std::string data = std::string(R1KIT_SOURCE_DIR) + "/tests/policy/data/stories260K/";
  testing::ScratchDir dir;
  policy::Llama2cConvertOptions o;
  o.tokenizer = data + "tok512.bin";
  policy::convert_llama2c(data + "stories260K.bin", dir.file("m"), o);
  Policy p = Policy::load(dir.file("m"), gpu_ctx());
  const auto tok = policy::Tokenizer::load(dir.file("m"));
  Engine engine(p, tok.get(), {}, gpu_ctx());
  Request r;
  r.prompt_kind = PromptKind::text;  // "" is BOS only
  r.sampling.temperature = 0;
  r.sampling.max_new_tokens = 256;
  r.sampling.ignore_eos = true;
  const auto out = generate(engine, {r});
  const Json g = read_json_file(data + "greedy_t0_256steps.json");
  EXPECT_EQ(out[0][0].token_ids, g.at("generated_ids").get<std::vector<int32_t>>());
}

TEST(RolloutGpu, TokensDoNotDependOnTheBatchOrOnPreemption) {
  R1_REQUIRE_GPU();
  for (const ModelConfig& c : configs()) {
    SCOPED_TRACE(std::string(policy::model_arch_name(c.arch)));
    Policy pg = gpu_copy(cpu_policy(c, 5), DType::f32);
    const int64_t V = c.vocab_size;
    std::mt19937_64 rng(5);
    Request target = ids_request(random_prompt(rng, 7, V), 5, 24, 1.0, 2);
    target.sampling.top_p = 0.95;
    std::vector<Request> batch;
    for (uint64_t i = 0; i < 64; ++i)
      batch.push_back(i == 5
                          ? target
                          : ids_request(random_prompt(rng, 3 + static_cast<int64_t>(i % 9), V), i,
                                        8 + static_cast<int64_t>(i % 17), 0.9, 1 + (i % 3 == 0)));
    EngineOptions roomy;
    roomy.block_size = 4;
    roomy.num_blocks = 1024;
    Engine alone_engine(pg, nullptr, roomy, gpu_ctx());
    const auto alone = generate(alone_engine, {target});
    Engine batch_engine(pg, nullptr, roomy, gpu_ctx());
    const auto together = generate(batch_engine, batch);
    EXPECT_GT(batch_engine.stats().peak_batch_sequences, 60);
    EngineOptions tight = roomy;
    tight.num_blocks = 16;
    tight.max_batch_tokens = 16;
    Engine tight_engine(pg, nullptr, tight, gpu_ctx());
    const auto pressed = generate(tight_engine, batch);
    EXPECT_GT(tight_engine.stats().preemptions, 0);
    for (size_t s = 0; s < 2; ++s) {
      EXPECT_EQ(together[5][s].token_ids, alone[0][s].token_ids) << "sample " << s;
      EXPECT_EQ(pressed[5][s].token_ids, alone[0][s].token_ids) << "sample " << s;
    }
    for (size_t r = 0; r < batch.size(); ++r)
      for (size_t s = 0; s < together[r].size(); ++s)
        EXPECT_EQ(pressed[r][s].token_ids, together[r][s].token_ids) << "request " << r;
  }
}

// CUDA graphs of decode steps (dense policies) give bit-identical tokens and log-probs to eager
// steps, as the batch shrinks while sequences finish, across generate() calls, and after a weight
// update with refresh_weights().
TEST(RolloutGpu, CudaGraphDecodeIsBitIdenticalToEager) {
  R1_REQUIRE_GPU();
  for (const DType dtype : {DType::f32, DType::bf16}) {
    SCOPED_TRACE(std::string(dtype_name(dtype)));
    const ModelConfig c = policy::preset_config(ModelArch::qwen2, "tiny");
    Policy pg = gpu_copy(cpu_policy(c, 21), dtype);
    std::mt19937_64 rng(8);
    std::vector<Request> reqs;
    for (uint64_t i = 0; i < 12; ++i)
      reqs.push_back(ids_request(random_prompt(rng, 2 + static_cast<int64_t>(i % 5), c.vocab_size),
                                 i, 6 + static_cast<int64_t>(3 * i % 11), i % 4 == 0 ? 0.0 : 1.0,
                                 1 + (i % 3 == 0)));
    EngineOptions eo;
    eo.block_size = 4;
    eo.num_blocks = 256;
    EngineOptions eager_opts = eo;
    eager_opts.cuda_graphs = false;
    Engine graphed(pg, nullptr, eo, gpu_ctx()), eager(pg, nullptr, eager_opts, gpu_ctx());
    auto expect_same = [&](const std::vector<std::vector<Completion>>& a,
                           const std::vector<std::vector<Completion>>& b, const char* what) {
      ASSERT_EQ(a.size(), b.size());
      for (size_t r = 0; r < a.size(); ++r)
        for (size_t k = 0; k < a[r].size(); ++k) {
          EXPECT_EQ(a[r][k].token_ids, b[r][k].token_ids) << what << " request " << r;
          EXPECT_EQ(a[r][k].logprobs, b[r][k].logprobs) << what << " request " << r;
        }
    };
    const auto want = generate(eager, reqs);
    const auto got = generate(graphed, reqs);
    expect_same(got, want, "first call");
    EXPECT_GT(graphed.stats().graph_captures, 0);
    EXPECT_GT(graphed.stats().graph_replays, 0);
    EXPECT_EQ(eager.stats().graph_replays, 0);
    const auto again = generate(graphed, reqs);  // the graphs of the first call replay
    expect_same(again, want, "second call");
    // A weight update in place (an optimizer step), then refresh_weights.
    Policy changed = cpu_policy(c, 22);
    if (dtype == DType::bf16) round_to_bf16(changed);
    Policy pg2 = gpu_copy(changed, dtype);
    gpu_ctx().copy_on_device(pg.params().flat(), pg2.params().flat());
    graphed.refresh_weights();
    eager.refresh_weights();
    expect_same(generate(graphed, reqs), generate(eager, reqs), "after the update");
  }
}

}  // namespace
}  // namespace r1kit::rollout
