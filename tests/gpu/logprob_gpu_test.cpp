// GPU vs CPU: the token log-prob / entropy head. logprob_forward / logprob_backward from logits
// over odd shapes (warp and block per row, the backward's row cached or re-read, the 16-byte and
// scalar paths), every float dtype, temperature 1 and not, entropy defined and not, −inf logits
// (p = 0: entropy terms count 0 on both sides; a target on one: logprob −inf), a row of only −inf
// (NaN on both sides); the fused head over hidden states against the CPU head with chunk sizes
// that do not divide N (and ones larger than N); out-of-range device targets reported at the next
// synchronize.
#include "kernels/logprob.h"

#include <cmath>
#include <limits>
#include <string>

#include "tests/gpu/gpu_util.h"

namespace r1kit::kernels {
namespace {
using testing::cpu_ctx;
using testing::expect_close;
using testing::expect_close_nan_aware;
using testing::gpu_ctx;
using testing::poisoned;
using testing::to_device;
using testing::tolerance;

struct Shape2 {
  int64_t n, v;
};

const Shape2 kShapes[] = {{37, 1001}, {1, 1}, {6, 20000}, {5, 152064}, {3, 4097}};
const DType kDtypes[] = {DType::f32, DType::bf16, DType::f16, DType::f64};

DType stat_of(DType t) {
  return t == DType::f64 ? DType::f64 : DType::f32;
}

std::string label(const char* op, DType dt, Shape2 s, double tau, const char* how) {
  return std::string(op) + " " + std::string(dtype_name(dt)) + " " + std::to_string(s.n) + "x" +
         std::to_string(s.v) + " tau " + std::to_string(tau) + " " + how;
}

struct Case {
  Tensor logits;  // with −inf entries
  Tensor targets;
};

// Logits in [-4, 4) with ~3% −inf entries, row 1 shifted by +200, and, when n > 2, row 2 of only
// −inf (no distribution: NaN outputs and gradients on both sides); targets in [0, V), row 0's on a
// −inf logit (when n > 1).
Case make_case(Shape2 s, DType dt, std::mt19937_64& rng) {
  auto x = testing::random_tensor(cpu_ctx(), {s.n, s.v}, dt, rng, -4, 4, "logits");
  auto t = testing::random_ints(cpu_ctx(), {s.n}, rng, 0, static_cast<int>(s.v - 1), "targets");
  std::vector<double> vals = testing::to_double(x);
  std::uniform_real_distribution<double> u(0, 1);
  const double inf = std::numeric_limits<double>::infinity();
  for (int64_t i = 0; i < s.n; ++i)
    for (int64_t j = 0; j < s.v; ++j) {
      double& e = vals[static_cast<size_t>(i * s.v + j)];
      if (i == 1) e += 200;
      if (s.v > 1 && u(rng) < 0.03) e = -inf;
      if (s.n > 2 && i == 2) e = -inf;
    }
  if (s.n > 1 && s.v > 1) vals[static_cast<size_t>(t.ptr<int32_t>()[0])] = -inf;
  return {testing::tensor_from(cpu_ctx(), {s.n, s.v}, dt, vals, "logits"), std::move(t)};
}

void check_forward(DType dt, Shape2 s, double tau, bool with_entropy, std::mt19937_64& rng) {
  Case c = make_case(s, dt, rng);
  const DType st = stat_of(dt);
  auto lp = cpu_ctx().empty({s.n}, st, "logprob"), lse = cpu_ctx().empty({s.n}, st, "lse");
  auto ent = cpu_ctx().empty({s.n}, st, "entropy");
  logprob_forward(lp, ent, lse, c.logits, c.targets, tau, cpu_ctx());

  auto xd = to_device(c.logits), td = to_device(c.targets);
  auto glp = poisoned({s.n}, st, "logprob"), glse = poisoned({s.n}, st, "lse");
  auto gent = with_entropy ? poisoned({s.n}, st, "entropy") : Tensor();
  logprob_forward(glp, with_entropy ? gent.view() : TensorView{}, glse, xd, td, tau, gpu_ctx());
  const double tol = tolerance(st, s.v, stat_of(dt));
  const char* how = with_entropy ? "with entropy" : "no entropy";
  expect_close_nan_aware(glp, lp, tol, label("logprob", dt, s, tau, how));
  expect_close_nan_aware(glse, lse, tol, label("logprob lse", dt, s, tau, how));
  if (with_entropy)
    expect_close_nan_aware(gent, ent, tol, label("logprob entropy", dt, s, tau, how));

  // Logits one row into a bigger buffer: the scalar path when rows are not 16-byte multiples.
  auto big = testing::random_tensor(cpu_ctx(), {s.n + 1, s.v}, dt, rng, -4, 4, "logits");
  auto bigd = to_device(big);
  logprob_forward(lp, ent, lse, big.view().slice(1, s.n + 1), c.targets, tau, cpu_ctx());
  logprob_forward(glp, with_entropy ? gent.view() : TensorView{}, glse,
                  bigd.view().slice(1, s.n + 1), td, tau, gpu_ctx());
  expect_close(glp, lp, tol, label("logprob", dt, s, tau, "offset logits"));
  expect_close(glse, lse, tol, label("logprob lse", dt, s, tau, "offset logits"));
  if (with_entropy) expect_close(gent, ent, tol, label("logprob entropy", dt, s, tau, "offset"));
}

void check_backward(DType dt, Shape2 s, double tau, bool with_entropy, std::mt19937_64& rng) {
  Case c = make_case(s, dt, rng);
  const DType st = stat_of(dt);
  auto lp = cpu_ctx().empty({s.n}, st, "logprob"), lse = cpu_ctx().empty({s.n}, st, "lse");
  logprob_forward(lp, TensorView{}, lse, c.logits, c.targets, tau, cpu_ctx());
  auto dlp = testing::random_tensor(cpu_ctx(), {s.n}, st, rng, -1, 1, "dlogprob");
  auto dent = testing::random_tensor(cpu_ctx(), {s.n}, st, rng, -1, 1, "dentropy");
  const TensorView dent_v = with_entropy ? dent.view() : TensorView{};
  auto want = cpu_ctx().empty({s.n, s.v}, dt, "dlogits");
  logprob_backward(want, dlp, dent_v, c.logits, c.targets, lse, tau, cpu_ctx());

  auto xd = to_device(c.logits), td = to_device(c.targets), lsed = to_device(lse);
  auto dlpd = to_device(dlp), dentd = to_device(dent);
  auto got = poisoned({s.n, s.v}, dt, "dlogits");
  logprob_backward(got, dlpd, with_entropy ? dentd.view() : TensorView{}, xd, td, lsed, tau,
                   gpu_ctx());
  const double tol = tolerance(dt, s.v, stat_of(dt));
  const char* how = with_entropy ? "with dentropy" : "no dentropy";
  expect_close_nan_aware(got, want, tol, label("logprob_backward", dt, s, tau, how));

  // Offset logits (scalar path).
  auto big = testing::random_tensor(cpu_ctx(), {s.n + 1, s.v}, dt, rng, -4, 4, "logits");
  const TensorView xs = big.view().slice(1, s.n + 1);
  logprob_forward(lp, TensorView{}, lse, xs, c.targets, tau, cpu_ctx());
  logprob_backward(want, dlp, dent_v, xs, c.targets, lse, tau, cpu_ctx());
  auto bigd = to_device(big);
  auto got2 = poisoned({s.n, s.v}, dt, "dlogits");
  logprob_backward(got2, dlpd, with_entropy ? dentd.view() : TensorView{},
                   bigd.view().slice(1, s.n + 1), td, to_device(lse), tau, gpu_ctx());
  expect_close(got2, want, tol, label("logprob_backward", dt, s, tau, "offset logits"));
}

TEST(GpuLogprob, ForwardMatchesCpu) {
  R1_REQUIRE_GPU();
  std::mt19937_64 rng(301);
  for (DType dt : kDtypes)
    for (Shape2 s : kShapes)
      for (double tau : {1.0, 0.7})
        for (bool ent : {true, false}) check_forward(dt, s, tau, ent, rng);
}

TEST(GpuLogprob, BackwardMatchesCpu) {
  R1_REQUIRE_GPU();
  std::mt19937_64 rng(302);
  for (DType dt : kDtypes)
    for (Shape2 s : kShapes)
      for (double tau : {1.0, 1.3}) {
        // V = 1: dlogits = dlogprob·(1 − exp(z − lse)) is only the rounding of lse when τ ≠ 1
        // (both sides exactly 0 when τ = 1), noise no relative tolerance can bound.
        if (s.v == 1 && tau != 1.0) continue;
        for (bool ent : {true, false}) check_backward(dt, s, tau, ent, rng);
      }
}

TEST(GpuLogprob, DeviceTargetsOutOfRangeAreReported) {
  R1_REQUIRE_GPU();
  std::mt19937_64 rng(303);
  const int64_t n = 9, v = 1001;
  auto x = to_device(testing::random_tensor(cpu_ctx(), {n, v}, DType::bf16, rng, -1, 1));
  auto t = testing::random_ints(cpu_ctx(), {n}, rng, 0, v - 1, "targets");
  t.ptr<int32_t>()[2] = 1001;
  auto td = to_device(t);
  auto lp = poisoned({n}, DType::f32, "logprob"), lse = poisoned({n}, DType::f32, "lse");
  logprob_forward(lp, TensorView{}, lse, x, td, 1.0, gpu_ctx());
  testing::expect_error_contains([&] { gpu_ctx().synchronize(); },
                                 {"[logprob]", "position 2", "holds 1001", "outside [0, 1001)"});
  gpu_ctx().synchronize();  // reported once

  t.ptr<int32_t>()[2] = 0;
  t.ptr<int32_t>()[6] = -3;
  td = to_device(t);
  auto dlp = to_device(testing::random_tensor(cpu_ctx(), {n}, DType::f32, rng, -1, 1));
  auto dx = poisoned({n, v}, DType::bf16, "dlogits");
  logprob_backward(dx, dlp, TensorView{}, x, td, lse, 1.0, gpu_ctx());
  testing::expect_error_contains(
      [&] { gpu_ctx().synchronize(); },
      {"[logprob_backward]", "position 6", "holds -3", "outside [0, 1001)"});
}

// ---- the fused head ------------------------------------------------------------------------

struct HeadShape {
  int64_t n, c, v;
};

// The fused head on the GPU against the CPU head (f32 logits there; the GPU's scratch logits are
// in h's dtype, hence `internal`). Forward: the GEMM reduces over C, the row kernel over V. dh
// reduces over V, dw over N (accumulated, from random values, once per chunk).
void check_head(DType dt, HeadShape hs, int64_t chunk, double tau, bool with_entropy,
                std::mt19937_64& rng) {
  const int64_t n = hs.n, c = hs.c, v = hs.v;
  const DType st = stat_of(dt), acc = stat_of(dt);
  const DType internal = (dt == DType::bf16 || dt == DType::f16) ? dt : DType::boolean;
  auto h = testing::random_tensor(cpu_ctx(), {n, c}, dt, rng, -1, 1, "h");
  auto w = testing::random_tensor(cpu_ctx(), {v, c}, dt, rng, -0.3, 0.3, "w");
  auto t = testing::random_ints(cpu_ctx(), {n}, rng, 0, static_cast<int>(v - 1), "targets");
  auto lp = cpu_ctx().empty({n}, st, "logprob"), lse = cpu_ctx().empty({n}, st, "lse");
  auto ent = cpu_ctx().empty({n}, st, "entropy");
  const TensorView ent_v = with_entropy ? ent.view() : TensorView{};
  logprob_head_forward(lp, ent_v, lse, h, w, t, tau, chunk, cpu_ctx());

  auto hd = to_device(h), wd = to_device(w), td = to_device(t);
  auto glp = poisoned({n}, st, "logprob"), glse = poisoned({n}, st, "lse");
  auto gent = poisoned({n}, st, "entropy");
  const TensorView gent_v = with_entropy ? gent.view() : TensorView{};
  logprob_head_forward(glp, gent_v, glse, hd, wd, td, tau, chunk, gpu_ctx());
  const std::string what = std::string(dtype_name(dt)) + " " + std::to_string(n) + "x" +
                           std::to_string(c) + "x" + std::to_string(v) + " chunk " +
                           std::to_string(chunk) + " tau " + std::to_string(tau) +
                           (with_entropy ? " entropy" : "");
  const double tol = tolerance(st, v, acc, internal) + tolerance(st, c, acc);
  expect_close(glp, lp, tol, "logprob_head logprob " + what);
  expect_close(glse, lse, tol, "logprob_head lse " + what);
  if (with_entropy) expect_close(gent, ent, tol, "logprob_head entropy " + what);

  auto dlp = testing::random_tensor(cpu_ctx(), {n}, st, rng, -1, 1, "dlogprob");
  auto dent = testing::random_tensor(cpu_ctx(), {n}, st, rng, -1, 1, "dentropy");
  const TensorView dent_v = with_entropy ? dent.view() : TensorView{};
  auto dh = cpu_ctx().empty({n, c}, dt, "dh");
  auto dw = testing::random_tensor(cpu_ctx(), {v, c}, dt, rng, -0.1, 0.1, "dw");  // +=
  auto gdw = to_device(dw);
  logprob_head_backward(dh, dw, dlp, dent_v, h, w, t, lse, tau, chunk, cpu_ctx());
  auto gdh = poisoned({n, c}, dt, "dh");
  auto dlpd = to_device(dlp), dentd = to_device(dent), lsed = to_device(lse);
  logprob_head_backward(gdh, gdw, dlpd, with_entropy ? dentd.view() : TensorView{}, hd, wd, td,
                        lsed, tau, chunk, gpu_ctx());
  expect_close(gdh, dh, tolerance(dt, v, acc, internal) + tolerance(dt, c, acc),
               "logprob_head_backward dh " + what);
  expect_close(gdw, dw, tolerance(dt, n, acc, internal) + tolerance(dt, c, acc),
               "logprob_head_backward dw " + what);
}

TEST(GpuLogprobHead, MatchesCpuHead) {
  R1_REQUIRE_GPU();
  std::mt19937_64 rng(304);
  // Chunks that do not divide N (16 of 37), one chunk, larger than N, single rows (f32/f64
  // only: a bf16 dw rounds once per chunk).
  for (bool ent : {true, false}) {
    for (int64_t chunk : {16, 37, 100, 5, 1}) {
      check_head(DType::f32, {37, 64, 1001}, chunk, 0.8, ent, rng);
      if (chunk >= 16) check_head(DType::bf16, {37, 64, 1001}, chunk, 0.8, ent, rng);
    }
    check_head(DType::f64, {37, 64, 1001}, 16, 1.0, ent, rng);
    check_head(DType::f16, {37, 64, 1001}, 16, 1.0, ent, rng);
    // Block-per-row rows: cached (20000) and re-read (152064) in the entropy backward.
    check_head(DType::bf16, {11, 32, 20000}, 4, 1.0, ent, rng);
    check_head(DType::bf16, {5, 16, 152064}, 2, 1.0, ent, rng);
    check_head(DType::f32, {5, 16, 152064}, 3, 0.9, ent, rng);
  }
}

TEST(GpuLogprobHead, DeviceTargetsOutOfRangeAreReported) {
  R1_REQUIRE_GPU();
  std::mt19937_64 rng(305);
  const int64_t n = 37, c = 32, v = 1001;
  auto h = to_device(testing::random_tensor(cpu_ctx(), {n, c}, DType::bf16, rng, -1, 1, "h"));
  auto w = to_device(testing::random_tensor(cpu_ctx(), {v, c}, DType::bf16, rng, -1, 1, "w"));
  auto t = testing::random_ints(cpu_ctx(), {n}, rng, 0, v - 1, "targets");
  t.ptr<int32_t>()[20] = 1001;  // in the second chunk of 16: reported with its global position
  auto td = to_device(t);
  auto lp = poisoned({n}, DType::f32, "logprob"), lse = poisoned({n}, DType::f32, "lse");
  logprob_head_forward(lp, TensorView{}, lse, h, w, td, 1.0, 16, gpu_ctx());
  testing::expect_error_contains(
      [&] { gpu_ctx().synchronize(); },
      {"[logprob_head]", "position 20", "holds 1001", "outside [0, 1001)"});

  auto dlp = to_device(testing::random_tensor(cpu_ctx(), {n}, DType::f32, rng, -1, 1));
  auto dh = poisoned({n, c}, DType::bf16, "dh");
  auto dw = gpu_ctx().zeros({v, c}, DType::bf16, "dw");
  logprob_head_backward(dh, dw, dlp, TensorView{}, h, w, td, lse, 1.0, 16, gpu_ctx());
  testing::expect_error_contains(
      [&] { gpu_ctx().synchronize(); },
      {"[logprob_head_backward]", "position 20", "holds 1001", "outside [0, 1001)"});
}

}  // namespace
}  // namespace r1kit::kernels
