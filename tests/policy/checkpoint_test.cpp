// Checkpoints: init → load → save round trips (bit-exact, single file and sharded), random
// initialisation, DeepSeek FP8 blocks against values dequantised by torch (tests/policy/data/fp8),
// per-expert vs transformers 5's fused expert names (tests/policy/data/fused), MTP copies, atomic
// writes with tokenizer files, and the errors for missing/truncated shards, missing tensors, wrong
// shapes, wrong dtypes and missing FP8 scales.
#include "policy/checkpoint.h"

#include <cmath>
#include <cstring>
#include <filesystem>

#include "core/fs.h"
#include "policy/presets.h"
#include "tests/common/test_util.h"

namespace r1kit::policy {
namespace {

namespace fs = std::filesystem;
using testing::expect_error_contains;
using testing::ScratchDir;

std::string data(const std::string& name) {
  return std::string(R1KIT_SOURCE_DIR) + "/tests/policy/data/" + name;
}

using Values = std::map<std::string, std::vector<float>>;

TensorView f32_view(std::vector<float>& v, const ParamSpec& s) {
  return TensorView(v.data(), DType::f32, Device::cpu(), s.shape, s.name);
}

Values load_all(const Checkpoint& ck) {
  Values out;
  for (const auto& s : ck.manifest()) {
    auto& v = out[s.name];
    v.assign(static_cast<size_t>(s.numel()), std::nanf(""));
    ck.load(s, f32_view(v, s));
  }
  return out;
}

std::map<std::string, TensorView> views_of(Values& values, const ModelConfig& c) {
  std::map<std::string, TensorView> m;
  for (const auto& s : parameter_manifest(c, true))
    if (s.tied_to.empty()) m[s.name] = f32_view(values.at(s.name), s);
  return m;
}

bool bits_equal(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * 4) == 0;
}

void expect_same_values(const Values& a, const Values& b) {
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [name, v] : a) EXPECT_TRUE(bits_equal(v, b.at(name))) << name;
}

std::vector<ModelArch> kArchs = {ModelArch::deepseek_v3, ModelArch::deepseek_v2, ModelArch::qwen2,
                                 ModelArch::llama};

InitOptions init_opts(uint64_t seed, DType dtype) {
  InitOptions o;
  o.seed = seed;
  o.dtype = dtype;
  return o;
}

TEST(Checkpoint, InitLoadSaveRoundTripIsBitExact) {
  for (ModelArch arch : kArchs) {
    SCOPED_TRACE(std::string(model_arch_name(arch)));
    ScratchDir dir;
    const ModelConfig c = preset_config(arch, "tiny");
    const std::string a = dir.file("a"), b = dir.file("b");
    init_checkpoint(a, c, init_opts(7, DType::f32));
    const Checkpoint ca = Checkpoint::open(a);
    EXPECT_TRUE(ca.check().complete());
    EXPECT_TRUE(ca.check().unexpected.empty());
    Values va = load_all(ca);

    SaveOptions so;
    so.dtype = DType::f32;
    save_checkpoint(b, ca.config(), fill_from_views(views_of(va, ca.config())), so);
    // Same tensors, same writer: the same bytes.
    EXPECT_EQ(read_file(a + "/model.safetensors"), read_file(b + "/model.safetensors"));
    EXPECT_EQ(read_file(a + "/config.json"), read_file(b + "/config.json"));
    expect_same_values(va, load_all(Checkpoint::open(b)));

    // bf16 storage: loads back as the rounded values, and bf16 → bf16 is exact.
    const std::string h = dir.file("h");
    so.dtype = DType::bf16;
    save_checkpoint(h, ca.config(), fill_from_views(views_of(va, ca.config())), so);
    const Checkpoint ch = Checkpoint::open(h);
    EXPECT_EQ(ch.config().dtype, DType::bf16);
    for (const auto& s : ch.manifest()) {
      std::vector<float> f(static_cast<size_t>(s.numel()));
      ch.load(s, f32_view(f, s));
      std::vector<uint16_t> bf(static_cast<size_t>(s.numel()));
      ch.load(s, TensorView(bf.data(), DType::bf16, Device::cpu(), s.shape, s.name));
      const auto& orig = va.at(s.name);
      for (size_t i = 0; i < f.size(); ++i) {
        const float want = s.kind == ParamKind::correction_bias ? orig[i] : round_to_bf16(orig[i]);
        ASSERT_EQ(f[i], want) << s.name << "[" << i << "]";
        ASSERT_EQ(bf[i], f32_to_bf16_bits(want)) << s.name << "[" << i << "]";
      }
    }
    // The correction bias is stored in f32 whatever the storage dtype.
    for (const auto& s : ch.manifest()) {
      if (s.kind == ParamKind::correction_bias) {
        EXPECT_EQ(ch.tensors().info(s.name).dtype, DType::f32) << s.name;
      }
    }
  }
}

TEST(Checkpoint, InitValues) {
  ScratchDir dir;
  const ModelConfig c = preset_config(ModelArch::deepseek_v3, "tiny");
  init_checkpoint(dir.file("a"), c, init_opts(3, DType::f32));
  init_checkpoint(dir.file("b"), c, init_opts(3, DType::f32));
  init_checkpoint(dir.file("c"), c, init_opts(4, DType::f32));
  EXPECT_EQ(read_file(dir.file("a/model.safetensors")), read_file(dir.file("b/model.safetensors")));
  EXPECT_NE(read_file(dir.file("a/model.safetensors")), read_file(dir.file("c/model.safetensors")));
  const Values v = load_all(Checkpoint::open(dir.file("a")));
  for (const auto& s : parameter_manifest(c)) {
    const auto& x = v.at(s.name);
    switch (s.kind) {
      case ParamKind::norm:
        for (float f : x) ASSERT_EQ(f, 1.0f) << s.name;
        break;
      case ParamKind::bias:
      case ParamKind::correction_bias:
        for (float f : x) ASSERT_EQ(f, 0.0f) << s.name;
        break;
      default:
        break;
    }
    if (!s.tied_to.empty()) {
      EXPECT_TRUE(bits_equal(x, v.at(s.tied_to))) << s.name;
    }
  }
  // normal(0, 0.02): the 4096 values of the embedding have mean ~0 and std ~0.02 (±5 sigma).
  const auto& e = v.at("model.embed_tokens.weight");
  double sum = 0, sq = 0;
  for (float f : e) {
    sum += f;
    sq += static_cast<double>(f) * f;
  }
  const double n = static_cast<double>(e.size());
  const double mean = sum / n, sd = std::sqrt(sq / n - mean * mean);
  EXPECT_NEAR(mean, 0.0, 5 * 0.02 / std::sqrt(n));
  EXPECT_NEAR(sd, 0.02, 5 * 0.02 / std::sqrt(2 * n));
  // Different tensors draw different streams.
  EXPECT_FALSE(bits_equal(
      std::vector<float>(e.begin(), e.begin() + 64),
      std::vector<float>(v.at("lm_head.weight").begin(), v.at("lm_head.weight").begin() + 64)));
}

TEST(Checkpoint, ShardedEqualsSingleFile) {
  ScratchDir dir;
  const ModelConfig c = preset_config(ModelArch::deepseek_v3, "tiny");
  init_checkpoint(dir.file("one"), c, init_opts(5, DType::bf16));
  InitOptions o = init_opts(5, DType::bf16);
  o.max_shard_bytes = 8192;
  const Json summary = init_checkpoint(dir.file("many"), c, o);
  EXPECT_GT(summary["shards"].get<int>(), 3);
  EXPECT_TRUE(fs::exists(dir.file("many/model.safetensors.index.json")));
  EXPECT_FALSE(fs::exists(dir.file("many/model.safetensors")));
  const Checkpoint many = Checkpoint::open(dir.file("many"));
  EXPECT_EQ(many.tensors().num_shards(), summary["shards"].get<size_t>());
  expect_same_values(load_all(Checkpoint::open(dir.file("one"))), load_all(many));
  const Json index = read_json_file(dir.file("many/model.safetensors.index.json"));
  EXPECT_EQ(index["metadata"]["total_size"].get<uint64_t>(), summary["bytes"].get<uint64_t>());
}

// A sharded tiny checkpoint to break.
std::string sharded_tiny(const ScratchDir& dir) {
  InitOptions o = init_opts(1, DType::bf16);
  o.max_shard_bytes = 8192;
  init_checkpoint(dir.file("ck"), preset_config(ModelArch::qwen2, "tiny"), o);
  return dir.file("ck");
}

TEST(Checkpoint, MissingShardNamesFileAndTensor) {
  ScratchDir dir;
  const std::string ck = sharded_tiny(dir);
  const Json index = read_json_file(ck + "/model.safetensors.index.json");
  std::string victim;
  std::string tensor;
  for (const auto& [name, file] : index["weight_map"].items()) {
    victim = file.get<std::string>();
    tensor = name;
    break;
  }
  fs::remove(ck + "/" + victim);
  expect_error_contains([&] { Checkpoint::open(ck); }, {victim, tensor, "index.json"});
}

TEST(Checkpoint, TruncatedShardNamesFile) {
  ScratchDir dir;
  const std::string ck = sharded_tiny(dir);
  std::string path;
  for (const auto& e : fs::directory_iterator(ck))
    if (e.path().extension() == ".safetensors") path = e.path().string();
  fs::resize_file(path, fs::file_size(path) - 7);
  expect_error_contains([&] { Checkpoint::open(ck); },
                        {fs::path(path).filename().string(), "truncated", "index.json"});
}

// Writes a one-file checkpoint of `c` from `values` with the tensor list edited by `edit`.
void write_edited(
    const std::string& dir, const ModelConfig& c, Values& values,
    const std::function<void(SafetensorsWriter&, const ParamSpec&, TensorView)>& edit) {
  fs::create_directories(dir);
  c.save(dir + "/config.json");
  SafetensorsWriter w;
  for (const auto& s : parameter_manifest(c, true))
    if (s.tied_to.empty()) edit(w, s, f32_view(values.at(s.name), s));
  w.write(dir + "/model.safetensors");
}

TEST(Checkpoint, MissingWrongShapeAndWrongDtypeTensors) {
  ScratchDir dir;
  const ModelConfig c = preset_config(ModelArch::llama, "tiny");
  init_checkpoint(dir.file("ok"), c, init_opts(2, DType::f32));
  Values v = load_all(Checkpoint::open(dir.file("ok")));
  std::vector<int32_t> ints(32, 7);

  write_edited(dir.file("missing"), c, v,
               [](SafetensorsWriter& w, const ParamSpec& s, TensorView t) {
                 if (s.name != "model.norm.weight") w.add(t);
               });
  const Checkpoint missing = Checkpoint::open(dir.file("missing"));
  const auto report = missing.check();
  ASSERT_EQ(report.missing.size(), 1u);
  EXPECT_NE(report.missing[0].find("model.norm.weight"), std::string::npos);
  expect_error_contains([&] { load_all(missing); },
                        {"model.norm.weight", "missing", "model.safetensors", "config.json"});

  write_edited(dir.file("shape"), c, v, [](SafetensorsWriter& w, const ParamSpec& s, TensorView t) {
    w.add(s.name == "model.layers.1.self_attn.k_proj.weight" ? t.reshape({8, 64}) : t);
  });
  expect_error_contains(
      [&] { load_all(Checkpoint::open(dir.file("shape"))); },
      {"model.layers.1.self_attn.k_proj.weight", "(8, 64)", "(16, 32)", "model.safetensors"});

  write_edited(dir.file("dtype"), c, v,
               [&](SafetensorsWriter& w, const ParamSpec& s, TensorView t) {
                 if (s.name == "model.norm.weight")
                   w.add(TensorView(ints.data(), DType::i32, Device::cpu(), s.shape, s.name));
                 else
                   w.add(t);
               });
  expect_error_contains([&] { load_all(Checkpoint::open(dir.file("dtype"))); },
                        {"model.norm.weight", "I32", "model.safetensors"});

  // Unexpected tensors are reported, not fatal.
  std::vector<float> extra(3, 1.0f);
  write_edited(dir.file("extra"), c, v,
               [&](SafetensorsWriter& w, const ParamSpec& s, TensorView t) {
                 w.add(t);
                 if (s.name == "model.norm.weight")
                   w.add(TensorView(extra.data(), DType::f32, Device::cpu(), {3},
                                    "model.layers.0.self_attn.rotary_emb.inv_freq"));
               });
  const auto r = Checkpoint::open(dir.file("extra")).check();
  EXPECT_TRUE(r.complete());
  EXPECT_EQ(r.unexpected, std::vector<std::string>{"model.layers.0.self_attn.rotary_emb.inv_freq"});

  // A bad destination and an unknown name.
  const Checkpoint ok = Checkpoint::open(dir.file("ok"));
  std::vector<float> small(4);
  expect_error_contains(
      [&] {
        ok.load("model.norm.weight",
                TensorView(small.data(), DType::f32, Device::cpu(), {4}, "dst"));
      },
      {"model.norm.weight", "(32)"});
  expect_error_contains([&] { ok.spec("model.norm.weigth"); },
                        {"did you mean 'model.norm.weight'"});
  // No checkpoint at all.
  expect_error_contains([&] { Checkpoint::open(dir.file("nothing")); }, {"nothing"});
}

// ---- FP8

std::vector<float> as_f32(const SafetensorsFile& f, const std::string& name) {
  const auto& info = f.info(name);
  std::vector<float> v(static_cast<size_t>(info.numel()));
  const auto b = f.bytes(name);
  for (size_t i = 0; i < v.size(); ++i)
    v[i] = static_cast<float>(load_as_double(b.data(), info.dtype, i));
  return v;
}

TEST(Checkpoint, Fp8BlocksMatchTorch) {
  const Checkpoint ck = Checkpoint::open(data("fp8"));
  EXPECT_EQ(ck.config().fp8_block_rows, 128);
  const auto report = ck.check();
  EXPECT_TRUE(report.complete());
  EXPECT_TRUE(report.unexpected.empty()) << report.unexpected[0];
  EXPECT_EQ(report.fp8_tensors, 13);
  const SafetensorsFile expected = SafetensorsFile::open(data("fp8/expected.safetensors"));
  const SafetensorsFile stored = SafetensorsFile::open(data("fp8/model.safetensors"));
  for (const auto& s : ck.manifest()) {
    std::vector<float> got(static_cast<size_t>(s.numel()));
    ck.load(s, f32_view(got, s));
    if (expected.has(s.name)) {
      EXPECT_EQ(ck.locate(s).scale_name, s.name + "_scale_inv");
      EXPECT_TRUE(bits_equal(got, as_f32(expected, s.name))) << s.name;
      // Into bf16: the f32 product rounded once.
      std::vector<uint16_t> bf(got.size());
      ck.load(s, TensorView(bf.data(), DType::bf16, Device::cpu(), s.shape, s.name));
      for (size_t i = 0; i < bf.size(); ++i) ASSERT_EQ(bf[i], f32_to_bf16_bits(got[i])) << s.name;
    } else {
      EXPECT_TRUE(bits_equal(got, as_f32(stored, s.name))) << s.name;
    }
  }
  // 2 x 2 blocks, partial in both dims.
  const SafetensorsFile blocks = SafetensorsFile::open(data("fp8/blocks.safetensors"));
  std::vector<float> out(130 * 140);
  dequantize_fp8_blocks(TensorView(out.data(), DType::f32, Device::cpu(), {130, 140}, "out"),
                        blocks.view("w.weight"), blocks.view("w.weight_scale_inv"), 128, 128);
  EXPECT_TRUE(bits_equal(out, as_f32(blocks, "expected")));
  EXPECT_EQ(blocks.info("w.weight_scale_inv").shape, (Shape{2, 2}));
}

// Copies the tensors of `src` into a new one-file checkpoint with `edit` deciding per tensor.
void rewrite(const std::string& src_dir, const std::string& dst_dir,
             const std::function<void(SafetensorsWriter&, const SafetensorsFile&,
                                      const std::string&)>& edit) {
  fs::create_directories(dst_dir);
  fs::copy_file(src_dir + "/config.json", dst_dir + "/config.json");
  const SafetensorsFile f = SafetensorsFile::open(src_dir + "/model.safetensors");
  SafetensorsWriter w;
  for (const auto& name : f.names()) edit(w, f, name);
  w.write(dst_dir + "/model.safetensors");
}
void copy_tensor(SafetensorsWriter& w, const SafetensorsFile& f, const std::string& name) {
  const auto& info = f.info(name);
  const auto bytes = f.bytes(name);
  w.add(name, info.dtype, info.shape,
        [bytes](void* dst) { std::memcpy(dst, bytes.data(), bytes.size()); });
}

TEST(Checkpoint, Fp8MissingOrBadScales) {
  ScratchDir dir;
  const std::string victim = "model.layers.0.self_attn.o_proj.weight_scale_inv";
  rewrite(data("fp8"), dir.file("noscale"),
          [&](SafetensorsWriter& w, const SafetensorsFile& f, const std::string& n) {
            if (n != victim) copy_tensor(w, f, n);
          });
  expect_error_contains(
      [&] { load_all(Checkpoint::open(dir.file("noscale"))); },
      {"model.layers.0.self_attn.o_proj.weight", victim, "missing", "model.safetensors"});
  std::vector<float> wrong(5, 1.0f);
  rewrite(data("fp8"), dir.file("badscale"),
          [&](SafetensorsWriter& w, const SafetensorsFile& f, const std::string& n) {
            if (n == victim)
              w.add(TensorView(wrong.data(), DType::f32, Device::cpu(), {5, 1}, victim));
            else
              copy_tensor(w, f, n);
          });
  expect_error_contains([&] { load_all(Checkpoint::open(dir.file("badscale"))); },
                        {victim, "(5, 1)", "(2, 1)"});
}

// DeepSeek's per-expert FP8 tensors of tests/policy/data/fp8 merged into fused gate_up_proj /
// down_proj (+ _scale_inv). The gate_up scales are the gate and up scales concatenated, or, with
// blocks_over_fused_rows, one block row per expert over the fused 2I = 16 rows (the gate's scales).
std::string write_fused_fp8(const ScratchDir& dir, const std::string& name,
                            bool blocks_over_fused_rows) {
  const int64_t E = Checkpoint::open(data("fp8")).config().n_routed_experts;
  const SafetensorsFile f = SafetensorsFile::open(data("fp8/model.safetensors"));
  std::vector<std::vector<uint8_t>> keep;
  keep.reserve(8);
  auto concat = [&](const std::vector<std::string>& names) {
    std::vector<uint8_t> out;
    for (const auto& n : names) {
      const auto b = f.bytes(n);
      out.insert(out.end(), b.begin(), b.end());
    }
    keep.push_back(std::move(out));
    return &keep.back();
  };
  rewrite(data("fp8"), dir.file(name),
          [&](SafetensorsWriter& w, const SafetensorsFile& src, const std::string& n) {
            if (n.find("mlp.experts.") == std::string::npos) {
              copy_tensor(w, src, n);
              return;
            }
            if (n != "model.layers.0.mlp.experts.0.down_proj.weight")
              return;  // write the fused ones once
            const std::string p = "model.layers.0.mlp.experts.";
            for (const char* suffix : {"weight", "weight_scale_inv"}) {
              const bool scale = std::string(suffix) == "weight_scale_inv";
              std::vector<std::string> gu, dn;
              for (int64_t e = 0; e < E; ++e) {
                gu.push_back(fmt::format("{}{}.gate_proj.{}", p, e, suffix));
                if (!(scale && blocks_over_fused_rows))
                  gu.push_back(fmt::format("{}{}.up_proj.{}", p, e, suffix));
                dn.push_back(fmt::format("{}{}.down_proj.{}", p, e, suffix));
              }
              const auto& g0 = src.info(gu[0]);
              const auto& d0 = src.info(dn[0]);
              const int64_t rows = (scale && blocks_over_fused_rows) ? 1 : 2 * g0.shape[0];
              const auto* gbytes = concat(gu);
              const auto* dbytes = concat(dn);
              const std::string tail = scale ? "_scale_inv" : "";
              w.add(p + "gate_up_proj" + tail, g0.dtype, {E, rows, g0.shape[1]},
                    [gbytes](void* dst) { std::memcpy(dst, gbytes->data(), gbytes->size()); });
              w.add(p + "down_proj" + tail, d0.dtype, {E, d0.shape[0], d0.shape[1]},
                    [dbytes](void* dst) { std::memcpy(dst, dbytes->data(), dbytes->size()); });
            }
          });
  return dir.file(name);
}

TEST(Checkpoint, Fp8FusedExpertsEqualPerExpert) {
  ScratchDir dir;
  const Checkpoint per = Checkpoint::open(data("fp8"));
  const Checkpoint fused = Checkpoint::open(write_fused_fp8(dir, "fused", false));
  const auto r = fused.check();
  EXPECT_TRUE(r.complete()) << r.missing[0];
  EXPECT_TRUE(r.unexpected.empty());
  EXPECT_EQ(r.fused_expert_tensors, 3 * per.config().n_routed_experts);
  EXPECT_EQ(r.fp8_tensors, 13);
  expect_same_values(load_all(per), load_all(fused));
}

// Scales blocked over the fused rows: row r of up_proj uses block row (I + r) / 128 = 0.
TEST(Checkpoint, Fp8FusedScalesOverFusedRows) {
  ScratchDir dir;
  const Checkpoint per = Checkpoint::open(data("fp8"));
  const Checkpoint fused = Checkpoint::open(write_fused_fp8(dir, "fused", true));
  EXPECT_TRUE(fused.check().complete());
  const SafetensorsFile f = SafetensorsFile::open(data("fp8/model.safetensors"));
  for (int64_t e = 0; e < per.config().n_routed_experts; ++e) {
    const std::string p = fmt::format("model.layers.0.mlp.experts.{}.", e);
    const ParamSpec& up = fused.spec(p + "up_proj.weight");
    std::vector<float> got(static_cast<size_t>(up.numel())), want(got.size());
    fused.load(up, f32_view(got, up));
    dequantize_fp8_blocks(f32_view(want, up), f.view(p + "up_proj.weight"),
                          f.view(p + "gate_proj.weight_scale_inv"), 128, 128, 8);
    EXPECT_TRUE(bits_equal(got, want)) << up.name;
    const ParamSpec& gate = fused.spec(p + "gate_proj.weight");
    std::vector<float> g1(static_cast<size_t>(gate.numel())), g2(g1.size());
    fused.load(gate, f32_view(g1, gate));
    per.load(gate, f32_view(g2, gate));
    EXPECT_TRUE(bits_equal(g1, g2)) << gate.name;
  }
}

// Scales stored as bf16 or as e8m0 exponents dequantise like their f32 values.
TEST(Checkpoint, Fp8ScaleDtypes) {
  const SafetensorsFile blocks = SafetensorsFile::open(data("fp8/blocks.safetensors"));
  const TensorView q = blocks.view("w.weight");
  const std::vector<float> s32 = as_f32(blocks, "w.weight_scale_inv");
  std::vector<uint16_t> s16(s32.size());
  std::vector<uint8_t> s8(s32.size());
  std::vector<float> as16(s32.size()), as8(s32.size());
  for (size_t i = 0; i < s32.size(); ++i) {
    s16[i] = f32_to_bf16_bits(s32[i]);
    as16[i] = bf16_bits_to_f32(s16[i]);
    const int e = static_cast<int>(std::lround(std::log2(s32[i])));
    s8[i] = static_cast<uint8_t>(e + 127);
    as8[i] = std::ldexp(1.0f, e);
  }
  auto run = [&](void* scale, DType dt) {
    std::vector<float> out(130 * 140);
    dequantize_fp8_blocks(TensorView(out.data(), DType::f32, Device::cpu(), {130, 140}, "out"), q,
                          TensorView(scale, dt, Device::cpu(), {2, 2}, "s"), 128, 128);
    return out;
  };
  EXPECT_TRUE(bits_equal(run(s16.data(), DType::bf16), run(as16.data(), DType::f32)));
  EXPECT_TRUE(bits_equal(run(s8.data(), DType::f8_e8m0), run(as8.data(), DType::f32)));
  // Scales that do not cover the matrix are an error naming both.
  std::vector<float> small(2, 1.0f);
  expect_error_contains(
      [&] {
        std::vector<float> out(130 * 140);
        dequantize_fp8_blocks(TensorView(out.data(), DType::f32, Device::cpu(), {130, 140}, "out"),
                              q, TensorView(small.data(), DType::f32, Device::cpu(), {1, 2}, "s"),
                              128, 128);
      },
      {"w.weight", "(1, 2)"});
}

// transformers 5 holds experts fused; save_pretrained writes them per expert. Both load the same.
TEST(Checkpoint, FusedExpertNamesEqualPerExpertNames) {
  const Checkpoint per = Checkpoint::open(data("fused/per_expert"));
  const Checkpoint fused = Checkpoint::open(data("fused/fused"));
  const auto rp = per.check(), rf = fused.check();
  EXPECT_TRUE(rp.complete());
  EXPECT_TRUE(rf.complete()) << rf.missing[0];
  EXPECT_TRUE(rp.unexpected.empty());
  EXPECT_TRUE(rf.unexpected.empty()) << rf.unexpected[0];
  EXPECT_EQ(rp.fused_expert_tensors, 0);
  EXPECT_EQ(rf.fused_expert_tensors, 3 * per.config().n_routed_experts);
  expect_same_values(load_all(per), load_all(fused));
  const auto st = fused.locate(fused.spec("model.layers.1.mlp.experts.2.up_proj.weight"));
  EXPECT_EQ(st.name, "model.layers.1.mlp.experts.gate_up_proj");
  EXPECT_EQ(st.layout, StoredLayout::fused_up);
  EXPECT_EQ(st.expert, 2);
  // A fused tensor of the wrong shape names itself and the shape the config needs.
  ScratchDir dir;
  std::vector<float> bad(4 * 16 * 15, 0.0f);
  rewrite(data("fused/fused"), dir.file("bad"),
          [&](SafetensorsWriter& w, const SafetensorsFile& f, const std::string& n) {
            if (n == "model.layers.1.mlp.experts.gate_up_proj")
              w.add(TensorView(bad.data(), DType::f32, Device::cpu(), {4, 15, 16}, n));
            else
              copy_tensor(w, f, n);
          });
  expect_error_contains([&] { load_all(Checkpoint::open(dir.file("bad"))); },
                        {"model.layers.1.mlp.experts.gate_up_proj", "(4, 15, 16)", "(4, 16, 16)"});
}

TEST(Checkpoint, MtpCopiesMayBeLeftOut) {
  ScratchDir dir;
  const ModelConfig c = preset_config(ModelArch::deepseek_v3, "tiny");
  init_checkpoint(dir.file("a"), c, init_opts(9, DType::f32));
  Values v = load_all(Checkpoint::open(dir.file("a")));
  SaveOptions so;
  so.dtype = DType::f32;
  so.mtp_copies = false;
  save_checkpoint(dir.file("b"), c, fill_from_views(views_of(v, c)), so);
  const Checkpoint b = Checkpoint::open(dir.file("b"));
  EXPECT_FALSE(b.tensors().has("model.layers.3.embed_tokens.weight"));
  const auto r = b.check();
  EXPECT_TRUE(r.complete());
  EXPECT_EQ(r.tied_copies_absent, 2);
  expect_same_values(v, load_all(b));
}

TEST(Checkpoint, SaveIsAtomicAndCopiesTokenizerFiles) {
  ScratchDir dir;
  const ModelConfig c = preset_config(ModelArch::qwen2, "tiny");
  fs::create_directories(dir.file("tok"));
  write_file_atomic(dir.file("tok/tokenizer.json"), "{\"model\": {}}");
  write_file_atomic(dir.file("tok/merges.txt"), "#version: 0.2\na b\n");
  write_file_atomic(dir.file("tok/tokenizer.bin"), "llama2.c");
  InitOptions o = init_opts(1, DType::bf16);
  o.tokenizer_dir = dir.file("tok");
  const Json s = init_checkpoint(dir.file("m"), c, o);
  EXPECT_EQ(s["tokenizer_files"], Json({"tokenizer.json", "merges.txt", "tokenizer.bin"}));
  EXPECT_EQ(read_file(dir.file("m/tokenizer.bin")), "llama2.c");
  EXPECT_EQ(read_file(dir.file("m/merges.txt")), "#version: 0.2\na b\n");
  const std::string before = read_file(dir.file("m/model.safetensors"));

  // An existing directory is kept unless overwriting is asked for.
  expect_error_contains([&] { init_checkpoint(dir.file("m"), c, init_opts(2, DType::bf16)); },
                        {"exists"});
  EXPECT_EQ(read_file(dir.file("m/model.safetensors")), before);
  InitOptions over = init_opts(2, DType::bf16);
  over.overwrite = true;
  init_checkpoint(dir.file("m"), c, over);
  EXPECT_NE(read_file(dir.file("m/model.safetensors")), before);
  EXPECT_FALSE(fs::exists(dir.file("m/merges.txt")));  // the new checkpoint has no tokenizer

  // A failure while writing leaves neither the target nor a temporary directory.
  TensorFill failing = [](const ParamSpec& spec, const TensorView&) {
    if (spec.name == "model.norm.weight") R1_THROW("fill failed");
  };
  expect_error_contains([&] { save_checkpoint(dir.file("f"), c, failing); }, {"fill failed"});
  EXPECT_FALSE(fs::exists(dir.file("f")));
  for (const auto& e : fs::directory_iterator(dir.path()))
    EXPECT_EQ(e.path().filename().string().find(".tmp."), std::string::npos) << e.path();

  fs::create_directories(dir.file("empty_tok"));
  InitOptions bad = init_opts(1, DType::bf16);
  bad.tokenizer_dir = dir.file("empty_tok");
  expect_error_contains([&] { init_checkpoint(dir.file("t"), c, bad); },
                        {"empty_tok", "tokenizer"});
}

TEST(Checkpoint, Describe) {
  ScratchDir dir;
  const ModelConfig c = preset_config(ModelArch::deepseek_v3, "tiny");
  init_checkpoint(dir.file("m"), c, init_opts(1, DType::bf16));
  const Json d = Checkpoint::open(dir.file("m")).describe();
  EXPECT_EQ(d["architecture"], "DeepseekV3ForCausalLM");
  EXPECT_EQ(d["model_type"], "deepseek_v3");
  EXPECT_EQ(d["parameters"]["total"].get<int64_t>(), count_parameters(c).total);
  EXPECT_TRUE(d["checkpoint"]["complete"].get<bool>());
  EXPECT_GT(d["bytes_by_dtype"]["bf16"].get<int64_t>(), 0);
  EXPECT_EQ(d["bytes_by_dtype"]["f32"].get<int64_t>(), 4 * 8 * 3);  // 3 correction biases of 8
  EXPECT_EQ(d["config"]["moe"]["topk_method"], "noaux_tc");
}

}  // namespace
}  // namespace r1kit::policy
