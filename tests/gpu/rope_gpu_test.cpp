// GPU vs CPU for rope: tables built for a GPU context equal the CPU's; forward and backward in both
// layouts and every float dtype, on contiguous (T, H, D) tensors, on the rope part of wider MLA
// heads (a strided view), in place, with dims that are not a multiple of the pack (scalar path),
// large enough to vectorise over many blocks, mixed x/y dtypes; out-of-range positions reported
// through the device error sink without reading outside the table.
#include "kernels/rope.h"

#include <cmath>
#include <random>
#include <vector>

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

const char* layout_name(RopeLayout l) {
  return l == RopeLayout::interleaved ? "interleaved" : "half_split";
}

// cos/sin tables of P rows (positions 0..P−1) for a YaRN config of rotary dim d, on a context.
struct Tables {
  Tensor cos, sin, pos;
};
Tables make_tables(Context& ctx, int64_t p, int64_t d, DType t) {
  RopeConfig cfg{.dim = d, .theta = 10000.0, .scaling = RopeScaling::yarn, .factor = 40.0};
  cfg.original_max_position_embeddings = 4096;
  cfg.mscale = 1.0;
  cfg.mscale_all_dim = 0.707;
  Tensor hp = cpu_ctx().empty({p}, DType::i32, "positions");
  for (int64_t i = 0; i < p; ++i) hp.ptr<int32_t>()[i] = static_cast<int32_t>(i * 37 + 5);
  Tables tb{ctx.empty({p, d / 2}, t, "cos"), ctx.empty({p, d / 2}, t, "sin"),
            ctx.empty({p}, DType::i32, "positions")};
  ctx.copy(tb.pos, hp);
  rope_tables(tb.cos, tb.sin, tb.pos, cfg, ctx);
  return tb;
}

// A (T, H, D) view of dims [col, col + D) of each of H heads of width `head_width` in a contiguous
// (T, H·head_width) buffer: the rope part of an MLA head.
TensorView rope_part(const TensorView& base, int64_t heads, int64_t head_width, int64_t col,
                     int64_t d, const char* name) {
  TensorView v = base;
  v.data = static_cast<char*>(base.data) + col * static_cast<int64_t>(dtype_size(base.dtype));
  v.ndim = 3;
  v.shape = {base.shape[0], heads, d, 0};
  v.stride = {base.shape[1], head_width, 1, 0};
  v.name = name;
  return v;
}

// Positions in [0, p), shuffled (not the token index).
Tensor random_positions(int64_t t, int64_t p, std::mt19937_64& rng) {
  return testing::random_ints(cpu_ctx(), {t}, rng, 0, static_cast<int>(p - 1), "positions");
}

TEST(GpuRope, TablesBuiltForTheGpuEqualTheCpus) {
  R1_REQUIRE_GPU();
  for (DType t : {DType::f32, DType::f64}) {
    Tables c = make_tables(cpu_ctx(), 333, 64, t);
    Tables g = make_tables(gpu_ctx(), 333, 64, t);
    testing::expect_equal(g.cos, c.cos, "rope_tables cos");
    testing::expect_equal(g.sin, c.sin, "rope_tables sin");
  }
}

// Rotates the (T, H, D) view `xv` of base buffer `xb` into the view `yv` of `yb` (or in place when
// in_place) on both devices, forward or backward; compares the whole output buffer (values outside
// the view must stay as they were, so they are compared too).
struct Geometry {
  int64_t t, heads, head_width, col, d;  // head_width == d and col == 0: contiguous (T, H, D)
};

void check(const Geometry& g, DType xt, DType yt, RopeLayout layout, bool backward, bool in_place,
           std::mt19937_64& rng) {
  auto& cpu = cpu_ctx();
  auto& gpu = gpu_ctx();
  const DType tt = xt == DType::f64 ? DType::f64 : DType::f32;
  const int64_t p = g.t + 17;
  Tables ct = make_tables(cpu, p, g.d, tt), gt = make_tables(gpu, p, g.d, tt);
  auto pos = random_positions(g.t, p, rng);
  auto gpos = to_device(pos);
  const int64_t width = g.heads * g.head_width;
  auto xb = testing::random_tensor(cpu, {g.t, width}, xt, rng, -2, 2, "x_base");
  auto yb = testing::random_tensor(cpu, {g.t, width}, yt, rng, -2, 2, "y_base");
  // The rotated region of y starts as NaN on both devices (the rest keeps its random values): an
  // element the GPU forgets to write stays NaN and fails, however few there are.
  if (!in_place)
    for (int64_t i = 0; i < g.t; ++i)
      for (int64_t h = 0; h < g.heads; ++h)
        for (int64_t e = 0; e < g.d; ++e)
          store_from_double(yb.data(), yt,
                            static_cast<size_t>(i * width + h * g.head_width + g.col + e), NAN);
  auto gxb = to_device(xb), gyb = to_device(yb);
  const TensorView xv = rope_part(xb, g.heads, g.head_width, g.col, g.d, "x");
  const TensorView gxv = rope_part(gxb, g.heads, g.head_width, g.col, g.d, "x");
  const TensorView yv = in_place ? xv : rope_part(yb, g.heads, g.head_width, g.col, g.d, "y");
  const TensorView gyv = in_place ? gxv : rope_part(gyb, g.heads, g.head_width, g.col, g.d, "y");
  auto run = backward ? rope_backward : rope_forward;
  run(yv, xv, ct.cos, ct.sin, pos, layout, cpu);
  run(gyv, gxv, gt.cos, gt.sin, gpos, layout, gpu);
  const std::string what =
      std::string(backward ? "rope_backward " : "rope_forward ") + layout_name(layout) + " x " +
      std::string(dtype_name(xt)) + " y " + std::string(dtype_name(yt)) + " T " +
      std::to_string(g.t) + " H " + std::to_string(g.heads) + " D " + std::to_string(g.d) +
      " in head width " + std::to_string(g.head_width) + (in_place ? " in place" : "");
  if (in_place) {
    testing::expect_close(gxb, xb, tol(xt), what);
  } else {
    testing::expect_close(gyb, yb, tol(yt), what);
    testing::expect_equal(gxb, xb, what + ": input untouched");
  }
}

TEST(GpuRope, ContiguousHeadsInEveryDtype) {
  R1_REQUIRE_GPU();
  std::mt19937_64 rng(1);
  for (DType t : {DType::f32, DType::bf16, DType::f16, DType::f64})
    for (RopeLayout l : {RopeLayout::interleaved, RopeLayout::half_split})
      for (bool bwd : {false, true}) {
        check({37, 3, 64, 0, 64}, t, t, l, bwd, false, rng);
        check({1, 1, 2, 0, 2}, t, t, l, bwd, false, rng);
        check({29, 5, 6, 0, 6}, t, t, l, bwd, false, rng);    // D/2 = 3: scalar path
        check({19, 2, 24, 0, 24}, t, t, l, bwd, false, rng);  // interleaved packs, half_split not
        check({2048, 16, 128, 0, 128}, t, t, l, bwd, false, rng);  // vectorised, many blocks
      }
}

TEST(GpuRope, RopePartOfWiderMlaHeads) {
  R1_REQUIRE_GPU();
  std::mt19937_64 rng(2);
  // DeepSeek-V3 q: 192-wide heads = 128 nope + 64 rope; k_pe: one 64-dim head in a 576-wide row.
  for (DType t : {DType::bf16, DType::f32})
    for (RopeLayout l : {RopeLayout::interleaved, RopeLayout::half_split})
      for (bool bwd : {false, true})
        for (bool in_place : {false, true}) {
          check({300, 16, 192, 128, 64}, t, t, l, bwd, in_place, rng);
          check({77, 1, 576, 512, 64}, t, t, l, bwd, in_place, rng);
          check({41, 3, 70, 3, 64}, t, t, l, bwd, in_place, rng);  // unaligned view: scalar
          // Aligned base, head (then token) stride not a multiple of the bf16 pack: scalar for
          // bf16, packs for f32.
          check({41, 3, 68, 0, 64}, t, t, l, bwd, in_place, rng);
          check({41, 1, 68, 0, 64}, t, t, l, bwd, in_place, rng);
        }
  // Unaligned views in the other dtypes (f64: one pair is a whole 16-byte pack, so this is the case
  // where only the alignment tells the two paths apart).
  for (DType t : {DType::f64, DType::f16})
    for (RopeLayout l : {RopeLayout::interleaved, RopeLayout::half_split}) {
      check({41, 3, 70, 3, 64}, t, t, l, false, false, rng);
      check({41, 3, 70, 3, 64}, t, t, l, true, true, rng);
      check({41, 3, 192, 128, 64}, t, t, l, false, true, rng);
    }
}

TEST(GpuRope, MixedInputAndOutputDtypes) {
  R1_REQUIRE_GPU();
  std::mt19937_64 rng(3);
  for (RopeLayout l : {RopeLayout::interleaved, RopeLayout::half_split}) {
    check({37, 4, 192, 128, 64}, DType::f32, DType::bf16, l, false, false, rng);
    check({37, 4, 64, 0, 64}, DType::bf16, DType::f32, l, true, false, rng);
    check({37, 4, 64, 0, 64}, DType::f16, DType::bf16, l, false, false, rng);
  }
}

TEST(GpuRope, OutOfRangePositionIsReported) {
  R1_REQUIRE_GPU();
  auto& gpu = gpu_ctx();
  std::mt19937_64 rng(4);
  const int64_t t = 64, p = 100;
  Tables tb = make_tables(gpu, p, 64, DType::f32);
  auto x = to_device(testing::random_tensor(cpu_ctx(), {t, 4, 64}, DType::bf16, rng, -1, 1, "x"));
  auto y = poisoned({t, 4, 64}, DType::bf16, "y");
  for (int32_t bad : {100, -1, 1 << 30}) {
    auto pos = random_positions(t, p, rng);
    pos.ptr<int32_t>()[41] = bad;
    auto gpos = to_device(pos);
    rope_forward(y, x, tb.cos, tb.sin, gpos, RopeLayout::interleaved, gpu);
    testing::expect_error_contains([&] { gpu.synchronize(); },
                                   {"[rope]", "positions[41] = " + std::to_string(bad),
                                    "outside the cos/sin table", "rows 0..99"});
    rope_backward(y, x, tb.cos, tb.sin, gpos, RopeLayout::half_split, gpu);
    testing::expect_error_contains([&] { gpu.synchronize(); },
                                   {"[rope_backward]", "positions[41]", "rows 0..99"});
  }
  // The context is usable afterwards (the error was cleared, nothing read out of bounds).
  auto pos = to_device(random_positions(t, p, rng));
  rope_forward(y, x, tb.cos, tb.sin, pos, RopeLayout::interleaved, gpu);
  gpu.synchronize();
}

}  // namespace
}  // namespace r1kit::kernels
