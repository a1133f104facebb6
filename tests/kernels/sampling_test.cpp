// sample: greedy, determinism and batch independence, the filters (top-k, top-p, min-p) against
// kept sets worked out by hand, empirical frequencies against softmax(z/τ) by a chi-square bound,
// token_logprob, non-finite logits, validation.
#include "kernels/sampling.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "tests/common/test_util.h"

namespace r1kit::kernels {
namespace {
using testing::cpu_ctx;

constexpr double kF32Unit = 1.0 / (1 << 24);  // 2^-24

struct Result {
  std::vector<int32_t> tokens;
  std::vector<double> logprob;
};

// Samples every row of `logits` (B, V) with per-row counters (stream, position).
Result sample(Context& ctx, const Tensor& logits, const std::vector<int64_t>& counters,
              const SamplingParams& sp, uint64_t seed) {
  const int64_t rows = logits.size(0);
  auto tok = ctx.empty({rows}, DType::i32, "tokens");
  auto lp = ctx.empty({rows}, DType::f32, "token_logprob");
  auto cnt = ctx.empty({rows, 2}, DType::i64, "rng_counters");
  std::copy(counters.begin(), counters.end(), cnt.ptr<int64_t>());
  testing::fill_constant(tok, -7);
  testing::fill_constant(lp, NAN);
  sample_forward(tok, lp, logits, cnt, sp, seed, ctx);
  Result r;
  r.tokens.assign(tok.ptr<int32_t>(), tok.ptr<int32_t>() + rows);
  r.logprob = testing::to_double(lp);
  return r;
}

// `rows` copies of one logits row, streams 0..rows-1 at one position.
Tensor repeat_row(Context& ctx, const std::vector<double>& row, int64_t rows) {
  std::vector<double> all;
  for (int64_t i = 0; i < rows; ++i) all.insert(all.end(), row.begin(), row.end());
  return testing::tensor_from(ctx, {rows, static_cast<int64_t>(row.size())}, DType::f32, all,
                              "logits");
}
std::vector<int64_t> streams(int64_t rows, int64_t position) {
  std::vector<int64_t> c;
  for (int64_t i = 0; i < rows; ++i) c.insert(c.end(), {i, position});
  return c;
}

std::vector<double> softmax(const std::vector<double>& z) {
  double m = *std::max_element(z.begin(), z.end()), s = 0;
  std::vector<double> p;
  for (double v : z) s += std::exp(v - m);
  for (double v : z) p.push_back(std::exp(v - m) / s);
  return p;
}

// log softmax(x / τ)_t over the whole row.
double log_softmax_at(const std::vector<double>& x, double tau, int64_t t) {
  std::vector<double> z;
  for (double v : x) z.push_back(v / tau);
  return std::log(softmax(z)[static_cast<size_t>(t)]);
}

// Survival function of the chi-square distribution with d degrees of freedom:
//   Q(1, x) = erfc(sqrt(x/2)),  Q(2, x) = exp(−x/2),
//   Q(d + 2, x) = Q(d, x) + (x/2)^(d/2) exp(−x/2) / Γ(d/2 + 1).
double chi2_sf(double x, int d) {
  double q = d % 2 ? std::erfc(std::sqrt(x / 2)) : std::exp(-x / 2);
  for (int k = d % 2 ? 1 : 2; k < d; k += 2)
    q += std::exp((k / 2.0) * std::log(x / 2) - x / 2 - std::lgamma(k / 2.0 + 1));
  return q;
}
// The x with Q(d, x) = alpha (bisection; Q decreases in x).
double chi2_threshold(int d, double alpha) {
  double lo = 0, hi = 1000;
  for (int i = 0; i < 200; ++i) {
    double mid = (lo + hi) / 2;
    (chi2_sf(mid, d) > alpha ? lo : hi) = mid;
  }
  return hi;
}

// Pearson's statistic Σ (O − E)² / E over the categories with p > 0; counts where p = 0 make it
// infinite.
double pearson(const std::vector<int64_t>& counts, const std::vector<double>& p, int64_t draws) {
  double x2 = 0;
  for (size_t j = 0; j < p.size(); ++j) {
    if (p[j] == 0) {
      if (counts[j] > 0) return INFINITY;
      continue;
    }
    const double e = draws * p[j];
    x2 += (counts[j] - e) * (counts[j] - e) / e;
  }
  return x2;
}

// The false-failure rate we accept for each deterministic-but-"random" frequency check. With
// every expected count >= 500, Pearson's statistic is chi-square with (categories − 1) degrees of
// freedom to far better than this.
constexpr double kAlpha = 1e-6;

TEST(Sample, ChiSquareHelperMatchesKnownQuantiles) {
  // Table values: χ²_{0.95}(1) = 3.841, χ²_{0.99}(4) = 13.277, χ²_{0.999}(3) = 16.266.
  EXPECT_NEAR(chi2_threshold(1, 0.05), 3.841, 1e-3);
  EXPECT_NEAR(chi2_threshold(4, 0.01), 13.277, 1e-3);
  EXPECT_NEAR(chi2_threshold(3, 0.001), 16.266, 1e-3);
}

TEST(Sample, GreedyPicksArgmaxLowestIdOnTies) {
  auto& ctx = cpu_ctx();
  const std::vector<double> v = {0.5,       2.0,  -1.0, 2.0, 1.0, 0.0, 2.0,  // tie 1, 3, 6
                                 -INFINITY, -3.0, 4.0,  4.0, 1.0, 0.0, 1.0,  // tie 9, 10
                                 7.0,       1.0,  2.0,  3.0, 4.0, 5.0, 6.0};
  auto logits = testing::tensor_from(ctx, {3, 7}, DType::f32, v, "logits");
  SamplingParams sp;
  sp.temperature = 0;
  sp.top_k = 3;  // filters do not matter for greedy
  const Result r = sample(ctx, logits, {0, 0, 1, 0, 2, 0}, sp, 99);
  EXPECT_EQ(r.tokens, (std::vector<int32_t>{1, 2, 0}));
  for (int64_t i = 0; i < 3; ++i) {
    std::vector<double> row(v.begin() + i * 7, v.begin() + (i + 1) * 7);
    const double want = log_softmax_at(row, 1.0, r.tokens[i]);  // τ = 1 for greedy
    EXPECT_NEAR(r.logprob[i], want, kF32Unit * std::fabs(want) + 1e-12) << i;
  }
}

TEST(Sample, SameCountersSameTokenAndRowsIndependentOfBatch) {
  std::mt19937_64 rng(41);
  auto& ctx = cpu_ctx();
  const int64_t rows = 6, vocab = 23;
  auto logits = testing::random_tensor(ctx, {rows, vocab}, DType::f32, rng, -2, 2, "logits");
  const std::vector<int64_t> counters = {0, 0, 1,         0, 7, 3, 7, 4, int64_t{1} << 40,
                                         9, 5, 4000000000};
  SamplingParams sp;
  sp.temperature = 0.9;
  sp.top_k = 15;
  sp.top_p = 0.95;
  sp.min_p = 0.01;
  const uint64_t seed = 1234;
  const Result all = sample(ctx, logits, counters, sp, seed);
  const Result again = sample(ctx, logits, counters, sp, seed);
  EXPECT_EQ(all.tokens, again.tokens);
  EXPECT_EQ(all.logprob, again.logprob);
  // Each row alone, and the batch reversed, give the same tokens and log-probs.
  auto lv = testing::to_double(logits);
  std::vector<double> rev_values;
  std::vector<int64_t> rev_counters;
  for (int64_t r = rows - 1; r >= 0; --r) {
    rev_values.insert(rev_values.end(), lv.begin() + r * vocab, lv.begin() + (r + 1) * vocab);
    rev_counters.insert(rev_counters.end(), {counters[2 * r], counters[2 * r + 1]});
  }
  auto reversed = testing::tensor_from(ctx, {rows, vocab}, DType::f32, rev_values, "logits");
  const Result rev = sample(ctx, reversed, rev_counters, sp, seed);
  for (int64_t r = 0; r < rows; ++r) {
    auto one = testing::tensor_from(
        ctx, {1, vocab}, DType::f32,
        std::vector<double>(lv.begin() + r * vocab, lv.begin() + (r + 1) * vocab), "logits");
    const Result alone = sample(ctx, one, {counters[2 * r], counters[2 * r + 1]}, sp, seed);
    EXPECT_EQ(alone.tokens[0], all.tokens[r]) << "row " << r;
    EXPECT_EQ(alone.logprob[0], all.logprob[r]) << "row " << r;
    EXPECT_EQ(rev.tokens[rows - 1 - r], all.tokens[r]) << "row " << r;
  }
}

TEST(Sample, NoiseDependsOnSeedStreamAndPosition) {
  auto& ctx = cpu_ctx();
  const int64_t rows = 64;
  auto logits = repeat_row(ctx, {0, 0, 0, 0, 0}, rows);  // uniform over 5 tokens
  SamplingParams sp;
  const Result base = sample(ctx, logits, streams(rows, 3), sp, 5);
  // 64 uniform draws over 5 tokens: all equal with probability 5^-63.
  EXPECT_GT(std::set<int32_t>(base.tokens.begin(), base.tokens.end()).size(), 1u);
  EXPECT_NE(sample(ctx, logits, streams(rows, 3), sp, 6).tokens, base.tokens);  // seed
  EXPECT_NE(sample(ctx, logits, streams(rows, 4), sp, 5).tokens, base.tokens);  // position
  std::vector<int64_t> shifted;
  for (int64_t i = 0; i < rows; ++i) shifted.insert(shifted.end(), {i + (int64_t{1} << 32), 3});
  EXPECT_NE(sample(ctx, logits, shifted, sp, 5).tokens, base.tokens);  // stream's high 32 bits
  // The noise is the documented Philox uniform: check one value by hand, lane 0 of the block
  // (stream lo, stream hi, position, token) keyed by the seed.
  const Philox4 blk = philox4x32_10(Philox4{{7, 1, 3, 4}}, 5);
  EXPECT_EQ(sampling_uniform(5, (uint64_t{1} << 32) + 7, 3, 4),
            ((blk.v[0] >> 8) + 0.5) / 16777216.0);
  EXPECT_GT(sampling_uniform(5, 0, 0, 0), 0.0);
  EXPECT_LT(sampling_uniform(5, 0, 0, 0), 1.0);
}

TEST(Sample, TopK1AndTinyTopPAreGreedy) {
  std::mt19937_64 rng(42);
  auto& ctx = cpu_ctx();
  const int64_t rows = 40, vocab = 17;
  auto values = testing::to_double(
      testing::random_tensor(ctx, {rows, vocab}, DType::f32, rng, -1, 1, "logits"));
  for (int64_t r = 0; r < rows; r += 3) {  // ties for the maximum in every third row
    values[r * vocab + 11] = 5;
    values[r * vocab + 4] = 5;
  }
  auto logits = testing::tensor_from(ctx, {rows, vocab}, DType::f32, values, "logits");
  SamplingParams greedy;
  greedy.temperature = 0;
  const Result want = sample(ctx, logits, streams(rows, 0), greedy, 1);
  SamplingParams k1;
  k1.temperature = 0.8;
  k1.top_k = 1;
  SamplingParams p0;
  p0.temperature = 1.3;
  p0.top_p = 1e-9;
  SamplingParams m1;  // min_p = 1 keeps only tokens at the max (the ties), so not greedy there
  m1.min_p = 1;
  EXPECT_EQ(sample(ctx, logits, streams(rows, 0), k1, 1).tokens, want.tokens);
  EXPECT_EQ(sample(ctx, logits, streams(rows, 0), p0, 1).tokens, want.tokens);
  const Result m = sample(ctx, logits, streams(rows, 0), m1, 1);
  for (int64_t r = 0; r < rows; ++r) {
    if (r % 3)
      EXPECT_EQ(m.tokens[r], want.tokens[r]) << r;
    else
      EXPECT_TRUE(m.tokens[r] == 4 || m.tokens[r] == 11) << r;
  }
}

// A row with known probabilities at τ = 1, ids scrambled so the filters must sort:
//   id:   0     1     2     3     4     5     6
//   p:  0.05  0.30  0.02  0.40  0.08  0.15  (−inf: masked)
// Sorted: 3 (0.40), 1 (0.30), 5 (0.15), 4 (0.08), 0 (0.05), 2 (0.02).
const std::vector<double> kProbs = {0.05, 0.30, 0.02, 0.40, 0.08, 0.15, 0.0};
std::vector<double> known_logits() {
  std::vector<double> z;
  for (double p : kProbs) z.push_back(p > 0 ? std::log(p) : -INFINITY);
  return z;
}

struct FilterCase {
  const char* name;
  SamplingParams sp;
  std::vector<int32_t> kept;  // worked out by hand from the table above
};

std::vector<FilterCase> filter_cases() {
  std::vector<FilterCase> c;
  // top-k 3: {3, 1, 5}.
  c.push_back({"top_k 3", {1.0, 3, 1.0, 0.0}, {1, 3, 5}});
  // top-p 0.8: cumulative 0.40, 0.70, 0.85 ≥ 0.8 → {3, 1, 5}.
  c.push_back({"top_p 0.8", {1.0, 0, 0.8, 0.0}, {1, 3, 5}});
  // top-k 4 then top-p 0.75: renormalised over 0.93: 0.430, 0.753 ≥ 0.75 → {3, 1}.
  c.push_back({"top_k 4, top_p 0.75", {1.0, 4, 0.75, 0.0}, {1, 3}});
  // min-p 0.15: p ≥ 0.06 → {3, 1, 5, 4}.
  c.push_back({"min_p 0.15", {1.0, 0, 1.0, 0.15}, {1, 3, 4, 5}});
  // top-p 0.9 (→ {3, 1, 5, 4}: 0.40, 0.70, 0.85, 0.93) then min-p 0.3 (p ≥ 0.12) → {3, 1, 5}.
  c.push_back({"top_p 0.9, min_p 0.3", {1.0, 0, 0.9, 0.3}, {1, 3, 5}});
  // No filter: every unmasked token.
  c.push_back({"none", {1.0, 0, 1.0, 0.0}, {0, 1, 2, 3, 4, 5}});
  return c;
}

TEST(Sample, FiltersNeverLeaveTheKeptSet) {
  auto& ctx = cpu_ctx();
  const int64_t rows = 3000;
  auto logits = repeat_row(ctx, known_logits(), rows);
  for (const auto& fc : filter_cases()) {
    SCOPED_TRACE(fc.name);
    const Result r = sample(ctx, logits, streams(rows, 11), fc.sp, 77);
    std::set<int32_t> seen(r.tokens.begin(), r.tokens.end());
    // Every draw is kept, and every kept token (renormalised p >= 0.02 over 3000 draws: missing
    // one has probability < 0.98^3000 ≈ 1e-26) shows up.
    EXPECT_EQ(std::vector<int32_t>(seen.begin(), seen.end()), fc.kept);
  }
}

TEST(Sample, FrequenciesMatchSoftmaxOfScaledLogits) {
  // 20000 draws (one per stream) from V = 5 at τ = 0.7: Pearson's X² against softmax(z/τ) must
  // stay below the χ²(4) quantile at 1 − 1e-6; against softmax(z) (the wrong temperature) it
  // must not — the check can fail.
  auto& ctx = cpu_ctx();
  const int64_t draws = 20000;
  const std::vector<double> x = {1.0, -0.5, 0.3, 2.0, 0.0};
  const double tau = 0.7;
  auto logits = repeat_row(ctx, x, draws);
  SamplingParams sp;
  sp.temperature = tau;
  const Result r = sample(ctx, logits, streams(draws, 2), sp, 2024);
  std::vector<int64_t> counts(x.size(), 0);
  for (int32_t t : r.tokens) ++counts.at(static_cast<size_t>(t));
  std::vector<double> z;
  for (double v : x) z.push_back(static_cast<double>(static_cast<float>(v)) / tau);
  const auto p = softmax(z);
  const double limit = chi2_threshold(static_cast<int>(x.size()) - 1, kAlpha);
  EXPECT_LT(pearson(counts, p, draws), limit);
  EXPECT_GT(pearson(counts, softmax(x), draws), limit);
  // token_logprob is log softmax(z) at the drawn token, f32-rounded.
  for (int64_t i = 0; i < 50; ++i) {
    const double want = std::log(p[static_cast<size_t>(r.tokens[i])]);
    EXPECT_NEAR(r.logprob[i], want, kF32Unit * std::fabs(want) + 1e-12);
  }
}

TEST(Sample, FilteredFrequenciesMatchRenormalisedSoftmax) {
  // Within the kept set, P(token = j) = p_j / Σ_kept p; token_logprob stays the unfiltered
  // log p_j (masked token's p = 0 included).
  auto& ctx = cpu_ctx();
  const int64_t draws = 20000;
  auto logits = repeat_row(ctx, known_logits(), draws);
  for (const auto& fc : filter_cases()) {
    SCOPED_TRACE(fc.name);
    const Result r = sample(ctx, logits, streams(draws, 5), fc.sp, 31337);
    std::vector<double> q(kProbs.size(), 0.0);
    double mass = 0;
    for (int32_t j : fc.kept) mass += kProbs[j];
    for (int32_t j : fc.kept) q[j] = kProbs[j] / mass;
    std::vector<int64_t> counts(kProbs.size(), 0);
    for (int32_t t : r.tokens) ++counts.at(static_cast<size_t>(t));
    // Expected counts are >= 20000·0.02 = 400 for every kept token.
    EXPECT_LT(pearson(counts, q, draws),
              chi2_threshold(static_cast<int>(fc.kept.size()) - 1, kAlpha));
    // The f32 logits log p carry rounding <= 2^-24·|log 0.02| < 4·2^-24 each, which moves a
    // log-softmax by at most twice that; then the f32 output rounds once more.
    for (int64_t i = 0; i < 50; ++i) {
      const double want = std::log(kProbs[static_cast<size_t>(r.tokens[i])]);
      EXPECT_NEAR(r.logprob[i], want, kF32Unit * (std::fabs(want) + 8));
    }
  }
}

TEST(Sample, Bf16LogitsSeeRoundedValues) {
  std::mt19937_64 rng(43);
  auto& ctx = cpu_ctx();
  const int64_t rows = 9, vocab = 31;
  auto lb = testing::random_tensor(ctx, {rows, vocab}, DType::bf16, rng, -3, 3, "logits");
  auto lf = testing::tensor_from(ctx, {rows, vocab}, DType::f32, testing::to_double(lb), "logits");
  SamplingParams sp;
  sp.temperature = 0.6;
  sp.top_k = 20;
  const Result a = sample(ctx, lb, streams(rows, 1), sp, 3);
  const Result b = sample(ctx, lf, streams(rows, 1), sp, 3);
  EXPECT_EQ(a.tokens, b.tokens);
  EXPECT_EQ(a.logprob, b.logprob);
}

TEST(Sample, NonFiniteLogitsAreErrors) {
  auto& ctx = cpu_ctx();
  SamplingParams sp;
  for (double bad : {double{NAN}, double{INFINITY}}) {
    std::vector<double> v(2 * 5, 0.0);
    v[5 + 3] = bad;
    auto logits = testing::tensor_from(ctx, {2, 5}, DType::f32, v, "lm_logits");
    testing::expect_error_contains(
        [&] { sample(ctx, logits, streams(2, 0), sp, 1); },
        {"[sample]", "lm_logits", "row 1", "token 3", std::isnan(bad) ? "nan" : "inf"});
  }
  auto masked = testing::tensor_from(ctx, {1, 3}, DType::f32, {-INFINITY, -INFINITY, -INFINITY});
  testing::expect_error_contains([&] { sample(ctx, masked, streams(1, 0), sp, 1); },
                                 {"[sample]", "row 0", "no finite entry"});
}

TEST(Sample, ValidationNamesOpAndArguments) {
  auto& ctx = cpu_ctx();
  auto logits = ctx.zeros({3, 8}, DType::f32, "logits");
  auto tok = ctx.empty({3}, DType::i32, "tokens");
  auto lp = ctx.empty({3}, DType::f32, "token_logprob");
  auto cnt = ctx.zeros({3, 2}, DType::i64, "rng_counters");
  auto run = [&](const SamplingParams& sp, const TensorView& t, const TensorView& c) {
    sample_forward(t, lp, logits, c, sp, 1, ctx);
  };
  SamplingParams sp;
  auto with = [&](auto edit) {
    SamplingParams s = sp;
    edit(s);
    return s;
  };
  testing::expect_error_contains(
      [&] { run(with([](SamplingParams& s) { s.temperature = -1; }), tok, cnt); },
      {"[sample]", "temperature -1"});
  testing::expect_error_contains(
      [&] { run(with([](SamplingParams& s) { s.temperature = 1e-7; }), tok, cnt); },
      {"[sample]", "temperature", "greedy"});
  testing::expect_error_contains(
      [&] { run(with([](SamplingParams& s) { s.top_k = -2; }), tok, cnt); },
      {"[sample]", "top_k -2"});
  testing::expect_error_contains(
      [&] { run(with([](SamplingParams& s) { s.top_p = 0; }), tok, cnt); },
      {"[sample]", "top_p 0"});
  testing::expect_error_contains(
      [&] { run(with([](SamplingParams& s) { s.min_p = 1.5; }), tok, cnt); },
      {"[sample]", "min_p 1.5"});
  auto tok4 = ctx.empty({4}, DType::i32, "tok4");
  testing::expect_error_contains([&] { run(sp, tok4, cnt); }, {"[sample]", "tok4", "(4)", "(3)"});
  auto cnt3 = ctx.zeros({3, 3}, DType::i64, "cnt3");
  testing::expect_error_contains([&] { run(sp, tok, cnt3); },
                                 {"[sample]", "cnt3", "(3, 3)", "(3, 2)"});
  auto cnt32 = ctx.zeros({3, 2}, DType::i32, "cnt32");
  testing::expect_error_contains([&] { run(sp, tok, cnt32); }, {"[sample]", "cnt32", "i64"});
  cnt.ptr<int64_t>()[3] = int64_t{1} << 32;
  testing::expect_error_contains([&] { run(sp, tok, cnt); },
                                 {"[sample]", "row 1", "position 4294967296"});
  cnt.ptr<int64_t>()[3] = 0;
  cnt.ptr<int64_t>()[4] = -5;
  testing::expect_error_contains([&] { run(sp, tok, cnt); }, {"[sample]", "row 2", "stream -5"});
}

}  // namespace
}  // namespace r1kit::kernels
