// GPU vs CPU: the top-k and multi-target log-prob heads. Top-k on exact logits (small multiples of
// powers of two: every GEMM gives the same values, with many ties) must give the CPU's ids exactly,
// ties by id included, in f32, bf16 and f64, for V not a multiple of 8, K = 1, 64, V and the CUDA
// maximum, chunks that do not divide N; −inf logits (an f32 overflow) and a row with none finite;
// on random inputs (f32, bf16) the log-probs match the CPU's to rounding and the ids may differ
// only at near-ties; repeated runs are bitwise equal. The multi-target head forward and backward
// against the CPU head in every float dtype (warp and block per row); out-of-range device targets
// reported at the next synchronize with their row and column, and their rows NaN.
#include "kernels/topk_head.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "tests/gpu/gpu_util.h"

namespace r1kit::kernels {
namespace {
using testing::cpu_ctx;
using testing::expect_close;
using testing::expect_close_nan_aware;
using testing::gpu_ctx;
using testing::poisoned;
using testing::to_device;
using testing::to_host;
using testing::tolerance;

DType stat_of(DType t) {
  return t == DType::f64 ? DType::f64 : DType::f32;
}

struct HeadShape {
  int64_t n, c, v;
};

std::string label(const char* op, DType dt, HeadShape s, int64_t k, int64_t chunk, double tau) {
  return std::string(op) + " " + std::string(dtype_name(dt)) + " " + std::to_string(s.n) + "x" +
         std::to_string(s.c) + "x" + std::to_string(s.v) + " K " + std::to_string(k) + " chunk " +
         std::to_string(chunk) + " tau " + std::to_string(tau);
}

// Values lo..hi (integers) times `scale`, exact in every float dtype.
Tensor small_multiples(const Shape& shape, DType dt, std::mt19937_64& rng, int lo, int hi,
                       double scale, const char* name) {
  int64_t numel = 1;
  for (int64_t d : shape) numel *= d;
  std::uniform_int_distribution<int> u(lo, hi);
  std::vector<double> v(static_cast<size_t>(numel));
  for (double& x : v) x = u(rng) * scale;
  return testing::tensor_from(cpu_ctx(), shape, dt, v, name);
}

std::vector<int32_t> ids_of(const TensorView& t) {
  Tensor host = t.device.is_cpu() ? Tensor() : to_host(t);
  const TensorView& v = t.device.is_cpu() ? t : host.view();
  return std::vector<int32_t>(v.ptr<int32_t>(), v.ptr<int32_t>() + v.numel());
}

struct Topk {
  Tensor lp, idx, lse;
};
Topk cpu_topk(const Tensor& h, const Tensor& w, int64_t k, double tau, int64_t chunk) {
  const int64_t n = h.size(0);
  const DType st = stat_of(h.dtype());
  Topk o{cpu_ctx().empty({n, k}, st, "topk_logprob"), cpu_ctx().empty({n, k}, DType::i32, "idx"),
         cpu_ctx().empty({n}, st, "lse")};
  logprob_head_topk(o.lp, o.idx, o.lse, h, w, tau, chunk, cpu_ctx());
  return o;
}
Topk gpu_topk(const Tensor& hd, const Tensor& wd, int64_t k, double tau, int64_t chunk) {
  const int64_t n = hd.size(0);
  const DType st = stat_of(hd.dtype());
  Topk o{poisoned({n, k}, st, "topk_logprob"), poisoned({n, k}, DType::i32, "topk_idx"),
         poisoned({n}, st, "lse")};
  logprob_head_topk(o.lp, o.idx, o.lse, hd, wd, tau, chunk, gpu_ctx());
  return o;
}

// Exact logits: the GPU's ids are the CPU's, element for element (ties by id included).
void check_topk_exact(DType dt, HeadShape s, int64_t k, int64_t chunk, double tau,
                      std::mt19937_64& rng) {
  const std::string what = label("logprob_head_topk exact", dt, s, k, chunk, tau);
  // |logit| <= C·2·0.75 in steps of 1/8: exact in f32 and f64 and, for C <= 16, in bf16.
  auto h = small_multiples({s.n, s.c}, dt, rng, -4, 4, 0.5, "h");
  auto w = small_multiples({s.v, s.c}, dt, rng, -3, 3, 0.25, "w");
  const Topk ref = cpu_topk(h, w, k, tau, chunk);
  const Topk got = gpu_topk(to_device(h), to_device(w), k, tau, chunk);
  testing::expect_equal(got.idx, ref.idx, what + " idx");
  const DType st = stat_of(dt);
  const double tol = tolerance(st, s.v, st);
  expect_close(got.lp, ref.lp, tol, what + " topk_logprob");
  expect_close(got.lse, ref.lse, tol, what + " lse");
}

// Random inputs: log-probs (sorted on both sides) and lse to rounding; the GPU's ids distinct,
// their CPU log-probs (through the CPU multi-target head) the GPU's values to rounding, and an id
// that differs from the CPU's only where the CPU's log-probs of the two are within `near` (a
// near-tie).
void check_topk_random(DType dt, HeadShape s, int64_t k, int64_t chunk, double tau, double near,
                       std::mt19937_64& rng) {
  const std::string what = label("logprob_head_topk random", dt, s, k, chunk, tau);
  const DType st = stat_of(dt);
  const DType internal = (dt == DType::bf16 || dt == DType::f16) ? dt : DType::boolean;
  auto h = testing::random_tensor(cpu_ctx(), {s.n, s.c}, dt, rng, -1, 1, "h");
  auto w = testing::random_tensor(cpu_ctx(), {s.v, s.c}, dt, rng, -0.3, 0.3, "w");
  const Topk ref = cpu_topk(h, w, k, tau, chunk);
  auto hd = to_device(h), wd = to_device(w);
  const Topk got = gpu_topk(hd, wd, k, tau, chunk);
  const double tol = tolerance(st, s.v, st, internal) + tolerance(st, s.c, st);
  expect_close(got.lp, ref.lp, tol, what + " topk_logprob");
  expect_close(got.lse, ref.lse, tol, what + " lse");

  const auto gid = ids_of(got.idx), cid = ids_of(ref.idx);
  Tensor gidx_host = cpu_ctx().empty({s.n, k}, DType::i32, "gpu_idx");
  std::copy(gid.begin(), gid.end(), gidx_host.ptr<int32_t>());
  for (int32_t id : gid) ASSERT_TRUE(id >= 0 && id < s.v) << what << ": id " << id;
  auto at_gpu = cpu_ctx().empty({s.n, k}, st, "cpu_logprob_at_gpu_ids");
  auto lse_c = cpu_ctx().empty({s.n}, st, "lse");
  logprob_head_multi_forward(at_gpu, lse_c, h, w, gidx_host, tau, chunk, cpu_ctx());
  expect_close(got.lp, at_gpu, tol, what + " GPU values vs CPU values at the GPU's ids");
  const auto a = testing::to_double(at_gpu), r = testing::to_double(ref.lp);
  for (int64_t i = 0; i < s.n; ++i) {
    std::vector<int32_t> row(gid.begin() + i * k, gid.begin() + (i + 1) * k);
    std::sort(row.begin(), row.end());
    ASSERT_TRUE(std::adjacent_find(row.begin(), row.end()) == row.end())
        << what << ": row " << i << " repeats an id";
    for (int64_t q = 0; q < k; ++q) {
      const size_t e = static_cast<size_t>(i * k + q);
      if (gid[e] == cid[e]) continue;
      EXPECT_NEAR(a[e], r[e], near) << what << ": row " << i << " position " << q << " holds "
                                    << gid[e] << " where the CPU has " << cid[e];
    }
  }
}

TEST(GpuTopkHead, ExactLogitsGiveTheCpuIds) {
  R1_REQUIRE_GPU();
  std::mt19937_64 rng(401);
  for (DType dt : {DType::f32, DType::bf16, DType::f64}) {
    check_topk_exact(dt, {37, 16, 1001}, 64, 16, 1.0, rng);  // V not a multiple of 8
    check_topk_exact(dt, {37, 16, 1001}, 64, 37, 0.7, rng);
    check_topk_exact(dt, {9, 16, 1001}, 1, 4, 1.0, rng);
    check_topk_exact(dt, {6, 8, 37}, 37, 4, 1.3, rng);  // K = V
    check_topk_exact(dt, {5, 16, 4097}, kTopkCudaMaxK, 2, 1.0, rng);
    check_topk_exact(dt, {3, 16, 152064}, 64, 2, 0.9, rng);
  }
  check_topk_exact(DType::f32, {4, 16, 152064}, kTopkCudaMaxK, 3, 1.0, rng);
}

TEST(GpuTopkHead, RandomInputsMatchTheCpuUpToNearTies) {
  R1_REQUIRE_GPU();
  std::mt19937_64 rng(402);
  for (double tau : {1.0, 0.8}) {
    check_topk_random(DType::f32, {37, 64, 1001}, 64, 16, tau, 1e-4, rng);
    check_topk_random(DType::f32, {5, 32, 152064}, 256, 2, tau, 1e-4, rng);
    // bf16: the GPU's logits are rounded to bf16 in its scratch (the CPU keeps f32): near-ties
    // are as wide as a bf16 ulp of the logits.
    check_topk_random(DType::bf16, {37, 64, 1001}, 64, 16, tau, 0.05, rng);
    check_topk_random(DType::bf16, {5, 32, 152064}, 64, 2, tau, 0.05, rng);
  }
}

TEST(GpuTopkHead, RepeatedRunsAreBitwiseEqual) {
  R1_REQUIRE_GPU();
  std::mt19937_64 rng(403);
  auto hd = to_device(testing::random_tensor(cpu_ctx(), {17, 32}, DType::bf16, rng, -1, 1, "h"));
  auto wd = to_device(testing::random_tensor(cpu_ctx(), {20000, 32}, DType::bf16, rng, -1, 1));
  const Topk a = gpu_topk(hd, wd, 100, 1.0, 8), b = gpu_topk(hd, wd, 100, 1.0, 8);
  testing::expect_bitwise_equal(a.idx, to_host(b.idx), "idx");
  testing::expect_bitwise_equal(a.lp, to_host(b.lp), "topk_logprob");
  testing::expect_bitwise_equal(a.lse, to_host(b.lse), "lse");
}

// −inf logits from an f32 overflow: h_i = (1, 1e30, t_i), w_j = (a_j, m_j, −1e30) give
// logit_ij = a_j, or −inf where m_j = −1e30, or −inf everywhere in a row with t_i = 1e30.
TEST(GpuTopkHead, NegInfLogitsAndADeadRow) {
  R1_REQUIRE_GPU();
  std::mt19937_64 rng(404);
  const int64_t n = 5, v = 1003, dead = 3;
  const double big = 1e30;
  std::vector<double> hv, wv;
  for (int64_t i = 0; i < n; ++i)
    for (double x : {1.0, big, i == dead ? big : 0.0}) hv.push_back(x);
  std::uniform_real_distribution<double> u(-3, 3), coin(0, 1);
  for (int64_t j = 0; j < v; ++j)
    for (double x : {u(rng), coin(rng) < 0.3 ? -big : 0.0, -big}) wv.push_back(x);
  auto h = testing::tensor_from(cpu_ctx(), {n, 3}, DType::f32, hv, "h");
  auto w = testing::tensor_from(cpu_ctx(), {v, 3}, DType::f32, wv, "w");
  for (int64_t k : {64, 1003}) {
    const std::string what = "logprob_head_topk -inf K " + std::to_string(k);
    const Topk ref = cpu_topk(h, w, k, 0.9, 2);
    const Topk got = gpu_topk(to_device(h), to_device(w), k, 0.9, 2);
    testing::expect_equal(got.idx, ref.idx, what + " idx");
    expect_close_nan_aware(got.lp, ref.lp, tolerance(DType::f32, v), what + " topk_logprob");
    expect_close_nan_aware(got.lse, ref.lse, tolerance(DType::f32, v), what + " lse");
  }
}

// ---- the multi-target head -----------------------------------------------------------------

// Forward and backward against the CPU head (f32 logits there; the GPU's scratch logits are in
// h's dtype, hence `internal`); targets with duplicates (column 1 repeats column 0).
void check_multi(DType dt, HeadShape s, int64_t k, int64_t chunk, double tau,
                 std::mt19937_64& rng) {
  const std::string what = label("logprob_head_multi", dt, s, k, chunk, tau);
  const DType st = stat_of(dt), acc = stat_of(dt);
  const DType internal = (dt == DType::bf16 || dt == DType::f16) ? dt : DType::boolean;
  auto h = testing::random_tensor(cpu_ctx(), {s.n, s.c}, dt, rng, -1, 1, "h");
  auto w = testing::random_tensor(cpu_ctx(), {s.v, s.c}, dt, rng, -0.3, 0.3, "w");
  auto t = testing::random_ints(cpu_ctx(), {s.n, k}, rng, 0, static_cast<int>(s.v - 1), "targets");
  if (k > 1)
    for (int64_t i = 0; i < s.n; ++i) t.ptr<int32_t>()[i * k + 1] = t.ptr<int32_t>()[i * k];
  auto lp = cpu_ctx().empty({s.n, k}, st, "logprob"), lse = cpu_ctx().empty({s.n}, st, "lse");
  logprob_head_multi_forward(lp, lse, h, w, t, tau, chunk, cpu_ctx());
  auto hd = to_device(h), wd = to_device(w), td = to_device(t);
  auto glp = poisoned({s.n, k}, st, "logprob"), glse = poisoned({s.n}, st, "lse");
  logprob_head_multi_forward(glp, glse, hd, wd, td, tau, chunk, gpu_ctx());
  const double tol = tolerance(st, s.v, acc, internal) + tolerance(st, s.c, acc);
  expect_close(glp, lp, tol, what + " logprob");
  expect_close(glse, lse, tol, what + " lse");

  auto dlp = testing::random_tensor(cpu_ctx(), {s.n, k}, st, rng, -1, 1, "dlogprob");
  auto dh = cpu_ctx().empty({s.n, s.c}, dt, "dh");
  auto dw = testing::random_tensor(cpu_ctx(), {s.v, s.c}, dt, rng, -0.1, 0.1, "dw");  // +=
  auto gdw = to_device(dw);
  logprob_head_multi_backward(dh, dw, dlp, h, w, t, lse, tau, chunk, cpu_ctx());
  auto gdh = poisoned({s.n, s.c}, dt, "dh");
  logprob_head_multi_backward(gdh, gdw, to_device(dlp), hd, wd, td, to_device(lse), tau, chunk,
                              gpu_ctx());
  expect_close(gdh, dh, tolerance(dt, s.v, acc, internal) + tolerance(dt, s.c, acc), what + " dh");
  expect_close(gdw, dw, tolerance(dt, s.n, acc, internal) + tolerance(dt, s.c, acc), what + " dw");
}

TEST(GpuTopkHeadMulti, MatchesCpuHead) {
  R1_REQUIRE_GPU();
  std::mt19937_64 rng(405);
  for (double tau : {1.0, 0.8}) {
    for (int64_t chunk : {16, 37, 5}) check_multi(DType::f32, {37, 64, 1001}, 64, chunk, tau, rng);
    // bf16 / f16: dw rounds to the dtype once per chunk on the GPU: chunks of 16 only.
    check_multi(DType::bf16, {37, 64, 1001}, 64, 16, tau, rng);
    check_multi(DType::f16, {37, 64, 1001}, 8, 16, tau, rng);
    check_multi(DType::f64, {37, 64, 1001}, 8, 16, tau, rng);
    // Block-per-row rows, K = 1 and K large.
    check_multi(DType::bf16, {11, 32, 20000}, 1, 4, tau, rng);
    check_multi(DType::f32, {5, 16, 152064}, 100, 2, tau, rng);
    check_multi(DType::bf16, {5, 16, 152064}, 64, 2, tau, rng);
  }
}

TEST(GpuTopkHeadMulti, DeviceTargetsOutOfRangeAreReported) {
  R1_REQUIRE_GPU();
  std::mt19937_64 rng(406);
  const int64_t n = 37, c = 32, v = 1001, k = 4;
  auto h = to_device(testing::random_tensor(cpu_ctx(), {n, c}, DType::bf16, rng, -1, 1, "h"));
  auto w = to_device(testing::random_tensor(cpu_ctx(), {v, c}, DType::bf16, rng, -1, 1, "w"));
  auto t = testing::random_ints(cpu_ctx(), {n, k}, rng, 0, v - 1, "targets");
  t.ptr<int32_t>()[20 * k + 3] = 1001;  // in the second chunk of 16: reported with its global row
  auto td = to_device(t);
  auto lp = poisoned({n, k}, DType::f32, "logprob"), lse = poisoned({n}, DType::f32, "lse");
  logprob_head_multi_forward(lp, lse, h, w, td, 1.0, 16, gpu_ctx());
  testing::expect_error_contains(
      [&] { gpu_ctx().synchronize(); },
      {"[logprob_head_multi]", "row 20", "column 3", "holds 1001", "outside [0, V)"});
  const auto lpv = testing::to_double(to_host(lp));
  for (int64_t e = 0; e < n * k; ++e)
    EXPECT_EQ(std::isnan(lpv[e]), e == 20 * k + 3) << "logprob element " << e;

  t.ptr<int32_t>()[20 * k + 3] = 0;
  t.ptr<int32_t>()[5 * k] = -3;
  td = to_device(t);
  auto dlp = to_device(testing::random_tensor(cpu_ctx(), {n, k}, DType::f32, rng, -1, 1));
  auto dh = poisoned({n, c}, DType::bf16, "dh");
  auto dw = gpu_ctx().zeros({v, c}, DType::bf16, "dw");
  logprob_head_multi_backward(dh, dw, dlp, h, w, td, lse, 1.0, 16, gpu_ctx());
  testing::expect_error_contains(
      [&] { gpu_ctx().synchronize(); },
      {"[logprob_head_multi_backward]", "row 5", "column 0", "holds -3", "outside [0, V)"});
  const auto dhv = testing::to_double(to_host(dh));
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < c; ++j)
      EXPECT_EQ(std::isnan(dhv[i * c + j]), i == 5) << "dh row " << i << " column " << j;
}

}  // namespace
}  // namespace r1kit::kernels
