// GPU vs CPU for rmsnorm forward (y, rstd) and backward (dx = / +=, dw +=) in every float dtype,
// with bf16/f16 activations and f32 weights, mixed dtypes (f32 stand-ins), in place, unaligned rows
// (scalar path), narrow rows (a warp per row), wide rows (a block per row, registers), rows wider
// than the registers hold (re-read and the unfused dw pass), and the determinism of dw.
#include "kernels/rmsnorm.h"

#include <cstring>
#include <random>

#include "tests/gpu/gpu_util.h"

namespace r1kit::kernels {
namespace {
using testing::cpu_ctx;
using testing::gpu_ctx;
using testing::poisoned;
using testing::to_device;

double tol(DType t, int64_t k) {
  return testing::tolerance(t, k, t == DType::f64 ? DType::f64 : DType::f32);
}

DType stat_dtype(DType t) {
  return t == DType::f64 ? DType::f64 : DType::f32;
}

std::string label(const char* what, DType x, DType w, int64_t n, int64_t c) {
  return std::string(what) + " x " + std::string(dtype_name(x)) + " w " +
         std::string(dtype_name(w)) + " (" + std::to_string(n) + ", " + std::to_string(c) + ")";
}

Tensor rnd(const Shape& s, DType t, std::mt19937_64& rng, const char* name, double lo = -1,
           double hi = 1) {
  return testing::random_tensor(cpu_ctx(), s, t, rng, lo, hi, name);
}

struct Dtypes {
  DType x, w, y;  // y: the output (and dx, dy); w: also dw
};

// Forward and backward of one configuration on both devices. Backward inputs (x, w, rstd, dy) are
// the same values on both sides, so dx and dw are compared on their own.
void check(int64_t n, int64_t c, Dtypes t, std::mt19937_64& rng) {
  auto& cpu = cpu_ctx();
  auto& gpu = gpu_ctx();
  const DType st = stat_dtype(t.x);
  auto x = rnd({n, c}, t.x, rng, "x"), w = rnd({c}, t.w, rng, "w", 0.5, 1.5);
  auto y = cpu.empty({n, c}, t.y, "y"), rstd = cpu.empty({n}, st, "rstd");
  auto gx = to_device(x), gw = to_device(w);
  auto gy = poisoned({n, c}, t.y, "y"), grstd = poisoned({n}, st, "rstd");
  rmsnorm_forward(y, rstd, x, w, 1e-6, cpu);
  rmsnorm_forward(gy, grstd, gx, gw, 1e-6, gpu);
  testing::expect_close(gy, y, tol(t.y, c), label("rmsnorm y", t.x, t.w, n, c));
  testing::expect_close(grstd, rstd, tol(st, c), label("rmsnorm rstd", t.x, t.w, n, c));

  // With one column, y = sign(x)·w no longer depends on |x|: dx = rstd·w·dy·eps / (x² + eps) is
  // the difference of two nearly equal terms, ill-conditioned on both devices, so the derived
  // tolerance does not apply. Width 1 is checked forward only.
  if (c == 1) return;
  auto dy = rnd({n, c}, t.y, rng, "dy");
  auto gdy = to_device(dy), gr = to_device(rstd);
  for (GradWrite mode : {GradWrite::overwrite, GradWrite::accumulate}) {
    const bool acc = mode == GradWrite::accumulate;
    auto dx = rnd({n, c}, t.y, rng, "dx"), dw = rnd({c}, t.w, rng, "dw");
    Tensor gdx = acc ? to_device(dx) : poisoned({n, c}, t.y, "dx");
    auto gdw = to_device(dw);  // dw always accumulates, from random non-zero values
    rmsnorm_backward(dx, dw, dy, x, w, rstd, mode, cpu);
    rmsnorm_backward(gdx, gdw, gdy, gx, gw, gr, mode, gpu);
    const std::string m = acc ? " (dx +=)" : " (dx =)";
    testing::expect_close(gdx, dx, tol(t.y, c), label("rmsnorm dx", t.x, t.w, n, c) + m);
    testing::expect_close(gdw, dw, tol(t.w, n), label("rmsnorm dw", t.x, t.w, n, c) + m);
  }
}

TEST(GpuRmsnorm, MatchesCpuInEveryDtype) {
  R1_REQUIRE_GPU();
  std::mt19937_64 rng(1);
  // (37, 1001): not a multiple of any pack (scalar path, block per row); (1, 1); (64, 128) and
  // (300, 520): a warp per row; (2048, 7168): a block per row, vectorised, several row waves.
  const std::pair<int64_t, int64_t> shapes[] = {
      {37, 1001}, {1, 1}, {64, 128}, {300, 520}, {2048, 7168}};
  for (DType t : {DType::f32, DType::bf16, DType::f16, DType::f64})
    for (auto [n, c] : shapes) check(n, c, {t, t, t}, rng);
}

TEST(GpuRmsnorm, HalfActivationsWithF32Weights) {
  R1_REQUIRE_GPU();
  std::mt19937_64 rng(2);
  for (DType t : {DType::bf16, DType::f16}) {
    check(37, 1001, {t, DType::f32, t}, rng);
    check(513, 7168, {t, DType::f32, t}, rng);
  }
}

TEST(GpuRmsnorm, MixedDtypesRunOnF32StandIns) {
  R1_REQUIRE_GPU();
  std::mt19937_64 rng(3);
  check(37, 1001, {DType::f32, DType::f32, DType::bf16}, rng);  // y (dx, dy) bf16
  check(64, 256, {DType::bf16, DType::f16, DType::bf16}, rng);  // w (dw) f16
  check(33, 200, {DType::f16, DType::bf16, DType::f32}, rng);
}

TEST(GpuRmsnorm, RowsWiderThanTheRegisters) {
  R1_REQUIRE_GPU();
  std::mt19937_64 rng(4);
  check(37, 9001, {DType::f32, DType::f32, DType::f32}, rng);      // scalar: re-read, unfused dw
  check(21, 20000, {DType::bf16, DType::bf16, DType::bf16}, rng);  // packs: unfused dw
  check(9, 40000, {DType::bf16, DType::bf16, DType::bf16}, rng);   // packs: re-read forward too
}

TEST(GpuRmsnorm, UnalignedRowsTakeTheScalarPath) {
  R1_REQUIRE_GPU();
  auto& cpu = cpu_ctx();
  auto& gpu = gpu_ctx();
  std::mt19937_64 rng(5);
  const int64_t n = 50, c = 1024;  // a multiple of the pack, but x starts 2 bytes in
  auto x = rnd({n, c}, DType::bf16, rng, "x"), w = rnd({c}, DType::bf16, rng, "w");
  auto base = poisoned({n * c + 1}, DType::bf16, "x_base");
  TensorView gx = base.view().slice(1, n * c + 1).reshape({n, c});
  gpu.copy(gx, x);
  auto gw = to_device(w);
  auto y = cpu.empty({n, c}, DType::bf16, "y"), rstd = cpu.empty({n}, DType::f32, "rstd");
  auto gy = poisoned({n, c}, DType::bf16, "y"), grstd = poisoned({n}, DType::f32, "rstd");
  rmsnorm_forward(y, rstd, x, w, 1e-5, cpu);
  rmsnorm_forward(gy, grstd, gx, gw, 1e-5, gpu);
  testing::expect_close(gy, y, tol(DType::bf16, c), "rmsnorm y (unaligned x)");
  testing::expect_close(grstd, rstd, tol(DType::f32, c), "rmsnorm rstd (unaligned x)");
  // Backward: each of x, dy, dx and w unaligned in turn (every one must send it to the scalar
  // path), the others aligned.
  auto dy = rnd({n, c}, DType::bf16, rng, "dy");
  auto gr = to_device(rstd);
  for (int which = 0; which < 4; ++which) {
    auto dyb = poisoned({n * c + 1}, DType::bf16, "dy_base");
    auto dxb = poisoned({n * c + 1}, DType::bf16, "dx_base");
    auto wb = poisoned({c + 1}, DType::bf16, "w_base");
    auto shifted = [&](const Tensor& b, bool shift, const Shape& s) {
      return b.view().slice(shift ? 1 : 0, shift ? b.numel() : b.numel() - 1).reshape(s);
    };
    const TensorView gdy = shifted(dyb, which == 1, {n, c}), gdx = shifted(dxb, which == 2, {n, c});
    const TensorView gwv = shifted(wb, which == 3, {c});
    gpu.copy(gdy, dy);
    gpu.copy(gwv, w);
    auto gxa = to_device(x);
    const TensorView gxv = which == 0 ? gx : gxa.view();
    auto dx = cpu.empty({n, c}, DType::bf16, "dx");
    auto dw = rnd({c}, DType::bf16, rng, "dw");
    auto gdw = to_device(dw);
    rmsnorm_backward(dx, dw, dy, x, w, rstd, GradWrite::overwrite, cpu);
    rmsnorm_backward(gdx, gdw, gdy, gxv, gwv, gr, GradWrite::overwrite, gpu);
    const char* names[] = {"x", "dy", "dx", "w"};
    const std::string what = std::string(" (unaligned ") + names[which] + ")";
    testing::expect_close(gdx, dx, tol(DType::bf16, c), "rmsnorm dx" + what);
    testing::expect_close(gdw, dw, tol(DType::bf16, n), "rmsnorm dw" + what);
  }
}

TEST(GpuRmsnorm, InPlaceForwardAndBackward) {
  R1_REQUIRE_GPU();
  auto& cpu = cpu_ctx();
  auto& gpu = gpu_ctx();
  std::mt19937_64 rng(6);
  for (DType t : {DType::f32, DType::bf16}) {
    // (9, 20000): dx and dw in separate passes, dw first since dx overwrites dy.
    for (auto [n, c] : {std::pair<int64_t, int64_t>{37, 1001}, {256, 7168}, {40, 96}, {9, 20000}}) {
      auto x = rnd({n, c}, t, rng, "x"), w = rnd({c}, t, rng, "w");
      auto gx = to_device(x), gw = to_device(w);
      auto x0 = to_device(x);  // x before normalisation, for the backward
      auto rstd = cpu.empty({n}, DType::f32, "rstd");
      auto grstd = poisoned({n}, DType::f32, "rstd");
      auto xc = cpu.empty({n, c}, t, "x copy");
      std::memcpy(xc.data(), x.data(), x.nbytes());
      rmsnorm_forward(x, rstd, x, w, 1e-6, cpu);  // y = x
      rmsnorm_forward(gx, grstd, gx, gw, 1e-6, gpu);
      testing::expect_close(gx, x, tol(t, c), label("rmsnorm y = x", t, t, n, c));
      testing::expect_close(grstd, rstd, tol(DType::f32, c), label("rmsnorm rstd", t, t, n, c));
      // Backward with dx = dy (overwrite), from the original x.
      auto dy = rnd({n, c}, t, rng, "dy"), dw = rnd({c}, t, rng, "dw");
      auto gdy = to_device(dy), gdw = to_device(dw), gr = to_device(rstd);
      rmsnorm_backward(dy, dw, dy, xc, w, rstd, GradWrite::overwrite, cpu);
      rmsnorm_backward(gdy, gdw, gdy, x0, gw, gr, GradWrite::overwrite, gpu);
      testing::expect_close(gdy, dy, tol(t, c), label("rmsnorm dx = dy", t, t, n, c));
      testing::expect_close(gdw, dw, tol(t, n), label("rmsnorm dw (dx = dy)", t, t, n, c));
    }
  }
}

TEST(GpuRmsnorm, DwIsDeterministic) {
  R1_REQUIRE_GPU();
  auto& gpu = gpu_ctx();
  std::mt19937_64 rng(7);
  // 2048 columns: a block per row; 512: a warp per row (warp rows added per block); 20000: the
  // unfused dw pass.
  for (int64_t c : {2048, 512, 20000}) {
    const int64_t n = c == 20000 ? 600 : 4096;
    auto gx = to_device(rnd({n, c}, DType::bf16, rng, "x"));
    auto gw = to_device(rnd({c}, DType::f32, rng, "w"));
    auto gdy = to_device(rnd({n, c}, DType::bf16, rng, "dy"));
    auto gr = to_device(rnd({n}, DType::f32, rng, "rstd", 0.5, 2));
    auto dw0 = rnd({c}, DType::f32, rng, "dw");
    std::vector<Tensor> results;
    for (int rep = 0; rep < 3; ++rep) {
      auto gdx = poisoned({n, c}, DType::bf16, "dx");
      auto gdw = to_device(dw0);
      rmsnorm_backward(gdx, gdw, gdy, gx, gw, gr, GradWrite::overwrite, gpu);
      results.push_back(testing::to_host(gdw));
    }
    for (int rep = 1; rep < 3; ++rep)
      EXPECT_EQ(std::memcmp(results[0].data(), results[rep].data(), results[0].nbytes()), 0)
          << "dw differs between identical runs (" << n << ", " << c << ")";
  }
}

TEST(GpuRmsnorm, EmptyBatchDoesNothing) {
  R1_REQUIRE_GPU();
  auto& gpu = gpu_ctx();
  auto x = gpu.empty({0, 64}, DType::bf16, "x"), w = gpu.zeros({64}, DType::bf16, "w");
  auto r = gpu.empty({0}, DType::f32, "rstd");
  rmsnorm_forward(x, r, x, w, 1e-6, gpu);
  auto dx = gpu.empty({0, 64}, DType::bf16, "dx"), dw = gpu.zeros({64}, DType::bf16, "dw");
  rmsnorm_backward(dx, dw, x, x, w, r, GradWrite::overwrite, gpu);
  gpu.synchronize();
}

}  // namespace
}  // namespace r1kit::kernels
