// paged_attention and paged_cache_write on the GPU vs the CPU reference (the public front-ends on
// both contexts): GQA and MQA with chunks after cached positions and single decode rows, the MLA
// shape (Hkv = 1, Dqk = 576, Dv = 512, V a view of K), block tables in shuffled order, f32, bf16,
// f16, f64, both kernels (tiled: more heads than warps of a block, partial tiles; simple: f64 and
// Dv > 512); the index arrays on the host, on the device, and on the host with device copies.
// Tolerance (testing::tolerance): the GPU computes in fp32 (f64 for f64) from the stored inputs and
// rounds only the output; reduction length = the longest cached range times the larger head dim.
#include "kernels/paged_attention.h"

#include <algorithm>
#include <numeric>
#include <random>

#include "tests/gpu/gpu_util.h"

namespace r1kit::kernels {
namespace {
using testing::cpu_ctx;
using testing::gpu_ctx;
using testing::to_device;
using testing::to_host;

Tensor ints(const Shape& shape, const std::vector<int32_t>& v, std::string name) {
  return testing::tensor_from(cpu_ctx(), shape, DType::i32, std::vector<double>(v.begin(), v.end()),
                              std::move(name));
}

TensorView first_cols(const TensorView& v, int64_t n) {
  TensorView r = v;
  r.shape[r.ndim - 1] = n;
  return r;
}

TensorView rebase(const TensorView& v, const Tensor& from, const Tensor& to) {
  TensorView r = v;
  r.data = static_cast<char*>(to.data()) +
           (static_cast<char*>(v.data) - static_cast<char*>(from.data()));
  r.device = to.device();
  return r;
}

struct Case {
  int64_t hq, hkv, dqk, dv, bs;
  bool v_in_k;
  std::vector<int32_t> cached, fresh;
  DType dtype = DType::f32;
};

void check(const Case& cs, uint64_t seed) {
  R1_REQUIRE_GPU();
  Context& cpu = cpu_ctx();
  Context& gpu = gpu_ctx();
  std::mt19937_64 rng(seed);
  const int64_t nseq = static_cast<int64_t>(cs.cached.size());
  std::vector<int32_t> cu{0};
  int64_t nb = 2, width = 1, longest = 0;
  for (int64_t b = 0; b < nseq; ++b) {
    cu.push_back(cu.back() + cs.fresh[b]);
    const int64_t need = (cs.cached[b] + cs.fresh[b] + cs.bs - 1) / cs.bs;
    nb += need;
    width = std::max(width, need);
    longest = std::max<int64_t>(longest, cs.cached[b] + cs.fresh[b]);
  }
  std::vector<int32_t> perm(static_cast<size_t>(nb));
  std::iota(perm.begin(), perm.end(), 0);
  std::shuffle(perm.begin(), perm.end(), rng);
  std::vector<int32_t> table(static_cast<size_t>(nseq * width), -1);
  size_t next = 0;
  for (int64_t b = 0; b < nseq; ++b)
    for (int64_t j = 0; j < (cs.cached[b] + cs.fresh[b] + cs.bs - 1) / cs.bs; ++j)
      table[b * width + j] = perm[next++];
  const int64_t t = cu.back();
  Tensor q = testing::random_tensor(cpu, {t, cs.hq, cs.dqk}, cs.dtype, rng, -1, 1, "q");
  Tensor kc = testing::random_tensor(cpu, {nb, cs.bs, cs.hkv, cs.dqk}, cs.dtype, rng, -1, 1, "kc");
  Tensor vo = testing::random_tensor(cpu, {nb, cs.bs, cs.hkv, cs.dv}, cs.dtype, rng, -1, 1, "vc");
  const TensorView vc = cs.v_in_k ? first_cols(kc, cs.dv) : vo.view();
  const Tensor tbl = ints({nseq, width}, table, "block_tables");
  const Tensor cut = ints({nseq + 1}, cu, "cu_seqlens");
  const Tensor len = ints({nseq}, cs.cached, "cached_lens");
  const double scale = 1.0 / std::sqrt(static_cast<double>(cs.dqk));
  Tensor want = cpu.empty({t, cs.hq, cs.dv}, cs.dtype, "out");
  paged_attention_forward(want, q, kc, vc, tbl, cut, len, scale, cpu);

  const Tensor qd = to_device(q), kd = to_device(kc), vd = to_device(vo);
  const TensorView vcd = cs.v_in_k ? rebase(vc, kc, kd) : vd.view();
  const Tensor tbl_d = to_device(tbl), cu_d = to_device(cut), len_d = to_device(len);
  const DType acc = cs.dtype == DType::f64 ? DType::f64 : DType::f32;
  const double tol = testing::tolerance(cs.dtype, longest * std::max(cs.dqk, cs.dv), acc);
  // The index arrays on the host (uploaded by the op), on the device (copied to the host for
  // validation), and on the host with device copies given (PagedDeviceIndex).
  for (int mode = 0; mode < 3; ++mode) {
    SCOPED_TRACE(mode);
    Tensor got = testing::poisoned({t, cs.hq, cs.dv}, cs.dtype, "out");
    if (mode == 0) paged_attention_forward(got, qd, kd, vcd, tbl, cut, len, scale, gpu);
    if (mode == 1) paged_attention_forward(got, qd, kd, vcd, tbl_d, cu_d, len_d, scale, gpu);
    if (mode == 2)
      paged_attention_forward(got, qd, kd, vcd, tbl, cut, len, scale, gpu, {tbl_d, cu_d, len_d});
    testing::expect_close(to_host(got), want, tol, "paged_attention out");
  }
}

TEST(PagedAttentionGpu, GqaMatchesCpu) {
  check({4, 2, 64, 64, 16, false, {0, 37, 5, 100}, {23, 9, 1, 1}}, 1);
  check({6, 2, 40, 24, 4, false, {3, 0}, {1, 7}, DType::bf16}, 2);
  check({3, 1, 128, 128, 8, false, {17, 2}, {1, 3}, DType::f64}, 3);
  // 20 query heads on one KV head: two rounds of at most 16 warps; 301 positions: ten tiles of 32,
  // the last partial.
  check({20, 1, 64, 32, 16, false, {300, 7}, {1, 2}, DType::bf16}, 7);
  check({8, 2, 32, 32, 8, false, {50, 3}, {1, 4}, DType::f16}, 9);
  // Dv > 512: the simple kernel.
  check({2, 2, 16, 600, 8, false, {5}, {3}, DType::f32}, 8);
}

TEST(PagedAttentionGpu, MlaShapeWithValuesAViewOfKeys) {
  check({16, 1, 576, 512, 16, true, {40, 0, 15}, {1, 20, 2}, DType::bf16}, 4);
  check({4, 1, 576, 512, 4, true, {9, 1}, {3, 1}, DType::f32}, 5);
}

TEST(PagedAttentionGpu, CacheWriteMatchesCpu) {
  R1_REQUIRE_GPU();
  std::mt19937_64 rng(6);
  for (DType dt : {DType::f32, DType::bf16, DType::f64}) {
    Tensor src = testing::random_tensor(cpu_ctx(), {5, 2, 24}, dt, rng, -1, 1, "src");
    Tensor cache = cpu_ctx().zeros({4, 3, 2, 32}, dt, "cache");
    const TensorView band = first_cols(cache, 24);
    const Tensor slots = ints({5}, {11, 0, 4, 7, 3}, "slots");
    Tensor cache_d = to_device(cache);
    paged_cache_write(band, src, slots, cpu_ctx());
    paged_cache_write(rebase(band, cache, cache_d), to_device(src), to_device(slots), gpu_ctx());
    Tensor cache_d2 = to_device(cpu_ctx().zeros({4, 3, 2, 32}, dt, "cache"));
    paged_cache_write(rebase(band, cache, cache_d2), to_device(src), slots, gpu_ctx(),
                      to_device(slots));
    EXPECT_EQ(testing::to_double(to_host(cache_d2)), testing::to_double(cache)) << dtype_name(dt);
    EXPECT_EQ(testing::to_double(to_host(cache_d)), testing::to_double(cache)) << dtype_name(dt);
  }
}

}  // namespace
}  // namespace r1kit::kernels
