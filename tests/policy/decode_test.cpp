// CachedForward over a PagedKvCache, on tiny random models in f32 on the CPU (dense Qwen2 GQA and
// DeepSeek-V3 MLA + MoE): token-by-token and one-shot prefill give the training forward's
// log-probs, chunked prefill equals one-shot, sequences batched with shuffled block tables equal
// each alone, the reported experts equal the router's choices of the training forward, a forked
// sample (copy_block, then diverging appends) leaves its source unchanged, and misuse errors. The
// same steps on a CUDA context: tests/gpu/rollout_gpu_test.cpp.
#include "policy/decode.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "policy/policy.h"
#include "policy/presets.h"
#include "tests/common/test_util.h"

namespace r1kit::policy {
namespace {

using testing::cpu_ctx;
using testing::expect_error_contains;
using testing::normalized_error;
using testing::to_double;

const std::vector<int32_t> kSeq = {5, 17, 3, 99, 42, 7, 7, 64, 120, 1, 33};

std::vector<ModelConfig> configs() {
  return {preset_config(ModelArch::qwen2, "tiny"), preset_config(ModelArch::deepseek_v3, "tiny")};
}

// Parameters uniform in ±0.3 (norms around 1) so that the logits are far from uniform.
Policy random_policy(const ModelConfig& c, uint64_t seed) {
  Context& ctx = cpu_ctx();
  Policy p = Policy::init(c, seed, ctx);
  std::mt19937_64 rng(seed);
  for (const ModelParams* arena : {&p.params(), &p.buffers()})
    for (const auto& e : arena->entries()) {
      const TensorView v = arena->get(e.name);
      std::uniform_real_distribution<double> d(-0.3, 0.3);
      std::vector<double> vals(static_cast<size_t>(v.numel()));
      for (auto& x : vals) x = (e.kind == ParamKind::norm ? 1.0 : 0.0) + d(rng);
      testing::fill_from_double(v, vals);
    }
  return p;
}

std::vector<double> log_softmax_rows(const std::vector<double>& logits, int64_t v) {
  std::vector<double> out(logits.size());
  for (size_t r = 0; r < logits.size() / static_cast<size_t>(v); ++r) {
    const double* row = logits.data() + r * v;
    double m = -1e300, z = 0;
    for (int64_t i = 0; i < v; ++i) m = std::max(m, row[i]);
    for (int64_t i = 0; i < v; ++i) z += std::exp(row[i] - m);
    for (int64_t i = 0; i < v; ++i) out[r * v + i] = row[i] - m - std::log(z);
  }
  return out;
}

// The training forward's (T, V) logits and the routing of each MoE layer, for one sequence.
struct Reference {
  std::vector<double> logits;
  std::vector<std::vector<double>> topk;  // per MoE layer (T, K)
};
Reference reference(Policy& p, const std::vector<int32_t>& seq) {
  Context& ctx = cpu_ctx();
  const TokenBatch batch = TokenBatch::from_sequences({seq}, ctx);
  ForwardOptions o;
  o.logits = true;
  o.for_backward = false;
  const ForwardContext f = p.forward(batch, o, ctx);
  Reference r;
  r.logits = to_double(f.logits);
  for (const MoeLayerStats& m : f.moe) r.topk.push_back(to_double(m.topk_idx));
  return r;
}

// One sequence's state: its blocks and how many tokens its cache holds.
struct Seq {
  std::vector<int32_t> blocks;
  int64_t cached = 0;
};

// One step over several sequences: seqs[i] gets tokens `toks[i]`. Returns logits (B, V).
CachedOutput step(CachedForward& cf, PagedKvCache& cache, std::vector<Seq*> seqs,
                  const std::vector<std::vector<int32_t>>& toks) {
  CachedBatch b;
  for (size_t i = 0; i < seqs.size(); ++i) {
    b.tokens.insert(b.tokens.end(), toks[i].begin(), toks[i].end());
    b.cached_len.push_back(seqs[i]->cached);
    b.new_len.push_back(static_cast<int64_t>(toks[i].size()));
    b.block_tables.push_back(seqs[i]->blocks);
  }
  CachedOutput o = cf.step(b, cache, cpu_ctx());
  for (size_t i = 0; i < seqs.size(); ++i) seqs[i]->cached += static_cast<int64_t>(toks[i].size());
  return o;
}

std::vector<int32_t> slice(const std::vector<int32_t>& v, size_t a, size_t b) {
  return {v.begin() + static_cast<int64_t>(a), v.begin() + static_cast<int64_t>(b)};
}

std::vector<double> row(const std::vector<double>& m, int64_t r, int64_t v) {
  return {m.begin() + r * v, m.begin() + (r + 1) * v};
}

KvCacheSpec spec(int64_t blocks, int64_t block_size) {
  KvCacheSpec s;
  s.num_blocks = blocks;
  s.block_size = block_size;
  return s;
}

TEST(CachedForward, TokenByTokenAndOneShotPrefillGiveTheTrainingForwardsLogprobs) {
  Context& ctx = cpu_ctx();
  for (const ModelConfig& c : configs()) {
    SCOPED_TRACE(std::string(model_arch_name(c.arch)));
    Policy p = random_policy(c, 3);
    const Reference ref = reference(p, kSeq);
    const int64_t V = c.vocab_size, T = static_cast<int64_t>(kSeq.size());
    const auto want = log_softmax_rows(ref.logits, V);
    CachedForward cf(p, ctx);
    {
      PagedKvCache cache = PagedKvCache::make(c, spec(8, 4), ctx);
      Seq s{{6, 2, 0}, 0};  // 3 blocks of 4 for 11 tokens, out of order
      std::vector<double> got;
      for (int64_t t = 0; t < T; ++t) {
        const auto lg = to_double(step(cf, cache, {&s}, {{kSeq[t]}}).logits);
        got.insert(got.end(), lg.begin(), lg.end());
      }
      EXPECT_LT(normalized_error(log_softmax_rows(got, V), want), 1e-5);
    }
    PagedKvCache cache = PagedKvCache::make(c, spec(8, 4), ctx);
    Seq s{{1, 5, 3}, 0};
    const auto lg = to_double(step(cf, cache, {&s}, {kSeq}).logits);
    EXPECT_LT(normalized_error(lg, row(ref.logits, T - 1, V)), 1e-5);
    EXPECT_LT(normalized_error(log_softmax_rows(lg, V), row(want, T - 1, V)), 1e-5);
  }
}

TEST(CachedForward, ChunkedPrefillEqualsOneShot) {
  Context& ctx = cpu_ctx();
  for (const ModelConfig& c : configs()) {
    SCOPED_TRACE(std::string(model_arch_name(c.arch)));
    Policy p = random_policy(c, 4);
    const int64_t V = c.vocab_size;
    const auto want = log_softmax_rows(reference(p, kSeq).logits, V);
    CachedForward cf(p, ctx);
    PagedKvCache cache = PagedKvCache::make(c, spec(6, 3), ctx);
    Seq s{{4, 0, 5, 2}, 0};
    // Chunks of 3 (ending at positions 2, 5, 8), then single tokens.
    for (size_t a = 0; a < 9; a += 3) {
      const auto lg = to_double(step(cf, cache, {&s}, {slice(kSeq, a, a + 3)}).logits);
      EXPECT_LT(normalized_error(log_softmax_rows(lg, V), row(want, a + 2, V)), 1e-5);
    }
    for (size_t t = 9; t < kSeq.size(); ++t) {
      const auto lg = to_double(step(cf, cache, {&s}, {{kSeq[t]}}).logits);
      EXPECT_LT(normalized_error(log_softmax_rows(lg, V), row(want, t, V)), 1e-5);
    }
  }
}

TEST(CachedForward, BatchedSequencesWithShuffledBlocksEqualEachAlone) {
  Context& ctx = cpu_ctx();
  const std::vector<std::vector<int32_t>> seqs = {
      {9, 8, 7, 6, 5, 4, 3}, {100, 2}, {11, 12, 13, 14, 15, 16, 17, 18, 19}};
  for (const ModelConfig& c : configs()) {
    SCOPED_TRACE(std::string(model_arch_name(c.arch)));
    Policy p = random_policy(c, 5);
    const int64_t V = c.vocab_size;
    CachedForward cf(p, ctx);
    // Together: prefill prefixes of 5, 1 and 6 tokens in one step, then a mixed step (a decode,
    // a chunk of 1, a chunk of 3), blocks interleaved and shuffled.
    PagedKvCache cache = PagedKvCache::make(c, spec(12, 2), ctx);
    std::vector<int32_t> ids(12);
    std::iota(ids.begin(), ids.end(), 0);
    std::shuffle(ids.begin(), ids.end(), std::mt19937_64(7));
    Seq a{{ids[0], ids[3], ids[6], ids[9]}, 0}, b{{ids[1]}, 0}, d{slice(ids, 7, 12), 0};
    d.blocks.insert(d.blocks.begin(), ids[2]);
    b.blocks.push_back(ids[4]);
    const auto first =
        to_double(step(cf, cache, {&a, &b, &d},
                       {slice(seqs[0], 0, 5), slice(seqs[1], 0, 1), slice(seqs[2], 0, 6)})
                      .logits);
    const auto second =
        to_double(step(cf, cache, {&a, &b, &d},
                       {slice(seqs[0], 5, 6), slice(seqs[1], 1, 2), slice(seqs[2], 6, 9)})
                      .logits);
    const size_t cut1[3] = {5, 1, 6}, cut2[3] = {6, 2, 9};
    for (int64_t i = 0; i < 3; ++i) {
      PagedKvCache alone = PagedKvCache::make(c, spec(6, 2), ctx);
      Seq s{{0, 1, 2, 3, 4}, 0};
      const auto one = to_double(step(cf, alone, {&s}, {slice(seqs[i], 0, cut1[i])}).logits);
      const auto two = to_double(step(cf, alone, {&s}, {slice(seqs[i], cut1[i], cut2[i])}).logits);
      EXPECT_LT(normalized_error(row(first, i, V), one), 1e-6) << "sequence " << i;
      EXPECT_LT(normalized_error(row(second, i, V), two), 1e-6) << "sequence " << i;
    }
  }
}

TEST(CachedForward, ReportedExpertsAreTheTrainingRoutersChoices) {
  Context& ctx = cpu_ctx();
  const ModelConfig c = preset_config(ModelArch::deepseek_v3, "tiny");
  Policy p = random_policy(c, 6);
  const Reference ref = reference(p, kSeq);
  ASSERT_FALSE(ref.topk.empty());
  const int64_t T = static_cast<int64_t>(kSeq.size()), K = c.num_experts_per_tok();
  const int64_t lm = static_cast<int64_t>(ref.topk.size());
  CachedForward cf(p, ctx);
  PagedKvCache cache = PagedKvCache::make(c, spec(4, 4), ctx);
  Seq s{{3, 1, 2}, 0};
  // A chunk of 4, then one token at a time.
  std::vector<int32_t> got = step(cf, cache, {&s}, {slice(kSeq, 0, 4)}).experts;
  ASSERT_EQ(static_cast<int64_t>(got.size()), 4 * lm * K);
  for (size_t t = 4; t < kSeq.size(); ++t) {
    const auto e = step(cf, cache, {&s}, {{kSeq[t]}}).experts;
    got.insert(got.end(), e.begin(), e.end());
  }
  for (int64_t t = 0; t < T; ++t)
    for (int64_t l = 0; l < lm; ++l)
      for (int64_t k = 0; k < K; ++k)
        EXPECT_EQ(got[(t * lm + l) * K + k], ref.topk[l][t * K + k])
            << "token " << t << ", MoE layer " << l << ", slot " << k;
}

TEST(CachedForward, ForkedSampleLeavesItsSourceUnchanged) {
  Context& ctx = cpu_ctx();
  for (const ModelConfig& c : configs()) {
    SCOPED_TRACE(std::string(model_arch_name(c.arch)));
    Policy p = random_policy(c, 7);
    const int64_t V = c.vocab_size;
    CachedForward cf(p, ctx);
    const std::vector<int32_t> prompt = slice(kSeq, 0, 6), tail_a = {8, 9, 10}, tail_b = {50, 51};
    // Alone: the prompt, then tail_a token by token.
    std::vector<std::vector<double>> alone;
    {
      PagedKvCache cache = PagedKvCache::make(c, spec(4, 4), ctx);
      Seq s{{0, 1, 2}, 0};
      step(cf, cache, {&s}, {prompt});
      for (int32_t t : tail_a) alone.push_back(to_double(step(cf, cache, {&s}, {{t}}).logits));
    }
    // Forked: b shares a's full block 0 and gets a copy of its partial block 1 (2 slots).
    PagedKvCache cache = PagedKvCache::make(c, spec(6, 4), ctx);
    Seq a{{2, 0, 4}, 0};
    step(cf, cache, {&a}, {prompt});
    Seq b{{2, 5, 1}, a.cached};
    cache.copy_block(0, 5, 2, ctx);
    for (size_t i = 0; i < tail_a.size(); ++i) {
      std::vector<Seq*> both = {&a};
      std::vector<std::vector<int32_t>> toks = {{tail_a[i]}};
      if (i < tail_b.size()) {
        both.push_back(&b);
        toks.push_back({tail_b[i]});
      }
      const auto lg = to_double(step(cf, cache, both, toks).logits);
      EXPECT_LT(normalized_error(row(lg, 0, V), alone[i]), 1e-6) << "step " << i;
    }
  }
}

TEST(CachedForward, MisuseGivesClearErrors) {
  Context& ctx = cpu_ctx();
  const ModelConfig c = preset_config(ModelArch::qwen2, "tiny");
  Policy p = random_policy(c, 8);
  CachedForward cf(p, ctx);
  PagedKvCache cache = PagedKvCache::make(c, spec(4, 4), ctx);
  auto run = [&](CachedBatch b) { return [&cf, &cache, &ctx, b] { cf.step(b, cache, ctx); }; };
  CachedBatch ok{{1, 2, 3, 4, 5}, {0}, {5}, {{0, 1}}};
  EXPECT_NO_THROW(cf.step(ok, cache, ctx));
  CachedBatch b = ok;
  b.block_tables = {{0}};
  expect_error_contains(run(b), {"[decode]", "sequence 0", "need 2 blocks", "has 1"});
  b = ok;
  b.block_tables = {{0, 9}};
  expect_error_contains(run(b), {"[decode]", "block_tables[0][1] = 9"});
  b = ok;
  b.cached_len = {c.max_position_embeddings - 2};
  b.block_tables = {std::vector<int32_t>(40, 0)};
  expect_error_contains(run(b), {"[decode]", "sequence 0", "beyond max_position_embeddings"});
  b = ok;
  b.new_len = {};
  expect_error_contains(run(b), {"[decode]", "no sequences"});
  b = ok;
  b.new_len = {0};
  b.tokens = {};
  expect_error_contains(run(b), {"[decode]", "sequence 0 has new_len 0"});
  b = ok;
  b.cached_len = {0, 0};
  expect_error_contains(run(b), {"[decode]", "new_len has 1 sequences but cached_len 2"});
  b = ok;
  b.tokens = {1, 2, 3};
  expect_error_contains(run(b), {"[decode]", "3 tokens given; new_len sums to 5"});
  b = ok;
  b.tokens[2] = static_cast<int32_t>(c.vocab_size);
  expect_error_contains(run(b), {"[decode]", "outside the vocabulary"});
  KvCacheSpec bf = spec(4, 4);
  bf.dtype = DType::bf16;
  PagedKvCache wrong = PagedKvCache::make(c, bf, ctx);
  expect_error_contains([&] { cf.step(ok, wrong, ctx); }, {"[decode]", "holds bf16"});
  expect_error_contains([&] { cache.copy_block(1, 1, 2, ctx); }, {"copy_block", "distinct"});
  expect_error_contains([&] { PagedKvCache::make(c, spec(0, 4), ctx); }, {"num_blocks 0"});
  EXPECT_EQ(PagedKvCache::bytes_per_block(c, 16, DType::bf16),
            c.num_hidden_layers * 16 * 2 * c.num_key_value_heads * c.head_dim * 2);
}

}  // namespace
}  // namespace r1kit::policy
