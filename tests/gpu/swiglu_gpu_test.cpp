// GPU vs CPU for swiglu forward and backward in every float dtype: contiguous tensors of odd,
// tiny and large shapes, gate/up as the two column halves of a packed gate_up buffer, dgate/dup as
// the halves of one buffer, row-strided outputs (aligned: packs; unaligned: the scalar path),
// saturated gates, mixed dtypes (f32 stand-ins).
#include "kernels/swiglu.h"

#include <cmath>
#include <random>

#include "tests/gpu/gpu_util.h"

namespace r1kit::kernels {
namespace {
using testing::cpu_ctx;
using testing::gpu_ctx;
using testing::poisoned;
using testing::to_device;

double tol(DType t) {
  return testing::tolerance(t, 1, t == DType::f64 ? DType::f64 : DType::f32);
}

std::string label(const char* what, DType t, int64_t n, int64_t h) {
  return std::string(what) + " " + std::string(dtype_name(t)) + " (" + std::to_string(n) + ", " +
         std::to_string(h) + ")";
}

Tensor rnd(const Shape& s, DType t, std::mt19937_64& rng, const char* name, double lo = -4,
           double hi = 4) {
  return testing::random_tensor(cpu_ctx(), s, t, rng, lo, hi, name);
}

// Separate contiguous tensors.
void check_contiguous(int64_t n, int64_t h, DType t, std::mt19937_64& rng, double range = 4) {
  auto& cpu = cpu_ctx();
  auto& gpu = gpu_ctx();
  auto g = rnd({n, h}, t, rng, "gate", -range, range), u = rnd({n, h}, t, rng, "up");
  auto gg = to_device(g), gu = to_device(u);
  auto out = cpu.empty({n, h}, t, "out");
  auto gout = poisoned({n, h}, t, "out");
  swiglu_forward(out, g, u, cpu);
  swiglu_forward(gout, gg, gu, gpu);
  testing::expect_close(gout, out, tol(t), label("swiglu out", t, n, h));
  auto dy = rnd({n, h}, t, rng, "dout", -1, 1);
  auto gdy = to_device(dy);
  auto dg = cpu.empty({n, h}, t, "dgate"), du = cpu.empty({n, h}, t, "dup");
  auto gdg = poisoned({n, h}, t, "dgate"), gdu = poisoned({n, h}, t, "dup");
  swiglu_backward(dg, du, dy, g, u, cpu);
  swiglu_backward(gdg, gdu, gdy, gg, gu, gpu);
  testing::expect_close(gdg, dg, tol(t), label("swiglu dgate", t, n, h));
  testing::expect_close(gdu, du, tol(t), label("swiglu dup", t, n, h));
}

TEST(GpuSwiglu, ContiguousInEveryDtype) {
  R1_REQUIRE_GPU();
  std::mt19937_64 rng(1);
  for (DType t : {DType::f32, DType::bf16, DType::f16, DType::f64}) {
    check_contiguous(37, 1001, t, rng);  // not a multiple of any pack: scalar
    check_contiguous(1, 1, t, rng);
    check_contiguous(2048, 7168, t, rng);  // packs over many blocks
  }
}

TEST(GpuSwiglu, SaturatedGates) {
  R1_REQUIRE_GPU();
  std::mt19937_64 rng(2);
  check_contiguous(64, 1024, DType::f32, rng, 40);
  check_contiguous(64, 1024, DType::bf16, rng, 40);
  check_contiguous(64, 1024, DType::f16, rng, 12);  // e^12 · dout stays inside f16's range
}

// gate and up are the column halves of a packed (N, 2H) gate_up buffer; out is columns
// [col, col + H) of an (N, H + pad) buffer; dgate and dup the halves of one (N, 2H) buffer.
void check_packed(int64_t n, int64_t h, int64_t pad, int64_t col, DType t, std::mt19937_64& rng) {
  auto& cpu = cpu_ctx();
  auto& gpu = gpu_ctx();
  auto gu = rnd({n, 2 * h}, t, rng, "gate_up");
  auto ggu = to_device(gu);
  auto g = column_slice(gu, 0, h), u = column_slice(gu, h, 2 * h);
  auto gg = column_slice(ggu, 0, h), guu = column_slice(ggu, h, 2 * h);
  auto ob = rnd({n, h + pad}, t, rng, "out_base");
  // The out columns start as NaN on both devices (the padding keeps its random values): an element
  // the GPU forgets to write stays NaN and fails.
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = col; j < col + h; ++j)
      store_from_double(ob.data(), t, static_cast<size_t>(i * (h + pad) + j), NAN);
  auto gob = to_device(ob);
  swiglu_forward(column_slice(ob, col, col + h), g, u, cpu);
  swiglu_forward(column_slice(gob, col, col + h), gg, guu, gpu);
  const std::string sh = " pad " + std::to_string(pad) + " col " + std::to_string(col);
  testing::expect_close(gob, ob, tol(t), label("swiglu packed out", t, n, h) + sh);
  testing::expect_equal(ggu, gu, label("swiglu packed: gate_up untouched", t, n, h));
  // Backward: dout as a strided view too.
  auto dyb = rnd({n, h + pad}, t, rng, "dout_base", -1, 1);
  auto gdyb = to_device(dyb);
  auto dgu = cpu.empty({n, 2 * h}, t, "dgate_up");
  auto gdgu = poisoned({n, 2 * h}, t, "dgate_up");
  swiglu_backward(column_slice(dgu, 0, h), column_slice(dgu, h, 2 * h),
                  column_slice(dyb, col, col + h), g, u, cpu);
  swiglu_backward(column_slice(gdgu, 0, h), column_slice(gdgu, h, 2 * h),
                  column_slice(gdyb, col, col + h), gg, guu, gpu);
  testing::expect_close(gdgu, dgu, tol(t), label("swiglu packed dgate_up", t, n, h) + sh);
}

TEST(GpuSwiglu, PackedGateUpHalvesAndStridedOutputs) {
  R1_REQUIRE_GPU();
  std::mt19937_64 rng(3);
  for (DType t : {DType::f32, DType::bf16, DType::f16, DType::f64}) {
    check_packed(37, 1001, 3, 1, t, rng);   // odd widths: scalar
    check_packed(300, 1024, 8, 0, t, rng);  // aligned row strides: packs
    check_packed(300, 1024, 8, 3, t, rng);  // out starts unaligned: scalar
    check_packed(300, 1024, 3, 0, t, rng);  // out/dout aligned, their row stride not: scalar
  }
  check_packed(2048, 2048, 64, 32, DType::bf16, rng);
}

TEST(GpuSwiglu, MixedDtypesRunOnF32StandIns) {
  R1_REQUIRE_GPU();
  auto& cpu = cpu_ctx();
  auto& gpu = gpu_ctx();
  std::mt19937_64 rng(4);
  const int64_t n = 37, h = 1001;
  auto g = rnd({n, h}, DType::f32, rng, "gate"), u = rnd({n, h}, DType::bf16, rng, "up");
  auto gg = to_device(g), gu = to_device(u);
  auto out = cpu.empty({n, h}, DType::bf16, "out");
  auto gout = poisoned({n, h}, DType::bf16, "out");
  swiglu_forward(out, g, u, cpu);
  swiglu_forward(gout, gg, gu, gpu);
  testing::expect_close(gout, out, tol(DType::bf16), "swiglu out bf16 (f32 gate, bf16 up)");
  // Backward into a packed f16 buffer from an f32 dout.
  auto dy = rnd({n, h}, DType::f32, rng, "dout", -1, 1);
  auto gdy = to_device(dy);
  auto d = cpu.empty({n, 2 * h}, DType::f16, "dgate_up");
  auto gd = poisoned({n, 2 * h}, DType::f16, "dgate_up");
  swiglu_backward(column_slice(d, 0, h), column_slice(d, h, 2 * h), dy, g, u, cpu);
  swiglu_backward(column_slice(gd, 0, h), column_slice(gd, h, 2 * h), gdy, gg, gu, gpu);
  testing::expect_close(gd, d, tol(DType::f16), "swiglu dgate_up f16 (mixed inputs)");
}

TEST(GpuSwiglu, EmptyDoesNothing) {
  R1_REQUIRE_GPU();
  auto& gpu = gpu_ctx();
  auto a = gpu.empty({0, 16}, DType::bf16, "a"), b = gpu.empty({0, 16}, DType::bf16, "b");
  auto c = gpu.empty({0, 16}, DType::bf16, "c");
  swiglu_forward(c, a, b, gpu);
  swiglu_backward(c, gpu.empty({0, 16}, DType::bf16, "d"), a, a, b, gpu);
  gpu.synchronize();
}

}  // namespace
}  // namespace r1kit::kernels
