// The Policy API: f64 finite differences through the whole DeepSeek-V3 model (MLA with and
// without q-LoRA, MoE with n_group > 1, the balance loss, MTP with its loss weight, entropy and
// temperature); activation recompute gives the same gradients; log-probs agree with the logits
// and do not depend on the other sequences of a batch; gradient accumulation; the parameter
// visitor; AdamW on f32 parameters and on bf16 parameters with fp32 masters; router replay; expert
// loads and the aux-loss-free bias update; init and save/load; errors.
#include "policy/policy.h"

#include <cmath>
#include <cstring>
#include <random>

#include "kernels/elementwise.h"
#include "policy/presets.h"
#include "tests/common/test_util.h"

namespace r1kit::policy {
namespace {

using testing::cpu_ctx;
using testing::expect_error_contains;
using testing::normalized_error;
using testing::ScratchDir;
using testing::to_double;

const std::vector<std::vector<int32_t>> kSeqs = {{1, 4, 7, 2, 9, 3}, {3, 10}, {0, 5, 5, 8, 11}};

// A tiny DeepSeek-V3: layer 0 dense, layer 1 MoE (4 experts in 2 groups, 1 kept, top-2), one MTP
// module (MoE block), YaRN from the preset.
ModelConfig tiny_v3(bool q_lora, bool bias) {
  ModelConfig c = preset_config(ModelArch::deepseek_v3, "tiny");
  c.vocab_size = 20;
  c.hidden_size = 16;
  c.intermediate_size = 20;
  c.num_hidden_layers = 2;
  c.num_attention_heads = c.num_key_value_heads = 2;
  c.q_lora_rank = q_lora ? 8 : 0;
  c.kv_lora_rank = 8;
  c.qk_nope_head_dim = 4;
  c.qk_rope_head_dim = c.head_dim = c.rope.dim = 4;
  c.v_head_dim = 6;
  c.attention_bias = bias;
  c.n_routed_experts = c.routing.n_routed_experts = 4;
  c.n_shared_experts = 1;
  c.moe_intermediate_size = 6;
  c.first_k_dense_replace = 1;
  c.routing.num_experts_per_tok = 2;
  c.routing.n_group = 2;
  c.routing.topk_group = 1;
  c.num_nextn_predict_layers = 1;
  c.validate("tiny_v3");
  return c;
}

// Every tensor uniform in a kind-dependent range (norms around 1, correction biases small).
void randomize(Policy& p, uint64_t seed) {
  std::mt19937_64 rng(seed);
  auto fill = [&](const ModelParams& arena, double lo, double hi) {
    for (const auto& e : arena.entries()) {
      const TensorView v = arena.get(e.name);
      std::uniform_real_distribution<double> d(lo, hi);
      std::vector<double> vals(static_cast<size_t>(v.numel()));
      for (auto& x : vals) x = (e.kind == ParamKind::norm ? 1.0 : 0.0) + d(rng);
      testing::fill_from_double(v, vals);
    }
  };
  fill(p.params(), -0.6, 0.6);
  fill(p.buffers(), -0.1, 0.1);
}

struct Inputs {
  TokenBatch batch;
  Tensor targets, mtp_inputs, mtp_targets;
  ForwardOptions options(bool mtp) const {
    ForwardOptions o;
    o.targets = targets;
    if (mtp) {
      o.mtp_inputs = {mtp_inputs};
      o.mtp_targets = {mtp_targets};
    }
    return o;
  }
};

Inputs make_inputs(Context& ctx, const std::vector<std::vector<int32_t>>& seqs = kSeqs) {
  Inputs in;
  in.batch = TokenBatch::from_sequences(seqs, ctx);
  in.targets = shifted_targets(seqs, 1, ctx.host_allocator());
  in.mtp_inputs = shifted_targets(seqs, 1, ctx.host_allocator());
  in.mtp_targets = shifted_targets(seqs, 2, ctx.host_allocator());
  return in;
}

std::vector<double> grads_of(const Policy& p) {
  return to_double(p.grads().flat());
}

// ---- Finite differences through the whole DeepSeek-V3 model
// -----------------------------------------

void check_v3_finite_differences(const ModelConfig& c, bool recompute) {
  Context& ctx = cpu_ctx();
  PolicyOptions po;
  po.dtype = DType::f64;
  po.recompute = recompute;
  po.logprob_chunk_tokens = 4;
  po.mtp_loss_weight = 0.3;
  po.balance_loss_alpha = 0.05;
  Policy p = Policy::init(c, 5, ctx, po);
  randomize(p, 23);
  const Inputs in = make_inputs(ctx);
  std::mt19937_64 rng(3);
  const int64_t T = in.batch.num_tokens();
  const Tensor g = testing::random_tensor(ctx, {T}, DType::f64, rng, -1, 1, "dlogprob");
  const Tensor ge = testing::random_tensor(ctx, {T}, DType::f64, rng, -1, 1, "dentropy");
  const Tensor gm = testing::random_tensor(ctx, {T}, DType::f64, rng, -1, 1, "dmtp");
  ForwardOptions o = in.options(true);
  o.entropy = true;
  o.temperature = 0.9;
  // L = Σ g·logprob + Σ ge·entropy + λ/D · Σ gm·mtp_logprob + balance loss
  auto loss = [&] {
    ForwardOptions lo = o;
    lo.for_backward = false;
    const ForwardContext f = p.forward(in.batch, lo, ctx);
    return testing::dot(f.logprob, g) + testing::dot(f.entropy, ge) +
           0.3 * testing::dot(f.mtp[0].logprob, gm) + f.balance_loss;
  };
  p.zero_grad(ctx);
  ForwardContext f = p.forward(in.batch, o, ctx);
  EXPECT_GT(f.balance_loss, 0);
  ASSERT_EQ(f.moe.size(), 2u);  // layer 1 and the MTP block
  HeadGrads hg;
  hg.dlogprob = g;
  hg.dentropy = ge;
  hg.mtp_dlogprob = {gm};
  p.backward(f, hg, ctx);
  std::vector<std::pair<TensorView, TensorView>> pairs;
  for (const auto& e : p.params().entries())
    pairs.push_back({p.params().get(e.name), p.grads().get(e.name)});
  testing::GradCheckOptions go;
  go.max_elements = 12;
  go.atol = 1e-8;
  go.rtol = 1e-6;
  testing::expect_gradients_match(loss, pairs, go);
}

TEST(PolicyGradients, DeepseekV3QloraMoeMtpMatchFiniteDifferences) {
  check_v3_finite_differences(tiny_v3(true, false), false);
}

TEST(PolicyGradients, DeepseekV3PlainQprojBiasesWithRecomputeMatchFiniteDifferences) {
  check_v3_finite_differences(tiny_v3(false, true), true);
}

// ---- Recompute, consistency, accumulation
// -------------------------------------------------------

std::vector<double> gradients_with(const ModelConfig& c, bool recompute, bool mtp) {
  Context& ctx = cpu_ctx();
  PolicyOptions po;
  po.recompute = recompute;
  po.balance_loss_alpha = c.is_moe() ? 0.01 : 0.0;
  Policy p = Policy::init(c, 3, ctx, po);
  randomize(p, 4);
  const Inputs in = make_inputs(ctx);
  ForwardOptions o = in.options(mtp);
  ForwardContext f = p.forward(in.batch, o, ctx);
  if (recompute) {
    for (const LayerSaved& s : f.layers) {
      EXPECT_TRUE(s.x.defined());
      EXPECT_FALSE(s.complete);
      EXPECT_FALSE(s.ln1.defined());
    }
  }
  std::mt19937_64 rng(9);
  const Tensor g = testing::random_tensor(ctx, {in.batch.num_tokens()}, DType::f32, rng);
  HeadGrads hg;
  hg.dlogprob = g;
  if (mtp) hg.mtp_dlogprob = {g.view()};
  p.zero_grad(ctx);
  p.backward(f, hg, ctx);
  for (const LayerSaved& s : f.layers) EXPECT_FALSE(s.x.defined());  // freed as it went
  return grads_of(p);
}

TEST(Policy, RecomputeGivesTheSameGradients) {
  const ModelConfig llama = preset_config(ModelArch::llama, "tiny");
  EXPECT_EQ(gradients_with(llama, true, false), gradients_with(llama, false, false));
  const ModelConfig v3 = tiny_v3(true, false);
  EXPECT_EQ(gradients_with(v3, true, true), gradients_with(v3, false, true));
}

TEST(Policy, LogprobsAgreeWithLogitsAndIgnoreTheRestOfTheBatch) {
  Context& ctx = cpu_ctx();
  for (const ModelConfig& c : {preset_config(ModelArch::qwen2, "tiny"), tiny_v3(true, true)}) {
    SCOPED_TRACE(std::string(model_arch_name(c.arch)));
    Policy p = Policy::init(c, 8, ctx);
    randomize(p, 2);
    const Inputs in = make_inputs(ctx);
    ForwardOptions o = in.options(false);
    o.logits = true;
    o.entropy = true;
    o.temperature = 0.7;
    o.for_backward = false;
    const ForwardContext f = p.forward(in.batch, o, ctx);
    const int64_t T = in.batch.num_tokens(), V = c.vocab_size;
    const auto logits = to_double(f.logits), lp = to_double(f.logprob), ent = to_double(f.entropy);
    const auto tg = to_double(in.targets);
    std::vector<double> want_lp(static_cast<size_t>(T)), want_ent(static_cast<size_t>(T));
    for (int64_t t = 0; t < T; ++t) {
      double mx = -1e300, z = 0, ez = 0;
      for (int64_t v = 0; v < V; ++v) mx = std::max(mx, logits[t * V + v] / 0.7);
      for (int64_t v = 0; v < V; ++v) z += std::exp(logits[t * V + v] / 0.7 - mx);
      const double lse = mx + std::log(z);
      for (int64_t v = 0; v < V; ++v) {
        const double lpv = logits[t * V + v] / 0.7 - lse;
        ez -= std::exp(lpv) * lpv;
      }
      want_lp[t] = logits[t * V + static_cast<int64_t>(tg[t])] / 0.7 - lse;
      want_ent[t] = ez;
    }
    EXPECT_LT(normalized_error(lp, want_lp), 1e-6);
    EXPECT_LT(normalized_error(ent, want_ent), 1e-6);

    // The last sequence alone gives the same log-probs as inside the batch.
    const Inputs alone = make_inputs(ctx, {kSeqs[2]});
    ForwardOptions oa = alone.options(false);
    oa.for_backward = false;
    oa.temperature = 0.7;
    const auto lp_alone = to_double(p.forward(alone.batch, oa, ctx).logprob);
    const std::vector<double> tail(lp.end() - static_cast<int64_t>(kSeqs[2].size()), lp.end());
    EXPECT_LT(normalized_error(lp_alone, tail), 1e-6);
  }
}

TEST(Policy, GradientsAccumulateUntilZeroGrad) {
  Context& ctx = cpu_ctx();
  Policy p = Policy::init(preset_config(ModelArch::llama, "tiny"), 1, ctx);
  randomize(p, 6);
  const Inputs in = make_inputs(ctx);
  std::mt19937_64 rng(1);
  const Tensor g = testing::random_tensor(ctx, {in.batch.num_tokens()}, DType::f32, rng);
  p.zero_grad(ctx);
  ForwardContext f1 = p.forward(in.batch, in.options(false), ctx);
  p.backward(f1, g, ctx);
  const auto once = grads_of(p);
  ForwardContext f2 = p.forward(in.batch, in.options(false), ctx);
  p.backward(f2, g, ctx);
  auto twice = grads_of(p);
  for (auto& v : twice) v /= 2;
  EXPECT_LT(normalized_error(twice, once), 1e-6);
  p.zero_grad(ctx);
  for (double v : grads_of(p)) ASSERT_EQ(v, 0.0);
}

TEST(Policy, ParameterVisitorSeesEveryParameterAndItsGradient) {
  Context& ctx = cpu_ctx();
  const ModelConfig c = tiny_v3(true, false);
  Policy p = Policy::init(c, 1, ctx);
  int n = 0;
  p.for_each_parameter([&](const std::string& name, const TensorView& w, const TensorView& g) {
    EXPECT_EQ(name, p.params().entries()[static_cast<size_t>(n)].name);
    EXPECT_TRUE(w.defined());
    EXPECT_FALSE(g.defined());
    EXPECT_EQ(name.find("e_score_correction_bias"), std::string::npos);
    ++n;
  });
  EXPECT_EQ(static_cast<size_t>(n), p.params().size());
  EXPECT_EQ(p.buffers().size(), 2u);  // layer 1 and the MTP block
  p.zero_grad(ctx);
  p.for_each_parameter([&](const std::string&, const TensorView& w, const TensorView& g) {
    ASSERT_TRUE(g.defined());
    EXPECT_EQ(g.dims(), w.dims());
  });
}

// ---- AdamW
// ----------------------------------------------------------------------------------------

TEST(Policy, AdamWStepOnF32ParametersFollowsTheFirstStepFormula) {
  Context& ctx = cpu_ctx();
  Policy p = Policy::init(preset_config(ModelArch::qwen2, "tiny"), 1, ctx);
  const Inputs in = make_inputs(ctx);
  std::mt19937_64 rng(5);
  const Tensor g = testing::random_tensor(ctx, {in.batch.num_tokens()}, DType::f32, rng);
  p.zero_grad(ctx);
  ForwardContext f = p.forward(in.batch, in.options(false), ctx);
  p.backward(f, g, ctx);
  const auto before = to_double(p.params().flat()), grad = grads_of(p);
  kernels::AdamWParams hp;
  hp.lr = 1e-2;
  hp.weight_decay = 0.1;
  hp.step = 77;  // ignored: the policy counts
  p.adamw_step(hp, ctx);
  EXPECT_EQ(p.step(), 1);
  const auto after = to_double(p.params().flat());
  // Step 1: m̂ = g, v̂ = g², so p ← p·(1 − lr·wd) − lr·g / (|g| + eps).
  double worst = 0;
  for (size_t i = 0; i < after.size(); ++i) {
    const double want =
        before[i] * (1 - hp.lr * hp.weight_decay) - hp.lr * grad[i] / (std::fabs(grad[i]) + hp.eps);
    worst = std::max(worst, std::fabs(after[i] - want));
  }
  EXPECT_LT(worst, 1e-6);
  p.adamw_step(hp, ctx);
  EXPECT_EQ(p.step(), 2);
}

TEST(Policy, AdamWOnBf16ParametersKeepsFp32Masters) {
  Context& ctx = cpu_ctx();
  const ModelConfig c = preset_config(ModelArch::llama, "tiny");
  PolicyOptions po;
  po.dtype = DType::bf16;
  Policy p = Policy::init(c, 1, ctx, po);
  Policy ref = Policy::init(c, 1, ctx);  // f32 with the same initial values (bf16-rounded below)
  kernels::cast(ref.params().flat(), p.params().flat(), ctx);
  const Inputs in = make_inputs(ctx);
  std::mt19937_64 rng(5);
  const Tensor g = testing::random_tensor(ctx, {in.batch.num_tokens()}, DType::f32, rng);
  p.zero_grad(ctx);
  ForwardContext f = p.forward(in.batch, in.options(false), ctx);
  p.backward(f, g, ctx);
  EXPECT_EQ(p.grads().dtype(), DType::bf16);
  kernels::AdamWParams hp;
  hp.lr = 1e-3;
  for (int s = 0; s < 3; ++s) p.adamw_step(hp, ctx);
  ASSERT_TRUE(p.masters().defined());
  EXPECT_EQ(p.masters().dtype(), DType::f32);
  // The working copy is the masters rounded to bf16, and the masters moved by less than a bf16
  // rounding step could express (3 steps of lr 1e-3 on values ~0.02).
  Tensor rounded = ctx.empty(p.params().flat().dims(), DType::bf16, "rounded");
  kernels::cast(rounded, p.masters().flat(), ctx);
  EXPECT_EQ(std::memcmp(rounded.data(), p.params().flat().data, rounded.nbytes()), 0);
  const auto m = to_double(p.masters().flat()), start = to_double(ref.params().flat());
  double moved = 0;
  for (size_t i = 0; i < m.size(); ++i) moved = std::max(moved, std::fabs(m[i] - start[i]));
  EXPECT_GT(moved, 1e-4);
  EXPECT_LT(moved, 3.5e-3);
  // Saving writes the masters.
  ScratchDir dir;
  SaveOptions so;
  so.dtype = DType::f32;
  p.save(dir.file("m"), ctx, so);
  const Policy back = Policy::load(dir.file("m"), ctx);
  EXPECT_EQ(to_double(back.params().flat()), m);
}

// ---- MoE: router replay, expert loads, bias update
// ---------------------------------------------------

TEST(Policy, RouterReplayOfTheOwnChoiceReproducesTheForward) {
  Context& ctx = cpu_ctx();
  const ModelConfig c = tiny_v3(true, false);
  Policy p = Policy::init(c, 2, ctx);
  randomize(p, 12);
  const Inputs in = make_inputs(ctx);
  ForwardContext f = p.forward(in.batch, in.options(false), ctx);
  ASSERT_EQ(f.moe.size(), 1u);
  EXPECT_EQ(f.moe[0].layer, 1);
  const int64_t T = in.batch.num_tokens(), K = c.num_experts_per_tok();
  EXPECT_EQ(f.moe[0].topk_idx.view().dims(), (Shape{T, K}));
  std::vector<TensorView> replay(2);
  replay[1] = f.moe[0].topk_idx;
  ForwardOptions o = in.options(false);
  o.replay_topk_idx = replay;
  ForwardContext fr = p.forward(in.batch, o, ctx);
  EXPECT_EQ(to_double(fr.logprob), to_double(f.logprob));
  EXPECT_EQ(to_double(fr.moe[0].topk_idx), to_double(f.moe[0].topk_idx));
  std::mt19937_64 rng(2);
  const Tensor g = testing::random_tensor(ctx, {T}, DType::f32, rng);
  p.zero_grad(ctx);
  p.backward(f, g, ctx);
  const auto own = grads_of(p);
  p.zero_grad(ctx);
  p.backward(fr, g, ctx);
  EXPECT_LT(normalized_error(grads_of(p), own), 1e-12);

  // Another choice for the first token changes its own log-prob (and the sequence after it).
  Tensor other = ctx.empty({T, K}, DType::i32, "replay");
  ctx.copy(other, f.moe[0].topk_idx);
  const int32_t a = other.ptr<int32_t>()[0], b = other.ptr<int32_t>()[1];
  int32_t e1 = 0, e2 = 1;
  while (e1 == a || e1 == b) ++e1;
  e2 = e1 + 1;
  while (e2 == a || e2 == b) ++e2;
  ASSERT_LT(e2, 4);
  other.ptr<int32_t>()[0] = e1;
  other.ptr<int32_t>()[1] = e2;
  replay[1] = other;
  o.replay_topk_idx = replay;
  o.for_backward = false;
  const auto changed = to_double(p.forward(in.batch, o, ctx).logprob);
  EXPECT_NE(changed[0], to_double(f.logprob)[0]);
}

TEST(Policy, ExpertLoadsFeedTheAuxLossFreeBiasUpdate) {
  Context& ctx = cpu_ctx();
  const ModelConfig c = tiny_v3(true, false);
  Policy p = Policy::init(c, 2, ctx);
  randomize(p, 12);
  const Inputs in = make_inputs(ctx);
  const int64_t T = in.batch.num_tokens(), K = c.num_experts_per_tok();
  ForwardOptions eval = in.options(true);
  eval.for_backward = false;
  p.forward(in.batch, eval, ctx);
  EXPECT_TRUE(p.expert_load().empty());  // inference forwards do not count
  p.forward(in.batch, in.options(true), ctx);
  p.forward(in.batch, in.options(false), ctx);
  ASSERT_EQ(p.expert_load().size(), 2u);
  const auto load1 = p.expert_load().at(1), load2 = p.expert_load().at(2);
  int64_t sum1 = 0, sum2 = 0;
  for (auto v : load1) sum1 += v;
  for (auto v : load2) sum2 += v;
  EXPECT_EQ(sum1, 2 * T * K);  // two training forwards
  EXPECT_EQ(sum2, T * K);      // the MTP block ran once
  const std::string bias_name = "model.layers.1.mlp.gate.e_score_correction_bias";
  const auto before = to_double(p.buffers().get(bias_name));
  p.update_expert_bias(0.01, ctx);
  EXPECT_TRUE(p.expert_load().empty());
  const auto after = to_double(p.buffers().get(bias_name));
  const double mean = static_cast<double>(sum1) / 4;
  for (size_t e = 0; e < 4; ++e) {
    const double want = load1[e] < mean ? 0.01 : load1[e] > mean ? -0.01 : 0.0;
    EXPECT_NEAR(after[e] - before[e], want, 1e-7) << e;
  }
}

// ---- Init, save, load, errors
// ---------------------------------------------------------------------

TEST(Policy, InitEqualsLoadingInitCheckpointAndSaveLoadKeepsLogprobs) {
  Context& ctx = cpu_ctx();
  for (ModelArch arch :
       {ModelArch::deepseek_v3, ModelArch::deepseek_v2, ModelArch::qwen2, ModelArch::llama}) {
    SCOPED_TRACE(std::string(model_arch_name(arch)));
    const ModelConfig c = preset_config(arch, "tiny");
    ScratchDir dir;
    InitOptions io;
    io.seed = 4;
    io.dtype = DType::f32;
    init_checkpoint(dir.file("init"), c, io);
    const Policy loaded = Policy::load(dir.file("init"), ctx);
    Policy inited = Policy::init(c, 4, ctx);
    EXPECT_EQ(to_double(loaded.params().flat()), to_double(inited.params().flat()));
    EXPECT_EQ(to_double(loaded.buffers().flat()), to_double(inited.buffers().flat()));
    randomize(inited, 3);
    const Inputs in = make_inputs(ctx);
    ForwardOptions o = in.options(c.num_mtp_modules() > 0);
    o.for_backward = false;
    const auto lp = to_double(inited.forward(in.batch, o, ctx).logprob);
    SaveOptions so;
    so.dtype = DType::f32;
    inited.save(dir.file("saved"), ctx, so);
    Policy back = Policy::load(dir.file("saved"), ctx);
    EXPECT_EQ(to_double(back.forward(in.batch, o, ctx).logprob), lp);
  }
}

TEST(Policy, MisuseGivesClearErrors) {
  Context& ctx = cpu_ctx();
  Policy p = Policy::init(preset_config(ModelArch::llama, "tiny"), 1, ctx);
  const Inputs in = make_inputs(ctx);
  const int64_t T = in.batch.num_tokens();
  expect_error_contains([&] { p.forward(in.batch, ForwardOptions{}, ctx); },
                        {"needs targets", "logits"});
  ForwardOptions bad;
  bad.targets = in.targets.view().slice(0, T - 1);
  expect_error_contains([&] { p.forward(in.batch, bad, ctx); },
                        {"targets", fmt::format("({}) i32", T)});
  const Tensor g = ctx.zeros({T}, DType::f32, "g");
  ForwardContext f = p.forward(in.batch, in.options(false), ctx);
  p.backward(f, g, ctx);
  expect_error_contains([&] { p.backward(f, g, ctx); }, {"for_backward = true", "consumed"});
  ForwardContext f2 = p.forward(in.batch, in.options(false), ctx);
  expect_error_contains([&] { p.backward(f2, g, ctx, g); }, {"dentropy", "entropy"});
  expect_error_contains([&] { p.forward(in.batch, in.options(true), ctx); },
                        {"1 MTP depths asked, the model has 0"});
  ForwardOptions replay = in.options(false);
  replay.replay_topk_idx = {TensorView{}};
  expect_error_contains([&] { p.forward(in.batch, replay, ctx); },
                        {"replay_topk_idx has 1 entries", "(2)"});
  replay.replay_topk_idx = {in.targets.view(), TensorView{}};
  expect_error_contains([&] { p.forward(in.batch, replay, ctx); },
                        {"replay_topk_idx[0] given for a dense layer"});
  ScratchDir dir;
  InitOptions io;
  init_checkpoint(dir.file("q"), preset_config(ModelArch::qwen2, "tiny"), io);
  const Checkpoint ck = Checkpoint::open(dir.file("q"));
  expect_error_contains([&] { Policy::load(ck, preset_config(ModelArch::llama, "tiny"), ctx); },
                        {"describes other tensors"});
  PolicyOptions po;
  po.dtype = DType::f16;
  expect_error_contains([&] { Policy::init(preset_config(ModelArch::llama, "tiny"), 1, ctx, po); },
                        {"working dtype f16"});
}

TEST(Policy, ShiftedTargetsStayInsideEachSequence) {
  Context& ctx = cpu_ctx();
  const std::vector<std::vector<int32_t>> seqs = {{5, 6, 7}, {8}, {9, 10}};
  EXPECT_EQ(to_double(shifted_targets(seqs, 1, ctx.host_allocator())),
            (std::vector<double>{6, 7, 0, 0, 10, 0}));
  EXPECT_EQ(to_double(shifted_targets(seqs, 2, ctx.host_allocator())),
            (std::vector<double>{7, 0, 0, 0, 0, 0}));
  EXPECT_EQ(to_double(shifted_mask(seqs, 1, ctx.host_allocator())),
            (std::vector<double>{1, 1, 0, 0, 1, 0}));
}

}  // namespace
}  // namespace r1kit::policy
