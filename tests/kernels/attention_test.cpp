// attention: forward against a full-softmax reference per sequence and head (GQA, MQA, Dqk ≠ Dv,
// packed odd lengths), packed = each sequence alone, strided views of fused projections, f32/bf16,
// backward against finite differences in double, validation.
#include "kernels/attention.h"

#include <cmath>
#include <limits>

#include "tests/common/test_util.h"
#include "tests/kernels/head_views.h"

namespace r1kit::kernels {
namespace {
using testing::cpu_ctx;
using testing::gather_heads;
using testing::head_view;

struct Shape4 {
  int64_t hq, hkv, dqk, dv;
};

// One attention problem: random q (T, Hq, Dqk), k (T, Hkv, Dqk), v (T, Hkv, Dv) in
// [−range, range) drawn in that order, and out (T, Hq, Dv), lse (Hq, T) to write.
struct Problem {
  Tensor q, k, v, out, lse;
};
Problem random_problem(Context& ctx, const Shape4& s, int64_t t, DType dtype, double range,
                       std::mt19937_64& rng) {
  Problem p;
  p.q = testing::random_tensor(ctx, {t, s.hq, s.dqk}, dtype, rng, -range, range, "q");
  p.k = testing::random_tensor(ctx, {t, s.hkv, s.dqk}, dtype, rng, -range, range, "k");
  p.v = testing::random_tensor(ctx, {t, s.hkv, s.dv}, dtype, rng, -range, range, "v");
  p.out = ctx.empty({t, s.hq, s.dv}, dtype, "out");
  p.lse = ctx.empty({s.hq, t}, dtype, "lse");
  return p;
}

Tensor cu_tensor(Context& ctx, const std::vector<int32_t>& cu, std::string name = "cu_seqlens") {
  std::vector<double> d(cu.begin(), cu.end());
  return testing::tensor_from(ctx, {static_cast<int64_t>(cu.size())}, DType::i32, d,
                              std::move(name));
}

// The textbook computation: for each sequence and head, the full masked score matrix, a softmax
// per row, then P·V. out (T, Hq, Dv), lse (Hq, T).
void naive_attention(const Problem& p, const std::vector<int32_t>& cu, const Shape4& s,
                     double scale, std::vector<double>* out, std::vector<double>* lse) {
  const auto q = testing::to_double(p.q), k = testing::to_double(p.k), v = testing::to_double(p.v);
  const int64_t t = cu.back();
  out->assign(static_cast<size_t>(t * s.hq * s.dv), 0.0);
  lse->assign(static_cast<size_t>(s.hq * t), 0.0);
  for (size_t b = 0; b + 1 < cu.size(); ++b) {
    const int64_t s0 = cu[b], n = cu[b + 1] - cu[b];
    for (int64_t h = 0; h < s.hq; ++h) {
      const int64_t g = h / (s.hq / s.hkv);
      std::vector<std::vector<double>> sc(n, std::vector<double>(n, -INFINITY));
      for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j <= i; ++j) {
          double acc = 0;
          for (int64_t c = 0; c < s.dqk; ++c)
            acc += q[((s0 + i) * s.hq + h) * s.dqk + c] * k[((s0 + j) * s.hkv + g) * s.dqk + c];
          sc[i][j] = scale * acc;
        }
      for (int64_t i = 0; i < n; ++i) {
        double m = -INFINITY, z = 0;
        for (int64_t j = 0; j < n; ++j) m = std::max(m, sc[i][j]);
        for (int64_t j = 0; j < n; ++j) z += std::exp(sc[i][j] - m);
        (*lse)[h * t + s0 + i] = m + std::log(z);
        for (int64_t j = 0; j < n; ++j) {
          const double pij = std::exp(sc[i][j] - m) / z;
          for (int64_t c = 0; c < s.dv; ++c)
            (*out)[((s0 + i) * s.hq + h) * s.dv + c] += pij * v[((s0 + j) * s.hkv + g) * s.dv + c];
        }
      }
    }
  }
}

// Three sequences of odd lengths 7, 1, 5.
const std::vector<int32_t> kCu = {0, 7, 8, 13};

TEST(Attention, ForwardMatchesNaiveReference) {
  std::mt19937_64 rng(21);
  auto& ctx = cpu_ctx();
  const int64_t t = kCu.back();
  for (const Shape4& s : {Shape4{6, 2, 5, 5},     // GQA
                          Shape4{3, 1, 4, 4},     // MQA
                          Shape4{2, 2, 12, 8},    // Dqk ≠ Dv (MLA-like)
                          Shape4{4, 2, 7, 3}}) {  // GQA with Dqk ≠ Dv
    SCOPED_TRACE(::testing::Message()
                 << "Hq " << s.hq << " Hkv " << s.hkv << " Dqk " << s.dqk << " Dv " << s.dv);
    const Problem p = random_problem(ctx, s, t, DType::f64, 1, rng);
    const Tensor &q = p.q, &k = p.k, &v = p.v, &out = p.out, &lse = p.lse;
    testing::fill_constant(out, NAN);
    testing::fill_constant(lse, NAN);
    const double scale = 1.5 / std::sqrt(static_cast<double>(s.dqk));  // peakier than 1/sqrt(D)
    attention_forward(out, lse, q, k, v, cu_tensor(ctx, kCu), scale, ctx);
    std::vector<double> want_out, want_lse;
    naive_attention(p, kCu, s, scale, &want_out, &want_lse);
    EXPECT_LT(testing::max_abs_diff(testing::to_double(out), want_out), 1e-13);
    EXPECT_LT(testing::max_abs_diff(testing::to_double(lse), want_lse), 1e-13);
  }
}

TEST(Attention, PackedEqualsEachSequenceAlone) {
  std::mt19937_64 rng(22);
  auto& ctx = cpu_ctx();
  const Shape4 s{6, 2, 5, 3};
  const int64_t t = kCu.back();
  const Problem p = random_problem(ctx, s, t, DType::f64, 1, rng);
  const Tensor &q = p.q, &k = p.k, &v = p.v, &out = p.out, &lse = p.lse;
  attention_forward(out, lse, q, k, v, cu_tensor(ctx, kCu), 0.5, ctx);
  const auto packed_out = testing::to_double(out), packed_lse = testing::to_double(lse);
  for (size_t b = 0; b + 1 < kCu.size(); ++b) {
    const int64_t s0 = kCu[b], n = kCu[b + 1] - kCu[b];
    auto ob = ctx.empty({n, s.hq, s.dv}, DType::f64, "out_b");
    auto lb = ctx.empty({s.hq, n}, DType::f64, "lse_b");
    attention_forward(ob, lb, q.view().slice(s0, s0 + n), k.view().slice(s0, s0 + n),
                      v.view().slice(s0, s0 + n), cu_tensor(ctx, {0, static_cast<int32_t>(n)}), 0.5,
                      ctx);
    const auto o = testing::to_double(ob), l = testing::to_double(lb);
    // The same per-row arithmetic in the same order: bitwise equal.
    for (int64_t i = 0; i < n * s.hq * s.dv; ++i)
      EXPECT_EQ(o[i], packed_out[s0 * s.hq * s.dv + i]) << "sequence " << b << " at " << i;
    for (int64_t h = 0; h < s.hq; ++h)
      for (int64_t i = 0; i < n; ++i) EXPECT_EQ(l[h * n + i], packed_lse[h * t + s0 + i]);
  }
}

// f32 tensors: the reference computes in double internally, so out and lse are the double result
// rounded once to f32 (relative 2^-24), up to double-precision differences in the sums (1e-14).
TEST(Attention, F32ForwardIsRoundedDoubleResult) {
  std::mt19937_64 rng(23);
  auto& ctx = cpu_ctx();
  const Shape4 s{4, 2, 9, 6};
  const int64_t t = kCu.back();
  const Problem p = random_problem(ctx, s, t, DType::f32, 2, rng);
  const Tensor &q = p.q, &k = p.k, &v = p.v, &out = p.out, &lse = p.lse;
  const double scale = 1 / 3.0;
  attention_forward(out, lse, q, k, v, cu_tensor(ctx, kCu), scale, ctx);
  std::vector<double> want_out, want_lse;
  naive_attention(p, kCu, s, scale, &want_out, &want_lse);
  const auto got_out = testing::to_double(out), got_lse = testing::to_double(lse);
  const double u = std::ldexp(1.0, -24);
  for (size_t i = 0; i < want_out.size(); ++i)
    EXPECT_NEAR(got_out[i], want_out[i], u * std::fabs(want_out[i]) + 1e-14) << i;
  for (size_t i = 0; i < want_lse.size(); ++i)
    EXPECT_NEAR(got_lse[i], want_lse[i], u * std::fabs(want_lse[i]) + 1e-14) << i;
}

// Gradients in double against central finite differences on a small packed GQA problem with an
// empty sequence and a length-1 sequence; and MQA with Dqk ≠ Dv.
TEST(Attention, BackwardMatchesFiniteDifferences) {
  auto& ctx = cpu_ctx();
  struct Case {
    Shape4 s;
    std::vector<int32_t> cu;
    double scale;
  };
  const Case cases[] = {{{4, 2, 5, 3}, {0, 3, 3, 4, 9}, 0.7}, {{3, 1, 4, 6}, {0, 5, 6}, 0.45}};
  uint64_t seed = 24;
  for (const Case& cs : cases) {
    const Shape4& s = cs.s;
    SCOPED_TRACE(::testing::Message() << "Hq " << s.hq << " Hkv " << s.hkv);
    std::mt19937_64 rng(seed++);
    const int64_t t = cs.cu.back();
    auto cu = cu_tensor(ctx, cs.cu);
    const Problem p = random_problem(ctx, s, t, DType::f64, 1, rng);
    const Tensor &q = p.q, &k = p.k, &v = p.v, &out = p.out, &lse = p.lse;
    auto g = testing::random_tensor(ctx, {t, s.hq, s.dv}, DType::f64, rng, -1, 1, "g");
    auto loss = [&] {
      attention_forward(out, lse, q, k, v, cu, cs.scale, ctx);
      return testing::dot(out, g);
    };
    loss();
    auto dq = ctx.empty({t, s.hq, s.dqk}, DType::f64, "dq");
    auto dk = ctx.empty({t, s.hkv, s.dqk}, DType::f64, "dk");
    auto dv = ctx.empty({t, s.hkv, s.dv}, DType::f64, "dv");
    for (const Tensor* d : {&dq, &dk, &dv}) testing::fill_constant(*d, NAN);  // all overwritten
    attention_backward(dq, dk, dv, g, q, k, v, out, lse, cu, cs.scale, ctx);
    testing::expect_gradients_match(
        loss, {{q.view(), dq.view()}, {k.view(), dk.view()}, {v.view(), dv.view()}});
  }
}

// q, k, v as column slices of one fused (T, (Hq + 2·Hkv)·D) projection output, out inside a wider
// buffer, and dq/dk/dv as slices of one fused gradient: the same numbers as contiguous tensors.
TEST(Attention, StridedViewsOfFusedBuffers) {
  std::mt19937_64 rng(25);
  auto& ctx = cpu_ctx();
  const int64_t t = kCu.back(), hq = 4, hkv = 2, d = 6, c = (hq + 2 * hkv) * d;
  auto cu = cu_tensor(ctx, kCu);
  auto qkv = testing::random_tensor(ctx, {t, c}, DType::f64, rng, -1, 1, "qkv");
  const TensorView q = head_view(qkv, 0, hq, d, "q"), k = head_view(qkv, hq * d, hkv, d, "k"),
                   v = head_view(qkv, (hq + hkv) * d, hkv, d, "v");
  auto qc = testing::tensor_from(ctx, {t, hq, d}, DType::f64, gather_heads(q), "qc");
  auto kc = testing::tensor_from(ctx, {t, hkv, d}, DType::f64, gather_heads(k), "kc");
  auto vc = testing::tensor_from(ctx, {t, hkv, d}, DType::f64, gather_heads(v), "vc");
  auto wide = ctx.zeros({t, hq * d + 5}, DType::f64, "wide");
  const TensorView out = head_view(wide, 3, hq, d, "out");
  auto lse = ctx.empty({hq, t}, DType::f64, "lse");
  auto outc = ctx.empty({t, hq, d}, DType::f64, "outc");
  auto lsec = ctx.empty({hq, t}, DType::f64, "lsec");
  attention_forward(out, lse, q, k, v, cu, 0.4, ctx);
  attention_forward(outc, lsec, qc, kc, vc, cu, 0.4, ctx);
  EXPECT_EQ(gather_heads(out), testing::to_double(outc));
  EXPECT_EQ(testing::to_double(lse), testing::to_double(lsec));
  const auto w = testing::to_double(wide);  // columns outside the view untouched
  for (int64_t r = 0; r < t; ++r)
    for (int64_t col : {0, 1, 2, 27, 28}) EXPECT_EQ(w[r * (hq * d + 5) + col], 0.0);

  auto dout = testing::random_tensor(ctx, {t, hq, d}, DType::f64, rng, -1, 1, "dout");
  auto dqkv = ctx.empty({t, c}, DType::f64, "dqkv");
  testing::fill_constant(dqkv, NAN);
  const TensorView dq = head_view(dqkv, 0, hq, d, "dq"), dk = head_view(dqkv, hq * d, hkv, d, "dk"),
                   dv = head_view(dqkv, (hq + hkv) * d, hkv, d, "dv");
  auto dqc = ctx.empty({t, hq, d}, DType::f64), dkc = ctx.empty({t, hkv, d}, DType::f64),
       dvc = ctx.empty({t, hkv, d}, DType::f64);
  attention_backward(dq, dk, dv, dout, q, k, v, out, lse, cu, 0.4, ctx);
  attention_backward(dqc, dkc, dvc, dout, qc, kc, vc, outc, lsec, cu, 0.4, ctx);
  EXPECT_EQ(gather_heads(dq), testing::to_double(dqc));
  EXPECT_EQ(gather_heads(dk), testing::to_double(dkc));
  EXPECT_EQ(gather_heads(dv), testing::to_double(dvc));
}

// bf16 q/k/v (strided slices of a fused bf16 buffer), bf16 out and grads, f32 lse. The CPU
// reference upcasts and sums in double, so each output is the f64 result on the same values
// rounded to f32 and then bf16: relative error within 2^-8 + 2^-24.
TEST(Attention, Bf16MatchesDoubleOnRoundedInputs) {
  std::mt19937_64 rng(26);
  auto& ctx = cpu_ctx();
  const int64_t t = kCu.back(), hq = 4, hkv = 2, dqk = 6, dv = 4;
  const int64_t c = hq * dqk + hkv * dqk + hkv * dv;
  auto cu = cu_tensor(ctx, kCu);
  auto qkv = testing::random_tensor(ctx, {t, c}, DType::bf16, rng, -2, 2, "qkv");
  const TensorView q = head_view(qkv, 0, hq, dqk, "q"), k = head_view(qkv, hq * dqk, hkv, dqk, "k"),
                   v = head_view(qkv, (hq + hkv) * dqk, hkv, dv, "v");
  auto out = ctx.empty({t, hq, dv}, DType::bf16, "out");
  auto lse = ctx.empty({hq, t}, DType::f32, "lse");
  attention_forward(out, lse, q, k, v, cu, 0.5, ctx);

  auto q64 = testing::tensor_from(ctx, {t, hq, dqk}, DType::f64, gather_heads(q));
  auto k64 = testing::tensor_from(ctx, {t, hkv, dqk}, DType::f64, gather_heads(k));
  auto v64 = testing::tensor_from(ctx, {t, hkv, dv}, DType::f64, gather_heads(v));
  auto out64 = ctx.empty({t, hq, dv}, DType::f64), lse64 = ctx.empty({hq, t}, DType::f64);
  attention_forward(out64, lse64, q64, k64, v64, cu, 0.5, ctx);
  const double ub = std::ldexp(1.0, -8) + std::ldexp(1.0, -24), uf = std::ldexp(1.0, -24);
  auto expect_close = [](const std::vector<double>& got, const std::vector<double>& want,
                         double rel, const char* what) {
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < got.size(); ++i)
      EXPECT_NEAR(got[i], want[i], rel * std::fabs(want[i]) + 1e-12) << what << " " << i;
  };
  expect_close(testing::to_double(out), testing::to_double(out64), ub, "out");
  expect_close(testing::to_double(lse), testing::to_double(lse64), uf, "lse");

  // Backward from the bf16 forward's saved tensors; the f64 reference gets the same saved values.
  auto dout = testing::random_tensor(ctx, {t, hq, dv}, DType::bf16, rng, -1, 1, "dout");
  auto dqkv = ctx.empty({t, c}, DType::bf16, "dqkv");
  const TensorView dq = head_view(dqkv, 0, hq, dqk, "dq"),
                   dk = head_view(dqkv, hq * dqk, hkv, dqk, "dk"),
                   dvv = head_view(dqkv, (hq + hkv) * dqk, hkv, dv, "dv");
  attention_backward(dq, dk, dvv, dout, q, k, v, out, lse, cu, 0.5, ctx);
  auto saved_out = testing::tensor_from(ctx, {t, hq, dv}, DType::f64, testing::to_double(out));
  auto saved_lse = testing::tensor_from(ctx, {hq, t}, DType::f64, testing::to_double(lse));
  auto dout64 = testing::tensor_from(ctx, {t, hq, dv}, DType::f64, testing::to_double(dout));
  auto dq64 = ctx.empty({t, hq, dqk}, DType::f64), dk64 = ctx.empty({t, hkv, dqk}, DType::f64),
       dv64 = ctx.empty({t, hkv, dv}, DType::f64);
  attention_backward(dq64, dk64, dv64, dout64, q64, k64, v64, saved_out, saved_lse, cu, 0.5, ctx);
  expect_close(gather_heads(dq), testing::to_double(dq64), ub, "dq");
  expect_close(gather_heads(dk), testing::to_double(dk64), ub, "dk");
  expect_close(gather_heads(dvv), testing::to_double(dv64), ub, "dv");
}

TEST(Attention, ValidationNamesOpAndShapes) {
  auto& ctx = cpu_ctx();
  const int64_t t = 13;
  auto q = ctx.empty({t, 6, 4}, DType::f32, "q");
  auto k = ctx.empty({t, 2, 4}, DType::f32, "k");
  auto v = ctx.empty({t, 2, 3}, DType::f32, "v");
  auto out = ctx.empty({t, 6, 3}, DType::f32, "out");
  auto lse = ctx.empty({6, t}, DType::f32, "lse");
  for (const Tensor* x : {&q, &k, &v}) testing::fill_constant(*x, 0.0);
  auto cu = cu_tensor(ctx, kCu);
  attention_forward(out, lse, q, k, v, cu, 0.5, ctx);  // the valid call

  testing::expect_error_contains(
      [&] {
        attention_forward(out, lse, q, k, v, cu_tensor(ctx, {1, 7, 13}), 0.5, ctx);
      },
      {"[attention]", "start at 0", "cu_seqlens[0] = 1"});
  testing::expect_error_contains(
      [&] {
        attention_forward(out, lse, q, k, v, cu_tensor(ctx, {0, 7, 5, 13}), 0.5, ctx);
      },
      {"[attention]", "non-decreasing", "cu_seqlens[2] = 5"});
  testing::expect_error_contains(
      [&] {
        attention_forward(out, lse, q, k, v, cu_tensor(ctx, {0, 7, 12}), 0.5, ctx);
      },
      {"[attention]", "T = 13", "cu_seqlens[2] = 12"});
  auto cu64 = ctx.empty({4}, DType::i64, "cu64");
  testing::expect_error_contains([&] { attention_forward(out, lse, q, k, v, cu64, 0.5, ctx); },
                                 {"[attention]", "cu64", "i32"});
  auto k4 = ctx.empty({t, 4, 4}, DType::f32, "k4");
  auto v4 = ctx.empty({t, 4, 3}, DType::f32, "v4");
  testing::expect_error_contains([&] { attention_forward(out, lse, q, k4, v4, cu, 0.5, ctx); },
                                 {"[attention]", "Hq = 6", "Hkv = 4", "(13, 6, 4)", "(13, 4, 4)"});
  auto k12 = ctx.empty({12, 2, 4}, DType::f32, "k12");
  testing::expect_error_contains([&] { attention_forward(out, lse, q, k12, v, cu, 0.5, ctx); },
                                 {"[attention]", "k12", "(12, 2, 4)", "(13, *, 4)"});
  auto k5 = ctx.empty({t, 2, 5}, DType::f32, "k5");
  testing::expect_error_contains([&] { attention_forward(out, lse, q, k5, v, cu, 0.5, ctx); },
                                 {"[attention]", "k5", "(13, 2, 5)"});
  auto out4 = ctx.empty({t, 6, 4}, DType::f32, "out4");
  testing::expect_error_contains([&] { attention_forward(out4, lse, q, k, v, cu, 0.5, ctx); },
                                 {"[attention]", "out4", "(13, 6, 4)", "(13, 6, 3)"});
  auto lse_t = ctx.empty({t, 6}, DType::f32, "lse_t");
  testing::expect_error_contains([&] { attention_forward(out, lse_t, q, k, v, cu, 0.5, ctx); },
                                 {"[attention]", "lse_t", "(13, 6)", "(6, 13)"});
  auto lse64 = ctx.empty({6, t}, DType::f64, "lse64");
  testing::expect_error_contains([&] { attention_forward(out, lse64, q, k, v, cu, 0.5, ctx); },
                                 {"[attention]", "lse64", "f64"});
  testing::expect_error_contains([&] { attention_forward(out, lse, q, k, v, cu, NAN, ctx); },
                                 {"[attention]", "scale"});
  // Output overlapping an input.
  auto qo = ctx.empty({t, 6, 4}, DType::f32, "qo");
  const TensorView out_in_q = head_view(qo.view().reshape({t, 24}), 0, 6, 3, "out_in_q");
  testing::expect_error_contains([&] { attention_forward(out_in_q, lse, qo, k, v, cu, 0.5, ctx); },
                                 {"[attention]", "out_in_q", "overlap", "qo"});
  // Gradients overlapping each other: dk's columns run into dv's.
  auto buf = ctx.empty({t, 6 * 4 + 2 * 4 + 2 * 3}, DType::f32, "dqkv");
  const TensorView dq = head_view(buf, 0, 6, 4, "dq"), dk = head_view(buf, 24, 2, 4, "dk"),
                   dv_bad = head_view(buf, 30, 2, 3, "dv_bad");
  testing::expect_error_contains(
      [&] { attention_backward(dq, dk, dv_bad, out, q, k, v, out, lse, cu, 0.5, ctx); },
      {"[attention_backward]", "dk", "dv_bad", "overlap"});
  // dv starting left of dk and running into it (the overlap wraps within the row pitch).
  const TensorView dk_right = head_view(buf, 28, 2, 4, "dk_right"),
                   dv_left = head_view(buf, 24, 2, 3, "dv_left");
  testing::expect_error_contains(
      [&] { attention_backward(dq, dk_right, dv_left, out, q, k, v, out, lse, cu, 0.5, ctx); },
      {"[attention_backward]", "dk_right", "dv_left", "overlap"});
  // A non-unit stride in the head dim.
  TensorView q_bad = head_view(buf, 0, 6, 4, "q_bad");
  q_bad.stride = {38, 4, 2, 0};
  q_bad.shape = {t, 6, 2, 0};
  testing::expect_error_contains([&] { attention_forward(out, lse, q_bad, k, v, cu, 0.5, ctx); },
                                 {"[attention]", "q_bad", "unit stride"});
}

}  // namespace
}  // namespace r1kit::kernels
