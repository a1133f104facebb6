// matmul, linear and grouped linear: forward against a direct triple loop (all transpose
// combinations, alpha/beta, batched, bf16 inputs within their error bound, experts with empty
// groups), backward against finite differences, validation.
#include "kernels/matmul.h"

#include <cmath>
#include <utility>

#include "tests/common/test_util.h"

namespace r1kit::kernels {
namespace {
using testing::cpu_ctx;

constexpr double kU64 = 0x1p-53;  // unit roundoff of f64
constexpr double kU32 = 0x1p-24;  // of f32
constexpr double kU16 = 0x1p-8;   // of bf16 (8 significand bits)

// Direct C = alpha·op(A)·op(B) + beta·C0 in double for one batch entry, with the magnitude
// |alpha|·Σ_k |op(A)_ik op(B)_kj| + |beta·C0_ij| that bounds the rounding error of any evaluation.
struct Reference {
  std::vector<double> c, mag;
};
Reference reference_gemm(const std::vector<double>& a, const std::vector<double>& b,
                         const std::vector<double>& c0, int64_t batch, int64_t m, int64_t n,
                         int64_t k, const MatmulOptions& o) {
  Reference r{std::vector<double>(batch * m * n), std::vector<double>(batch * m * n)};
  for (int64_t p = 0; p < batch; ++p) {
    const double* ap = a.data() + p * m * k;
    const double* bp = b.data() + p * k * n;
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) {
        double s = 0, mag = 0;
        for (int64_t l = 0; l < k; ++l) {
          double x = o.trans_a ? ap[l * m + i] : ap[i * k + l];
          double y = o.trans_b ? bp[j * k + l] : bp[l * n + j];
          s += x * y;
          mag += std::fabs(x * y);
        }
        const int64_t idx = p * m * n + i * n + j;
        const double cin = o.beta != 0 ? c0[idx] : 0.0;
        r.c[idx] = o.alpha * s + o.beta * cin;
        r.mag[idx] = std::fabs(o.alpha) * mag + std::fabs(o.beta * cin);
      }
  }
  return r;
}

Shape a_shape(int64_t batch, int64_t m, int64_t k, bool ta) {
  Shape s = ta ? Shape{k, m} : Shape{m, k};
  if (batch > 0) s.insert(s.begin(), batch);
  return s;
}

// Runs one forward case and checks every element against the reference within
// (K + 2)·u·magnitude: γ_K for the length-K dot product plus the alpha and beta roundings.
void check_forward(DType dtype, int64_t batch, int64_t m, int64_t n, int64_t k,
                   const MatmulOptions& o, uint64_t seed) {
  std::mt19937_64 rng(seed);
  auto& ctx = cpu_ctx();
  auto a = testing::random_tensor(ctx, a_shape(batch, m, k, o.trans_a), dtype, rng, -1, 1, "a");
  auto b = testing::random_tensor(ctx, a_shape(batch, k, n, o.trans_b), dtype, rng, -1, 1, "b");
  Shape cs = batch > 0 ? Shape{batch, m, n} : Shape{m, n};
  auto c = testing::random_tensor(ctx, cs, dtype, rng, -1, 1, "c");
  auto c0 = testing::to_double(c);
  if (o.beta == 0) testing::fill_constant(c, NAN);  // beta = 0 must not read C
  matmul_forward(c, a, b, o, ctx);
  auto ref = reference_gemm(testing::to_double(a), testing::to_double(b), c0,
                            std::max<int64_t>(1, batch), m, n, k, o);
  const double u = dtype == DType::f64 ? kU64 : kU32;
  auto got = testing::to_double(c);
  int bad = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double tol = (k + 2) * u * ref.mag[i];
    if (!(std::fabs(got[i] - ref.c[i]) <= tol) && bad++ < 5)
      ADD_FAILURE() << "element " << i << ": got " << got[i] << " want " << ref.c[i] << " tol "
                    << tol << " (trans_a " << o.trans_a << ", trans_b " << o.trans_b << ")";
  }
}

TEST(Matmul, ForwardAllTransposesWithAlphaBeta) {
  uint64_t seed = 10;
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      check_forward(DType::f64, 0, 7, 5, 13, {.trans_a = ta, .trans_b = tb}, seed++);
      check_forward(DType::f64, 0, 7, 5, 13,
                    {.trans_a = ta, .trans_b = tb, .alpha = -1.5, .beta = 0.5}, seed++);
      check_forward(DType::f32, 0, 9, 11, 17,
                    {.trans_a = ta, .trans_b = tb, .alpha = 0.25, .beta = -2.0}, seed++);
    }
}

TEST(Matmul, ForwardBatched) {
  uint64_t seed = 30;
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      check_forward(DType::f64, 3, 7, 5, 13, {.trans_a = ta, .trans_b = tb, .beta = 1.0}, seed++);
      check_forward(DType::f32, 3, 7, 5, 13, {.trans_a = ta, .trans_b = tb}, seed++);
    }
}

TEST(Matmul, ForwardDegenerateSizes) {
  auto& ctx = cpu_ctx();
  // K = 0: C = beta·C (and zero for beta = 0, even over NaN).
  auto a = ctx.empty({3, 0}, DType::f32, "a");
  auto b = ctx.empty({0, 4}, DType::f32, "b");
  auto c = testing::tensor_from(ctx, {3, 4}, DType::f32, std::vector<double>(12, 2.0), "c");
  matmul_forward(c, a, b, {.beta = 0.5}, ctx);
  for (double v : testing::to_double(c)) EXPECT_EQ(v, 1.0);
  testing::fill_constant(c, NAN);
  matmul_forward(c, a, b, {}, ctx);
  for (double v : testing::to_double(c)) EXPECT_EQ(v, 0.0);
}

// bf16 inputs: the f32 GEMM on the rounded values is within γ_K of the exact product of the
// rounded values, and within (2u + u²) + γ_K of the exact product of the unrounded values.
TEST(Matmul, Bf16InputsWithinErrorBound) {
  std::mt19937_64 rng(40);
  auto& ctx = cpu_ctx();
  const int64_t m = 9, n = 7, k = 31;
  auto a64 = testing::random_tensor(ctx, {m, k}, DType::f64, rng, -1, 1, "a");
  auto b64 = testing::random_tensor(ctx, {n, k}, DType::f64, rng, -1, 1, "b");
  auto a = testing::tensor_from(ctx, {m, k}, DType::bf16, testing::to_double(a64), "a");
  auto b = testing::tensor_from(ctx, {n, k}, DType::bf16, testing::to_double(b64), "b");
  auto c = ctx.empty({m, n}, DType::f32, "c");
  testing::fill_constant(c, NAN);
  const MatmulOptions o{.trans_b = true};
  matmul_forward(c, a, b, o, ctx);
  auto got = testing::to_double(c);
  auto rounded = reference_gemm(testing::to_double(a), testing::to_double(b), {}, 1, m, n, k, o);
  auto exact = reference_gemm(testing::to_double(a64), testing::to_double(b64), {}, 1, m, n, k, o);
  const double input_bound = 2 * kU16 + kU16 * kU16 + (k + 2) * kU32 * (1 + kU16) * (1 + kU16);
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_LE(std::fabs(got[i] - rounded.c[i]), (k + 2) * kU32 * rounded.mag[i]) << i;
    EXPECT_LE(std::fabs(got[i] - exact.c[i]), input_bound * exact.mag[i]) << i;
  }
  // bf16 output with beta: one more bf16 rounding of the result.
  auto c16 = testing::random_tensor(ctx, {m, n}, DType::bf16, rng, -1, 1, "c16");
  auto c0 = testing::to_double(c16);
  const MatmulOptions ob{.trans_b = true, .alpha = 0.5, .beta = -1.0};
  matmul_forward(c16, a, b, ob, ctx);
  auto ref = reference_gemm(testing::to_double(a), testing::to_double(b), c0, 1, m, n, k, ob);
  auto got16 = testing::to_double(c16);
  for (size_t i = 0; i < got16.size(); ++i) {
    const double gemm_err = (k + 2) * kU32 * ref.mag[i];
    EXPECT_LE(std::fabs(got16[i] - ref.c[i]), gemm_err + kU16 * (std::fabs(ref.c[i]) + gemm_err))
        << i;
  }
}

void check_backward(int64_t batch, int64_t m, int64_t n, int64_t k, const MatmulOptions& o,
                    uint64_t seed) {
  SCOPED_TRACE(::testing::Message()
               << "trans_a " << o.trans_a << " trans_b " << o.trans_b << " batch " << batch);
  std::mt19937_64 rng(seed);
  auto& ctx = cpu_ctx();
  auto a = testing::random_tensor(ctx, a_shape(batch, m, k, o.trans_a), DType::f64, rng);
  auto b = testing::random_tensor(ctx, a_shape(batch, k, n, o.trans_b), DType::f64, rng);
  Shape cs = batch > 0 ? Shape{batch, m, n} : Shape{m, n};
  auto g = testing::random_tensor(ctx, cs, DType::f64, rng);
  auto c = ctx.empty(cs, DType::f64);
  auto loss = [&] {
    matmul_forward(c, a, b, o, ctx);
    return testing::dot(c, g);
  };
  auto da = ctx.empty(a.view().dims(), DType::f64, "da");
  auto db = ctx.empty(b.view().dims(), DType::f64, "db");
  testing::fill_constant(da, NAN);  // overwrite mode must write every element
  testing::fill_constant(db, NAN);
  matmul_backward(da, db, g, a, b, o, GradWrite::overwrite, GradWrite::overwrite, ctx);
  testing::expect_gradients_match(loss, {{a.view(), da.view()}, {b.view(), db.view()}});

  // Accumulate mode adds; an empty da skips it.
  auto db2 = testing::tensor_from(ctx, b.view().dims(), DType::f64,
                                  std::vector<double>(b.numel(), 1.0), "db2");
  matmul_backward(TensorView{}, db2, g, a, b, o, GradWrite::overwrite, GradWrite::accumulate, ctx);
  auto x = testing::to_double(db2), y = testing::to_double(db);
  for (size_t i = 0; i < x.size(); ++i) EXPECT_NEAR(x[i], y[i] + 1.0, 1e-12);
}

TEST(Matmul, BackwardMatchesFiniteDifferences) {
  uint64_t seed = 50;
  for (bool ta : {false, true})
    for (bool tb : {false, true})
      check_backward(0, 7, 5, 13, {.trans_a = ta, .trans_b = tb, .alpha = 0.7}, seed++);
  check_backward(3, 5, 3, 7, {.trans_a = true, .alpha = -1.3}, seed++);
  check_backward(3, 5, 3, 7, {.trans_b = true}, seed++);
}

// Random x (N, C), w (OC, C) and bias (OC) in [−1, 1), drawn in that order, with their values.
struct LinearInputs {
  Tensor x, w, bias;
  std::vector<double> xv, wv, bv;
  // y[i, o] = bias[o] (when with_bias) + Σ_j x[i, j]·w[o, j] in double, and the sum of the terms'
  // magnitudes, which bounds the rounding error of any evaluation order.
  std::pair<double, double> reference(int64_t i, int64_t o, bool with_bias) const {
    const int64_t ch = x.size(1);
    double s = with_bias ? bv[o] : 0.0, mag = std::fabs(s);
    for (int64_t j = 0; j < ch; ++j) {
      s += xv[i * ch + j] * wv[o * ch + j];
      mag += std::fabs(xv[i * ch + j] * wv[o * ch + j]);
    }
    return {s, mag};
  }
};
LinearInputs random_linear(Context& ctx, int64_t n, int64_t ch, int64_t oc, DType dtype,
                           std::mt19937_64& rng) {
  LinearInputs in;
  in.x = testing::random_tensor(ctx, {n, ch}, dtype, rng, -1, 1, "x");
  in.w = testing::random_tensor(ctx, {oc, ch}, dtype, rng, -1, 1, "proj.weight");
  in.bias = testing::random_tensor(ctx, {oc}, dtype, rng, -1, 1, "proj.bias");
  in.xv = testing::to_double(in.x);
  in.wv = testing::to_double(in.w);
  in.bv = testing::to_double(in.bias);
  return in;
}

TEST(Linear, ForwardMatchesFormula) {
  std::mt19937_64 rng(60);
  auto& ctx = cpu_ctx();
  const int64_t n = 7, ch = 13, oc = 5;
  const LinearInputs in = random_linear(ctx, n, ch, oc, DType::f64, rng);
  const Tensor &x = in.x, &w = in.w, &bias = in.bias;
  auto y = ctx.empty({n, oc}, DType::f64, "y");
  for (bool with_bias : {true, false}) {
    testing::fill_constant(y, NAN);
    linear_forward(y, x, w, with_bias ? bias.view() : TensorView{}, ctx);
    auto yv = testing::to_double(y);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t o = 0; o < oc; ++o) {
        const auto [s, mag] = in.reference(i, o, with_bias);
        EXPECT_NEAR(yv[i * oc + o], s, (ch + 2) * kU64 * mag) << i << "," << o;
      }
  }
}

TEST(Linear, Bf16MatchesDoubleOnRoundedInputs) {
  std::mt19937_64 rng(61);
  auto& ctx = cpu_ctx();
  const int64_t n = 5, ch = 19, oc = 3;
  const LinearInputs in = random_linear(ctx, n, ch, oc, DType::bf16, rng);
  auto y = ctx.empty({n, oc}, DType::bf16, "y");
  linear_forward(y, in.x, in.w, in.bias, ctx);
  auto yv = testing::to_double(y);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t o = 0; o < oc; ++o) {
      const auto [s, mag] = in.reference(i, o, true);
      const double gemm_err = (ch + 2) * kU32 * mag;
      EXPECT_LE(std::fabs(yv[i * oc + o] - s), gemm_err + kU16 * (std::fabs(s) + gemm_err));
    }
}

TEST(Linear, BackwardMatchesFiniteDifferences) {
  std::mt19937_64 rng(62);
  auto& ctx = cpu_ctx();
  const int64_t n = 7, ch = 11, oc = 5;
  const LinearInputs in = random_linear(ctx, n, ch, oc, DType::f64, rng);
  const Tensor &x = in.x, &w = in.w, &bias = in.bias;
  auto g = testing::random_tensor(ctx, {n, oc}, DType::f64, rng);
  auto y = ctx.empty({n, oc}, DType::f64);
  auto loss = [&] {
    linear_forward(y, x, w, bias, ctx);
    return testing::dot(y, g);
  };
  auto dx = ctx.empty({n, ch}, DType::f64, "dx");
  auto dw = ctx.zeros({oc, ch}, DType::f64, "dw");
  auto dbias = ctx.zeros({oc}, DType::f64, "dbias");
  testing::fill_constant(dx, NAN);
  linear_backward(dx, dw, dbias, g, x, w, GradWrite::overwrite, ctx);
  testing::expect_gradients_match(
      loss, {{x.view(), dx.view()}, {w.view(), dw.view()}, {bias.view(), dbias.view()}});

  // Parameter gradients accumulate; accumulate mode adds to dx; empty dbias/dw are skipped.
  auto dx2 = testing::tensor_from(ctx, {n, ch}, DType::f64, std::vector<double>(n * ch, 2.0));
  auto dw2 = testing::tensor_from(ctx, {oc, ch}, DType::f64, std::vector<double>(oc * ch, 1.0));
  auto db2 = testing::tensor_from(ctx, {oc}, DType::f64, std::vector<double>(oc, -1.0));
  linear_backward(dx2, dw2, db2, g, x, w, GradWrite::accumulate, ctx);
  auto check_plus = [](const TensorView& got, const TensorView& base, double offset) {
    auto p = testing::to_double(got), q = testing::to_double(base);
    for (size_t i = 0; i < p.size(); ++i) EXPECT_NEAR(p[i], q[i] + offset, 1e-12) << i;
  };
  check_plus(dx2, dx, 2.0);
  check_plus(dw2, dw, 1.0);
  check_plus(db2, dbias, -1.0);
  auto dx3 = ctx.empty({n, ch}, DType::f64, "dx3");
  linear_backward(dx3, TensorView{}, TensorView{}, g, x, w, GradWrite::overwrite, ctx);
  check_plus(dx3, dx, 0.0);
}

TEST(Matmul, ValidationNamesOpAndShapes) {
  auto& ctx = cpu_ctx();
  auto a = ctx.empty({4, 7}, DType::f32, "a");
  auto b = ctx.empty({8, 3}, DType::f32, "b");
  auto c = ctx.empty({4, 3}, DType::f32, "c");
  testing::expect_error_contains([&] { matmul_forward(c, a, b, {}, ctx); },
                                 {"[matmul]", "(4, 7)", "(8, 3)", "K = 7", "K = 8"});
  auto b2 = ctx.empty({7, 3}, DType::f32, "b2");
  auto c2 = ctx.empty({4, 4}, DType::f32, "c2");
  testing::expect_error_contains([&] { matmul_forward(c2, a, b2, {}, ctx); },
                                 {"[matmul]", "c2", "(4, 4)", "(4, 3)"});
  auto a3 = ctx.empty({2, 4, 7}, DType::f32, "a3");
  testing::expect_error_contains([&] { matmul_forward(c, a3, b2, {}, ctx); },
                                 {"[matmul]", "(2, 4, 7)", "(7, 3)", "3-D"});
  auto b3 = ctx.empty({3, 7, 3}, DType::f32, "b3");
  auto c3 = ctx.empty({2, 4, 3}, DType::f32, "c3");
  testing::expect_error_contains([&] { matmul_forward(c3, a3, b3, {}, ctx); },
                                 {"[matmul]", "batch", "(2, 4, 7)", "(3, 7, 3)"});
  auto bi = ctx.empty({7, 3}, DType::i32, "bi");
  testing::expect_error_contains([&] { matmul_forward(c, a, bi, {}, ctx); }, {"[matmul]", "i32"});
  auto b64 = ctx.empty({7, 3}, DType::f64, "b64");
  testing::expect_error_contains([&] { matmul_forward(c, a, b64, {}, ctx); }, {"[matmul]", "f64"});
  auto sq = ctx.empty({4, 4}, DType::f32, "sq");
  testing::expect_error_contains([&] { matmul_forward(sq, sq, sq, {}, ctx); },
                                 {"[matmul]", "overlap"});
  auto da = ctx.empty({7, 4}, DType::f32, "da");
  testing::expect_error_contains(
      [&] {
        matmul_backward(da, TensorView{}, c, a, b2, {}, GradWrite::overwrite, GradWrite::overwrite,
                        ctx);
      },
      {"[matmul_backward]", "da", "(7, 4)", "(4, 7)"});
}

TEST(Linear, ValidationNamesOpAndShapes) {
  auto& ctx = cpu_ctx();
  auto x = ctx.empty({4, 7}, DType::f32, "h");
  auto w = ctx.empty({8, 3}, DType::f32, "mlp.down_proj.weight");
  auto y = ctx.empty({4, 8}, DType::f32, "y");
  testing::expect_error_contains([&] { linear_forward(y, x, w, TensorView{}, ctx); },
                                 {"[linear]", "mlp.down_proj.weight", "(8, 3)", "(4, 7)"});
  auto w2 = ctx.empty({8, 7}, DType::f32, "w");
  auto bias = ctx.empty({7}, DType::f32, "bias");
  testing::expect_error_contains([&] { linear_forward(y, x, w2, bias, ctx); },
                                 {"[linear]", "bias", "(7)", "(8)"});
  auto dy = ctx.empty({4, 8}, DType::f32, "dy");
  auto dw = ctx.empty({7, 8}, DType::f32, "dw");
  testing::expect_error_contains(
      [&] {
        linear_backward(TensorView{}, dw, TensorView{}, dy, x, w2, GradWrite::overwrite, ctx);
      },
      {"[linear_backward]", "dw", "(7, 8)", "(8, 7)"});
}

// ---- grouped linear (MoE experts) ---------------------------------------------------------------

// Offsets with empty experts at the start, in the middle and at the end: sizes 0, 3, 0, 5, 1, 0.
const std::vector<int32_t> kGroupOffsets = {0, 0, 3, 3, 8, 9, 9};

Tensor offsets_tensor(Context& ctx, const std::vector<int32_t>& off, const std::string& name) {
  Tensor t = ctx.empty({static_cast<int64_t>(off.size())}, DType::i32, name);
  for (size_t i = 0; i < off.size(); ++i) t.ptr<int32_t>()[i] = off[i];
  return t;
}

// y[r, o] = Σ_j x[r, j]·w[e(r), o, j] in double, with the magnitude Σ |x·w| that bounds the error.
std::pair<std::vector<double>, std::vector<double>> grouped_reference(
    const std::vector<double>& x, const std::vector<double>& w, const std::vector<int32_t>& off,
    int64_t ch, int64_t oc) {
  const int64_t m = off.back();
  std::vector<double> y(m * oc), mag(m * oc);
  for (size_t e = 0; e + 1 < off.size(); ++e)
    for (int64_t r = off[e]; r < off[e + 1]; ++r)
      for (int64_t o = 0; o < oc; ++o) {
        double s = 0, a = 0;
        for (int64_t j = 0; j < ch; ++j) {
          const double t = x[r * ch + j] * w[(e * oc + o) * ch + j];
          s += t;
          a += std::fabs(t);
        }
        y[r * oc + o] = s;
        mag[r * oc + o] = a;
      }
  return {y, mag};
}

TEST(GroupedLinear, ForwardMatchesPerExpertLoopWithEmptyExperts) {
  auto& ctx = cpu_ctx();
  const int64_t ch = 13, oc = 5, e = static_cast<int64_t>(kGroupOffsets.size()) - 1;
  const int64_t m = kGroupOffsets.back();
  for (DType dtype : {DType::f64, DType::f32, DType::bf16}) {
    SCOPED_TRACE(std::string(dtype_name(dtype)));
    std::mt19937_64 rng(70);
    auto x = testing::random_tensor(ctx, {m, ch}, dtype, rng, -1, 1, "x_perm");
    auto w = testing::random_tensor(ctx, {e, oc, ch}, dtype, rng, -1, 1, "experts.w");
    auto off = offsets_tensor(ctx, kGroupOffsets, "expert_offsets");
    auto y = ctx.empty({m, oc}, dtype, "y");
    testing::fill_constant(y, NAN);  // every row must be written
    grouped_linear_forward(y, x, w, off, ctx);
    const auto [ref, mag] =
        grouped_reference(testing::to_double(x), testing::to_double(w), kGroupOffsets, ch, oc);
    const double u = dtype == DType::f64 ? kU64 : kU32;
    const double out_u = dtype == DType::bf16 ? kU16 : 0.0;
    auto got = testing::to_double(y);
    for (size_t i = 0; i < got.size(); ++i) {
      const double gemm_err = (ch + 2) * u * mag[i];
      EXPECT_LE(std::fabs(got[i] - ref[i]), gemm_err + out_u * (std::fabs(ref[i]) + gemm_err))
          << "element " << i;
    }
  }
}

TEST(GroupedLinear, EqualsLinearPerExpert) {
  // Each expert's block is exactly linear_forward on its rows (same BLAS call, same bits).
  std::mt19937_64 rng(71);
  auto& ctx = cpu_ctx();
  const int64_t ch = 17, oc = 6, e = static_cast<int64_t>(kGroupOffsets.size()) - 1;
  const int64_t m = kGroupOffsets.back();
  auto x = testing::random_tensor(ctx, {m, ch}, DType::f32, rng, -1, 1, "x_perm");
  auto w = testing::random_tensor(ctx, {e, oc, ch}, DType::f32, rng, -1, 1, "experts.w");
  auto off = offsets_tensor(ctx, kGroupOffsets, "expert_offsets");
  auto y = ctx.empty({m, oc}, DType::f32, "y");
  grouped_linear_forward(y, x, w, off, ctx);
  for (int64_t g = 0; g < e; ++g) {
    const int64_t r0 = kGroupOffsets[g], r1 = kGroupOffsets[g + 1];
    if (r0 == r1) continue;
    auto yg = ctx.empty({r1 - r0, oc}, DType::f32, "yg");
    linear_forward(yg, x.view().slice(r0, r1), w.view().select(g), TensorView{}, ctx);
    auto a = testing::to_double(yg), b = testing::to_double(y.view().slice(r0, r1));
    for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(a[i], b[i]) << "expert " << g << " " << i;
  }
}

TEST(GroupedLinear, BackwardMatchesFiniteDifferences) {
  std::mt19937_64 rng(72);
  auto& ctx = cpu_ctx();
  const int64_t ch = 7, oc = 4, e = static_cast<int64_t>(kGroupOffsets.size()) - 1;
  const int64_t m = kGroupOffsets.back();
  auto x = testing::random_tensor(ctx, {m, ch}, DType::f64, rng, -1, 1, "x_perm");
  auto w = testing::random_tensor(ctx, {e, oc, ch}, DType::f64, rng, -1, 1, "experts.w");
  auto g = testing::random_tensor(ctx, {m, oc}, DType::f64, rng, -1, 1, "dy");
  auto off = offsets_tensor(ctx, kGroupOffsets, "expert_offsets");
  auto y = ctx.empty({m, oc}, DType::f64, "y");
  auto loss = [&] {
    grouped_linear_forward(y, x, w, off, ctx);
    return testing::dot(y, g);
  };
  auto dx = ctx.empty({m, ch}, DType::f64, "dx");
  auto dw = ctx.zeros({e, oc, ch}, DType::f64, "dw");
  testing::fill_constant(dx, NAN);  // overwrite: every row written
  grouped_linear_backward(dx, dw, g, x, w, off, ctx);
  testing::expect_gradients_match(loss, {{x.view(), dx.view()}, {w.view(), dw.view()}});
  // Empty experts' weight gradients stay zero.
  auto dwv = testing::to_double(dw);
  for (int64_t k = 0; k < e; ++k) {
    if (kGroupOffsets[k] != kGroupOffsets[k + 1]) continue;
    for (int64_t i = 0; i < oc * ch; ++i) EXPECT_EQ(dwv[k * oc * ch + i], 0.0) << k;
  }

  // dw accumulates (+=), dx overwrites (=); either may be skipped.
  auto dw2 = testing::tensor_from(ctx, {e, oc, ch}, DType::f64,
                                  std::vector<double>(e * oc * ch, 1.5), "dw2");
  grouped_linear_backward(TensorView{}, dw2, g, x, w, off, ctx);
  auto a = testing::to_double(dw2);
  for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], dwv[i] + 1.5, 1e-12) << i;
  auto dx2 = testing::tensor_from(ctx, {m, ch}, DType::f64, std::vector<double>(m * ch, 3.0));
  grouped_linear_backward(dx2, TensorView{}, g, x, w, off, ctx);
  auto b = testing::to_double(dx2), c = testing::to_double(dx);
  for (size_t i = 0; i < b.size(); ++i) EXPECT_EQ(b[i], c[i]) << i;
}

TEST(GroupedLinear, NoRowsAtAll) {
  auto& ctx = cpu_ctx();
  auto x = ctx.empty({0, 3}, DType::f32, "x");
  auto w = testing::tensor_from(ctx, {2, 4, 3}, DType::f32, std::vector<double>(24, 1.0), "w");
  auto off = offsets_tensor(ctx, {0, 0, 0}, "off");
  auto y = ctx.empty({0, 4}, DType::f32, "y");
  grouped_linear_forward(y, x, w, off, ctx);
  auto dw = testing::tensor_from(ctx, {2, 4, 3}, DType::f32, std::vector<double>(24, 2.0), "dw");
  auto dx = ctx.empty({0, 3}, DType::f32, "dx");
  grouped_linear_backward(dx, dw, y, x, w, off, ctx);
  for (double v : testing::to_double(dw)) EXPECT_EQ(v, 2.0);
}

TEST(GroupedLinear, ValidationNamesOpAndShapes) {
  auto& ctx = cpu_ctx();
  auto x = ctx.empty({9, 7}, DType::f32, "x_perm");
  auto w = ctx.empty({6, 4, 7}, DType::f32, "experts.w");
  auto y = ctx.empty({9, 4}, DType::f32, "y");
  auto off = offsets_tensor(ctx, kGroupOffsets, "expert_offsets");
  auto w_bad = ctx.empty({6, 4, 5}, DType::f32, "w_bad");
  testing::expect_error_contains([&] { grouped_linear_forward(y, x, w_bad, off, ctx); },
                                 {"[grouped_linear]", "w_bad", "(6, 4, 5)", "(9, 7)"});
  auto y_bad = ctx.empty({9, 5}, DType::f32, "y_bad");
  testing::expect_error_contains([&] { grouped_linear_forward(y_bad, x, w, off, ctx); },
                                 {"[grouped_linear]", "y_bad", "(9, 5)", "(9, 4)"});
  auto short_off = offsets_tensor(ctx, {0, 9}, "short_off");
  testing::expect_error_contains([&] { grouped_linear_forward(y, x, w, short_off, ctx); },
                                 {"[grouped_linear]", "short_off", "(2)", "(7)"});
  auto f_off = ctx.empty({7}, DType::f32, "f_off");
  testing::expect_error_contains([&] { grouped_linear_forward(y, x, w, f_off, ctx); },
                                 {"[grouped_linear]", "f_off", "i32"});
  testing::expect_error_contains(
      [&] {
        grouped_linear_forward(y, x, w, offsets_tensor(ctx, {1, 1, 3, 3, 8, 9, 9}, "o"), ctx);
      },
      {"[grouped_linear]", "start at 0", "1"});
  testing::expect_error_contains(
      [&] {
        grouped_linear_forward(y, x, w, offsets_tensor(ctx, {0, 4, 3, 3, 8, 9, 9}, "o"), ctx);
      },
      {"[grouped_linear]", "non-decreasing", "offsets[1] = 4", "offsets[2] = 3"});
  testing::expect_error_contains(
      [&] {
        grouped_linear_forward(y, x, w, offsets_tensor(ctx, {0, 0, 3, 3, 8, 8, 8}, "o"), ctx);
      },
      {"[grouped_linear]", "end at M = 9", "8"});
  auto x64 = ctx.empty({9, 7}, DType::f64, "x64");
  testing::expect_error_contains([&] { grouped_linear_forward(y, x64, w, off, ctx); },
                                 {"[grouped_linear]", "f64"});
  testing::expect_error_contains([&] { grouped_linear_forward(x, x, w, off, ctx); },
                                 {"[grouped_linear]", "x_perm"});
  auto dw_bad = ctx.empty({5, 4, 7}, DType::f32, "dw_bad");
  testing::expect_error_contains(
      [&] { grouped_linear_backward(TensorView{}, dw_bad, y, x, w, off, ctx); },
      {"[grouped_linear_backward]", "dw_bad", "(5, 4, 7)", "(6, 4, 7)"});
  auto dx_bad = ctx.empty({9, 4}, DType::f32, "dx_bad");
  testing::expect_error_contains(
      [&] { grouped_linear_backward(dx_bad, TensorView{}, y, x, w, off, ctx); },
      {"[grouped_linear_backward]", "dx_bad", "(9, 4)", "(9, 7)"});
}

}  // namespace
}  // namespace r1kit::kernels
