// MLA layer (policy/mla.h):
//  - f64 finite differences for the input and every weight, with and without q-LoRA, with biases;
//  - golden: transformers' DeepseekV3Attention on packed sequences with random positions and YaRN
//    (tests/golden/make_layer_goldens.py, tests/policy/data/golden_layers/mla_*), forward and every
//    gradient, in f64 and f32;
//  - the absorbed decode form equals the training form's output for the newest token (prefill +
//    one step, and token-by-token decoding from an empty cache), f64 and f32.
#include "policy/mla.h"

#include <map>
#include <numeric>
#include <random>

#include "core/json.h"
#include "core/safetensors.h"
#include "kernels/elementwise.h"
#include "policy/presets.h"
#include "tests/common/test_util.h"

namespace r1kit::policy {
namespace {

using testing::cpu_ctx;
using testing::normalized_error;
using testing::to_double;

std::string layer_golden(const std::string& file) {
  return std::string(R1KIT_SOURCE_DIR) + "/tests/policy/data/golden_layers/" + file;
}

// A packed batch of sequences of the given lengths (dummy tokens) with the given positions (all
// tokens packed), or 0.. per sequence when positions is empty.
TokenBatch make_batch(const std::vector<int64_t>& lengths, const std::vector<int32_t>& positions,
                      Context& ctx) {
  std::vector<std::vector<int32_t>> seqs;
  for (int64_t n : lengths) seqs.emplace_back(static_cast<size_t>(n), 3);
  TokenBatch b = TokenBatch::from_sequences(seqs, ctx);
  if (!positions.empty()) {
    EXPECT_EQ(static_cast<int64_t>(positions.size()), b.num_tokens());
    std::copy(positions.begin(), positions.end(), b.positions.ptr<int32_t>());
    b.max_position_ = *std::max_element(positions.begin(), positions.end()) + 1;
  }
  return b;
}

// RoPE tables in the activations' precision (f64 for the gradient checks).
RopeTables tables(const kernels::RopeConfig& rope, int64_t rows, DType dtype, Context& ctx) {
  if (dtype != DType::f64) return RopeTables::make(rope, rows, ctx);
  RopeTables r;
  r.config = rope;
  r.cos = ctx.empty({rows, rope.dim / 2}, DType::f64, "rope.cos");
  r.sin = ctx.empty({rows, rope.dim / 2}, DType::f64, "rope.sin");
  std::vector<double> pos(static_cast<size_t>(rows));
  std::iota(pos.begin(), pos.end(), 0.0);
  Tensor p = testing::tensor_from(ctx, {rows}, DType::i32, pos, "positions");
  kernels::rope_tables(r.cos, r.sin, p, rope, ctx);
  return r;
}

// Named weights of one layer (and their gradients), looked up as the model does.
struct Params {
  std::map<std::string, Tensor> t;
  std::function<TensorView(const std::string&)> lookup() const {
    return [this](const std::string& n) {
      auto it = t.find(n);
      R1_CHECK(it != t.end(), "no tensor {}", n);
      return it->second.view();
    };
  }
};

// Every MLA tensor the config has, random (norm weights around 1).
Params random_mla(const ModelConfig& c, DType dtype, std::mt19937_64& rng, Context& ctx) {
  const int64_t C = c.hidden_size, H = c.num_attention_heads, dqk = c.qk_head_dim();
  const int64_t rkv = c.kv_lora_rank, dr = c.qk_rope_head_dim, dn = c.qk_nope_head_dim;
  const int64_t dv = c.v_head_dim, rq = c.q_lora_rank;
  std::map<std::string, Shape> shapes;
  if (rq > 0) {
    shapes["q_a_proj.weight"] = {rq, C};
    shapes["q_a_layernorm.weight"] = {rq};
    shapes["q_b_proj.weight"] = {H * dqk, rq};
    if (c.attention_bias) shapes["q_a_proj.bias"] = {rq};
  } else {
    shapes["q_proj.weight"] = {H * dqk, C};
  }
  shapes["kv_a_proj_with_mqa.weight"] = {rkv + dr, C};
  shapes["kv_a_layernorm.weight"] = {rkv};
  shapes["kv_b_proj.weight"] = {H * (dn + dv), rkv};
  shapes["o_proj.weight"] = {C, H * dv};
  if (c.attention_bias) {
    shapes["kv_a_proj_with_mqa.bias"] = {rkv + dr};
    shapes["o_proj.bias"] = {C};
  }
  Params p;
  for (const auto& [name, shape] : shapes) {
    const bool norm = name.find("layernorm") != std::string::npos;
    p.t.emplace(name, testing::random_tensor(ctx, shape, dtype, rng, norm ? 0.7 : -0.4,
                                             norm ? 1.3 : 0.4, name));
  }
  return p;
}

Params zeros_like(const Params& p, Context& ctx) {
  Params g;
  for (const auto& [name, t] : p.t) g.t.emplace(name, ctx.zeros(t.view().dims(), t.dtype(), name));
  return g;
}

// dsv3 tiny's MLA (H 4, q_lora 16, kv_lora 16, nope 8, rope 4, v 8, YaRN factor 4 over 32).
ModelConfig tiny_mla(bool q_lora, bool bias) {
  ModelConfig c = preset_config(ModelArch::deepseek_v3, "tiny");
  c.q_lora_rank = q_lora ? 16 : 0;
  c.attention_bias = bias;
  c.rope.mscale = 0.9;  // cos/sin scaled by mscale / mscale_all_dim ≠ 1
  return c;
}

void check_mla_gradients(bool q_lora, bool bias) {
  SCOPED_TRACE(::testing::Message() << "q_lora " << q_lora << " bias " << bias);
  Context& ctx = cpu_ctx();
  const ModelConfig cfg = tiny_mla(q_lora, bias);
  std::mt19937_64 rng(q_lora * 2 + bias + 11);
  Params w = random_mla(cfg, DType::f64, rng, ctx);
  Params dw = zeros_like(w, ctx);
  const TokenBatch batch = make_batch({4, 1, 3}, {3, 7, 8, 20, 0, 40, 41, 45}, ctx);
  const RopeTables rope = tables(cfg.rope, 64, DType::f64, ctx);
  const int64_t t = batch.num_tokens(), C = cfg.hidden_size;
  Tensor x = testing::random_tensor(ctx, {t, C}, DType::f64, rng, -1, 1, "x");
  Tensor g = testing::random_tensor(ctx, {t, C}, DType::f64, rng, -1, 1, "g");
  Tensor y = ctx.empty({t, C}, DType::f64, "y"), dx = ctx.empty({t, C}, DType::f64, "dx");
  const MlaWeights mw = mla_weights(w.lookup(), "", cfg), mdw = mla_weights(dw.lookup(), "", cfg);

  MlaSaved saved;
  mla_forward(y, &saved, x, mw, cfg, batch, rope, ctx);
  mla_backward(dx, mdw, g, saved, mw, cfg, batch, rope, ctx);
  auto loss = [&] {
    mla_forward(y, nullptr, x, mw, cfg, batch, rope, ctx);
    return testing::dot(y, g);
  };
  std::vector<std::pair<TensorView, TensorView>> checks = {{x, dx}};
  for (auto& [name, tensor] : w.t) checks.emplace_back(tensor.view(), dw.t.at(name).view());
  EXPECT_EQ(checks.size(), q_lora ? (bias ? 11u : 8u) : (bias ? 8u : 6u));
  testing::GradCheckOptions o;
  o.max_elements = 60;
  testing::expect_gradients_match(loss, checks, o);
}

TEST(MlaLayer, FiniteDifferencesWithQLora) {
  check_mla_gradients(true, false);
}
TEST(MlaLayer, FiniteDifferencesWithQLoraAndBiases) {
  check_mla_gradients(true, true);
}
TEST(MlaLayer, FiniteDifferencesPlainQProj) {
  check_mla_gradients(false, false);
}
TEST(MlaLayer, FiniteDifferencesPlainQProjWithBiases) {
  check_mla_gradients(false, true);
}

// Gradients accumulate into dw (+=) and dx is overwritten (=).
TEST(MlaLayer, GradientWriteRule) {
  Context& ctx = cpu_ctx();
  const ModelConfig cfg = tiny_mla(true, true);
  std::mt19937_64 rng(5);
  Params w = random_mla(cfg, DType::f64, rng, ctx);
  Params dw = zeros_like(w, ctx);
  const TokenBatch batch = make_batch({3, 2}, {}, ctx);
  const RopeTables rope = tables(cfg.rope, 8, DType::f64, ctx);
  const int64_t t = batch.num_tokens(), C = cfg.hidden_size;
  Tensor x = testing::random_tensor(ctx, {t, C}, DType::f64, rng, -1, 1, "x");
  Tensor g = testing::random_tensor(ctx, {t, C}, DType::f64, rng, -1, 1, "g");
  Tensor y = ctx.empty({t, C}, DType::f64, "y"), dx = ctx.empty({t, C}, DType::f64, "dx");
  const MlaWeights mw = mla_weights(w.lookup(), "", cfg), mdw = mla_weights(dw.lookup(), "", cfg);
  MlaSaved saved;
  mla_forward(y, &saved, x, mw, cfg, batch, rope, ctx);
  mla_backward(dx, mdw, g, saved, mw, cfg, batch, rope, ctx);
  const auto dx1 = to_double(dx);
  std::map<std::string, std::vector<double>> once;
  for (auto& [name, tensor] : dw.t) once[name] = to_double(tensor);
  testing::fill_constant(dx, 123.0);
  mla_backward(dx, mdw, g, saved, mw, cfg, batch, rope, ctx);
  EXPECT_EQ(to_double(dx), dx1);
  for (auto& [name, tensor] : dw.t) {
    auto twice = once[name];
    for (double& v : twice) v *= 2;
    EXPECT_LT(normalized_error(to_double(tensor), twice), 1e-14) << name;
  }
  // Undefined gradient views are skipped.
  MlaWeights partial = mdw;
  partial.q_a_layernorm = {};
  partial.kv_a_layernorm = {};
  partial.o_proj = {};
  mla_backward(dx, partial, g, saved, mw, cfg, batch, rope, ctx);
  EXPECT_EQ(to_double(dx), dx1);
}

// ---- Golden vs transformers' DeepseekV3Attention
// ------------------------------------------------------------------------------

struct LayerGolden {
  ModelConfig cfg;
  SafetensorsFile ref;
  std::vector<int64_t> seqlens;
};

LayerGolden read_layer_golden(const std::string& name) {
  const Json j = read_json_file(layer_golden(name + ".json"));
  LayerGolden g{ModelConfig::from_json(j.at("config"), name + ".json"),
                SafetensorsFile::open(layer_golden(name + ".safetensors")),
                j.at("seqlens").get<std::vector<int64_t>>()};
  return g;
}

// A copy of a fixture tensor in `dtype`.
Tensor copy_as(const TensorView& v, DType dtype, Context& ctx) {
  return testing::tensor_from(ctx, v.dims(), dtype, to_double(v), v.name);
}

void check_mla_golden(const std::string& name, DType dtype) {
  SCOPED_TRACE(name + (dtype == DType::f64 ? " f64" : " f32"));
  Context& ctx = cpu_ctx();
  const LayerGolden g = read_layer_golden(name);
  const ModelConfig& cfg = g.cfg;
  ASSERT_EQ(cfg.rope.layout, kernels::RopeLayout::interleaved);
  ASSERT_EQ(cfg.rope.scaling, kernels::RopeScaling::yarn);
  std::vector<int32_t> positions;
  for (double p : to_double(g.ref.view("input.positions"))) positions.push_back(int32_t(p));
  const TokenBatch batch = make_batch(g.seqlens, positions, ctx);
  EXPECT_EQ(to_double(g.ref.view("input.cu_seqlens")), to_double(batch.cu_seqlens_host));
  const RopeTables rope = tables(cfg.rope, cfg.max_position_embeddings, dtype, ctx);
  Params w, dw;
  for (const auto& n : g.ref.names())
    if (n.find('.') != std::string::npos && n.rfind("input.", 0) != 0 &&
        n.rfind("output.", 0) != 0 && n.rfind("grad.", 0) != 0 && n.rfind("cotangent.", 0) != 0)
      w.t.emplace(n, copy_as(g.ref.view(n), dtype, ctx));
  dw = zeros_like(w, ctx);
  const MlaWeights mw = mla_weights(w.lookup(), "", cfg), mdw = mla_weights(dw.lookup(), "", cfg);
  Tensor x = copy_as(g.ref.view("input.x"), dtype, ctx);
  Tensor dy = copy_as(g.ref.view("cotangent.dy"), dtype, ctx);
  Tensor y = ctx.empty(x.view().dims(), dtype, "y"), dx = ctx.empty(x.view().dims(), dtype, "dx");
  MlaSaved saved;
  mla_forward(y, &saved, x, mw, cfg, batch, rope, ctx);
  mla_backward(dx, mdw, dy, saved, mw, cfg, batch, rope, ctx);
  // transformers computes its cos/sin tables in f32 even for a f64 module, hence 1e-5 in f64.
  const double fwd_tol = dtype == DType::f64 ? 1e-5 : 1e-4;
  const double grad_tol = dtype == DType::f64 ? 1e-5 : 1e-3;
  EXPECT_LT(normalized_error(to_double(y), to_double(g.ref.view("output.y"))), fwd_tol);
  EXPECT_LT(normalized_error(to_double(dx), to_double(g.ref.view("grad.x"))), grad_tol);
  int compared = 0;
  for (auto& [n, t] : dw.t) {
    EXPECT_LT(normalized_error(to_double(t), to_double(g.ref.view("grad." + n))), grad_tol) << n;
    ++compared;
  }
  EXPECT_EQ(compared, 7);  // every parameter of the module
}

TEST(MlaLayer, GoldenQLoraF64) {
  check_mla_golden("mla_qlora", DType::f64);
}
TEST(MlaLayer, GoldenQLoraF32) {
  check_mla_golden("mla_qlora", DType::f32);
}
TEST(MlaLayer, GoldenPlainBiasF64) {
  check_mla_golden("mla_plain_bias", DType::f64);
}
TEST(MlaLayer, GoldenPlainBiasF32) {
  check_mla_golden("mla_plain_bias", DType::f32);
}

// ---- Absorbed decode vs the training form
// ------------------------------------------------------------------------------

struct DecodeSetup {
  ModelConfig cfg;
  Params w;
  MlaWeights mw;
  RopeTables rope;
  Tensor x;  // (T, C) hidden states of the full sequences
  Tensor y;  // (T, C) training-form output
  TokenBatch full;
  std::vector<int64_t> lengths;
  int32_t offset = 0;  // position of each sequence's first token
};

DecodeSetup decode_setup(bool q_lora, DType dtype, const std::vector<int64_t>& lengths,
                         int32_t offset, Context& ctx) {
  DecodeSetup s;
  s.cfg = tiny_mla(q_lora, true);
  std::mt19937_64 rng(q_lora + 40);
  s.w = random_mla(s.cfg, dtype, rng, ctx);
  s.mw = mla_weights(s.w.lookup(), "", s.cfg);
  s.rope = tables(s.cfg.rope, 64, dtype, ctx);
  s.lengths = lengths;
  s.offset = offset;
  std::vector<int32_t> pos;
  for (int64_t n : lengths)
    for (int64_t i = 0; i < n; ++i) pos.push_back(offset + static_cast<int32_t>(i));
  s.full = make_batch(lengths, pos, ctx);
  const int64_t t = s.full.num_tokens();
  s.x = testing::random_tensor(ctx, {t, s.cfg.hidden_size}, dtype, rng, -1, 1, "x");
  s.y = ctx.empty({t, s.cfg.hidden_size}, dtype, "y");
  mla_forward(s.y, nullptr, s.x, s.mw, s.cfg, s.full, s.rope, ctx);
  return s;
}

// Rows `rows` of a (T, C) tensor, as doubles.
std::vector<double> rows_of(const Tensor& t, const std::vector<int64_t>& rows) {
  const auto all = to_double(t);
  const int64_t c = t.size(1);
  std::vector<double> out;
  for (int64_t r : rows) out.insert(out.end(), all.begin() + r * c, all.begin() + (r + 1) * c);
  return out;
}

// A (B, C) tensor of the given rows of x.
Tensor gather_rows(const Tensor& x, const std::vector<int64_t>& rows, Context& ctx) {
  return testing::tensor_from(ctx, {static_cast<int64_t>(rows.size()), x.size(1)}, x.dtype(),
                              rows_of(x, rows), "x_rows");
}

void check_prefill_then_decode(bool q_lora, DType dtype) {
  SCOPED_TRACE(::testing::Message() << "q_lora " << q_lora << " " << dtype_name(dtype));
  Context& ctx = cpu_ctx();
  const std::vector<int64_t> lengths = {5, 1, 4, 7};
  DecodeSetup s = decode_setup(q_lora, dtype, lengths, 3, ctx);
  // Prefill every token but the last of each sequence, then decode the last ones.
  std::vector<int64_t> prefix_rows, last_rows, prefix_lengths;
  std::vector<int32_t> prefix_pos, last_pos;
  int64_t start = 0;
  for (int64_t n : lengths) {
    for (int64_t i = 0; i + 1 < n; ++i) {
      prefix_rows.push_back(start + i);
      prefix_pos.push_back(s.offset + static_cast<int32_t>(i));
    }
    prefix_lengths.push_back(n - 1);
    last_rows.push_back(start + n - 1);
    last_pos.push_back(s.offset + static_cast<int32_t>(n - 1));
    start += n;
  }
  MlaCache cache = MlaCache::make(4, 8, s.cfg, dtype, ctx);
  const TokenBatch prefix = make_batch(prefix_lengths, prefix_pos, ctx);
  mla_cache_append(cache, gather_rows(s.x, prefix_rows, ctx), s.mw, s.cfg, prefix, s.rope, ctx);
  EXPECT_EQ(cache.length, (std::vector<int64_t>{4, 0, 3, 6}));
  const TokenBatch step = make_batch({1, 1, 1, 1}, last_pos, ctx);
  const MlaAbsorbed absorbed = mla_absorb(s.mw, s.cfg, ctx);
  Tensor y = ctx.empty({4, s.cfg.hidden_size}, dtype, "y_decode");
  mla_decode(y, cache, gather_rows(s.x, last_rows, ctx), s.mw, absorbed, s.cfg, step, s.rope, ctx);
  EXPECT_EQ(cache.length, (std::vector<int64_t>{5, 1, 4, 7}));
  const double err = normalized_error(to_double(y), rows_of(s.y, last_rows));
  EXPECT_LT(err, dtype == DType::f64 ? 1e-5 : 1e-4);
  if (dtype == DType::f64) {
    EXPECT_LT(err, 1e-12);  // the same numbers, summed in other orders
  }
}

TEST(MlaDecode, PrefillThenDecodeMatchesTrainingFormF64) {
  check_prefill_then_decode(true, DType::f64);
  check_prefill_then_decode(false, DType::f64);
}
TEST(MlaDecode, PrefillThenDecodeMatchesTrainingFormF32) {
  check_prefill_then_decode(true, DType::f32);
  check_prefill_then_decode(false, DType::f32);
}

// Decoding every token from an empty cache reproduces every row of the training form.
TEST(MlaDecode, TokenByTokenMatchesTrainingForm) {
  Context& ctx = cpu_ctx();
  const std::vector<int64_t> lengths = {6, 6, 6};
  for (DType dtype : {DType::f64, DType::f32}) {
    DecodeSetup s = decode_setup(true, dtype, lengths, 10, ctx);
    MlaCache cache = MlaCache::make(3, 6, s.cfg, dtype, ctx);
    const MlaAbsorbed absorbed = mla_absorb(s.mw, s.cfg, ctx);
    for (int64_t i = 0; i < 6; ++i) {
      const std::vector<int64_t> rows = {i, 6 + i, 12 + i};
      const int32_t p = s.offset + static_cast<int32_t>(i);
      const TokenBatch step = make_batch({1, 1, 1}, {p, p, p}, ctx);
      Tensor y = ctx.empty({3, s.cfg.hidden_size}, dtype, "y_decode");
      mla_decode(y, cache, gather_rows(s.x, rows, ctx), s.mw, absorbed, s.cfg, step, s.rope, ctx);
      EXPECT_LT(normalized_error(to_double(y), rows_of(s.y, rows)),
                dtype == DType::f64 ? 1e-12 : 1e-4)
          << "step " << i << " " << dtype_name(dtype);
    }
    // Full: one more token does not fit.
    const TokenBatch step = make_batch({1, 1, 1}, {16, 16, 16}, ctx);
    Tensor y = ctx.empty({3, s.cfg.hidden_size}, dtype, "y_decode");
    testing::expect_error_contains(
        [&] {
          mla_decode(y, cache, gather_rows(s.x, {0, 1, 2}, ctx), s.mw, absorbed, s.cfg, step,
                     s.rope, ctx);
        },
        {"[mla_cache_append]", "capacity 6"});
  }
}

TEST(MlaLayer, Errors) {
  Context& ctx = cpu_ctx();
  const ModelConfig cfg = tiny_mla(true, false);
  std::mt19937_64 rng(3);
  Params w = random_mla(cfg, DType::f32, rng, ctx);
  testing::expect_error_contains([&] { mla_weights(w.lookup(), "", tiny_mla(false, false)); },
                                 {"no tensor q_proj.weight"});
  w.t.erase("kv_b_proj.weight");
  w.t.emplace("kv_b_proj.weight", ctx.zeros({4, 16}, DType::f32, "kv_b_proj.weight"));
  testing::expect_error_contains([&] { mla_weights(w.lookup(), "", cfg); },
                                 {"[mla]", "kv_b_proj.weight", "expected (64, 16)"});
  ModelConfig dense = preset_config(ModelArch::qwen2, "tiny");
  testing::expect_error_contains([&] { mla_weights(w.lookup(), "", dense); }, {"not an MLA"});
  // A batch of two tokens in one sequence is not a decode step.
  Params w2 = random_mla(cfg, DType::f32, rng, ctx);
  const MlaWeights mw = mla_weights(w2.lookup(), "", cfg);
  const RopeTables rope = tables(cfg.rope, 8, DType::f32, ctx);
  MlaCache cache = MlaCache::make(1, 4, cfg, DType::f32, ctx);
  const TokenBatch two = make_batch({2}, {}, ctx);
  Tensor x = ctx.zeros({2, cfg.hidden_size}, DType::f32, "x");
  Tensor y = ctx.zeros({2, cfg.hidden_size}, DType::f32, "y");
  testing::expect_error_contains(
      [&] { mla_decode(y, cache, x, mw, mla_absorb(mw, cfg, ctx), cfg, two, rope, ctx); },
      {"[mla_decode]", "exactly one"});
  const TokenBatch far = make_batch({2}, {3, 9}, ctx);
  testing::expect_error_contains([&] { mla_forward(y, nullptr, x, mw, cfg, far, rope, ctx); },
                                 {"[mla_forward]", "RoPE tables have 8 rows", "needs 10"});
}

}  // namespace
}  // namespace r1kit::policy
