// GPU (cuBLASLt) vs CPU (OpenBLAS) for matmul, linear and grouped linear: all four transpose
// combinations, batched, odd and degenerate shapes, every float dtype and the mixed ones,
// alpha/beta with beta = 0 over a NaN-poisoned C and beta = 1 accumulation, unaligned operands, the
// bias epilogue and its fallbacks, each gradient alone and skipped ones, grouped experts with empty
// groups (host and device offsets), and the algorithm choice at a size that triggers tuning: the
// heuristic's by default (bit-identical across contexts), the timed one with R1KIT_GEMM_AUTOTUNE=1.
#include "kernels/matmul.h"

#include <fmt/format.h>

#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "tests/gpu/gpu_util.h"

namespace r1kit::kernels {
namespace {
using testing::cpu_ctx;
using testing::gpu_ctx;

// A host copy of a host tensor (the reference's own output buffer).
Tensor clone(const Tensor& t) {
  return testing::tensor_from(cpu_ctx(), t.view().dims(), t.dtype(), testing::to_double(t),
                              t.name());
}

// A device view of `shape` starting `offset` elements into a fresh buffer filled from `host`: with
// offset 1 every pointer is only 2-byte (bf16/f16) or 4-byte (f32) aligned.
struct Offset {
  Tensor buf;
  TensorView view;
};
Offset offset_copy(const Tensor& host, int64_t offset) {
  Offset o;
  o.buf = gpu_ctx().empty({host.numel() + offset}, host.dtype());
  char* base =
      static_cast<char*>(o.buf.data()) + offset * static_cast<int64_t>(dtype_size(host.dtype()));
  o.view = TensorView(base, host.dtype(), o.buf.view().device, host.view().dims(), host.name());
  gpu_ctx().copy(o.view, host);
  return o;
}

// The derived tolerance for an output of `out` summing `k` products (f64 accumulates in f64).
double tol(DType out, int64_t k) {
  return testing::tolerance(out, k, out == DType::f64 ? DType::f64 : DType::f32);
}

Shape stored(int64_t batch, int64_t rows, int64_t cols, bool trans) {
  Shape s = trans ? Shape{cols, rows} : Shape{rows, cols};
  if (batch > 0) s.insert(s.begin(), batch);
  return s;
}

struct Dims {
  int64_t m, n, k;
};
const Dims kOddDims[] = {{37, 53, 71}, {1, 1, 1}, {513, 257, 1029}};

// One forward case: a (dt_a), b (dt_b), c (dt_c); batch 0 means 2-D.
void check_forward(DType dt_a, DType dt_b, DType dt_c, int64_t batch, Dims d, MatmulOptions o,
                   uint64_t seed, int64_t offset = 0) {
  SCOPED_TRACE(
      fmt::format("a {} b {} c {} batch {} m {} n {} k {} trans_a {} trans_b {} alpha {} "
                  "beta {} offset {}",
                  dtype_name(dt_a), dtype_name(dt_b), dtype_name(dt_c), batch, d.m, d.n, d.k,
                  o.trans_a, o.trans_b, o.alpha, o.beta, offset));
  std::mt19937_64 rng(seed);
  auto& cpu = cpu_ctx();
  auto a = testing::random_tensor(cpu, stored(batch, d.m, d.k, o.trans_a), dt_a, rng, -1, 1, "a");
  auto b = testing::random_tensor(cpu, stored(batch, d.k, d.n, o.trans_b), dt_b, rng, -1, 1, "b");
  auto c0 = testing::random_tensor(cpu, stored(batch, d.m, d.n, false), dt_c, rng, -1, 1, "c");
  auto ref = clone(c0);
  matmul_forward(ref, a, b, o, cpu);
  Offset ad = offset_copy(a, offset), bd = offset_copy(b, offset), cd = offset_copy(c0, offset);
  if (o.beta == 0) {  // beta = 0 must not read C: poison it (on the context's stream)
    Tensor ff = cpu.empty(c0.view().dims(), dt_c);
    if (ff.nbytes() > 0) std::memset(ff.data(), 0xFF, ff.nbytes());
    gpu_ctx().copy(cd.view, ff);
  }
  matmul_forward(cd.view, ad.view, bd.view, o, gpu_ctx());
  testing::expect_close(cd.view, ref, tol(dt_c, d.k), "matmul forward");
}

TEST(GpuMatmul, ForwardAllTransposesOddShapesEveryDtype) {
  R1_REQUIRE_GPU();
  uint64_t seed = 100;
  for (DType dt : {DType::f32, DType::bf16, DType::f16, DType::f64})
    for (const Dims& d : kOddDims)
      for (bool ta : {false, true})
        for (bool tb : {false, true}) {
          check_forward(dt, dt, dt, 0, d, {.trans_a = ta, .trans_b = tb}, seed++);
          check_forward(dt, dt, dt, 0, d,
                        {.trans_a = ta, .trans_b = tb, .alpha = -0.75, .beta = 0.5}, seed++);
        }
}

TEST(GpuMatmul, ForwardBatched) {
  R1_REQUIRE_GPU();
  uint64_t seed = 200;
  for (DType dt : {DType::f32, DType::bf16, DType::f64})
    for (bool ta : {false, true})
      for (bool tb : {false, true}) {
        check_forward(dt, dt, dt, 3, {37, 53, 71}, {.trans_a = ta, .trans_b = tb}, seed++);
        check_forward(dt, dt, dt, 5, {64, 40, 96}, {.trans_a = ta, .trans_b = tb, .beta = 1.0},
                      seed++);
      }
}

TEST(GpuMatmul, ForwardMixedDtypes) {
  R1_REQUIRE_GPU();
  uint64_t seed = 300;
  // bf16/f16 operands into f32 (cuBLASLt directly); mixes it has no kernel for (upcast to f32).
  const DType mixes[][3] = {
      {DType::bf16, DType::bf16, DType::f32}, {DType::f16, DType::f16, DType::f32},
      {DType::bf16, DType::f32, DType::bf16}, {DType::f32, DType::f16, DType::f32},
      {DType::f16, DType::f16, DType::bf16},  {DType::f32, DType::f32, DType::bf16}};
  for (const auto& mix : mixes)
    for (bool tb : {false, true}) {
      check_forward(mix[0], mix[1], mix[2], 0, {37, 53, 71}, {.trans_b = tb}, seed++);
      check_forward(mix[0], mix[1], mix[2], 0, {37, 53, 71},
                    {.trans_b = tb, .alpha = 2.0, .beta = -1.0}, seed++);
      check_forward(mix[0], mix[1], mix[2], 2, {37, 53, 71}, {.trans_a = true, .trans_b = tb},
                    seed++);
    }
}

TEST(GpuMatmul, ForwardUnalignedOperands) {
  R1_REQUIRE_GPU();
  uint64_t seed = 400;
  // Every pointer one element off its allocation: cuBLASLt must get algorithms for that alignment.
  for (DType dt : {DType::bf16, DType::f32, DType::f64})
    for (bool ta : {false, true}) {
      check_forward(dt, dt, dt, 0, {64, 128, 256}, {.trans_a = ta, .trans_b = !ta}, seed++, 1);
      check_forward(dt, dt, dt, 2, {37, 53, 71}, {.trans_a = ta, .beta = 1.0}, seed++, 1);
    }
}

TEST(GpuMatmul, ForwardEmptyInnerDimScalesC) {
  R1_REQUIRE_GPU();
  for (DType dt : {DType::f32, DType::bf16})
    for (double beta : {0.0, 0.5, 1.0}) {
      check_forward(dt, dt, dt, 0, {5, 7, 0}, {.beta = beta}, 500);
      check_forward(dt, dt, dt, 3, {5, 7, 0}, {.trans_a = true, .beta = beta}, 501);
    }
  // No rows or columns: nothing to do, nothing launched.
  check_forward(DType::f32, DType::f32, DType::f32, 0, {0, 7, 5}, {}, 502);
  check_forward(DType::f32, DType::f32, DType::f32, 0, {4, 0, 5}, {.beta = 1.0}, 503);
}

// Backward: each gradient alone, overwrite over poison and accumulate over random values.
void check_backward(DType dt, int64_t batch, Dims d, const MatmulOptions& o, uint64_t seed) {
  SCOPED_TRACE(fmt::format("{} batch {} m {} n {} k {} trans_a {} trans_b {}", dtype_name(dt),
                           batch, d.m, d.n, d.k, o.trans_a, o.trans_b));
  std::mt19937_64 rng(seed);
  auto& cpu = cpu_ctx();
  auto& gpu = gpu_ctx();
  auto a = testing::random_tensor(cpu, stored(batch, d.m, d.k, o.trans_a), dt, rng, -1, 1, "a");
  auto b = testing::random_tensor(cpu, stored(batch, d.k, d.n, o.trans_b), dt, rng, -1, 1, "b");
  auto dc = testing::random_tensor(cpu, stored(batch, d.m, d.n, false), dt, rng, -1, 1, "dc");
  auto ad = testing::to_device(a), bd = testing::to_device(b), dcd = testing::to_device(dc);
  for (GradWrite wr : {GradWrite::overwrite, GradWrite::accumulate}) {
    const bool acc = wr == GradWrite::accumulate;
    auto da0 = testing::random_tensor(cpu, a.view().dims(), dt, rng, -1, 1, "da");
    auto db0 = testing::random_tensor(cpu, b.view().dims(), dt, rng, -1, 1, "db");
    // da alone (reduction over n), then db alone (reduction over m).
    auto da_ref = clone(da0);
    matmul_backward(da_ref, TensorView{}, dc, a, b, o, wr, wr, cpu);
    auto da = acc ? testing::to_device(da0) : testing::poisoned(a.view().dims(), dt, "da");
    matmul_backward(da, TensorView{}, dcd, ad, bd, o, wr, wr, gpu);
    testing::expect_close(da, da_ref, tol(dt, d.n), acc ? "da +=" : "da =");
    auto db_ref = clone(db0);
    matmul_backward(TensorView{}, db_ref, dc, a, b, o, wr, wr, cpu);
    auto db = acc ? testing::to_device(db0) : testing::poisoned(b.view().dims(), dt, "db");
    matmul_backward(TensorView{}, db, dcd, ad, bd, o, wr, wr, gpu);
    testing::expect_close(db, db_ref, tol(dt, d.m), acc ? "db +=" : "db =");
    // Both at once, with different write rules.
    auto da2 = testing::poisoned(a.view().dims(), dt, "da2");
    auto db2 = testing::to_device(db0);
    auto da2_ref = clone(da0), db2_ref = clone(db0);
    matmul_backward(da2_ref, db2_ref, dc, a, b, o, GradWrite::overwrite, GradWrite::accumulate,
                    cpu);
    matmul_backward(da2, db2, dcd, ad, bd, o, GradWrite::overwrite, GradWrite::accumulate, gpu);
    testing::expect_close(da2, da2_ref, tol(dt, d.n), "da = (with db)");
    testing::expect_close(db2, db2_ref, tol(dt, d.m), "db += (with da)");
  }
}

TEST(GpuMatmul, BackwardEachGradient) {
  R1_REQUIRE_GPU();
  uint64_t seed = 600;
  for (DType dt : {DType::f32, DType::bf16, DType::f64})
    for (bool ta : {false, true})
      for (bool tb : {false, true}) {
        check_backward(dt, 0, {37, 53, 71}, {.trans_a = ta, .trans_b = tb, .alpha = 0.7}, seed++);
        check_backward(dt, 3, {29, 17, 45}, {.trans_a = ta, .trans_b = tb, .alpha = -1.3}, seed++);
      }
  check_backward(DType::f16, 0, {513, 257, 1029}, {.trans_b = true}, seed++);
}

// ---- linear -------------------------------------------------------------------------------------

struct LinDims {
  int64_t n, ch, oc;
};
const LinDims kLinDims[] = {{37, 71, 53}, {1, 1, 1}, {513, 1029, 257}, {200, 96, 64}};

TEST(GpuLinear, ForwardWithAndWithoutBias) {
  R1_REQUIRE_GPU();
  std::mt19937_64 rng(700);
  auto& cpu = cpu_ctx();
  auto& gpu = gpu_ctx();
  for (DType dt : {DType::f32, DType::bf16, DType::f16, DType::f64})
    for (const LinDims& d : kLinDims)
      for (int bias_kind = 0; bias_kind < 3; ++bias_kind) {
        // 0: no bias; 1: bias of y's dtype (the epilogue); 2: an f32 bias for a 16-bit y (upcast).
        if (bias_kind == 2 && (dt == DType::f32 || dt == DType::f64)) continue;
        const DType bt = bias_kind == 2 ? DType::f32 : dt;
        SCOPED_TRACE(
            fmt::format("{} n {} c {} oc {} bias {}", dtype_name(dt), d.n, d.ch, d.oc, bias_kind));
        auto x = testing::random_tensor(cpu, {d.n, d.ch}, dt, rng, -1, 1, "x");
        auto w = testing::random_tensor(cpu, {d.oc, d.ch}, dt, rng, -1, 1, "w");
        auto bias = testing::random_tensor(cpu, {d.oc}, bt, rng, -1, 1, "bias");
        auto bias_d = testing::to_device(bias);
        const TensorView bv = bias_kind ? bias.view() : TensorView{};
        const TensorView bvd = bias_kind ? bias_d.view() : TensorView{};
        auto ref = cpu.empty({d.n, d.oc}, dt, "ref");
        linear_forward(ref, x, w, bv, cpu);
        auto y = testing::poisoned({d.n, d.oc}, dt, "y");
        linear_forward(y, testing::to_device(x), testing::to_device(w), bvd, gpu);
        testing::expect_close(y, ref, tol(dt, d.ch + 1), "linear forward");
      }
}

TEST(GpuLinear, BackwardEachGradientAndSkipped) {
  R1_REQUIRE_GPU();
  std::mt19937_64 rng(800);
  auto& cpu = cpu_ctx();
  auto& gpu = gpu_ctx();
  // N = 40000 makes the column sum use chunks of more than 64 rows; OC = 53 the scalar path.
  const LinDims dims[] = {{37, 71, 53}, {513, 1029, 257}, {200, 96, 64}, {40000, 24, 64}};
  for (DType dt : {DType::f32, DType::bf16, DType::f16, DType::f64})
    for (const LinDims& d : dims) {
      SCOPED_TRACE(fmt::format("{} n {} c {} oc {}", dtype_name(dt), d.n, d.ch, d.oc));
      auto x = testing::random_tensor(cpu, {d.n, d.ch}, dt, rng, -1, 1, "x");
      auto w = testing::random_tensor(cpu, {d.oc, d.ch}, dt, rng, -1, 1, "w");
      auto dy = testing::random_tensor(cpu, {d.n, d.oc}, dt, rng, -1, 1, "dy");
      auto dx0 = testing::random_tensor(cpu, {d.n, d.ch}, dt, rng, -1, 1, "dx");
      auto dw0 = testing::random_tensor(cpu, {d.oc, d.ch}, dt, rng, -1, 1, "dw");
      auto db0 = testing::random_tensor(cpu, {d.oc}, dt, rng, -1, 1, "dbias");
      auto xd = testing::to_device(x), wd = testing::to_device(w), dyd = testing::to_device(dy);
      // All three: dx overwrites (over poison), dw and dbias accumulate.
      auto dx_ref = clone(dx0), dw_ref = clone(dw0), db_ref = clone(db0);
      linear_backward(dx_ref, dw_ref, db_ref, dy, x, w, GradWrite::overwrite, cpu);
      auto dx = testing::poisoned({d.n, d.ch}, dt, "dx");
      auto dw = testing::to_device(dw0), db = testing::to_device(db0);
      linear_backward(dx, dw, db, dyd, xd, wd, GradWrite::overwrite, gpu);
      testing::expect_close(dx, dx_ref, tol(dt, d.oc), "dx =");
      testing::expect_close(dw, dw_ref, tol(dt, d.n), "dw +=");
      testing::expect_close(db, db_ref, tol(dt, d.n), "dbias +=");
      // dx accumulates (residual stream), the others skipped.
      auto dx2_ref = clone(dx0);
      linear_backward(dx2_ref, TensorView{}, TensorView{}, dy, x, w, GradWrite::accumulate, cpu);
      auto dx2 = testing::to_device(dx0);
      linear_backward(dx2, TensorView{}, TensorView{}, dyd, xd, wd, GradWrite::accumulate, gpu);
      testing::expect_close(dx2, dx2_ref, tol(dt, d.oc), "dx += alone");
      // dw alone, dbias alone.
      auto dw3 = testing::to_device(dw0), db3 = testing::to_device(db0);
      linear_backward(TensorView{}, dw3, TensorView{}, dyd, xd, wd, GradWrite::overwrite, gpu);
      linear_backward(TensorView{}, TensorView{}, db3, dyd, xd, wd, GradWrite::overwrite, gpu);
      testing::expect_close(dw3, dw_ref, tol(dt, d.n), "dw += alone");
      testing::expect_close(db3, db_ref, tol(dt, d.n), "dbias += alone");
    }
}

TEST(GpuLinear, DbiasOfAnotherDtypeAndUnalignedDy) {
  R1_REQUIRE_GPU();
  std::mt19937_64 rng(850);
  auto& cpu = cpu_ctx();
  auto& gpu = gpu_ctx();
  const int64_t n = 300, ch = 40, oc = 64;
  auto x = testing::random_tensor(cpu, {n, ch}, DType::bf16, rng, -1, 1, "x");
  auto w = testing::random_tensor(cpu, {oc, ch}, DType::bf16, rng, -1, 1, "w");
  auto dy = testing::random_tensor(cpu, {n, oc}, DType::bf16, rng, -1, 1, "dy");
  auto db0 = testing::random_tensor(cpu, {oc}, DType::f32, rng, -1, 1, "dbias");  // f32 master
  auto db_ref = clone(db0);
  linear_backward(TensorView{}, TensorView{}, db_ref, dy, x, w, GradWrite::overwrite, cpu);
  auto db = testing::to_device(db0);
  Offset dyd = offset_copy(dy, 1);  // rows not 16-byte aligned: the scalar column sum
  linear_backward(TensorView{}, TensorView{}, db, dyd.view, testing::to_device(x),
                  testing::to_device(w), GradWrite::overwrite, gpu);
  testing::expect_close(db, db_ref, tol(DType::f32, n), "f32 dbias from bf16 dy");
}

// ---- algorithm choice: heuristic by default, tuned with R1KIT_GEMM_AUTOTUNE=1 ------------------

// A fresh CUDA context that read R1KIT_GEMM_AUTOTUNE = value (nullptr: unset) when it first used
// cuBLASLt; the variable is restored afterwards.
std::unique_ptr<Context> context_with_autotune(const char* value) {
  const char* prev = std::getenv("R1KIT_GEMM_AUTOTUNE");
  const bool had = prev != nullptr;
  const std::string saved = had ? prev : "";
  if (value) {
    ::setenv("R1KIT_GEMM_AUTOTUNE", value, 1);
  } else {
    ::unsetenv("R1KIT_GEMM_AUTOTUNE");
  }
  auto ctx = Context::cuda({.seed = 3});
  Tensor a = ctx->zeros({1, 1}, DType::f32), b = ctx->zeros({1, 1}, DType::f32);
  Tensor c = ctx->empty({1, 1}, DType::f32);
  matmul_forward(c, a, b, {}, *ctx);  // creates the cuBLASLt state, reading the variable
  ctx->synchronize();
  if (had) {
    ::setenv("R1KIT_GEMM_AUTOTUNE", saved.c_str(), 1);
  } else {
    ::unsetenv("R1KIT_GEMM_AUTOTUNE");
  }
  return ctx;
}

// A linear layer above the tuning threshold: 2·2048·1024·2560 ≈ 1.07e10 flops forward, and as
// many in dw += dyᵀ·x (beta = 1).
struct LargeLinear {
  static constexpr int64_t n = 2048, ch = 1024, oc = 2560;
  Tensor x, w, bias, dy, dw0, y_ref, dw_ref;
  LargeLinear() {
    std::mt19937_64 rng(900);
    auto& cpu = cpu_ctx();
    x = testing::random_tensor(cpu, {n, ch}, DType::bf16, rng, -1, 1, "x");
    w = testing::random_tensor(cpu, {oc, ch}, DType::bf16, rng, -1, 1, "w");
    bias = testing::random_tensor(cpu, {oc}, DType::bf16, rng, -1, 1, "bias");
    dy = testing::random_tensor(cpu, {n, oc}, DType::bf16, rng, -1, 1, "dy");
    dw0 = testing::random_tensor(cpu, {oc, ch}, DType::bf16, rng, -1, 1, "dw");
    y_ref = cpu.empty({n, oc}, DType::bf16, "y_ref");
    linear_forward(y_ref, x, w, bias, cpu);
    dw_ref = clone(dw0);
    linear_backward(TensorView{}, dw_ref, TensorView{}, dy, x, w, GradWrite::overwrite, cpu);
  }
  // Two forward calls (the first builds, and when tuning times, the plan) and one dw +=, on ctx;
  // host copies of the results.
  struct Out {
    Tensor y0, y1, dw;
  };
  Out run(Context& ctx) const {
    auto xd = testing::to_device(x, ctx), wd = testing::to_device(w, ctx);
    auto bd = testing::to_device(bias, ctx), dyd = testing::to_device(dy, ctx);
    Out o;
    for (Tensor* out : {&o.y0, &o.y1}) {
      auto y = testing::poisoned({n, oc}, DType::bf16, "y", ctx);
      linear_forward(y, xd, wd, bd, ctx);
      *out = testing::to_host(y, ctx);
    }
    auto dw = testing::to_device(dw0, ctx);
    linear_backward(TensorView{}, dw, TensorView{}, dyd, xd, wd, GradWrite::overwrite, ctx);
    o.dw = testing::to_host(dw, ctx);
    return o;
  }
};

TEST(GpuLinear, LargeProductsHeuristicByDefaultTunedOnRequest) {
  R1_REQUIRE_GPU();
  const LargeLinear p;
  const double tol_y = tol(DType::bf16, LargeLinear::ch + 1), tol_dw = tol(DType::bf16, p.n);
  // Unset and "0": cuBLASLt's first heuristic choice; two contexts that built their plans
  // independently compute the same bits (what bit-exact resume across processes relies on).
  auto unset = context_with_autotune(nullptr);
  auto off = context_with_autotune("0");
  const auto a = p.run(*unset), b = p.run(*off);
  testing::expect_close(a.y0, p.y_ref, tol_y, "linear, default");
  testing::expect_close(a.dw, p.dw_ref, tol_dw, "dw +=, default");
  testing::expect_equal(a.y0, a.y1, "linear, default, second call");
  testing::expect_equal(b.y0, a.y0, "linear, R1KIT_GEMM_AUTOTUNE=0 vs unset");
  testing::expect_equal(b.dw, a.dw, "dw +=, R1KIT_GEMM_AUTOTUNE=0 vs unset");
  // "1": the first call times the candidates (beta = 1 into a scratch output, so dw is accumulated
  // exactly once), then every call of the problem uses the chosen algorithm.
  auto tuned = context_with_autotune("1");
  const auto t = p.run(*tuned);
  testing::expect_close(t.y0, p.y_ref, tol_y, "linear, tuned (first call)");
  testing::expect_equal(t.y1, t.y0, "linear, tuned, second call");
  testing::expect_close(t.dw, p.dw_ref, tol_dw, "dw += (tuned)");
}

// ---- grouped linear -----------------------------------------------------------------------------

// Expert sizes 0, 37, 0, 130, 1, 0, 300 (empty first, middle and last-but-one experts).
const std::vector<int32_t> kOffsets = {0, 0, 37, 37, 167, 168, 168, 468};

Tensor host_offsets(const std::vector<int32_t>& off) {
  Tensor t = cpu_ctx().empty({static_cast<int64_t>(off.size())}, DType::i32, "expert_offsets");
  for (size_t i = 0; i < off.size(); ++i) t.ptr<int32_t>()[i] = off[i];
  return t;
}

TEST(GpuGroupedLinear, ForwardBackwardWithEmptyExperts) {
  R1_REQUIRE_GPU();
  std::mt19937_64 rng(1000);
  auto& cpu = cpu_ctx();
  auto& gpu = gpu_ctx();
  const int64_t e = static_cast<int64_t>(kOffsets.size()) - 1, m = kOffsets.back();
  Tensor off = host_offsets(kOffsets);
  Tensor off_dev = testing::to_device(off);
  for (DType dt : {DType::f32, DType::bf16, DType::f16, DType::f64})
    for (const auto& [ch, oc] : {std::pair<int64_t, int64_t>{71, 53}, {256, 128}}) {
      SCOPED_TRACE(fmt::format("{} C {} OC {}", dtype_name(dt), ch, oc));
      auto x = testing::random_tensor(cpu, {m, ch}, dt, rng, -1, 1, "x_perm");
      auto w = testing::random_tensor(cpu, {e, oc, ch}, dt, rng, -1, 1, "experts.w");
      auto dy = testing::random_tensor(cpu, {m, oc}, dt, rng, -1, 1, "dy");
      auto dw0 = testing::random_tensor(cpu, {e, oc, ch}, dt, rng, -1, 1, "dw");
      auto xd = testing::to_device(x), wd = testing::to_device(w), dyd = testing::to_device(dy);
      auto y_ref = cpu.empty({m, oc}, dt, "y_ref");
      grouped_linear_forward(y_ref, x, w, off, cpu);
      for (const Tensor* o : {&off, &off_dev}) {  // host offsets, then device offsets (copied)
        auto y = testing::poisoned({m, oc}, dt, "y");
        grouped_linear_forward(y, xd, wd, *o, gpu);
        testing::expect_close(y, y_ref, tol(dt, ch), "grouped forward");
      }
      auto dx_ref = cpu.empty({m, ch}, dt, "dx_ref");
      auto dw_ref = clone(dw0);
      grouped_linear_backward(dx_ref, dw_ref, dy, x, w, off, cpu);
      auto dx = testing::poisoned({m, ch}, dt, "dx");
      auto dw = testing::to_device(dw0);  // += (empty experts keep their values)
      grouped_linear_backward(dx, dw, dyd, xd, wd, off, gpu);
      testing::expect_close(dx, dx_ref, tol(dt, oc), "grouped dx =");
      // dw[e] sums over the rows of expert e: at most 300 of them.
      testing::expect_close(dw, dw_ref, tol(dt, 300), "grouped dw +=");
      // Each gradient alone, the other skipped; device offsets.
      auto dx2 = testing::poisoned({m, ch}, dt, "dx2");
      grouped_linear_backward(dx2, TensorView{}, dyd, xd, wd, off_dev, gpu);
      testing::expect_close(dx2, dx_ref, tol(dt, oc), "grouped dx alone");
      auto dw2 = testing::to_device(dw0);
      grouped_linear_backward(TensorView{}, dw2, dyd, xd, wd, off_dev, gpu);
      testing::expect_close(dw2, dw_ref, tol(dt, 300), "grouped dw alone");
    }
}

TEST(GpuGroupedLinear, DeviceOffsetsAreValidatedAfterTheCopy) {
  R1_REQUIRE_GPU();
  auto& gpu = gpu_ctx();
  auto x = gpu.empty({9, 4}, DType::f32, "x");
  auto w = gpu.empty({2, 3, 4}, DType::f32, "w");
  auto y = gpu.empty({9, 3}, DType::f32, "y");
  auto bad = testing::to_device(host_offsets({0, 5, 4}));
  testing::expect_error_contains([&] { grouped_linear_forward(y, x, w, bad, gpu); },
                                 {"[grouped_linear]", "non-decreasing", "offsets[1] = 5"});
  auto short_end = testing::to_device(host_offsets({0, 4, 8}));
  testing::expect_error_contains([&] { grouped_linear_forward(y, x, w, short_end, gpu); },
                                 {"[grouped_linear]", "end at M = 9"});
}

}  // namespace
}  // namespace r1kit::kernels
