// Whole models against transformers, and the dense models against finite differences:
//  - golden (Qwen2, Llama, DeepSeek-V3 with MLA, MoE and MTP): logits, loss (MTP log-probs and
//    loss) and the gradients of every kind of parameter, of checkpoints written by transformers
//    (tests/golden/make_policy_goldens.py, fixtures in tests/policy/data/golden/) on a packed batch
//    of three sequences; a checkpoint we save reloads with the same logits (and, with
//    R1KIT_GOLDEN_SAVE_DIR set, is kept for the script's --check, which loads it in transformers);
//  - f64 finite differences through Policy::forward/backward for every parameter kind: q/k/v (and
//    o) biases, tied and untied embeddings, norms, GQA/MQA projections, with entropy and a
//    temperature in the loss.
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <set>

#include "core/safetensors.h"
#include "policy/checkpoint.h"
#include "policy/policy.h"
#include "tests/common/test_util.h"

namespace r1kit::policy {
namespace {

using testing::cpu_ctx;
using testing::normalized_error;
using testing::to_double;

std::string golden_dir(const std::string& name) {
  return std::string(R1KIT_SOURCE_DIR) + "/tests/policy/data/golden/" + name;
}

struct Golden {
  SafetensorsFile ref;
  std::vector<std::vector<int32_t>> seqs;
};

Golden read_golden(const std::string& name) {
  Golden g{SafetensorsFile::open(golden_dir(name) + "/reference.safetensors"), {}};
  const auto tokens = to_double(g.ref.view("tokens"));
  const auto cu = to_double(g.ref.view("cu_seqlens"));
  for (size_t b = 0; b + 1 < cu.size(); ++b) {
    std::vector<int32_t> s;
    for (auto i = static_cast<size_t>(cu[b]); i < static_cast<size_t>(cu[b + 1]); ++i)
      s.push_back(static_cast<int32_t>(tokens[i]));
    g.seqs.push_back(s);
  }
  return g;
}

struct MeanLoss {
  Tensor targets, mask, dlogprob;  // (T) i32, (T) f32, (T) stats dtype: −mask / count
  double count = 0;
};

// Mean cross-entropy of the token `shift` ahead over every position that has one: shift 1 is the
// transformers loss, shift 2 the MTP depth-1 loss.
MeanLoss mean_loss_inputs(const std::vector<std::vector<int32_t>>& seqs, int64_t shift, DType stats,
                          Context& ctx) {
  MeanLoss m;
  m.targets = shifted_targets(seqs, shift, ctx.host_allocator());
  m.mask = shifted_mask(seqs, shift, ctx.host_allocator());
  const auto mk = to_double(m.mask);
  for (double v : mk) m.count += v;
  std::vector<double> d(mk.size());
  for (size_t i = 0; i < mk.size(); ++i) d[i] = -mk[i] / m.count;
  m.dlogprob = testing::tensor_from(ctx, {static_cast<int64_t>(d.size())}, stats, d, "dlogprob");
  return m;
}

double loss_of(const TensorView& logprob, const MeanLoss& m) {
  return testing::dot(logprob, m.dlogprob);
}

std::vector<double> masked(const std::vector<double>& v, const MeanLoss& m) {
  const auto mk = to_double(m.mask);
  std::vector<double> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = mk[i] * v[i];
  return out;
}

// Logits, loss (and the MTP depth-1 log-probs and loss when the fixture has them) and every stored
// gradient of a transformers fixture; then save, reload, same logits.
void check_golden_case(const std::string& name) {
  SCOPED_TRACE(name);
  Context& ctx = cpu_ctx();
  const Golden g = read_golden(name);
  const Checkpoint ck = Checkpoint::open(golden_dir(name));
  ModelConfig config = ck.config();
  // transformers 5.24 fills the experts of masked groups with −inf (kernels/moe.h).
  config.routing.masked_fill = kernels::MoeGroupMaskFill::neg_inf;
  const bool with_mtp = g.ref.has("mtp_logprob");
  PolicyOptions po;
  po.mtp_loss_weight = 0.3;  // the script's MTP_WEIGHT (λ), D = 1
  Policy p = Policy::load(ck, config, ctx, po);
  const TokenBatch batch = TokenBatch::from_sequences(g.seqs, ctx);
  const MeanLoss m = mean_loss_inputs(g.seqs, 1, DType::f32, ctx);
  const MeanLoss m2 = mean_loss_inputs(g.seqs, 2, DType::f32, ctx);
  const Tensor mtp_inputs = shifted_targets(g.seqs, 1, ctx.host_allocator());
  ForwardOptions o;
  o.targets = m.targets;
  o.logits = true;
  if (with_mtp) {
    o.mtp_inputs = {mtp_inputs};
    o.mtp_targets = {m2.targets};
  }
  ForwardContext f = p.forward(batch, o, ctx);

  const auto ref_logits = to_double(g.ref.view("logits"));
  EXPECT_LT(normalized_error(to_double(f.logits), ref_logits), 1e-4);
  const double ref_loss = to_double(g.ref.view("loss"))[0];
  EXPECT_NEAR(loss_of(f.logprob, m), ref_loss, 1e-5 * ref_loss);
  HeadGrads hg;
  hg.dlogprob = m.dlogprob;
  if (with_mtp) {
    ASSERT_EQ(f.mtp.size(), 1u);
    EXPECT_LT(normalized_error(masked(to_double(f.mtp[0].logprob), m2),
                               to_double(g.ref.view("mtp_logprob"))),
              1e-4);
    const double ref_mtp = to_double(g.ref.view("mtp_loss"))[0];
    EXPECT_NEAR(loss_of(f.mtp[0].logprob, m2), ref_mtp, 1e-5 * ref_mtp);
    hg.mtp_dlogprob = {m2.dlogprob};
  }

  p.zero_grad(ctx);
  p.backward(f, hg, ctx);
  // The reference holds every parameter outside the layers and, per tensor of a layer, the first
  // layer that has it: compare those, and check that every kind of parameter was covered.
  int compared = 0;
  std::set<std::string> kinds_covered;
  for (const auto& e : p.params().entries()) {
    const std::string key = "grad." + e.name;
    const std::string kind = e.layer < 0 ? e.name : e.name.substr(e.name.find('.', 13) + 1);
    if (!g.ref.has(key)) {
      EXPECT_TRUE(kinds_covered.count(kind)) << "no transformers gradient for " << e.name;
      continue;
    }
    kinds_covered.insert(kind);
    const double err =
        normalized_error(to_double(p.grads().get(e.name)), to_double(g.ref.view(key)));
    EXPECT_LT(err, 1e-3) << e.name;
    ++compared;
  }
  size_t grads_in_ref = 0;
  for (const auto& n : g.ref.names()) grads_in_ref += n.rfind("grad.", 0) == 0;
  EXPECT_EQ(grads_in_ref, static_cast<size_t>(compared));

  // Save, reload: identical logits. The saved directory is kept for the script's --check when
  // R1KIT_GOLDEN_SAVE_DIR is set.
  testing::ScratchDir scratch;
  const char* keep = std::getenv("R1KIT_GOLDEN_SAVE_DIR");
  const std::string out = keep ? std::string(keep) + "/" + name : scratch.file(name);
  SaveOptions so;
  so.dtype = DType::f32;
  so.overwrite = true;
  p.save(out, ctx, so);
  const Checkpoint saved = Checkpoint::open(out);
  EXPECT_TRUE(saved.check().complete());
  EXPECT_TRUE(saved.check().unexpected.empty());
  Policy q = Policy::load(saved, config, ctx);
  ForwardOptions lo = o;
  lo.for_backward = false;
  const ForwardContext fq = q.forward(batch, lo, ctx);
  EXPECT_EQ(to_double(fq.logits), to_double(f.logits));
  if (with_mtp) {
    EXPECT_EQ(to_double(fq.mtp[0].logprob), to_double(f.mtp[0].logprob));
  }
}

TEST(DenseGolden, Qwen2WithBiasesMatchesTransformers) {
  check_golden_case("qwen2");
}
TEST(DenseGolden, LlamaTiedMqaHeadDimMatchesTransformers) {
  check_golden_case("llama_tied");
}
TEST(DenseGolden, LlamaUntiedBiasesLlama3RopeMatchesTransformers) {
  check_golden_case("llama_untied");
}
TEST(DeepseekV3Golden, QloraGroupLimitedYarnDenseLayerAndMtpMatchTransformers) {
  check_golden_case("dsv3_qlora");
}
TEST(DeepseekV3Golden, PlainQprojBiasesTwoSharedExpertsMatchTransformers) {
  check_golden_case("dsv3_noqlora");
}

// ---- Finite differences in f64
// ---------------------------------------------------------------------

ModelConfig tiny_dense(ModelArch arch, bool tied, bool bias, int64_t kv_heads, int64_t head_dim) {
  ModelConfig c;
  c.arch = arch;
  c.vocab_size = 11;
  c.hidden_size = 8;
  c.intermediate_size = 12;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = kv_heads;
  c.head_dim = head_dim;
  c.attention_bias = arch == ModelArch::qwen2 || bias;
  c.rms_norm_eps = 1e-5;
  c.rope.dim = head_dim;
  c.rope.theta = 100.0;
  c.rope.layout = kernels::RopeLayout::half_split;
  c.max_position_embeddings = 32;
  c.tie_word_embeddings = tied;
  c.validate("tiny_dense");
  return c;
}

// Every parameter uniform in a kind-dependent range, so no gradient vanishes by symmetry.
void randomize(Policy& p, uint64_t seed) {
  std::mt19937_64 rng(seed);
  for (const auto& e : p.params().entries()) {
    const TensorView v = p.params().get(e.name);
    std::uniform_real_distribution<double> d(-0.6, 0.6);
    std::vector<double> vals(static_cast<size_t>(v.numel()));
    for (auto& x : vals) x = (e.kind == ParamKind::norm ? 1.0 : 0.0) + d(rng);
    testing::fill_from_double(v, vals);
  }
}

void check_finite_differences(const ModelConfig& c, bool recompute) {
  Context& ctx = cpu_ctx();
  PolicyOptions po;
  po.dtype = DType::f64;
  po.recompute = recompute;
  po.logprob_chunk_tokens = 3;  // several chunks
  Policy p = Policy::init(c, 5, ctx, po);
  randomize(p, 17);
  const std::vector<std::vector<int32_t>> seqs = {{1, 4, 7, 2, 9}, {3, 10}, {0, 5, 5, 8}};
  const TokenBatch batch = TokenBatch::from_sequences(seqs, ctx);
  const Tensor targets = shifted_targets(seqs, 1, ctx.host_allocator());
  std::mt19937_64 rng(3);
  const int64_t T = batch.num_tokens();
  const Tensor g = testing::random_tensor(ctx, {T}, DType::f64, rng, -1, 1, "dlogprob");
  const Tensor ge = testing::random_tensor(ctx, {T}, DType::f64, rng, -1, 1, "dentropy");
  ForwardOptions o;
  o.targets = targets;
  o.entropy = true;
  o.temperature = 0.8;
  // L = Σ g·logprob + Σ ge·entropy
  auto loss = [&] {
    ForwardOptions lo = o;
    lo.for_backward = false;
    const ForwardContext f = p.forward(batch, lo, ctx);
    return testing::dot(f.logprob, g) + testing::dot(f.entropy, ge);
  };
  p.zero_grad(ctx);
  ForwardContext f = p.forward(batch, o, ctx);
  p.backward(f, g, ctx, ge);
  std::vector<std::pair<TensorView, TensorView>> pairs;
  for (const auto& e : p.params().entries())
    pairs.push_back({p.params().get(e.name), p.grads().get(e.name)});
  testing::GradCheckOptions go;
  go.max_elements = 24;
  go.atol = 1e-8;
  go.rtol = 1e-6;
  testing::expect_gradients_match(loss, pairs, go);
}

TEST(DenseGradients, Qwen2BiasesGqaUntiedMatchFiniteDifferences) {
  check_finite_differences(tiny_dense(ModelArch::qwen2, false, true, 2, 2), false);
}

TEST(DenseGradients, LlamaTiedMqaWiderHeadsMatchFiniteDifferences) {
  check_finite_differences(tiny_dense(ModelArch::llama, true, false, 1, 4), false);
}

TEST(DenseGradients, LlamaAttentionBiasWithRecomputeMatchesFiniteDifferences) {
  check_finite_differences(tiny_dense(ModelArch::llama, false, true, 4, 2), true);
}

}  // namespace
}  // namespace r1kit::policy
