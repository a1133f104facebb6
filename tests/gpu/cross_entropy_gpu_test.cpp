// GPU vs CPU: cross_entropy forward (loss, lse) and backward (dlogits, in place too) over odd
// shapes (warp and block per row, the 16-byte and scalar paths), every float dtype, −inf logits
// (a target on one: infinite loss), ignored rows (default and custom ignore index, loss 0 and zero
// gradient), dloss in a dtype of its own, and out-of-range device targets reported at the next
// synchronize.
#include "kernels/cross_entropy.h"

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

// Warp per row (1001; 7 with a second block of one busy warp), one element, block per row (rows
// 16-byte aligned or with a head and a tail).
const Shape2 kShapes[] = {{37, 1001}, {1, 1}, {9, 7}, {6, 20000}, {5, 152064}, {3, 4097}};
const DType kDtypes[] = {DType::f32, DType::bf16, DType::f16, DType::f64};

DType stat_of(DType t) {
  return t == DType::f64 ? DType::f64 : DType::f32;
}

std::string label(const char* op, DType dt, Shape2 s, const char* how) {
  return std::string(op) + " " + std::string(dtype_name(dt)) + " " + std::to_string(s.n) + "x" +
         std::to_string(s.v) + " " + how;
}

struct Case {
  Tensor logits, targets;
};

// Logits in [-4, 4) with ~3% −inf entries (row 0's target sits on one when n > 1), a huge row
// (1000 + x), and, when n > 2, row 2 of only −inf (no distribution: lse, loss and dlogits NaN on
// both sides); targets in [0, V) with every 5th row ignored (row 3 when n > 3).
Case make_case(Shape2 s, DType dt, int32_t ignore, std::mt19937_64& rng) {
  auto x = testing::random_tensor(cpu_ctx(), {s.n, s.v}, dt, rng, -4, 4, "logits");
  auto t = testing::random_ints(cpu_ctx(), {s.n}, rng, 0, static_cast<int>(s.v - 1), "targets");
  std::vector<double> vals = testing::to_double(x);
  std::uniform_real_distribution<double> u(0, 1);
  const double inf = std::numeric_limits<double>::infinity();
  for (int64_t i = 0; i < s.n; ++i) {
    for (int64_t j = 0; j < s.v; ++j) {
      double& e = vals[static_cast<size_t>(i * s.v + j)];
      if (i == 1 && dt != DType::f16) e += 1000;
      if (s.v > 1 && u(rng) < 0.03) e = -inf;
      if (s.n > 2 && i == 2) e = -inf;
    }
    if (i % 5 == 3) t.ptr<int32_t>()[i] = ignore;
  }
  if (s.n > 1 && s.v > 1) vals[static_cast<size_t>(t.ptr<int32_t>()[0])] = -inf;
  return {testing::tensor_from(cpu_ctx(), {s.n, s.v}, dt, vals, "logits"), std::move(t)};
}

void check(DType dt, Shape2 s, int32_t ignore, std::mt19937_64& rng) {
  Case c = make_case(s, dt, ignore, rng);
  const DType st = stat_of(dt);
  auto loss = cpu_ctx().empty({s.n}, st, "loss"), lse = cpu_ctx().empty({s.n}, st, "lse");
  cross_entropy_forward(loss, lse, c.logits, c.targets, ignore, cpu_ctx());

  auto xd = to_device(c.logits), td = to_device(c.targets);
  auto gloss = poisoned({s.n}, st, "loss"), glse = poisoned({s.n}, st, "lse");
  cross_entropy_forward(gloss, glse, xd, td, ignore, gpu_ctx());
  const double tol = tolerance(st, s.v, stat_of(dt));
  expect_close_nan_aware(gloss, loss, tol, label("cross_entropy loss", dt, s, ""));
  expect_close_nan_aware(glse, lse, tol, label("cross_entropy lse", dt, s, ""));

  // Backward from the CPU's lse, dloss in the stat dtype and (below f64) in bf16.
  for (DType gdt : {st, dt == DType::f64 ? DType::f64 : DType::bf16}) {
    auto dloss = testing::random_tensor(cpu_ctx(), {s.n}, gdt, rng, -2, 2, "dloss");
    auto want = cpu_ctx().empty({s.n, s.v}, dt, "dlogits");
    cross_entropy_backward(want, dloss, c.logits, c.targets, lse, ignore, cpu_ctx());
    auto dld = to_device(dloss), lsed = to_device(lse);
    auto got = poisoned({s.n, s.v}, dt, "dlogits");
    cross_entropy_backward(got, dld, xd, td, lsed, ignore, gpu_ctx());
    const double gtol = tolerance(dt, s.v, stat_of(dt));
    const std::string how = "dloss " + std::string(dtype_name(gdt));
    expect_close_nan_aware(got, want, gtol, label("cross_entropy_backward", dt, s, how.c_str()));

    auto inplace = to_device(c.logits);  // dlogits = logits
    cross_entropy_backward(inplace, dld, inplace, td, lsed, ignore, gpu_ctx());
    expect_close_nan_aware(inplace, want, gtol,
                           label("cross_entropy_backward in place", dt, s, how.c_str()));

    // Ignored rows are exactly 0.
    Tensor host = testing::to_host(got);
    for (int64_t i = 0; i < s.n; ++i) {
      if (c.targets.ptr<int32_t>()[i] != ignore) continue;
      auto row = testing::to_double(host.view().slice(i, i + 1));
      for (size_t j = 0; j < row.size(); ++j) ASSERT_EQ(row[j], 0.0) << "ignored row " << i;
    }
  }

  // Logits one row into a bigger buffer: the scalar path when rows are not 16-byte multiples.
  auto big = testing::random_tensor(cpu_ctx(), {s.n + 1, s.v}, dt, rng, -4, 4, "logits");
  auto bigd = to_device(big);
  const TensorView xs = big.view().slice(1, s.n + 1), xsd = bigd.view().slice(1, s.n + 1);
  cross_entropy_forward(loss, lse, xs, c.targets, ignore, cpu_ctx());
  cross_entropy_forward(gloss, glse, xsd, td, ignore, gpu_ctx());
  expect_close(gloss, loss, tol, label("cross_entropy loss", dt, s, "offset logits"));
  expect_close(glse, lse, tol, label("cross_entropy lse", dt, s, "offset logits"));
  auto dloss = testing::random_tensor(cpu_ctx(), {s.n}, st, rng, -2, 2, "dloss");
  auto want = cpu_ctx().empty({s.n, s.v}, dt, "dlogits");
  cross_entropy_backward(want, dloss, xs, c.targets, lse, ignore, cpu_ctx());
  auto got = poisoned({s.n, s.v}, dt, "dlogits");
  cross_entropy_backward(got, to_device(dloss), xsd, td, to_device(lse), ignore, gpu_ctx());
  expect_close(got, want, tolerance(dt, s.v, stat_of(dt)),
               label("cross_entropy_backward", dt, s, "offset logits"));
}

TEST(GpuCrossEntropy, MatchesCpu) {
  R1_REQUIRE_GPU();
  std::mt19937_64 rng(201);
  for (DType dt : kDtypes)
    for (Shape2 s : kShapes) check(dt, s, kCrossEntropyIgnoreIndex, rng);
}

TEST(GpuCrossEntropy, CustomIgnoreIndexInsideTheVocabulary) {
  R1_REQUIRE_GPU();
  std::mt19937_64 rng(202);
  // Class 0 ignored: rows with target 0 give loss 0 and no gradient.
  for (DType dt : {DType::f32, DType::bf16}) check(dt, {37, 1001}, 0, rng);
}

TEST(GpuCrossEntropy, DeviceTargetsOutOfRangeAreReported) {
  R1_REQUIRE_GPU();
  std::mt19937_64 rng(203);
  const int64_t n = 9, v = 1001;
  auto x = to_device(testing::random_tensor(cpu_ctx(), {n, v}, DType::bf16, rng, -1, 1));
  auto t = testing::random_ints(cpu_ctx(), {n}, rng, 0, v - 1, "targets");
  t.ptr<int32_t>()[3] = 1006;
  auto td = to_device(t);
  auto loss = poisoned({n}, DType::f32, "loss"), lse = poisoned({n}, DType::f32, "lse");
  cross_entropy_forward(loss, lse, x, td, gpu_ctx());
  testing::expect_error_contains([&] { gpu_ctx().synchronize(); },
                                 {"[cross_entropy]", "target 1006", "position 3", "V = 1001"});
  gpu_ctx().synchronize();  // reported once

  t.ptr<int32_t>()[3] = 5;
  t.ptr<int32_t>()[7] = -1;  // negative and not the ignore index
  td = to_device(t);
  auto dloss = to_device(testing::random_tensor(cpu_ctx(), {n}, DType::f32, rng, -1, 1));
  auto dx = poisoned({n, v}, DType::bf16, "dlogits");
  cross_entropy_backward(dx, dloss, x, td, lse, gpu_ctx());
  testing::expect_error_contains(
      [&] { gpu_ctx().synchronize(); },
      {"[cross_entropy_backward]", "target -1", "position 7", "V = 1001"});
}

}  // namespace
}  // namespace r1kit::kernels
