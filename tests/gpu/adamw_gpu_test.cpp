// GPU vs CPU for AdamW: several steps with weight decay, bias correction at steps 1 and 1000,
// f32/bf16/f16 gradients on f32 masters (and f64 throughout), the bf16 working copy, the packed
// path with its scalar tail and the unaligned (scalar) path.
#include "kernels/adamw.h"

#include <fmt/format.h>

#include "tests/gpu/gpu_util.h"

namespace r1kit::kernels {
namespace {
using testing::cpu_ctx;
using testing::gpu_ctx;

AdamWParams params_at(int64_t step) {
  AdamWParams hp;
  hp.lr = 3e-3;
  hp.beta1 = 0.9;
  hp.beta2 = 0.95;
  hp.eps = 1e-8;
  hp.weight_decay = 0.1;
  hp.step = step;
  return hp;
}

// The optimizer state on one side: param, m, v and the optional bf16 copy.
struct Side {
  Tensor p, m, v, copy;
};

Side make_host(int64_t n, DType pt, bool with_copy, std::mt19937_64& rng) {
  auto& cpu = cpu_ctx();
  Side s;
  s.p = testing::random_tensor(cpu, {n}, pt, rng, -1, 1, "param");
  // Non-zero moments, as after earlier steps (v >= 0).
  s.m = testing::random_tensor(cpu, {n}, pt, rng, -1e-2, 1e-2, "m");
  s.v = testing::random_tensor(cpu, {n}, pt, rng, 0, 1e-4, "v");
  if (with_copy) s.copy = cpu.empty({n}, DType::bf16, "param_bf16");
  return s;
}

// A device copy of a host side, or its views placed `offset` elements into larger buffers.
struct DeviceSide {
  std::vector<Tensor> bufs;
  TensorView p, m, v, copy;
};

TensorView place(DeviceSide& d, const Tensor& host, int64_t offset) {
  auto& gpu = gpu_ctx();
  d.bufs.push_back(gpu.empty({host.numel() + offset}, host.view().dtype, host.view().name));
  const Tensor& b = d.bufs.back();
  char* base =
      static_cast<char*>(b.data()) + offset * static_cast<int64_t>(dtype_size(host.view().dtype));
  TensorView v(base, host.view().dtype, b.view().device, host.view().dims(), host.view().name);
  gpu.copy(v, host);
  return v;
}

DeviceSide to_device_side(const Side& h, int64_t offset) {
  DeviceSide d;
  d.p = place(d, h.p, offset);
  d.m = place(d, h.m, offset);
  d.v = place(d, h.v, offset);
  if (h.copy.view().defined() && h.copy.data() != nullptr) {
    d.bufs.push_back(testing::poisoned({h.copy.numel() + offset}, DType::bf16));
    char* base = static_cast<char*>(d.bufs.back().data()) + offset * 2;
    d.copy = TensorView(base, DType::bf16, d.bufs.back().view().device, h.copy.view().dims(),
                        "param_bf16");
  }
  return d;
}

// Runs `steps` on both sides with fresh gradients each step and compares every buffer after each.
void run_steps(int64_t n, DType pt, DType gt, bool with_copy, int64_t offset,
               const std::vector<int64_t>& steps, bool exact, uint64_t seed) {
  std::mt19937_64 rng(seed);
  auto& cpu = cpu_ctx();
  auto& gpu = gpu_ctx();
  Side h = make_host(n, pt, with_copy, rng);
  DeviceSide d = to_device_side(h, offset);
  for (int64_t step : steps) {
    SCOPED_TRACE(fmt::format("n {} param {} grad {} offset {} step {}", n, dtype_name(pt),
                             dtype_name(gt), offset, step));
    auto g = testing::random_tensor(cpu, {n}, gt, rng, -1, 1, "grad");
    const AdamWParams hp = params_at(step);
    adamw_update(h.p, g, h.m, h.v, with_copy ? h.copy.view() : TensorView{}, hp, cpu);
    DeviceSide gd;
    TensorView g_d = place(gd, g, offset);
    adamw_update(d.p, g_d, d.m, d.v, d.copy, hp, gpu);
    // Each element is one evaluation of the update formula (no reduction).
    auto check = [&](const TensorView& got, const Tensor& want, const char* what) {
      if (exact) {
        testing::expect_equal(got, want, what);
      } else {
        testing::expect_close(got, want, testing::tolerance(want.view().dtype, 1, pt), what);
      }
    };
    check(d.p, h.p, "param");
    check(d.m, h.m, "m");
    check(d.v, h.v, "v");
    if (with_copy) check(d.copy, h.copy, "param_bf16");
  }
}

TEST(GpuAdamw, F32MastersWithEachGradDtypeMatchCpu) {
  R1_REQUIRE_GPU();
  // 2^20 + 13: the packed path plus a scalar tail; 37·1001: odd, not a multiple of the pack.
  for (int64_t n : {int64_t{(1 << 20) + 13}, int64_t{37 * 1001}})
    for (DType gt : {DType::f32, DType::bf16, DType::f16})
      run_steps(n, DType::f32, gt, /*with_copy=*/true, 0, {1, 2, 3, 1000}, false, 31);
}

TEST(GpuAdamw, F64MatchesCpu) {
  R1_REQUIRE_GPU();
  run_steps(100003, DType::f64, DType::f64, /*with_copy=*/true, 0, {1, 2, 1000}, false, 32);
  run_steps(4097, DType::f64, DType::f64, /*with_copy=*/false, 0, {1, 7}, false, 33);
}

TEST(GpuAdamw, WithoutBf16CopyAndUnaligned) {
  R1_REQUIRE_GPU();
  run_steps(50001, DType::f32, DType::bf16, /*with_copy=*/false, 0, {1, 2}, false, 34);
  // Buffers one element past a 16-byte boundary: the element-by-element path.
  run_steps(50001, DType::f32, DType::bf16, /*with_copy=*/true, 1, {1, 2, 1000}, false, 35);
  run_steps(20001, DType::f64, DType::f64, /*with_copy=*/true, 1, {1, 3}, false, 36);
}

// More elements than one pass of the grid covers (a few waves of 256-thread blocks per SM), so
// every thread takes several grid-stride steps, in the packed and in the element-by-element path.
TEST(GpuAdamw, GridStrideOverLargeBuffers) {
  R1_REQUIRE_GPU();
  run_steps((int64_t{1} << 23) + 5, DType::f32, DType::bf16, /*with_copy=*/true, 0, {1, 2}, false,
            39);
  run_steps((int64_t{1} << 21) + 3, DType::f32, DType::f32, /*with_copy=*/true, 1, {1}, false, 40);
}

// Same formula, same double operations in the same order (no FMA contraction), host-computed bias
// corrections: the GPU's stored values are the CPU's bits.
TEST(GpuAdamw, BitIdenticalToCpu) {
  R1_REQUIRE_GPU();
  run_steps((1 << 18) + 3, DType::f32, DType::bf16, /*with_copy=*/true, 0, {1, 2, 1000}, true, 37);
  run_steps((1 << 18) + 3, DType::f32, DType::f32, /*with_copy=*/true, 0, {1, 5}, true, 38);
}

TEST(GpuAdamw, EmptyBuffersLaunchNothing) {
  R1_REQUIRE_GPU();
  auto& gpu = gpu_ctx();
  auto p = gpu.empty({0}, DType::f32, "param");
  auto g = gpu.empty({0}, DType::f32, "grad");
  auto m = gpu.empty({0}, DType::f32, "m");
  auto v = gpu.empty({0}, DType::f32, "v");
  adamw_update(p, g, m, v, TensorView{}, params_at(1), gpu);
  EXPECT_NO_THROW(gpu.synchronize());
}

}  // namespace
}  // namespace r1kit::kernels
