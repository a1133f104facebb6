// rope: inverse frequencies (default, linear, llama3, yarn) against the formulas written out here,
// the rotation's properties (norms, relative position, layouts as a permutation), strided in-place
// use on a wider head, bf16, backward against finite differences, validation.
#include "kernels/rope.h"

#include <cmath>
#include <numbers>

#include "tests/common/test_util.h"
#include "tests/kernels/head_views.h"

namespace r1kit::kernels {
namespace {
using testing::cpu_ctx;
using testing::gather_heads;
using testing::head_view;
constexpr double kPi = std::numbers::pi;

Tensor iota_positions(Context& ctx, int64_t n) {
  std::vector<double> p(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) p[static_cast<size_t>(i)] = static_cast<double>(i);
  return testing::tensor_from(ctx, {n}, DType::i32, p, "positions");
}

// Unscaled theta^(−2i/D), written as exp(−2i·ln(theta)/D) (a different path from pow).
double base_freq(double theta, int64_t dim, int64_t i) {
  return std::exp(-2.0 * static_cast<double>(i) * std::log(theta) / static_cast<double>(dim));
}

TEST(Rope, InvFreqDefaultAndLinear) {
  RopeConfig cfg{.dim = 10, .theta = 10000.0};
  auto f = rope_inv_freq(cfg);
  ASSERT_EQ(f.size(), 5u);
  EXPECT_EQ(f[0], 1.0);
  for (int64_t i = 0; i < 5; ++i) EXPECT_NEAR(f[i], base_freq(1e4, 10, i), 1e-15 * f[i]) << i;
  EXPECT_NEAR(f[1], 0.15848931924611134, 1e-16);  // 10000^(−0.2)
  cfg.scaling = RopeScaling::linear;
  cfg.factor = 4.0;
  auto g = rope_inv_freq(cfg);
  for (int64_t i = 0; i < 5; ++i) EXPECT_NEAR(g[i], base_freq(1e4, 10, i) / 4, 1e-15 * g[i]) << i;
  EXPECT_EQ(rope_attention_scaling(cfg), 1.0);
  EXPECT_EQ(yarn_softmax_mscale(cfg), 1.0);
}

TEST(Rope, InvFreqLlama31) {
  // meta-llama/Llama-3.1-8B: head_dim 128, rope_theta 500000, rope_scaling {factor 8,
  // low_freq_factor 1, high_freq_factor 4, original_max_position_embeddings 8192}.
  const RopeConfig cfg{.dim = 128,
                       .theta = 500000.0,
                       .scaling = RopeScaling::llama3,
                       .factor = 8.0,
                       .low_freq_factor = 1.0,
                       .high_freq_factor = 4.0,
                       .original_max_position_embeddings = 8192};
  auto f = rope_inv_freq(cfg);
  ASSERT_EQ(f.size(), 64u);
  // Wavelength 2π·500000^(i/64) crosses 8192/4 = 2048 at i ≈ 28.2 and 8192 at i ≈ 34.98: dims
  // 0..28 keep their frequency, 35..63 are divided by 8, 29..34 blend.
  for (int64_t i = 0; i < 64; ++i) {
    const double b = base_freq(5e5, 128, i);
    double want;
    if (i <= 28) {
      want = b;
    } else if (i >= 35) {
      want = b / 8;
    } else {
      const double wavelen = 2 * kPi / b;
      const double smooth = (8192 / wavelen - 1) / (4 - 1);
      EXPECT_GT(smooth, 0.0) << i;
      EXPECT_LT(smooth, 1.0) << i;
      want = smooth * b + (1 - smooth) * b / 8;
    }
    EXPECT_NEAR(f[i], want, 1e-14 * want) << i;
  }
  EXPECT_EQ(rope_attention_scaling(cfg), 1.0);
}

TEST(Rope, InvFreqYarnDeepSeekV3) {
  // DeepSeek-V3: qk_rope_head_dim 64, rope_theta 10000, rope_scaling {type yarn, factor 40,
  // original_max_position_embeddings 4096, beta_fast 32, beta_slow 1, mscale 1, mscale_all_dim 1}.
  RopeConfig cfg{.dim = 64,
                 .theta = 10000.0,
                 .scaling = RopeScaling::yarn,
                 .factor = 40.0,
                 .original_max_position_embeddings = 4096,
                 .beta_fast = 32.0,
                 .beta_slow = 1.0,
                 .mscale = 1.0,
                 .mscale_all_dim = 1.0,
                 .layout = RopeLayout::interleaved};
  // Correction range by hand: 64·ln(4096/(2π·32))/(2 ln 1e4) = 10.47 → floor 10;
  // 64·ln(4096/(2π))/(2 ln 1e4) = 22.51 → ceil 23.
  auto corr = [](double rot) {
    return 64 * std::log(4096 / (2 * kPi * rot)) / (2 * std::log(1e4));
  };
  EXPECT_NEAR(corr(32), 10.47, 0.01);
  EXPECT_NEAR(corr(1), 22.51, 0.01);
  auto f = rope_inv_freq(cfg);
  ASSERT_EQ(f.size(), 32u);
  for (int64_t i = 0; i < 32; ++i) {
    const double b = base_freq(1e4, 64, i);
    const double ramp = std::min(1.0, std::max(0.0, (static_cast<double>(i) - 10) / (23 - 10)));
    const double want = b / 40 * ramp + b * (1 - ramp);
    EXPECT_NEAR(f[i], want, 1e-14 * want) << i;
    if (i <= 10) {  // extrapolated: unchanged
      EXPECT_NEAR(f[i], b, 1e-14 * b) << i;
    }
    if (i >= 23) {  // interpolated
      EXPECT_NEAR(f[i], b / 40, 1e-14 * b) << i;
    }
  }
  // cos/sin factor get_mscale(40, 1)/get_mscale(40, 1) = 1; softmax gets (0.1 ln 40 + 1)².
  EXPECT_EQ(rope_attention_scaling(cfg), 1.0);
  const double m = 0.1 * std::log(40.0) + 1;
  EXPECT_NEAR(yarn_softmax_mscale(cfg), m * m, 1e-15);
  EXPECT_NEAR(yarn_softmax_mscale(cfg), 1.873854, 1e-6);

  // Without truncation the ramp runs over the unrounded range [10.47, 22.51].
  cfg.truncate = false;
  auto fu = rope_inv_freq(cfg);
  for (int64_t i = 0; i < 32; ++i) {
    const double b = base_freq(1e4, 64, i);
    const double ramp =
        std::min(1.0, std::max(0.0, (static_cast<double>(i) - corr(32)) / (corr(1) - corr(32))));
    EXPECT_NEAR(fu[i], b / 40 * ramp + b * (1 - ramp), 1e-14 * b) << i;
  }
  cfg.truncate = true;

  // The other attention_factor branches of HF _compute_yarn_parameters.
  cfg.mscale = 0.707;
  cfg.mscale_all_dim = 0.707;
  EXPECT_NEAR(rope_attention_scaling(cfg), 1.0, 1e-15);
  cfg.mscale = 1.0;
  cfg.mscale_all_dim = 0.0;  // absent: falls back to get_mscale(factor) = 0.1 ln 40 + 1
  EXPECT_NEAR(rope_attention_scaling(cfg), m, 1e-15);
  EXPECT_EQ(yarn_softmax_mscale(cfg), 1.0);
  cfg.mscale = 2.0;
  cfg.mscale_all_dim = 1.0;
  EXPECT_NEAR(rope_attention_scaling(cfg), (0.2 * std::log(40.0) + 1) / m, 1e-15);
  cfg.attention_factor = 1.25;
  EXPECT_EQ(rope_attention_scaling(cfg), 1.25);
  cfg.factor = 1.0;  // no extension: get_mscale is 1
  cfg.attention_factor = 0;
  EXPECT_EQ(rope_attention_scaling(cfg), 1.0);
  EXPECT_EQ(yarn_softmax_mscale(cfg), 1.0);
}

// YaRN written out (HF _compute_yarn_parameters): correction range, floor/ceil, clamps to
// [0, D − 1], the +0.001 for an empty range, the ramp over i < D/2 and the blend.
std::vector<double> yarn_reference(const RopeConfig& c) {
  const double dim = static_cast<double>(c.dim);
  const double orig = static_cast<double>(c.original_max_position_embeddings);
  auto corr = [&](double rot) {
    return dim * std::log(orig / (2 * kPi * rot)) / (2 * std::log(c.theta));
  };
  double lo = corr(c.beta_fast), hi = corr(c.beta_slow);
  if (c.truncate) {
    lo = std::floor(lo);
    hi = std::ceil(hi);
  }
  lo = std::max(lo, 0.0);
  hi = std::min(hi, dim - 1);
  if (lo == hi) hi += 0.001;
  std::vector<double> f;
  for (int64_t i = 0; i < c.dim / 2; ++i) {
    const double b = base_freq(c.theta, c.dim, i);
    const double ramp = std::min(1.0, std::max(0.0, (static_cast<double>(i) - lo) / (hi - lo)));
    f.push_back(b * (1 - ramp) + b / c.factor * ramp);
  }
  return f;
}

TEST(Rope, InvFreqYarnCorrectionRangeEdges) {
  auto yarn = [](int64_t dim, double theta, double factor, int64_t orig, double fast, double slow) {
    return RopeConfig{.dim = dim,
                      .theta = theta,
                      .scaling = RopeScaling::yarn,
                      .factor = factor,
                      .original_max_position_embeddings = orig,
                      .beta_fast = fast,
                      .beta_slow = slow};
  };
  const RopeConfig cases[] = {
      yarn(16, 100.0, 8, 4096, 32, 1),     // high = ceil(11.26) = 12 > D/2 − 1: ramp ends past i
      yarn(8, 10.0, 8, 4096, 32, 1),       // high = ceil(11.26) clamped to D − 1 = 7
      yarn(8, 10000.0, 4, 64, 32, 1),      // low = floor(−0.50) clamped to 0
      yarn(64, 10000.0, 40, 4096, 16, 2),  // low = floor(12.88) = 12 (rounding would give 13)
      yarn(16, 10000.0, 4, 4096, 3, 3),    // low == high: the range is widened by 0.001
  };
  for (RopeConfig cfg : cases) {
    for (bool truncate : {true, false}) {
      cfg.truncate = truncate;
      SCOPED_TRACE(::testing::Message()
                   << "D " << cfg.dim << " theta " << cfg.theta << " orig "
                   << cfg.original_max_position_embeddings << " beta " << cfg.beta_fast << "/"
                   << cfg.beta_slow << " truncate " << truncate);
      const auto got = rope_inv_freq(cfg), want = yarn_reference(cfg);
      ASSERT_EQ(got.size(), want.size());
      for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-14 * want[i]) << i;
    }
  }
}

TEST(Rope, TablesMatchFormula) {
  auto& ctx = cpu_ctx();
  const RopeConfig cfg{.dim = 8,
                       .theta = 10000.0,
                       .scaling = RopeScaling::yarn,
                       .factor = 4.0,
                       .original_max_position_embeddings = 64,
                       .attention_factor = 1.25};
  const auto f = rope_inv_freq(cfg);
  const std::vector<double> pos = {0, 3, 7, 100000, -5};
  auto positions = testing::tensor_from(ctx, {5}, DType::i32, pos, "positions");
  for (DType dt : {DType::f64, DType::f32}) {
    auto cos = ctx.empty({5, 4}, dt, "cos"), sin = ctx.empty({5, 4}, dt, "sin");
    testing::fill_constant(cos, NAN);
    testing::fill_constant(sin, NAN);
    rope_tables(cos, sin, positions, cfg, ctx);
    auto c = testing::to_double(cos), s = testing::to_double(sin);
    // f32 tables: one rounding of the double value (relative 2^-24).
    const double tol = dt == DType::f64 ? 1e-15 : std::ldexp(1.0, -24) * 1.25;
    for (size_t p = 0; p < 5; ++p)
      for (size_t i = 0; i < 4; ++i) {
        EXPECT_NEAR(c[p * 4 + i], 1.25 * std::cos(pos[p] * f[i]), tol) << p << "," << i;
        EXPECT_NEAR(s[p * 4 + i], 1.25 * std::sin(pos[p] * f[i]), tol) << p << "," << i;
      }
  }
}

// The rope part of an MLA-style head: q (T, H, 12) = [nope 6 ‖ pe 6], rotated in place through a
// strided view; the direct formula (angles from std::cos/sin, not the tables) for both layouts.
TEST(Rope, ForwardInPlaceOnStridedViewMatchesFormula) {
  std::mt19937_64 rng(11);
  auto& ctx = cpu_ctx();
  const int64_t t = 5, h = 3, dn = 6, dr = 6, half = dr / 2;
  const RopeConfig cfg{.dim = dr, .theta = 100.0};
  const auto f = rope_inv_freq(cfg);
  const std::vector<double> pos = {4, 0, 9, 2, 9};
  auto positions = testing::tensor_from(ctx, {t}, DType::i32, pos, "positions");
  auto cos = ctx.empty({10, half}, DType::f64, "cos"), sin = ctx.empty({10, half}, DType::f64);
  rope_tables(cos, sin, iota_positions(ctx, 10), cfg, ctx);
  for (RopeLayout layout : {RopeLayout::interleaved, RopeLayout::half_split}) {
    auto q = testing::random_tensor(ctx, {t, h * (dn + dr)}, DType::f64, rng, -1, 1, "q");
    const auto before = testing::to_double(q);
    TensorView q_pe = head_view(q, dn, h, dr, "q_pe");
    q_pe.stride[1] = dn + dr;  // heads are (dn + dr) apart; the view starts at column dn
    rope_forward(q_pe, q_pe, cos, sin, positions, layout, ctx);
    const auto after = testing::to_double(q);
    for (int64_t ti = 0; ti < t; ++ti)
      for (int64_t hi = 0; hi < h; ++hi) {
        const size_t base = static_cast<size_t>(ti * h * (dn + dr) + hi * (dn + dr));
        for (int64_t c = 0; c < dn; ++c) EXPECT_EQ(after[base + c], before[base + c]);
        for (int64_t i = 0; i < half; ++i) {
          const size_t ia = base + dn + (layout == RopeLayout::interleaved ? 2 * i : i);
          const size_t ib = base + dn + (layout == RopeLayout::interleaved ? 2 * i + 1 : i + half);
          const double ang = pos[ti] * f[i];
          const double a = before[ia], b = before[ib];
          EXPECT_NEAR(after[ia], a * std::cos(ang) - b * std::sin(ang), 1e-14);
          EXPECT_NEAR(after[ib], a * std::sin(ang) + b * std::cos(ang), 1e-14);
        }
      }
  }
}

TEST(Rope, RotationPreservesNorms) {
  std::mt19937_64 rng(12);
  auto& ctx = cpu_ctx();
  const int64_t t = 7, h = 3, d = 10;
  const RopeConfig cfg{.dim = d, .theta = 10000.0};
  auto cos = ctx.empty({50, d / 2}, DType::f64), sin = ctx.empty({50, d / 2}, DType::f64);
  rope_tables(cos, sin, iota_positions(ctx, 50), cfg, ctx);
  auto positions = testing::random_ints(ctx, {t}, rng, 0, 49);
  for (RopeLayout layout : {RopeLayout::interleaved, RopeLayout::half_split}) {
    auto x = testing::random_tensor(ctx, {t, h, d}, DType::f64, rng);
    auto y = ctx.empty({t, h, d}, DType::f64);
    rope_forward(y, x, cos, sin, positions, layout, ctx);
    auto xv = testing::to_double(x), yv = testing::to_double(y);
    double moved = 0;
    for (int64_t r = 0; r < t * h; ++r) {
      double nx = 0, ny = 0;
      for (int64_t c = 0; c < d; ++c) {
        nx += xv[r * d + c] * xv[r * d + c];
        ny += yv[r * d + c] * yv[r * d + c];
        moved = std::max(moved, std::fabs(xv[r * d + c] - yv[r * d + c]));
      }
      EXPECT_NEAR(nx, ny, 1e-14 * nx) << r;
    }
    EXPECT_GT(moved, 0.1);  // it did rotate
  }
}

// <rope(q, m), rope(k, n)> depends on m − n only.
TEST(Rope, ScoresDependOnRelativePosition) {
  std::mt19937_64 rng(13);
  auto& ctx = cpu_ctx();
  const int64_t d = 16;
  const RopeConfig cfg{.dim = d, .theta = 10000.0};
  auto cos = ctx.empty({64, d / 2}, DType::f64), sin = ctx.empty({64, d / 2}, DType::f64);
  rope_tables(cos, sin, iota_positions(ctx, 64), cfg, ctx);
  // Rows: (q at m, k at n) for several (m, n) with the same m − n = 3, and one with m − n = 4.
  const std::vector<std::pair<int, int>> pairs = {{3, 0}, {10, 7}, {40, 37}, {63, 60}, {11, 7}};
  const int64_t t = static_cast<int64_t>(pairs.size());
  auto qv = testing::random_tensor(ctx, {1, 1, d}, DType::f64, rng);
  auto kv = testing::random_tensor(ctx, {1, 1, d}, DType::f64, rng);
  for (RopeLayout layout : {RopeLayout::interleaved, RopeLayout::half_split}) {
    std::vector<double> qs, ks, pq, pk;
    for (auto [m, n] : pairs) {
      auto a = testing::to_double(qv), b = testing::to_double(kv);
      qs.insert(qs.end(), a.begin(), a.end());
      ks.insert(ks.end(), b.begin(), b.end());
      pq.push_back(m);
      pk.push_back(n);
    }
    auto q = testing::tensor_from(ctx, {t, 1, d}, DType::f64, qs, "q");
    auto k = testing::tensor_from(ctx, {t, 1, d}, DType::f64, ks, "k");
    rope_forward(q, q, cos, sin, testing::tensor_from(ctx, {t}, DType::i32, pq), layout, ctx);
    rope_forward(k, k, cos, sin, testing::tensor_from(ctx, {t}, DType::i32, pk), layout, ctx);
    auto a = testing::to_double(q), b = testing::to_double(k);
    std::vector<double> score(static_cast<size_t>(t));
    for (int64_t r = 0; r < t; ++r)
      for (int64_t c = 0; c < d; ++c) score[r] += a[r * d + c] * b[r * d + c];
    for (int64_t r = 1; r < 4; ++r) EXPECT_NEAR(score[r], score[0], 1e-13) << r;
    EXPECT_GT(std::fabs(score[4] - score[0]), 1e-3);  // a different offset gives another score
  }
}

// interleaved(x) = P⁻¹ half_split(P x) with (P x)[i] = x[2i], (P x)[i + D/2] = x[2i + 1].
TEST(Rope, LayoutsAreRelatedByAPermutation) {
  std::mt19937_64 rng(14);
  auto& ctx = cpu_ctx();
  const int64_t t = 4, h = 2, d = 12, half = d / 2;
  const RopeConfig cfg{.dim = d, .theta = 500.0};
  auto cos = ctx.empty({t, half}, DType::f64), sin = ctx.empty({t, half}, DType::f64);
  auto positions = testing::tensor_from(ctx, {t}, DType::i32, {5, 1, 3, 2});
  rope_tables(cos, sin, positions, cfg, ctx);
  auto row_positions = iota_positions(ctx, t);  // row t of the table holds position positions[t]
  auto x = testing::random_tensor(ctx, {t, h, d}, DType::f64, rng);
  auto xv = testing::to_double(x);
  std::vector<double> px(xv.size());
  for (int64_t r = 0; r < t * h; ++r)
    for (int64_t i = 0; i < half; ++i) {
      px[r * d + i] = xv[r * d + 2 * i];
      px[r * d + i + half] = xv[r * d + 2 * i + 1];
    }
  auto xp = testing::tensor_from(ctx, {t, h, d}, DType::f64, px);
  auto y_int = ctx.empty({t, h, d}, DType::f64), y_half = ctx.empty({t, h, d}, DType::f64);
  rope_forward(y_int, x, cos, sin, row_positions, RopeLayout::interleaved, ctx);
  rope_forward(y_half, xp, cos, sin, row_positions, RopeLayout::half_split, ctx);
  auto a = testing::to_double(y_int), b = testing::to_double(y_half);
  for (int64_t r = 0; r < t * h; ++r)
    for (int64_t i = 0; i < half; ++i) {
      EXPECT_EQ(a[r * d + 2 * i], b[r * d + i]);  // same arithmetic on the same pair: exact
      EXPECT_EQ(a[r * d + 2 * i + 1], b[r * d + i + half]);
    }
}

TEST(Rope, BackwardMatchesFiniteDifferences) {
  std::mt19937_64 rng(15);
  auto& ctx = cpu_ctx();
  const int64_t t = 5, h = 3, d = 6;
  // YaRN with an attention factor, so the scaled (non-orthogonal) case is covered.
  const RopeConfig cfg{.dim = d,
                       .theta = 10000.0,
                       .scaling = RopeScaling::yarn,
                       .factor = 8.0,
                       .original_max_position_embeddings = 32};
  auto cos = ctx.empty({20, d / 2}, DType::f64), sin = ctx.empty({20, d / 2}, DType::f64);
  rope_tables(cos, sin, iota_positions(ctx, 20), cfg, ctx);
  auto positions = testing::random_ints(ctx, {t}, rng, 0, 19);
  for (RopeLayout layout : {RopeLayout::interleaved, RopeLayout::half_split}) {
    auto x = testing::random_tensor(ctx, {t, h, d}, DType::f64, rng);
    auto g = testing::random_tensor(ctx, {t, h, d}, DType::f64, rng);
    auto y = ctx.empty({t, h, d}, DType::f64);
    auto loss = [&] {
      rope_forward(y, x, cos, sin, positions, layout, ctx);
      return testing::dot(y, g);
    };
    auto dx = ctx.empty({t, h, d}, DType::f64);
    testing::fill_constant(dx, NAN);  // overwrite mode must write every element
    rope_backward(dx, g, cos, sin, positions, layout, ctx);
    testing::expect_gradients_match(loss, {{x.view(), dx.view()}});
    // In place (dx aliases dy) gives the same gradient.
    auto g2 = testing::tensor_from(ctx, {t, h, d}, DType::f64, testing::to_double(g));
    rope_backward(g2, g2, cos, sin, positions, layout, ctx);
    EXPECT_EQ(testing::to_double(g2), testing::to_double(dx));
  }
}

// bf16 q with the rope part in its trailing columns, rotated in place: the nope columns keep their
// bits, the rope columns equal the f64 rotation of the same (bf16-exact) values, rounded once.
TEST(Rope, Bf16StridedInPlace) {
  std::mt19937_64 rng(16);
  auto& ctx = cpu_ctx();
  const int64_t t = 4, h = 2, dn = 3, dr = 4;
  const RopeConfig cfg{.dim = dr, .theta = 10000.0};
  auto cos = ctx.empty({8, dr / 2}, DType::f32), sin = ctx.empty({8, dr / 2}, DType::f32);
  rope_tables(cos, sin, iota_positions(ctx, 8), cfg, ctx);
  auto positions = testing::tensor_from(ctx, {t}, DType::i32, {7, 2, 0, 5});
  auto q = testing::random_tensor(ctx, {t, h * (dn + dr)}, DType::bf16, rng, -2, 2, "q");
  const auto before = testing::to_double(q);
  TensorView q_pe = head_view(q, dn, h, dr, "q_pe");
  q_pe.stride[1] = dn + dr;
  // Reference: the same values in f64 through f64 copies of the f32 tables.
  auto ref_in = testing::tensor_from(ctx, {t, h, dr}, DType::f64, gather_heads(q_pe));
  auto cos64 = testing::tensor_from(ctx, {8, dr / 2}, DType::f64, testing::to_double(cos));
  auto sin64 = testing::tensor_from(ctx, {8, dr / 2}, DType::f64, testing::to_double(sin));
  auto ref = ctx.empty({t, h, dr}, DType::f64);
  rope_forward(ref, ref_in, cos64, sin64, positions, RopeLayout::interleaved, ctx);
  rope_forward(q_pe, q_pe, cos, sin, positions, RopeLayout::interleaved, ctx);
  const auto after = testing::to_double(q);
  for (int64_t r = 0; r < t * h; ++r)
    for (int64_t c = 0; c < dn; ++c) EXPECT_EQ(after[r * (dn + dr) + c], before[r * (dn + dr) + c]);
  const auto got = gather_heads(q_pe), want = testing::to_double(ref);
  for (size_t i = 0; i < got.size(); ++i)  // bf16 rounding: relative 2^-8, plus f32 arithmetic
    EXPECT_NEAR(got[i], want[i], std::ldexp(1.0, -8) * std::fabs(want[i]) + 1e-6) << i;
}

TEST(Rope, ValidationNamesOpAndShapes) {
  auto& ctx = cpu_ctx();
  testing::expect_error_contains([&] { rope_inv_freq({.dim = 7}); }, {"[rope_inv_freq]", "7"});
  testing::expect_error_contains(
      [&] { rope_inv_freq({.dim = 8, .scaling = RopeScaling::yarn, .factor = 40}); },
      {"[rope_inv_freq]", "original_max_position_embeddings"});
  testing::expect_error_contains(
      [&] {
        rope_inv_freq({.dim = 8,
                       .scaling = RopeScaling::llama3,
                       .factor = 8,
                       .low_freq_factor = 4,
                       .high_freq_factor = 1,
                       .original_max_position_embeddings = 8192});
      },
      {"[rope_inv_freq]", "low_freq_factor"});

  auto x = ctx.empty({4, 2, 6}, DType::f32, "q_pe");
  auto y = ctx.empty({4, 2, 6}, DType::f32, "y");
  auto cos = ctx.empty({9, 3}, DType::f32, "cos"), sin = ctx.empty({9, 3}, DType::f32, "sin");
  testing::fill_constant(cos, 1.0);
  testing::fill_constant(sin, 0.0);
  auto positions = testing::tensor_from(ctx, {4}, DType::i32, {0, 1, 9, 2}, "positions");
  testing::expect_error_contains(
      [&] { rope_forward(y, x, cos, sin, positions, RopeLayout::half_split, ctx); },
      {"[rope]", "positions[2] = 9", "(9, 3)"});
  auto pos_ok = testing::tensor_from(ctx, {4}, DType::i32, {0, 1, 8, 2}, "positions");
  auto cos4 = ctx.empty({9, 4}, DType::f32, "cos4");
  testing::expect_error_contains(
      [&] { rope_forward(y, x, cos4, sin, pos_ok, RopeLayout::half_split, ctx); },
      {"[rope]", "cos4", "(9, 4)", "(4, 2, 6)"});
  auto x5 = ctx.empty({4, 2, 5}, DType::f32, "odd");
  auto y5 = ctx.empty({4, 2, 5}, DType::f32, "y5");
  testing::expect_error_contains(
      [&] { rope_forward(y5, x5, cos, sin, pos_ok, RopeLayout::half_split, ctx); },
      {"[rope]", "(4, 2, 5)", "even"});
  auto pos3 = ctx.empty({3}, DType::i32, "pos3");
  testing::expect_error_contains(
      [&] { rope_forward(y, x, cos, sin, pos3, RopeLayout::half_split, ctx); },
      {"[rope]", "pos3", "(3)", "(4)"});
  // Non-unit last stride.
  auto wide = ctx.empty({4, 24}, DType::f32, "wide");
  TensorView strided = head_view(wide, 0, 2, 6, "strided");
  strided.stride = {24, 12, 2, 0};
  testing::expect_error_contains(
      [&] { rope_forward(y, strided, cos, sin, pos_ok, RopeLayout::half_split, ctx); },
      {"[rope]", "strided", "unit stride"});
  // Partial overlap of output and input (in place must be the exact same view).
  TensorView a = head_view(wide, 0, 2, 6, "a"), b = head_view(wide, 2, 2, 6, "b");
  testing::expect_error_contains(
      [&] { rope_forward(b, a, cos, sin, pos_ok, RopeLayout::half_split, ctx); },
      {"[rope]", "'b'", "overlap"});
  // Disjoint column bands of one buffer are fine.
  TensorView c = head_view(wide, 12, 2, 6, "c");
  rope_forward(c, a, cos, sin, pos_ok, RopeLayout::half_split, ctx);
  // Precision mix.
  auto x64 = ctx.empty({4, 2, 6}, DType::f64, "x64");
  testing::expect_error_contains(
      [&] { rope_backward(y, x64, cos, sin, pos_ok, RopeLayout::half_split, ctx); },
      {"[rope_backward]", "f64"});
  // Table shape for rope_tables.
  testing::expect_error_contains([&] { rope_tables(cos4, sin, pos3, {.dim = 6}, ctx); },
                                 {"[rope_tables]", "cos4", "(9, 4)"});
}

}  // namespace
}  // namespace r1kit::kernels
