// f16 checkpoints (issue 4: "bf16, f16, f32"): a model saved with f16 storage loads back as the
// f16-rounded values into f32 and bit for bit as f16, with the correction bias kept in f32.
#include <cmath>
#include <cstring>

#include "core/dtype.h"
#include "policy/checkpoint.h"
#include "policy/presets.h"
#include "tests/common/test_util.h"

namespace r1kit::policy {
namespace {

using testing::ScratchDir;

TensorView f32_view(std::vector<float>& v, const ParamSpec& s) {
  return TensorView(v.data(), DType::f32, Device::cpu(), s.shape, s.name);
}

float round_to_f16(float f) {
  return f16_bits_to_f32(f32_to_f16_bits(f));
}

TEST(CheckpointF16, SaveAndLoadRoundToF16) {
  for (ModelArch arch : {ModelArch::deepseek_v3, ModelArch::qwen2, ModelArch::llama}) {
    SCOPED_TRACE(std::string(model_arch_name(arch)));
    ScratchDir dir;
    const ModelConfig c = preset_config(arch, "tiny");
    InitOptions io;
    io.seed = 11;
    io.dtype = DType::f32;
    init_checkpoint(dir.file("a"), c, io);
    const Checkpoint ca = Checkpoint::open(dir.file("a"));
    std::map<std::string, std::vector<float>> orig;
    std::map<std::string, TensorView> views;
    for (const auto& s : ca.manifest()) {
      auto& v = orig[s.name];
      v.assign(static_cast<size_t>(s.numel()), std::nanf(""));
      ca.load(s, f32_view(v, s));
    }
    for (const auto& s : parameter_manifest(ca.config(), true))
      if (s.tied_to.empty()) views.emplace(s.name, f32_view(orig.at(s.name), s));

    SaveOptions so;
    so.dtype = DType::f16;
    save_checkpoint(dir.file("h"), ca.config(), fill_from_views(views), so);
    const Checkpoint ch = Checkpoint::open(dir.file("h"));
    EXPECT_TRUE(ch.check().complete());
    EXPECT_EQ(ch.config().dtype, DType::f16);
    int64_t f16_tensors = 0;
    for (const auto& s : ch.manifest()) {
      const bool bias = s.kind == ParamKind::correction_bias;
      EXPECT_EQ(ch.tensors().info(s.name).dtype, bias ? DType::f32 : DType::f16) << s.name;
      f16_tensors += bias ? 0 : 1;
      std::vector<float> f(static_cast<size_t>(s.numel()));
      ch.load(s, f32_view(f, s));
      std::vector<uint16_t> h(static_cast<size_t>(s.numel()));
      ch.load(s, TensorView(h.data(), DType::f16, Device::cpu(), s.shape, s.name));
      const auto& o = orig.at(s.name);
      for (size_t i = 0; i < f.size(); ++i) {
        const float want = bias ? o[i] : round_to_f16(o[i]);
        ASSERT_EQ(f[i], want) << s.name << "[" << i << "]";
        ASSERT_EQ(h[i], f32_to_f16_bits(want)) << s.name << "[" << i << "]";
      }
    }
    EXPECT_GT(f16_tensors, 0);
  }
}

}  // namespace
}  // namespace r1kit::policy
