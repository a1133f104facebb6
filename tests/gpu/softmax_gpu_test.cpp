// GPU vs CPU: softmax / log_softmax forward and backward over odd shapes (warp-per-row and
// block-per-row layouts, rows cached in shared memory or re-read, the 16-byte and the scalar
// paths), every float dtype, −inf entries, a row with no finite entry (NaN on both), huge logits,
// in place.
#include "kernels/softmax.h"

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

// Shapes: warp per row (1001; 7 with a second block of one busy warp), the 16-byte path's head and
// tail (odd V), one element, block per row with the row cached (20000 bf16 = 40 KB) and only
// partly cached (152064 bf16 = 297 KB, rows 16-byte aligned; 150001 with a head and a tail on
// rows 1, 2).
const Shape2 kShapes[] = {{37, 1001},  {1, 1},    {9, 7},     {6, 20000},
                          {5, 152064}, {3, 4097}, {3, 150001}};

DType acc_of(DType t) {
  return t == DType::f64 ? DType::f64 : DType::f32;
}

// Random logits in [-4, 4) with ~3% −inf entries, a huge row (1000 + x), and, when n > 2, one
// row of only −inf (no distribution: NaN on both sides, see expect_close_nan_aware).
Tensor logits(Shape2 s, DType dt, std::mt19937_64& rng, bool all_inf_row = true) {
  auto x = testing::random_tensor(cpu_ctx(), {s.n, s.v}, dt, rng, -4, 4, "x");
  std::vector<double> vals = testing::to_double(x);
  std::uniform_real_distribution<double> u(0, 1);
  const double inf = std::numeric_limits<double>::infinity();
  for (int64_t i = 0; i < s.n; ++i)
    for (int64_t j = 0; j < s.v; ++j) {
      double& e = vals[static_cast<size_t>(i * s.v + j)];
      if (i == 1 && dt != DType::f16) e += 1000;  // f16 holds 1000 ± 4 to 0.5
      if (s.v > 1 && u(rng) < 0.03) e = -inf;
      if (all_inf_row && s.n > 2 && i == 2) e = -inf;
    }
  return testing::tensor_from(cpu_ctx(), {s.n, s.v}, dt, vals, "x");
}

std::string label(const char* op, DType dt, Shape2 s, const char* how) {
  return std::string(op) + " " + std::string(dtype_name(dt)) + " " + std::to_string(s.n) + "x" +
         std::to_string(s.v) + " " + how;
}

using Forward = void (*)(const TensorView&, const TensorView&, Context&);
using Backward = void (*)(const TensorView&, const TensorView&, const TensorView&, Context&);

void check_forward(Forward f, const char* op, DType dt, Shape2 s, std::mt19937_64& rng) {
  auto x = logits(s, dt, rng);
  auto want = cpu_ctx().empty({s.n, s.v}, dt, "y");
  f(want, x, cpu_ctx());
  const double tol = tolerance(dt, s.v, acc_of(dt));

  auto xd = to_device(x);
  auto y = poisoned({s.n, s.v}, dt, "y");
  f(y, xd, gpu_ctx());
  expect_close_nan_aware(y, want, tol, label(op, dt, s, "out of place"));

  f(xd, xd, gpu_ctx());  // in place
  expect_close_nan_aware(xd, want, tol, label(op, dt, s, "in place"));

  // A view starting one row in: its address modulo 16 differs from a fresh output's unless the
  // row is a multiple of 16 bytes, so the kernels take the scalar path.
  auto big = logits({s.n + 1, s.v}, dt, rng, false);
  auto want2 = cpu_ctx().empty({s.n, s.v}, dt, "y");
  f(want2, big.view().slice(1, s.n + 1), cpu_ctx());
  auto bigd = to_device(big);
  auto y2 = poisoned({s.n, s.v}, dt, "y");
  f(y2, bigd.view().slice(1, s.n + 1), gpu_ctx());
  expect_close(y2, want2, tol, label(op, dt, s, "offset input"));
}

// y: the forward's output on the CPU (the saved tensor), dy random.
void check_backward(Forward fwd, Backward bwd, const char* op, DType dt, Shape2 s,
                    std::mt19937_64& rng) {
  auto x = logits(s, dt, rng, false);
  auto y = cpu_ctx().empty({s.n, s.v}, dt, "y");
  fwd(y, x, cpu_ctx());
  auto dy = testing::random_tensor(cpu_ctx(), {s.n, s.v}, dt, rng, -1, 1, "dy");
  auto want = cpu_ctx().empty({s.n, s.v}, dt, "dx");
  bwd(want, dy, y, cpu_ctx());
  const double tol = tolerance(dt, s.v, acc_of(dt));

  auto yd = to_device(y), dyd = to_device(dy);
  auto dx = poisoned({s.n, s.v}, dt, "dx");
  bwd(dx, dyd, yd, gpu_ctx());
  expect_close(dx, want, tol, label(op, dt, s, "out of place"));

  bwd(dyd, dyd, yd, gpu_ctx());  // dx = dy, in place
  expect_close(dyd, want, tol, label(op, dt, s, "in place"));

  // dy offset by one row: scalar path (see check_forward).
  auto big = testing::random_tensor(cpu_ctx(), {s.n + 1, s.v}, dt, rng, -1, 1, "dy");
  auto want2 = cpu_ctx().empty({s.n, s.v}, dt, "dx");
  bwd(want2, big.view().slice(1, s.n + 1), y, cpu_ctx());
  auto bigd = to_device(big);
  auto dx2 = poisoned({s.n, s.v}, dt, "dx");
  bwd(dx2, bigd.view().slice(1, s.n + 1), yd, gpu_ctx());
  expect_close(dx2, want2, tol, label(op, dt, s, "offset dy"));
}

const DType kDtypes[] = {DType::f32, DType::bf16, DType::f16, DType::f64};

TEST(GpuSoftmax, ForwardMatchesCpu) {
  R1_REQUIRE_GPU();
  std::mt19937_64 rng(101);
  for (DType dt : kDtypes)
    for (Shape2 s : kShapes) check_forward(softmax_forward, "softmax", dt, s, rng);
}

TEST(GpuSoftmax, LogForwardMatchesCpu) {
  R1_REQUIRE_GPU();
  std::mt19937_64 rng(102);
  for (DType dt : kDtypes)
    for (Shape2 s : kShapes) check_forward(log_softmax_forward, "log_softmax", dt, s, rng);
}

TEST(GpuSoftmax, BackwardMatchesCpu) {
  R1_REQUIRE_GPU();
  std::mt19937_64 rng(103);
  for (DType dt : kDtypes)
    for (Shape2 s : kShapes)
      check_backward(softmax_forward, softmax_backward, "softmax_backward", dt, s, rng);
}

TEST(GpuSoftmax, LogBackwardMatchesCpu) {
  R1_REQUIRE_GPU();
  std::mt19937_64 rng(104);
  for (DType dt : kDtypes)
    for (Shape2 s : kShapes)
      check_backward(log_softmax_forward, log_softmax_backward, "log_softmax_backward", dt, s, rng);
}

TEST(GpuSoftmax, EmptyTensorsLaunchNothing) {
  R1_REQUIRE_GPU();
  auto x = gpu_ctx().empty({0, 7}, DType::bf16, "x");
  softmax_forward(x, x, gpu_ctx());
  log_softmax_backward(x, x, gpu_ctx().empty({0, 7}, DType::bf16, "y"), gpu_ctx());
  gpu_ctx().synchronize();
}

}  // namespace
}  // namespace r1kit::kernels
