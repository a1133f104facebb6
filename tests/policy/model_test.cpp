// The parameter arena: layout from the manifest with fused experts and the correction biases
// apart, per-expert views as slices of the fused tensors, loading (per-expert and fused
// checkpoints alike), random initialisation equal to init_checkpoint, save/load round trips, and
// lookups.
#include "policy/model.h"

#include <cstring>
#include <set>

#include "policy/presets.h"
#include "tests/common/test_util.h"

namespace r1kit::policy {
namespace {

using testing::cpu_ctx;
using testing::expect_error_contains;
using testing::ScratchDir;
using testing::to_double;

std::string data(const std::string& name) {
  return std::string(R1KIT_SOURCE_DIR) + "/tests/policy/data/" + name;
}

const std::vector<ModelArch> kArchs = {ModelArch::deepseek_v3, ModelArch::deepseek_v2,
                                       ModelArch::qwen2, ModelArch::llama};

bool same_bits(const TensorView& a, const TensorView& b) {
  return a.nbytes() == b.nbytes() && std::memcmp(a.data, b.data, a.nbytes()) == 0;
}

TEST(ParamLayout, FusesExpertsAndKeepsCorrectionBiasesApart) {
  const ModelConfig c = preset_config(ModelArch::deepseek_v3, "tiny");
  const auto params = param_layout(c, ParamSet::parameters);
  const auto buffers = param_layout(c, ParamSet::buffers);
  const int64_t E = c.n_routed_experts, I = c.moe_intermediate_size, C = c.hidden_size;
  std::set<std::string> names;
  for (const auto& e : params) {
    names.insert(e.name);
    EXPECT_EQ(e.name.find(".experts.0."), std::string::npos) << e.name;
    EXPECT_NE(e.kind, ParamKind::correction_bias) << e.name;
  }
  // Layer 0 is dense; layers 1, 2 and the MTP block 3 are MoE.
  for (int64_t l = 1; l <= 3; ++l) {
    bool found = false;
    for (const auto& e : params)
      if (e.name == fused_gate_up_name(l)) {
        found = true;
        EXPECT_TRUE(e.fused_experts);
        EXPECT_EQ(e.shape, (Shape{E, 2 * I, C}));
        EXPECT_EQ(e.mtp, l == 3);
      }
    EXPECT_TRUE(found) << l;
    EXPECT_TRUE(names.count(fused_down_name(l))) << l;
  }
  EXPECT_FALSE(names.count(fused_gate_up_name(0)));
  EXPECT_FALSE(names.count("model.layers.3.embed_tokens.weight"));  // a tied MTP copy
  ASSERT_EQ(buffers.size(), 3u);
  for (const auto& b : buffers) EXPECT_EQ(b.kind, ParamKind::correction_bias);

  // Every manifest tensor is held by exactly one arena (tied copies by none), with its own shape.
  ModelParams p(c, DType::f32, cpu_ctx().allocator());
  ModelParams bu(c, DType::f32, cpu_ctx().allocator(), ParamSet::buffers);
  for (const ParamSpec& s : parameter_manifest(c, true)) {
    const int held = static_cast<int>(p.holds(s)) + static_cast<int>(bu.holds(s));
    EXPECT_EQ(held, s.tied_to.empty() ? 1 : 0) << s.name;
    const TensorView v = p.holds(s) ? p.manifest_view(s) : bu.manifest_view(s);
    if (held) {
      EXPECT_EQ(v.dims(), s.shape) << s.name;
      EXPECT_TRUE(v.is_contiguous()) << s.name;
    }
  }
  // Parameters of the dense models: exactly the manifest, no buffers.
  for (ModelArch arch : {ModelArch::qwen2, ModelArch::llama}) {
    const ModelConfig d = preset_config(arch, "tiny");
    EXPECT_EQ(param_layout(d).size(), parameter_manifest(d).size());
    EXPECT_TRUE(param_layout(d, ParamSet::buffers).empty());
  }
}

TEST(ParamLayout, ExpertViewsAreSlicesOfTheFusedTensors) {
  const ModelConfig c = preset_config(ModelArch::deepseek_v3, "tiny");
  ModelParams p(c, DType::f32, cpu_ctx().allocator());
  const int64_t I = c.moe_intermediate_size, C = c.hidden_size;
  const TensorView gu = p.get(fused_gate_up_name(2)), down = p.get(fused_down_name(2));
  const auto& ck_spec = [&](const std::string& n) {
    for (const ParamSpec& s : parameter_manifest(c, true))
      if (s.name == n) return s;
    ADD_FAILURE() << n;
    return ParamSpec{};
  };
  const float* base = gu.ptr<float>();
  EXPECT_EQ(p.manifest_view(ck_spec("model.layers.2.mlp.experts.5.gate_proj.weight")).ptr<float>(),
            base + 5 * 2 * I * C);
  EXPECT_EQ(p.manifest_view(ck_spec("model.layers.2.mlp.experts.5.up_proj.weight")).ptr<float>(),
            base + 5 * 2 * I * C + I * C);
  EXPECT_EQ(p.manifest_view(ck_spec("model.layers.2.mlp.experts.3.down_proj.weight")).ptr<float>(),
            down.ptr<float>() + 3 * C * I);
}

TEST(ModelParams, LookupsNameTheMissingTensor) {
  const ModelConfig c = preset_config(ModelArch::qwen2, "tiny");
  ModelParams p(c, DType::f32, cpu_ctx().allocator());
  EXPECT_TRUE(p.get("model.norm.weight").defined());
  EXPECT_FALSE(p.find("model.layers.0.self_attn.o_proj.bias").defined());  // qwen2: none
  EXPECT_TRUE(p.lookup()("model.layers.1.self_attn.q_proj.bias").defined());
  expect_error_contains([&] { p.get("model.layers.0.mlp.gate_proj.weigth"); },
                        {"no tensor 'model.layers.0.mlp.gate_proj.weigth'", "qwen2",
                         "did you mean 'model.layers.0.mlp.gate_proj.weight'"});
  // The padding between tensors is zero and the flat buffer covers every tensor.
  EXPECT_GE(p.flat().numel(), p.arena().numel_used());
  const ModelParams g = ModelParams::like(p, DType::f64, cpu_ctx().allocator());
  EXPECT_EQ(g.size(), p.size());
  EXPECT_EQ(g.dtype(), DType::f64);
  EXPECT_EQ(g.view(3).dims(), p.view(3).dims());
  // Every dtype gives the same element layout (AdamW runs over masters, moments, gradients and a
  // bf16 working copy as flat buffers of one length).
  const ModelParams h = ModelParams::like(p, DType::bf16, cpu_ctx().allocator());
  EXPECT_EQ(h.flat().numel(), p.flat().numel());
  EXPECT_EQ(g.flat().numel(), p.flat().numel());
  for (size_t i = 0; i < p.size(); ++i) {
    const auto off = [](const ModelParams& a, size_t k) {
      return (static_cast<const char*>(a.view(k).data) - static_cast<const char*>(a.flat().data)) /
             static_cast<int64_t>(dtype_size(a.dtype()));
    };
    EXPECT_EQ(off(h, i), off(p, i));
    EXPECT_EQ(off(g, i), off(p, i));
  }
}

TEST(ModelParams, InitEqualsInitCheckpointAndSaveLoadRoundTrips) {
  Context& ctx = cpu_ctx();
  for (ModelArch arch : kArchs) {
    SCOPED_TRACE(std::string(model_arch_name(arch)));
    ScratchDir dir;
    const ModelConfig c = preset_config(arch, "tiny");
    InitOptions io;
    io.seed = 11;
    io.dtype = DType::f32;
    init_checkpoint(dir.file("init"), c, io);
    const Checkpoint ck = Checkpoint::open(dir.file("init"));
    ModelParams loaded(c, DType::f32, ctx.allocator());
    ModelParams loaded_b(c, DType::f32, ctx.allocator(), ParamSet::buffers);
    load_params(loaded, ck, ctx);
    load_params(loaded_b, ck, ctx);
    ModelParams inited(c, DType::f32, ctx.allocator());
    ModelParams inited_b(c, DType::f32, ctx.allocator(), ParamSet::buffers);
    init_params(inited, 11, ctx);
    init_params(inited_b, 11, ctx);
    EXPECT_TRUE(same_bits(loaded.flat(), inited.flat()));
    EXPECT_TRUE(same_bits(loaded_b.flat(), inited_b.flat()));

    SaveOptions so;
    so.dtype = DType::f32;
    save_params(dir.file("saved"), {&loaded, &loaded_b}, so, ctx);
    const Checkpoint again = Checkpoint::open(dir.file("saved"));
    EXPECT_TRUE(again.check().complete());
    EXPECT_TRUE(again.check().unexpected.empty());
    ModelParams back(c, DType::f32, ctx.allocator());
    load_params(back, again, ctx);
    EXPECT_TRUE(same_bits(back.flat(), loaded.flat()));
  }
}

TEST(ModelParams, FusedAndPerExpertCheckpointsLoadTheSameArena) {
  Context& ctx = cpu_ctx();
  const Checkpoint per = Checkpoint::open(data("fused/per_expert"));
  const Checkpoint fused = Checkpoint::open(data("fused/fused"));
  ModelParams a(per.config(), DType::f32, ctx.allocator());
  ModelParams b(fused.config(), DType::f32, ctx.allocator());
  load_params(a, per, ctx);
  load_params(b, fused, ctx);
  EXPECT_TRUE(same_bits(a.flat(), b.flat()));
  // And the fused tensor is byte for byte transformers' state_dict tensor.
  const int64_t layer = per.config().first_k_dense_replace;
  const std::string name = fused_gate_up_name(layer);
  ASSERT_TRUE(fused.tensors().has(name));
  const TensorView stored = fused.tensors().view(name);
  ASSERT_EQ(stored.dtype, DType::f32);
  EXPECT_EQ(to_double(stored), to_double(a.get(name)));
}

TEST(ModelParams, F64ArenaLoadsExactly) {
  Context& ctx = cpu_ctx();
  const Checkpoint ck = Checkpoint::open(data("fused/per_expert"));
  ModelParams a(ck.config(), DType::f32, ctx.allocator());
  ModelParams d(ck.config(), DType::f64, ctx.allocator());
  load_params(a, ck, ctx);
  load_params(d, ck, ctx);
  for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(to_double(a.view(i)), to_double(d.view(i)));
}

}  // namespace
}  // namespace r1kit::policy
