// llama2.c import: the real stories260K model converted to the HF Llama layout reproduces
// llama2.c's greedy output from BOS (256 tokens, greedy_t0_256steps.json) token for token; a
// synthetic checkpoint with an unshared classifier lands every tensor where the format says, with
// q/k rows permuted to half-split RoPE; bad files give errors naming the file.
#include "policy/llama2c.h"

#include <cstring>
#include <filesystem>
#include <fstream>

#include "core/fs.h"
#include "kernels/sampling.h"
#include "policy/checkpoint.h"
#include "policy/policy.h"
#include "tests/common/test_util.h"

namespace r1kit::policy {
namespace {

using testing::cpu_ctx;
using testing::expect_error_contains;
using testing::ScratchDir;

std::string stories(const std::string& file) {
  return std::string(R1KIT_SOURCE_DIR) + "/tests/policy/data/stories260K/" + file;
}

TEST(Llama2c, RopeRowPermutationIsHfsPermute) {
  // HF: w.view(heads, D/2, 2, C).transpose(1, 2): new row t·D/2 + j is old row 2j + t.
  std::vector<int64_t> rows;
  for (int64_t r = 0; r < 8; ++r) rows.push_back(llama2c_rope_row(r, 8));
  EXPECT_EQ(rows, (std::vector<int64_t>{0, 2, 4, 6, 1, 3, 5, 7}));
}

TEST(Llama2c, Stories260KGreedyDecodingReproducesLlama2c) {
  Context& ctx = cpu_ctx();
  ScratchDir dir;
  Llama2cConvertOptions o;
  o.tokenizer = stories("tok512.bin");
  const Json summary = convert_llama2c(stories("stories260K.bin"), dir.file("m"), o);
  EXPECT_EQ(summary["llama2c"]["dim"], 64);
  EXPECT_EQ(summary["llama2c"]["n_kv_heads"], 4);
  EXPECT_TRUE(summary["llama2c"]["shared_classifier"].get<bool>());
  EXPECT_EQ(read_file(dir.file("m/tokenizer.bin")), read_file(stories("tok512.bin")));
  const Checkpoint ck = Checkpoint::open(dir.file("m"));
  EXPECT_TRUE(ck.check().complete());
  EXPECT_TRUE(ck.check().unexpected.empty());
  EXPECT_TRUE(ck.config().tie_word_embeddings);
  EXPECT_EQ(ck.config().num_key_value_heads, 4);
  EXPECT_EQ(ck.config().rms_norm_eps, 1e-5);

  const Json golden = read_json_file(stories("greedy_t0_256steps.json"));
  const auto expected = golden.at("generated_ids").get<std::vector<int32_t>>();
  ASSERT_EQ(expected.size(), 256u);

  // No KV cache: each step reruns the whole sequence (a 260K-parameter model, a few seconds).
  Policy p = Policy::load(dir.file("m"), ctx);
  std::vector<int32_t> seq = {1};  // BOS
  std::vector<int32_t> generated;
  Tensor token = ctx.empty({1}, DType::i32, "token");
  Tensor token_logprob = ctx.empty({1}, DType::f32, "token_logprob");
  Tensor counters = ctx.zeros({1, 2}, DType::i64, "rng_counters");
  kernels::SamplingParams greedy;
  greedy.temperature = 0;
  ForwardOptions fo;
  fo.logits = true;
  fo.for_backward = false;
  for (size_t step = 0; step < expected.size(); ++step) {
    const TokenBatch batch = TokenBatch::from_sequences({seq}, ctx);
    const ForwardContext f = p.forward(batch, fo, ctx);
    const int64_t T = batch.num_tokens();
    kernels::sample_forward(token, token_logprob, f.logits.view().slice(T - 1, T), counters, greedy,
                            0, ctx);
    const int32_t next = token.ptr<int32_t>()[0];
    generated.push_back(next);
    seq.push_back(next);
    if (next != expected[step]) break;  // report the first divergence only
  }
  EXPECT_EQ(generated, expected);
}

// A llama2.c file whose float i is i·1e-3 (so each tensor's source offset is visible), unshared
// classifier (negative vocab_size).
struct Synthetic {
  int32_t dim = 8, hidden = 12, layers = 2, heads = 2, kv_heads = 1, vocab = 10, seq_len = 4;
  int64_t floats() const {
    const int64_t C = dim, F = hidden, L = layers, V = vocab, kv = kv_heads * (dim / heads);
    return V * C + L * C + L * C * C + 2 * L * kv * C + L * C * C + L * C + 3 * L * C * F + C +
           seq_len * (dim / heads) + V * C;
  }
  void write(const std::string& path, int64_t drop_bytes = 0) const {
    std::string bytes;
    const int32_t header[7] = {dim, hidden, layers, heads, kv_heads, -vocab, seq_len};
    bytes.append(reinterpret_cast<const char*>(header), sizeof(header));
    for (int64_t i = 0; i < floats(); ++i) {
      const float v = static_cast<float>(i) * 1e-3f;
      bytes.append(reinterpret_cast<const char*>(&v), 4);
    }
    bytes.resize(bytes.size() - static_cast<size_t>(drop_bytes));
    write_file_atomic(path, bytes);
  }
};

TEST(Llama2c, SyntheticCheckpointTensorsLandWhereTheFormatSays) {
  ScratchDir dir;
  const Synthetic s;
  s.write(dir.file("s.bin"));
  const Llama2cModel m = read_llama2c(dir.file("s.bin"));
  EXPECT_FALSE(m.header.shared_classifier);
  EXPECT_FALSE(m.config.tie_word_embeddings);
  const int64_t C = 8, F = 12, L = 2, V = 10, hs = 4, kv = 4;
  auto at = [](int64_t offset) { return static_cast<float>(offset) * 1e-3f; };
  const auto& t = m.tensors;
  EXPECT_EQ(t.at("model.embed_tokens.weight")[0], at(0));
  int64_t off = V * C;
  EXPECT_EQ(t.at("model.layers.1.input_layernorm.weight")[0], at(off + C));
  off += L * C;
  // q_proj row r of head h is wq row h·hs + llama2c_rope_row(r % hs): row 1 is old row 2.
  EXPECT_EQ(t.at("model.layers.0.self_attn.q_proj.weight")[1 * C], at(off + 2 * C));
  EXPECT_EQ(t.at("model.layers.0.self_attn.q_proj.weight")[5 * C + 3], at(off + 6 * C + 3));
  off += L * C * C;
  EXPECT_EQ(t.at("model.layers.1.self_attn.k_proj.weight")[2 * C], at(off + kv * C + 1 * C));
  off += L * kv * C;
  EXPECT_EQ(t.at("model.layers.0.self_attn.v_proj.weight")[3], at(off + 3));
  off += L * kv * C;
  EXPECT_EQ(t.at("model.layers.0.self_attn.o_proj.weight")[0], at(off));
  off += L * C * C;
  EXPECT_EQ(t.at("model.layers.0.post_attention_layernorm.weight")[0], at(off));
  off += L * C;
  EXPECT_EQ(t.at("model.layers.1.mlp.gate_proj.weight")[0], at(off + F * C));
  off += L * F * C;
  EXPECT_EQ(t.at("model.layers.0.mlp.down_proj.weight")[1], at(off + 1));
  off += L * C * F;
  EXPECT_EQ(t.at("model.layers.0.mlp.up_proj.weight")[0], at(off));
  off += L * F * C;
  EXPECT_EQ(t.at("model.norm.weight")[0], at(off));
  off += C + 4 * hs;  // seq_len · head_size / 2 twice
  EXPECT_EQ(t.at("lm_head.weight")[0], at(off));
  EXPECT_EQ(t.at("lm_head.weight")[V * C - 1], at(off + V * C - 1));

  // Converted without a tokenizer: a complete untied Llama checkpoint.
  convert_llama2c(dir.file("s.bin"), dir.file("out"), {});
  const Checkpoint ck = Checkpoint::open(dir.file("out"));
  EXPECT_TRUE(ck.check().complete());
  EXPECT_TRUE(ck.has_spec("lm_head.weight"));
  EXPECT_FALSE(std::filesystem::exists(dir.file("out/tokenizer.bin")));
}

TEST(Llama2c, BadFilesNameTheFileAndTheProblem) {
  ScratchDir dir;
  const Synthetic s;
  s.write(dir.file("short.bin"), 4);
  expect_error_contains([&] { read_llama2c(dir.file("short.bin")); },
                        {"short.bin", "bytes, but the header", "implies"});
  const uint32_t magic[2] = {0x616b3432, 1};
  write_file_atomic(dir.file("v1.bin"),
                    std::string(reinterpret_cast<const char*>(magic), 8) + std::string(248, '\0'));
  expect_error_contains([&] { read_llama2c(dir.file("v1.bin")); }, {"v1.bin", "version 1/2"});
  const int32_t bad[7] = {8, 12, 2, 3, 1, 10, 4};
  write_file_atomic(dir.file("heads.bin"), std::string(reinterpret_cast<const char*>(bad), 28));
  expect_error_contains([&] { read_llama2c(dir.file("heads.bin")); },
                        {"heads.bin", "dim 8 is not a multiple of n_heads 3"});
  expect_error_contains([&] { read_llama2c(dir.file("missing.bin")); }, {"missing.bin"});
  // The 512-token tokenizer does not fit a 10-token model, nor a 600-token one.
  expect_error_contains([&] { read_llama2c_tokenizer(stories("tok512.bin"), 10); },
                        {"tok512.bin", "bytes left after the 10 tokens"});
  expect_error_contains([&] { read_llama2c_tokenizer(stories("tok512.bin"), 600); },
                        {"tok512.bin", "holds 512 tokens", "600"});
  Llama2cConvertOptions o;
  o.tokenizer = stories("tok512.bin");
  expect_error_contains([&] { convert_llama2c(dir.file("heads.bin"), dir.file("never"), o); },
                        {"heads.bin"});
  EXPECT_FALSE(std::filesystem::exists(dir.file("never")));
}

}  // namespace
}  // namespace r1kit::policy
