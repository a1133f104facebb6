// paged_attention: against attention_forward on the equivalent contiguous packed causal problem
// (GQA, the MLA shape Hkv = 1, Dqk = 576, Dv = 512 with V a view of K), chunks with cached
// positions, block tables in shuffled order, the cache write, and bad inputs rejected.
#include "kernels/paged_attention.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "kernels/attention.h"
#include "tests/common/test_util.h"

namespace r1kit::kernels {
namespace {
using testing::cpu_ctx;
using testing::expect_error_contains;

Tensor ints(Context& ctx, const Shape& shape, const std::vector<int32_t>& v, std::string name) {
  return testing::tensor_from(ctx, shape, DType::i32, std::vector<double>(v.begin(), v.end()),
                              std::move(name));
}

// Columns [0, n) of every row of a (..., D) view, as a view with the same strides.
TensorView first_cols(const TensorView& v, int64_t n) {
  TensorView r = v;
  r.shape[r.ndim - 1] = n;
  return r;
}

// Sizes, and per sequence the cached positions and the new rows.
struct PagedProblem {
  int64_t hq, hkv, dqk, dv, bs;
  bool v_in_k;                  // MLA: V is the first Dv columns of K
  std::vector<int32_t> cached;  // per sequence
  std::vector<int32_t> fresh;   // new rows per sequence
};

// Runs the problem both ways and returns the normalised error of the paged rows against the
// contiguous attention's rows of the same positions.
double paged_vs_contiguous(const PagedProblem& pp, uint64_t seed) {
  Context& ctx = cpu_ctx();
  std::mt19937_64 rng(seed);
  const int64_t nseq = static_cast<int64_t>(pp.cached.size());
  std::vector<int32_t> full_cu{0}, new_cu{0};
  for (int64_t b = 0; b < nseq; ++b) {
    full_cu.push_back(full_cu.back() + pp.cached[b] + pp.fresh[b]);
    new_cu.push_back(new_cu.back() + pp.fresh[b]);
  }
  const int64_t total = full_cu.back(), tnew = new_cu.back();
  Tensor q = testing::random_tensor(ctx, {total, pp.hq, pp.dqk}, DType::f32, rng, -1, 1, "q");
  Tensor k = testing::random_tensor(ctx, {total, pp.hkv, pp.dqk}, DType::f32, rng, -1, 1, "k");
  Tensor v_own = testing::random_tensor(ctx, {total, pp.hkv, pp.dv}, DType::f32, rng, -1, 1, "v");
  const TensorView v = pp.v_in_k ? first_cols(k, pp.dv) : v_own.view();
  Tensor out = ctx.empty({total, pp.hq, pp.dv}, DType::f32, "out");
  Tensor lse = ctx.empty({pp.hq, total}, DType::f32, "lse");
  const double scale = 1.0 / std::sqrt(static_cast<double>(pp.dqk));
  attention_forward(out, lse, q, k, v, ints(ctx, {nseq + 1}, full_cu, "cu"), scale, ctx);

  // Blocks handed out in shuffled order; one spare block more than needed, never used.
  std::vector<int64_t> need(nseq);
  int64_t nb = 1;
  for (int64_t b = 0; b < nseq; ++b) {
    need[b] = (pp.cached[b] + pp.fresh[b] + pp.bs - 1) / pp.bs;
    nb += need[b];
  }
  const int64_t width = *std::max_element(need.begin(), need.end()) + 1;
  std::vector<int32_t> perm(static_cast<size_t>(nb));
  std::iota(perm.begin(), perm.end(), 0);
  std::shuffle(perm.begin(), perm.end(), rng);
  std::vector<int32_t> table(static_cast<size_t>(nseq * width), -1), slots;
  size_t next = 0;
  for (int64_t b = 0; b < nseq; ++b) {
    for (int64_t j = 0; j < need[b]; ++j) table[b * width + j] = perm[next++];
    for (int64_t p = 0; p < pp.cached[b] + pp.fresh[b]; ++p)
      slots.push_back(table[b * width + p / pp.bs] * static_cast<int32_t>(pp.bs) +
                      static_cast<int32_t>(p % pp.bs));
  }
  Tensor kc = ctx.zeros({nb, pp.bs, pp.hkv, pp.dqk}, DType::f32, "k_cache");
  Tensor vc_own = ctx.zeros({nb, pp.bs, pp.hkv, pp.dv}, DType::f32, "v_cache");
  const Tensor slot_t = ints(ctx, {total}, slots, "slots");
  paged_cache_write(kc, k, slot_t, ctx);
  if (!pp.v_in_k) paged_cache_write(vc_own, v_own, slot_t, ctx);
  const TensorView vc = pp.v_in_k ? first_cols(kc, pp.dv) : vc_own.view();

  // The new rows' queries.
  Tensor qn = ctx.empty({tnew, pp.hq, pp.dqk}, DType::f32, "q_new");
  std::vector<double> want;
  const auto qd = testing::to_double(q), od = testing::to_double(out);
  std::vector<double> qnd;
  const int64_t qrow = pp.hq * pp.dqk, orow = pp.hq * pp.dv;
  for (int64_t b = 0; b < nseq; ++b)
    for (int64_t r = full_cu[b] + pp.cached[b]; r < full_cu[b + 1]; ++r) {
      qnd.insert(qnd.end(), qd.begin() + r * qrow, qd.begin() + (r + 1) * qrow);
      want.insert(want.end(), od.begin() + r * orow, od.begin() + (r + 1) * orow);
    }
  testing::fill_from_double(qn, qnd);
  Tensor got = ctx.empty({tnew, pp.hq, pp.dv}, DType::f32, "out_paged");
  testing::fill_constant(got, NAN);
  paged_attention_forward(got, qn, kc, vc, ints(ctx, {nseq, width}, table, "block_tables"),
                          ints(ctx, {nseq + 1}, new_cu, "cu_new"),
                          ints(ctx, {nseq}, pp.cached, "cached_lens"), scale, ctx);
  return testing::normalized_error(testing::to_double(got), want);
}

TEST(PagedAttention, GqaMatchesContiguousAttention) {
  // Prefill from empty, a chunk after cached positions, single decode rows, a block boundary.
  const PagedProblem pp{4, 2, 8, 6, 4, false, {0, 5, 8, 3}, {7, 3, 1, 1}};
  EXPECT_LT(paged_vs_contiguous(pp, 1), 1e-6);
  const PagedProblem mqa{3, 1, 5, 7, 3, false, {2, 0}, {4, 1}};
  EXPECT_LT(paged_vs_contiguous(mqa, 2), 1e-6);
  const PagedProblem one_slot{2, 2, 4, 4, 1, false, {3}, {2}};
  EXPECT_LT(paged_vs_contiguous(one_slot, 3), 1e-6);
}

TEST(PagedAttention, MlaShapeWithValuesAViewOfKeys) {
  const PagedProblem pp{2, 1, 576, 512, 4, true, {6, 0}, {1, 5}};
  EXPECT_LT(paged_vs_contiguous(pp, 4), 1e-6);
}

TEST(PagedAttention, CacheWriteScattersRowsIntoSlots) {
  Context& ctx = cpu_ctx();
  std::mt19937_64 rng(5);
  Tensor src = testing::random_tensor(ctx, {3, 2, 4}, DType::f32, rng);
  Tensor cache = ctx.zeros({2, 2, 2, 4}, DType::f32, "cache");
  paged_cache_write(cache, src, ints(ctx, {3}, {3, 0, 2}, "slots"), ctx);
  const auto s = testing::to_double(src), c = testing::to_double(cache);
  const int slot_of[3] = {3, 0, 2};
  for (int r = 0; r < 3; ++r)
    for (int e = 0; e < 8; ++e) EXPECT_EQ(c[slot_of[r] * 8 + e], s[r * 8 + e]);
  for (int e = 0; e < 8; ++e) EXPECT_EQ(c[1 * 8 + e], 0.0);  // slot 1 untouched
}

TEST(PagedAttention, BadInputsAreRejected) {
  Context& ctx = cpu_ctx();
  Tensor q = ctx.zeros({3, 4, 8}, DType::f32, "q");
  Tensor out = ctx.zeros({3, 4, 6}, DType::f32, "out");
  Tensor kc = ctx.zeros({4, 2, 2, 8}, DType::f32, "k_cache");
  Tensor vc = ctx.zeros({4, 2, 2, 6}, DType::f32, "v_cache");
  const Tensor cu = ints(ctx, {3}, {0, 2, 3}, "cu"), len = ints(ctx, {2}, {1, 0}, "cached_lens");
  const Tensor table = ints(ctx, {2, 2}, {2, 0, 1, -1}, "block_tables");
  auto run = [&](const TensorView& o, const TensorView& qq, const TensorView& k,
                 const TensorView& v, const TensorView& t, const TensorView& c,
                 const TensorView& l) { paged_attention_forward(o, qq, k, v, t, c, l, 0.5, ctx); };
  run(out, q, kc, vc, table, cu, len);  // valid
  expect_error_contains(
      [&] {
        run(out, q, kc, vc, ints(ctx, {2, 1}, {2, 1}, "t1"), cu, len);
      },
      {"[paged_attention]", "sequence 0", "need 2 blocks", "t1"});
  expect_error_contains(
      [&] {
        run(out, q, kc, vc, ints(ctx, {2, 2}, {2, 7, 1, -1}, "t2"), cu, len);
      },
      {"[paged_attention]", "block_tables[0, 1] = 7", "NB = 4"});
  expect_error_contains(
      [&] {
        run(out, q, kc, vc, table, ints(ctx, {3}, {0, 2, 2}, "c2"), len);
      },
      {"[paged_attention]", "must end at T = 3"});
  expect_error_contains(
      [&] {
        run(out, q, kc, vc, table, cu, ints(ctx, {2}, {1, -1}, "l2"));
      },
      {"[paged_attention]", "cached_lens[1] = -1"});
  expect_error_contains(
      [&] {
        run(out, q, kc, vc, table, cu, ints(ctx, {3}, {0, 0, 0}, "l3"));
      },
      {"[paged_attention]", "B = 3"});
  Tensor k3 = ctx.zeros({4, 2, 3, 8}, DType::f32, "k3"), v3 = ctx.zeros({4, 2, 3, 6}, DType::f32);
  expect_error_contains([&] { run(out, q, k3, v3, table, cu, len); },
                        {"[paged_attention]", "multiple of the kv heads"});
  Tensor v_bad = ctx.zeros({4, 3, 2, 6}, DType::f32, "v_bad");
  expect_error_contains([&] { run(out, q, kc, v_bad, table, cu, len); },
                        {"[paged_attention]", "v_cache"});
  Tensor out_bad = ctx.zeros({3, 4, 5}, DType::f32, "out_bad");
  expect_error_contains([&] { run(out_bad, q, kc, vc, table, cu, len); },
                        {"[paged_attention]", "out (T, Hq, Dv)"});

  Tensor src = ctx.zeros({2, 2, 8}, DType::f32, "src");
  expect_error_contains(
      [&] {
        paged_cache_write(kc, src, ints(ctx, {2}, {1, 8}, "s"), ctx);
      },
      {"[paged_cache_write]", "slots[1] = 8"});
  expect_error_contains(
      [&] {
        paged_cache_write(kc, src, ints(ctx, {2}, {3, 3}, "s"), ctx);
      },
      {"[paged_cache_write]", "slot 3 twice"});
  Tensor src_bad = ctx.zeros({2, 2, 6}, DType::f32, "src_bad");
  expect_error_contains(
      [&] {
        paged_cache_write(kc, src_bad, ints(ctx, {2}, {0, 1}, "s"), ctx);
      },
      {"[paged_cache_write]", "src (N, H, D)"});
}

}  // namespace
}  // namespace r1kit::kernels
