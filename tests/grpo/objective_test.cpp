// The GRPO-family objectives (grpo/objective.h) against direct computations written from the
// header's formulas: the per-sequence loss for every combination of switches (value, analytic
// gradient and central finite differences of an independent reference with explicit
// stop-gradients), the plain policy gradient at ratio 1, the aggregation weights, the advantage
// estimators, the KL estimators and the config parsing.
#include "grpo/objective.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "gtest/gtest.h"

namespace r1kit::grpo {
namespace {

const double kNaN = std::numeric_limits<double>::quiet_NaN();
const LossAggregation kAggregations[] = {LossAggregation::seq_mean_token_mean,
                                         LossAggregation::token_mean,
                                         LossAggregation::seq_mean_token_sum_norm};

// ---- The reference loss.

struct Seq {
  std::vector<double> lp, old, ref, roll, ent, adv;
  std::vector<uint8_t> mask;
  int64_t n() const { return static_cast<int64_t>(lp.size()); }
  double len() const { return static_cast<double>(std::count(mask.begin(), mask.end(), 1)); }
};

struct LossCase {
  LossConfig cfg;
  KlConfig kl;
  LossNorms norms;
  bool pass_ref = true;  // hand ref_logprob to sequence_loss
};

double ref_k(KlEstimator e, double lp, double ref) {
  const double d = lp - ref;
  return e == KlEstimator::k1 ? d : e == KlEstimator::k2 ? d * d / 2 : std::exp(-d) + d - 1;
}
double ref_dk(KlEstimator e, double lp, double ref) {
  const double d = lp - ref;
  return e == KlEstimator::k1 ? 1 : e == KlEstimator::k2 ? d : 1 - std::exp(-d);
}

// c_t: the weight of each masked token of a sequence of `len` masked tokens.
double agg_weight(LossAggregation a, double len, const LossNorms& nm) {
  if (a == LossAggregation::seq_mean_token_mean) return 1 / (nm.sequences * len);
  if (a == LossAggregation::token_mean) return 1 / nm.tokens;
  return 1 / (nm.sequences * nm.constant);
}

struct RefResult {
  double loss = 0, pg = 0, clipped = 0, dual = 0, capped = 0, kl = 0, entropy = 0, ratio = 0,
         ratio_max = 0;
  std::vector<double> dlp, dent;  // analytic ∂L/∂ℓ (at ℓ_sg = ℓ) and ∂L/∂H
};

// L(ℓ, ℓ_sg) with entropies H. The token ratio uses ℓ directly; the sequence ratio is
// r_t = s(ℓ_sg)·exp(ℓ_t − ℓ_sg_t) and its clip decision is taken on s(ℓ_sg). The PPO surrogate
// max(−A r, −A clip(r)) is written by cases: −A·min(r, 1 + ε_high) for A > 0, |A|·max(r, 1 − ε_low)
// for A < 0, and with the dual clip c the latter is capped at c·|A| (binds when max(r, lo) > c).
RefResult ref_loss(const Seq& s, const std::vector<double>& lp, const std::vector<double>& lp_sg,
                   const std::vector<double>& H, const LossCase& u) {
  const LossConfig& cfg = u.cfg;
  const bool use_ref = u.pass_ref;
  const bool kl_loss = u.kl.placement == KlPlacement::loss;
  const double lo = 1 - cfg.clip_low, hi = 1 + cfg.clip_high;
  const double len = s.len(), c = agg_weight(cfg.aggregation, len, u.norms);
  double mean_log = 0;
  for (int64_t t = 0; t < s.n(); ++t)
    if (s.mask[t]) mean_log += (lp_sg[t] - s.old[t]) / len;
  const double seq_r = std::exp(mean_log);
  RefResult out;
  out.dlp.assign(s.n(), 0.0);
  out.dent.assign(s.n(), 0.0);
  for (int64_t t = 0; t < s.n(); ++t) {
    if (!s.mask[t]) continue;
    const double A = s.adv[t];
    double r, r_dec;
    if (cfg.ratio == RatioLevel::token) {
      r = r_dec = std::exp(lp[t] - s.old[t]);
    } else {
      r = seq_r * std::exp(lp[t] - lp_sg[t]);
      r_dec = seq_r;
    }
    bool zero;
    double pg;
    if (A > 0) {
      zero = r_dec > hi;
      pg = zero ? -A * hi : -A * r;
    } else {
      zero = r_dec < lo;
      pg = zero ? -A * lo : -A * r;
      if (cfg.dual_clip > 0 && std::max(r_dec, lo) > cfg.dual_clip) {
        zero = true;
        pg = -A * cfg.dual_clip;
        out.dual += 1;
      }
    }
    double w = 1;
    if (cfg.importance_sampling) {
      w = std::exp(s.old[t] - s.roll[t]);
      if (w >= cfg.is_cap) out.capped += 1;
      w = std::min(w, cfg.is_cap);
    }
    double x = w * pg - cfg.entropy_coef * H[t];
    double g = zero ? 0.0 : w * -A * r;  // ∂r_t/∂ℓ_t = r_t for both ratio forms
    if (use_ref) out.kl += ref_k(u.kl.estimator, lp[t], s.ref[t]);
    if (kl_loss) {
      x += u.kl.beta * ref_k(u.kl.estimator, lp[t], s.ref[t]);
      g += u.kl.beta * ref_dk(u.kl.estimator, lp[t], s.ref[t]);
    }
    out.loss += c * x;
    out.pg += c * w * pg;
    out.clipped += zero;
    out.entropy += H[t];
    out.ratio += r;
    out.ratio_max = std::max(out.ratio_max, r);
    out.dlp[t] = c * g;
    out.dent[t] = -cfg.entropy_coef * c;
  }
  return out;
}

LossStats run(const Seq& s, const LossCase& u, std::vector<double>& dl, std::vector<double>& de) {
  dl.assign(s.n(), kNaN);  // poison: every entry must be written
  de.assign(s.n(), kNaN);
  SequenceTerms t;
  t.n = s.n();
  t.logprob = s.lp.data();
  t.old_logprob = s.old.data();
  t.ref_logprob = u.pass_ref ? s.ref.data() : nullptr;
  t.rollout_logprob = s.roll.data();  // given even with IS off: the switch alone must decide
  t.entropy = s.ent.data();
  t.advantage = s.adv.data();
  t.mask = s.mask.data();
  return sequence_loss(t, u.cfg, u.kl, u.norms, dl.data(), de.data());
}

bool near_any(double x, const std::vector<double>& bs, double margin) {
  for (double b : bs)
    if (std::abs(x - b) < margin) return true;
  return false;
}

// A random sequence of 3..9 tokens: ratios spread over [0.5, 4] (a log-uniform offset per
// sequence plus per-token noise), IS weights over [0.4, 3.5], signed advantages (constant or per
// token), some tokens masked out (with wild values that must be ignored). Ratios (token and
// sequence) and IS weights stay 2e-3 away from every clip, dual-clip and cap boundary.
Seq make_seq(std::mt19937_64& rng) {
  std::uniform_real_distribution<double> U(0, 1);
  auto uni = [&](double a, double b) { return a + (b - a) * U(rng); };
  const std::vector<double> bounds = {0.8, 1.2, 1.28, 3.0};
  for (;;) {
    Seq s;
    const int n = 3 + static_cast<int>(U(rng) * 7);
    const double base = uni(std::log(0.5), std::log(4.0));
    const bool per_token_adv = U(rng) < 0.25;
    const double a0 = (U(rng) < 0.5 ? -1 : 1) * uni(0.2, 2.0);
    bool ok = true;
    for (int t = 0; t < n; ++t) {
      const bool m = U(rng) < 0.8;
      const double old = -uni(0.05, 4.0);
      const double lp = old + (m ? base + uni(-0.35, 0.35) : uni(-5, 5));
      s.old.push_back(old);
      s.lp.push_back(lp);
      s.ref.push_back(lp + uni(-1.5, 1.5));
      const double w = std::exp(uni(std::log(0.4), std::log(3.5)));
      s.roll.push_back(old - std::log(w));
      s.ent.push_back(uni(0, 3));
      s.adv.push_back(per_token_adv ? (U(rng) < 0.5 ? -1 : 1) * uni(0.2, 2.0) : a0);
      s.mask.push_back(m);
      if (m && (near_any(std::exp(lp - old), bounds, 2e-3) || std::abs(w - 2.0) < 2e-3)) ok = false;
    }
    if (s.len() == 0 || !ok) continue;
    double ml = 0;
    for (int t = 0; t < n; ++t)
      if (s.mask[t]) ml += s.lp[t] - s.old[t];
    if (near_any(std::exp(ml / s.len()), bounds, 2e-3)) continue;
    return s;
  }
}

void expect_close(double got, double want, double tol, const std::string& what) {
  EXPECT_NEAR(got, want, tol * (1 + std::abs(want))) << what;
}

// ---- sequence_loss

// Every combination the brief lists: ratio × clip × dual clip × KL (none without / with a
// reference given, loss and reward with each estimator) × aggregation × IS × entropy bonus.
std::vector<LossCase> all_combinations() {
  std::vector<LossCase> out;
  struct KlCase {
    KlPlacement placement;
    KlEstimator estimator;
    bool pass_ref;
  };
  std::vector<KlCase> kls = {{KlPlacement::none, KlEstimator::k3, false},
                             {KlPlacement::none, KlEstimator::k3, true}};
  for (KlPlacement p : {KlPlacement::loss, KlPlacement::reward})
    for (KlEstimator e : {KlEstimator::k1, KlEstimator::k2, KlEstimator::k3})
      kls.push_back({p, e, true});
  for (RatioLevel ratio : {RatioLevel::token, RatioLevel::sequence})
    for (double clip_high : {0.2, 0.28})
      for (double dual_clip : {0.0, 3.0})
        for (const KlCase& kc : kls)
          for (LossAggregation agg : kAggregations)
            for (bool is : {true, false})
              for (double ent : {0.0, 0.01}) {
                // ratio, clip low/high, dual clip, aggregation, C, IS, IS cap, entropy coef.
                const LossConfig cfg{ratio, 0.2, clip_high, dual_clip, agg, 0, is, 2.0, ent};
                const double beta = kc.placement == KlPlacement::none ? 0.0 : 0.07;
                out.push_back({cfg, {beta, kc.estimator, kc.placement}, {}, kc.pass_ref});
              }
  return out;
}

std::string describe(const LossCase& u) {
  return "ratio " + std::to_string(int(u.cfg.ratio)) + " clip_high " +
         std::to_string(u.cfg.clip_high) + " dual " + std::to_string(u.cfg.dual_clip) + " kl " +
         std::to_string(int(u.kl.placement)) + "/" + std::to_string(int(u.kl.estimator)) + " ref " +
         std::to_string(u.pass_ref) + " agg " + std::to_string(int(u.cfg.aggregation)) + " is " +
         std::to_string(u.cfg.importance_sampling) + " ent " + std::to_string(u.cfg.entropy_coef);
}

struct Coverage {
  double tokens = 0, clipped = 0, dual = 0, capped = 0;
};

// One sequence of one case: the value, the stats, the gradients against the reference's analytic
// ones and against central differences of the reference loss.
void check_sequence(const Seq& s, const LossCase& u, Coverage& cov) {
  const std::string what = describe(u);
  std::vector<double> dl, de;
  const LossStats st = run(s, u, dl, de);
  const RefResult rr = ref_loss(s, s.lp, s.lp, s.ent, u);
  // The same terms summed in another order: rounding only, hence 1e-12.
  expect_close(st.loss, rr.loss, 1e-12, what);
  expect_close(st.pg, rr.pg, 1e-12, what);
  EXPECT_EQ(st.tokens, s.len()) << what;
  EXPECT_EQ(st.clipped, rr.clipped) << what;
  EXPECT_EQ(st.dual_clipped, rr.dual) << what;
  EXPECT_EQ(st.is_capped, rr.capped) << what;
  expect_close(st.kl, rr.kl, 1e-12, what);
  expect_close(st.entropy, rr.entropy, 1e-12, what);
  expect_close(st.ratio, rr.ratio, 1e-12, what);
  expect_close(st.ratio_max, rr.ratio_max, 1e-12, what);
  EXPECT_TRUE(u.pass_ref || st.kl == 0) << what;
  cov.tokens += st.tokens;
  cov.clipped += st.clipped;
  cov.dual += st.dual_clipped;
  cov.capped += st.is_capped;
  // Central differences of L(ℓ, ℓ_sg) in ℓ_t (and H_t) with ℓ_sg held at ℓ. L is smooth near the
  // inputs (no clip or cap boundary within 2e-3 of any ratio or weight, and a step h = 1e-6 moves
  // a ratio by ~1e-6·r), so the truncation error h²/6·|L'''| is ~1e-12·O(10) and the rounding
  // error ε·|L|/h ~2e-16·O(1)/1e-6 = 2e-10: a tolerance of 1e-7 (relative, absolute near 0)
  // leaves a wide margin yet catches any wrong factor, sign or missing term.
  const double h = 1e-6;
  for (int64_t t = 0; t < s.n(); ++t) {
    expect_close(dl[t], rr.dlp[t], 1e-12, what + " analytic dlogprob");
    expect_close(de[t], rr.dent[t], 1e-12, what + " analytic dentropy");
    std::vector<double> p = s.lp, m = s.lp, hp = s.ent, hm = s.ent;
    p[t] += h;
    m[t] -= h;
    hp[t] += h;
    hm[t] -= h;
    const double fd =
        (ref_loss(s, p, s.lp, s.ent, u).loss - ref_loss(s, m, s.lp, s.ent, u).loss) / (2 * h);
    const double fdh =
        (ref_loss(s, s.lp, s.lp, hp, u).loss - ref_loss(s, s.lp, s.lp, hm, u).loss) / (2 * h);
    expect_close(dl[t], fd, 1e-7, what + " fd dlogprob");
    expect_close(de[t], fdh, 1e-7, what + " fd dentropy");
    EXPECT_TRUE(s.mask[t] || (dl[t] == 0 && de[t] == 0)) << what;
  }
  if (u.kl.placement == KlPlacement::reward) {
    // The KL is then a statistic only: the loss is that of a run without any reference model.
    LossCase v = u;
    v.kl.placement = KlPlacement::none;
    v.kl.beta = 0;
    v.pass_ref = false;
    std::vector<double> dl2, de2;
    const LossStats st2 = run(s, v, dl2, de2);
    EXPECT_DOUBLE_EQ(st2.loss, st.loss) << what;
    for (int64_t t = 0; t < s.n(); ++t) EXPECT_DOUBLE_EQ(dl2[t], dl[t]) << what;
  }
}

TEST(ObjectiveSequenceLoss, EveryCombinationMatchesTheReferenceAndFiniteDifferences) {
  std::mt19937_64 rng(20240117);
  const auto cases = all_combinations();
  EXPECT_EQ(cases.size(), 2u * 2 * 2 * 8 * 3 * 2 * 2);
  Coverage cov;
  for (LossCase u : cases) {
    std::vector<Seq> batch;
    for (int i = 0; i < 4; ++i) batch.push_back(make_seq(rng));
    u.norms = {4, 0, 11};
    for (const Seq& s : batch) u.norms.tokens += s.len();
    for (const Seq& s : batch) check_sequence(s, u, cov);
  }
  // The inputs really exercise every branch: clipped and unclipped tokens, dual clips, capped IS.
  EXPECT_GT(cov.clipped, 0.1 * cov.tokens);
  EXPECT_LT(cov.clipped, 0.9 * cov.tokens);
  EXPECT_GT(cov.dual, 0);
  EXPECT_GT(cov.capped, 0);
}

TEST(ObjectiveSequenceLoss, SequenceRatioGradientIsGsposWithSeqMeanTokenMean) {
  // Without clipping (wide range), IS, KL or entropy: loss = −(1/S)·A·s_i and the gradient is
  // −(1/S)·A·∇s_i, s_i taken WITHOUT stop-gradient (differences of the true sequence ratio).
  std::mt19937_64 rng(7);
  LossCase u;
  u.cfg.ratio = RatioLevel::sequence;
  u.cfg.clip_low = 0.95;
  u.cfg.clip_high = 50;
  u.cfg.importance_sampling = false;
  u.norms.sequences = 3;
  for (int i = 0; i < 3; ++i) {
    const Seq s = make_seq(rng);
    auto f = [&](const std::vector<double>& lp) {
      double ml = 0;
      for (int64_t t = 0; t < s.n(); ++t)
        if (s.mask[t]) ml += (lp[t] - s.old[t]) / s.len();
      double a = 0;  // the mean advantage over the tokens carries per-token advantages too
      for (int64_t t = 0; t < s.n(); ++t)
        if (s.mask[t]) a += s.adv[t] / s.len();
      return -(1 / u.norms.sequences) * a * std::exp(ml);
    };
    std::vector<double> dl, de;
    const LossStats st = run(s, u, dl, de);
    EXPECT_EQ(st.clipped, 0);
    expect_close(st.loss, f(s.lp), 1e-12, "loss");
    bool per_token = false;
    for (int64_t t = 0; t < s.n(); ++t) per_token |= s.adv[t] != s.adv[0];
    if (per_token) continue;  // GSPO's gradient form holds for one advantage per sequence
    for (int64_t t = 0; t < s.n(); ++t) {
      std::vector<double> p = s.lp, m = s.lp;
      p[t] += 1e-6;
      m[t] -= 1e-6;
      expect_close(dl[t], (f(p) - f(m)) / 2e-6, 1e-7, "gspo gradient");
    }
  }
}

TEST(ObjectivePolicyGradient, AtRatioOneTheGradientIsMinusWeightTimesAdvantage) {
  std::mt19937_64 rng(11);
  // clip 0/0 makes r = 1 a tie of the two surrogate terms: ties go to the unclipped one.
  for (RatioLevel ratio : {RatioLevel::token, RatioLevel::sequence})
    for (LossAggregation agg : kAggregations)
      for (double clip : {0.2, 0.0}) {
        LossCase u;
        u.cfg.ratio = ratio;
        u.cfg.aggregation = agg;
        u.cfg.clip_low = u.cfg.clip_high = clip;
        u.cfg.importance_sampling = false;
        u.cfg.dual_clip = 3;
        std::vector<Seq> batch;
        double N = 0;
        for (int i = 0; i < 5; ++i) {
          batch.push_back(make_seq(rng));
          batch.back().old = batch.back().lp;  // ℓ° = ℓ
          N += batch.back().len();
        }
        u.norms = {5, N, 16};
        for (const Seq& s : batch) {
          const double len = s.len();
          const double c = agg_weight(agg, len, u.norms);
          std::vector<double> dl, de;
          const LossStats st = run(s, u, dl, de);
          double loss = 0;
          for (int64_t t = 0; t < s.n(); ++t) {
            EXPECT_NEAR(dl[t], s.mask[t] ? -c * s.adv[t] : 0.0, 1e-15);
            if (s.mask[t]) loss -= c * s.adv[t];
          }
          EXPECT_NEAR(st.loss, loss, 1e-14);
          EXPECT_EQ(st.clipped, 0);
          EXPECT_NEAR(st.ratio, len, 1e-14);
        }
      }
}

TEST(ObjectiveAggregation, NormsAreGlobalAndWeightsAreExact) {
  std::mt19937_64 rng(5);
  std::vector<Seq> batch;
  double N = 0;
  for (int i = 0; i < 6; ++i) {
    batch.push_back(make_seq(rng));
    Seq& s = batch.back();
    s.old = s.lp;
    std::fill(s.adv.begin(), s.adv.end(), 1.0);
    N += s.len();
  }
  for (LossAggregation agg : kAggregations) {
    LossCase u;
    u.cfg.aggregation = agg;
    u.cfg.importance_sampling = false;
    u.norms = {6, N, 13};
    std::vector<double> dl, de;
    double all = 0, half1 = 0, half2 = 0;
    for (size_t i = 0; i < batch.size(); ++i) {
      const double l = run(batch[i], u, dl, de).loss;
      all += l;
      // Each sequence's share: equal per sequence, per token, or per token over S·C.
      EXPECT_NEAR(l, -agg_weight(agg, batch[i].len(), u.norms) * batch[i].len(), 1e-15);
    }
    for (size_t i = 0; i < 3; ++i) half1 += run(batch[i], u, dl, de).loss;
    for (size_t i = 3; i < 6; ++i) half2 += run(batch[i], u, dl, de).loss;
    EXPECT_NEAR(half1 + half2, all, 1e-15);
    // token_mean with N = all masked tokens and seq_mean_token_mean with S = all sequences: −1.
    EXPECT_NEAR(all, agg == LossAggregation::seq_mean_token_sum_norm ? -N / (6 * 13.0) : -1.0,
                1e-14);
  }
}

TEST(ObjectiveSequenceLoss, EmptyMaskAndMissingInputs) {
  Seq s;
  s.lp = {-1, -2, -0.5};
  s.old = {-1.2, -2, -0.1};
  s.ref = s.roll = s.ent = s.lp;
  s.adv = {1, 1, 1};
  s.mask = {0, 0, 0};
  LossCase u;
  u.norms = {1, 1, 1};
  std::vector<double> dl, de;
  const LossStats st = run(s, u, dl, de);
  EXPECT_EQ(st.loss, 0.0);
  EXPECT_EQ(st.tokens, 0.0);
  for (int t = 0; t < 3; ++t) EXPECT_TRUE(dl[t] == 0 && de[t] == 0);
  SequenceTerms t;
  t.n = 3;
  t.logprob = s.lp.data();
  t.old_logprob = s.old.data();
  t.advantage = s.adv.data();
  t.mask = s.mask.data();
  KlConfig kl;
  kl.placement = KlPlacement::loss;
  kl.beta = 0.1;
  EXPECT_THROW(sequence_loss(t, u.cfg, kl, u.norms, dl.data(), nullptr), Error);  // no ref
  LossConfig cfg;
  cfg.entropy_coef = 0.01;
  EXPECT_THROW(sequence_loss(t, cfg, KlConfig{}, u.norms, dl.data(), nullptr), Error);  // no H
  t.old_logprob = nullptr;
  EXPECT_THROW(sequence_loss(t, u.cfg, KlConfig{}, u.norms, dl.data(), nullptr), Error);
}

// ---- Advantages

double mean_of(const std::vector<double>& v) {
  double m = 0;
  for (double x : v) m += x / static_cast<double>(v.size());
  return m;
}
double std_of(const std::vector<double>& v) {
  if (v.size() < 2) return 0;
  const double m = mean_of(v);
  double ss = 0;
  for (double x : v) ss += (x - m) * (x - m);
  return std::sqrt(ss / static_cast<double>(v.size() - 1));
}

// Direct: for each kept sample, scan the batch for its kept group mates. A group whose rewards are
// all equal has advantage 0 (no signal), whatever ε.
std::vector<double> ref_advantages(const std::vector<double>& R, const std::vector<int64_t>& g,
                                   const std::vector<uint8_t>& keep, const AdvantageConfig& cfg) {
  std::vector<double> all, out(R.size(), 0.0);
  for (size_t i = 0; i < R.size(); ++i)
    if (keep[i]) all.push_back(R[i]);
  for (size_t i = 0; i < R.size(); ++i) {
    if (!keep[i]) continue;
    std::vector<double> mates, others;
    for (size_t j = 0; j < R.size(); ++j)
      if (keep[j] && g[j] == g[i]) {
        mates.push_back(R[j]);
        if (j != i) others.push_back(R[j]);
      }
    const bool equal = std::all_of(mates.begin(), mates.end(), [&](double x) { return x == R[i]; });
    if (equal) continue;
    const double num =
        cfg.estimator == AdvantageEstimator::rloo ? R[i] - mean_of(others) : R[i] - mean_of(mates);
    double div = 1;
    if (cfg.batch_std)
      div = std_of(all) + cfg.eps;
    else if (cfg.estimator == AdvantageEstimator::grpo)
      div = std_of(mates) + cfg.eps;
    out[i] = num / div;
  }
  return out;
}

TEST(AdvantageEstimators, HandWorkedGroup) {
  // Group 3 = {1, 0, 0}: mean 1/3, Bessel std sqrt((4/9 + 1/9 + 1/9)/2) = 1/√3.
  const std::vector<double> R = {1, 0, 0};
  const std::vector<int64_t> g = {3, 3, 3};
  const std::vector<uint8_t> k = {1, 1, 1};
  AdvantageConfig c;
  c.eps = 0;
  auto a = compute_advantages(R, g, k, c);
  EXPECT_NEAR(a[0], 2 / std::sqrt(3.0), 1e-14);
  EXPECT_NEAR(a[1], -1 / std::sqrt(3.0), 1e-14);
  c.estimator = AdvantageEstimator::dr_grpo;
  a = compute_advantages(R, g, k, c);
  EXPECT_NEAR(a[0], 2.0 / 3, 1e-15);
  EXPECT_NEAR(a[2], -1.0 / 3, 1e-15);
  c.estimator = AdvantageEstimator::rloo;
  a = compute_advantages(R, g, k, c);
  EXPECT_NEAR(a[0], 1.0, 1e-15);   // 1 − (0 + 0)/2
  EXPECT_NEAR(a[1], -0.5, 1e-15);  // 0 − (1 + 0)/2
}

TEST(AdvantageEstimators, MatchADirectComputation) {
  std::mt19937_64 rng(99);
  std::uniform_real_distribution<double> U(0, 1);
  const std::vector<int64_t> ids = {7, -2, 3, 11, 5};
  for (int trial = 0; trial < 20; ++trial) {
    std::vector<double> R;
    std::vector<int64_t> g;
    std::vector<uint8_t> k;
    for (int i = 0; i < 24; ++i) {  // interleaved groups, mixed discrete and continuous rewards
      g.push_back(ids[static_cast<size_t>(U(rng) * ids.size())]);
      R.push_back(U(rng) < 0.5 ? std::floor(U(rng) * 3) / 2 : U(rng) * 4 - 2);
      k.push_back(U(rng) < 0.8);
      if (!k.back() && U(rng) < 0.5) R.back() = kNaN;  // a dropped sample's reward is not read
    }
    for (double r : {1.0, 1.0, 1.0}) R.push_back(r), g.push_back(42), k.push_back(1);  // equal
    R.push_back(0.7), g.push_back(99), k.push_back(1);                                 // single
    R.push_back(0.1), g.push_back(99), k.push_back(0);
    R.push_back(0.3), g.push_back(55), k.push_back(0);  // a fully dropped group
    for (AdvantageEstimator e :
         {AdvantageEstimator::grpo, AdvantageEstimator::dr_grpo, AdvantageEstimator::rloo})
      for (bool bs : {false, true})
        for (double eps : {0.0, 1e-6, 0.1}) {
          AdvantageConfig c{e, bs, eps};
          const auto got = compute_advantages(R, g, k, c);
          const auto want = ref_advantages(R, g, k, c);
          // Dropped samples are out of the statistics: the compacted batch gives the same.
          std::vector<double> Rk;
          std::vector<int64_t> gk;
          for (size_t i = 0; i < R.size(); ++i)
            if (k[i]) Rk.push_back(R[i]), gk.push_back(g[i]);
          const auto compact = compute_advantages(Rk, gk, std::vector<uint8_t>(Rk.size(), 1), c);
          size_t j = 0;
          for (size_t i = 0; i < R.size(); ++i) {
            EXPECT_NEAR(got[i], want[i], 1e-12 * (1 + std::abs(want[i])))
                << "estimator " << int(e) << " batch_std " << bs << " eps " << eps << " i " << i;
            if (k[i]) {
              EXPECT_NEAR(got[i], compact[j++], 1e-13 * (1 + std::abs(got[i])));
            } else {
              EXPECT_EQ(got[i], 0.0);
            }
            if (g[i] == 42 || g[i] == 99) {
              EXPECT_EQ(got[i], 0.0);
            }
          }
        }
  }
}

TEST(AdvantageEdgeCases, EqualRewardsWithInexactMeanGiveZero) {
  // 0.1 + 0.1 + 0.1 = 0.30000000000000004: the mean is not exactly 0.1. With ε = 0 and a group
  // std that is itself rounding noise, (R − mean)/std must still be 0, not noise/noise = O(1).
  const std::vector<double> R = {0.1, 0.1, 0.1, 0.0, 1.0};
  const std::vector<int64_t> g = {1, 1, 1, 2, 2};
  const std::vector<uint8_t> k = {1, 1, 1, 1, 1};
  for (AdvantageEstimator e :
       {AdvantageEstimator::grpo, AdvantageEstimator::dr_grpo, AdvantageEstimator::rloo})
    for (bool bs : {false, true})
      for (double eps : {0.0, 1e-6}) {
        const auto a = compute_advantages(R, g, k, AdvantageConfig{e, bs, eps});
        for (int i = 0; i < 3; ++i)
          EXPECT_NEAR(a[i], 0.0, 1e-9)
              << "estimator " << int(e) << " batch_std " << bs << " eps " << eps << " i " << i;
      }
}

TEST(AdvantageEdgeCases, NonFiniteRewards) {
  const std::vector<int64_t> g = {0, 0, 1, 1};
  for (double bad : {kNaN, std::numeric_limits<double>::infinity()}) {
    EXPECT_THROW(compute_advantages({1, bad, 0, 1}, g, {1, 1, 1, 1}, {}), Error);
    const auto a = compute_advantages({1, bad, 0, 1}, g, {1, 0, 1, 1}, {});
    EXPECT_EQ(a[0], 0.0);  // alone in its group once the bad sample is dropped
    EXPECT_EQ(a[1], 0.0);
    EXPECT_NEAR(a[3], 0.5 / (std::sqrt(0.5) + 1e-6), 1e-9);  // mean 0.5, std √0.5
  }
  EXPECT_THROW(compute_advantages({1, 2}, {0}, {1, 1}, {}), Error);
}

// ---- KL estimators

TEST(KlEstimators, ValuesGradientsAndNonNegativity) {
  std::vector<double> ds = {0, 1e-12, -1e-12, 1e-8, -1e-8, 1e-4, -1e-4, 30, -30};
  for (int i = -50; i <= 50; ++i) ds.push_back(0.1 * i + 0.013);
  for (double d : ds) {
    const double ref = -1.7, lp = ref + d;
    for (KlEstimator e : {KlEstimator::k1, KlEstimator::k2, KlEstimator::k3}) {
      const double v = kl_value(e, lp, ref), want = ref_k(e, lp, ref);
      // exp(−d) + d − 1 cancels for small d (absolute error ~1e-16): hence the absolute part.
      EXPECT_NEAR(v, want, 1e-14 + 1e-13 * std::abs(want)) << int(e) << " d " << d;
      EXPECT_NEAR(kl_grad(e, lp, ref), ref_dk(e, lp, ref), 1e-13 * (1 + std::abs(want)));
      if (std::abs(d) < 20) {
        const double h = 1e-6;
        const double fd = (kl_value(e, lp + h, ref) - kl_value(e, lp - h, ref)) / (2 * h);
        EXPECT_NEAR(kl_grad(e, lp, ref), fd, 1e-7 * (1 + std::abs(fd))) << int(e) << " d " << d;
      }
    }
    EXPECT_GE(kl_value(KlEstimator::k3, lp, ref), 0.0) << d;
  }
  EXPECT_EQ(kl_value(KlEstimator::k3, -2, -2), 0.0);
  EXPECT_EQ(kl_grad(KlEstimator::k3, -2, -2), 0.0);
}

// ---- Config parsing

// The message of the error C::from_json(j) throws.
template <class C>
std::string parse_error(const Json& j, const char* where) {
  try {
    C::from_json(j, where);
  } catch (const Error& e) {
    return e.what();
  }
  return "<no error>";
}
bool contains(const std::string& s, const std::string& sub) {
  return s.find(sub) != s.npos;
}

TEST(GrpoConfigLoss, RoundTripDefaultsAndErrors) {
  LossConfig d = LossConfig::from_json(Json::object(), "grpo.loss");
  EXPECT_EQ(d.to_json(), LossConfig{}.to_json());
  for (RatioLevel r : {RatioLevel::token, RatioLevel::sequence})
    for (LossAggregation a : kAggregations) {
      const LossConfig c{r, 0.1, 0.28, 3, a, 512, false, 5, 0.001};
      const Json j = c.to_json();
      const LossConfig b = LossConfig::from_json(j, "grpo.loss");
      EXPECT_TRUE(b.ratio == r && b.aggregation == a && b.clip_low == 0.1 && b.clip_high == 0.28 &&
                  b.dual_clip == 3 && b.norm_constant == 512 && !b.importance_sampling &&
                  b.is_cap == 5 && b.entropy_coef == 0.001)
          << j.dump();
      EXPECT_EQ(b.to_json(), j);
    }
  const std::string unk = parse_error<LossConfig>(Json{{"clip_hihg", 0.3}}, "grpo.loss");
  EXPECT_TRUE(contains(unk, "'clip_hihg'") && contains(unk, "grpo.loss") &&
              contains(unk, "clip_high"))
      << unk;
  for (const Json& bad : {Json{{"clip_low", 1.5}}, Json{{"clip_low", -0.1}},
                          Json{{"dual_clip", 0.5}}, Json{{"dual_clip", 1.0}}, Json{{"is_cap", 0.5}},
                          Json{{"norm_constant", -1}}, Json{{"ratio", 3}}, Json(3)})
    EXPECT_THROW(LossConfig::from_json(bad, "grpo.loss"), Error) << bad.dump();
  const std::string meen = parse_error<LossConfig>(Json{{"aggregation", "token_meen"}}, "loss");
  EXPECT_TRUE(contains(meen, "did you mean \"token_mean\"")) << meen;
  const std::string seq = parse_error<LossConfig>(Json{{"ratio", "sequense"}}, "grpo.loss");
  EXPECT_TRUE(contains(seq, "did you mean \"sequence\"")) << seq;
}

TEST(GrpoConfigKl, DefaultPlacementRoundTripAndErrors) {
  EXPECT_EQ(KlConfig::from_json(Json::object(), "kl").placement, KlPlacement::none);
  EXPECT_EQ(KlConfig::from_json(Json{{"beta", 0}}, "kl").placement, KlPlacement::none);
  EXPECT_FALSE(KlConfig::from_json(Json::object(), "kl").active());
  const KlConfig b = KlConfig::from_json(Json{{"beta", 0.04}}, "kl");
  EXPECT_EQ(b.placement, KlPlacement::loss);
  EXPECT_EQ(b.estimator, KlEstimator::k3);
  EXPECT_TRUE(b.active());
  // β = 0 with a placement keeps the reference for the KL metric only.
  EXPECT_EQ(KlConfig::from_json(Json{{"placement", "reward"}}, "kl").placement,
            KlPlacement::reward);
  for (KlEstimator e : {KlEstimator::k1, KlEstimator::k2, KlEstimator::k3})
    for (KlPlacement p : {KlPlacement::loss, KlPlacement::reward}) {
      const KlConfig c{0.25, e, p};
      const KlConfig r = KlConfig::from_json(c.to_json(), "kl");
      EXPECT_EQ(r.beta, 0.25);
      EXPECT_EQ(r.estimator, e);
      EXPECT_EQ(r.placement, p);
      EXPECT_EQ(r.to_json(), c.to_json());
    }
  EXPECT_THROW(KlConfig::from_json(Json{{"beta", -0.1}}, "kl"), Error);
  const std::string none = parse_error<KlConfig>(Json{{"beta", 0.1}, {"placement", "none"}}, "kl");
  EXPECT_TRUE(contains(none, "placement")) << none;
  const std::string unk = parse_error<KlConfig>(Json{{"betta", 0.1}}, "grpo.kl");
  EXPECT_TRUE(contains(unk, "'betta'") && contains(unk, "grpo.kl")) << unk;
  const std::string rew = parse_error<KlConfig>(Json{{"placement", "rewrad"}}, "grpo.kl");
  EXPECT_TRUE(contains(rew, "did you mean \"reward\"")) << rew;
}

TEST(GrpoConfigAdvantage, RoundTripAndErrors) {
  EXPECT_EQ(AdvantageConfig::from_json(Json::object(), "adv").to_json(),
            AdvantageConfig{}.to_json());
  for (AdvantageEstimator e :
       {AdvantageEstimator::grpo, AdvantageEstimator::dr_grpo, AdvantageEstimator::rloo}) {
    const AdvantageConfig c{e, true, 0.01};
    const AdvantageConfig r = AdvantageConfig::from_json(c.to_json(), "adv");
    EXPECT_EQ(r.estimator, e);
    EXPECT_TRUE(r.batch_std);
    EXPECT_EQ(r.eps, 0.01);
    EXPECT_EQ(r.to_json(), c.to_json());
  }
  const std::string unk = parse_error<AdvantageConfig>(Json{{"batch_sdt", true}}, "grpo.adv");
  EXPECT_TRUE(contains(unk, "'batch_sdt'") && contains(unk, "batch_std")) << unk;
  EXPECT_THROW(AdvantageConfig::from_json(Json{{"eps", -1e-6}}, "adv"), Error);
  const std::string est = parse_error<AdvantageConfig>(Json{{"estimator", "rlooo"}}, "adv");
  EXPECT_TRUE(contains(est, "did you mean \"rloo\"")) << est;
}

}  // namespace
}  // namespace r1kit::grpo
