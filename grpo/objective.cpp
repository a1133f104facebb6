// Advantages and the per-sequence GRPO-family loss (grpo/objective.h).
#include "grpo/objective.h"

#include <algorithm>
#include <cmath>
#include <map>

#include "core/error.h"

namespace r1kit::grpo {
namespace {

template <typename E>
using Names = std::vector<std::pair<std::string, E>>;

const Names<AdvantageEstimator> kEstimators = {{"grpo", AdvantageEstimator::grpo},
                                               {"dr_grpo", AdvantageEstimator::dr_grpo},
                                               {"rloo", AdvantageEstimator::rloo}};
const Names<RatioLevel> kRatios = {{"token", RatioLevel::token},
                                   {"sequence", RatioLevel::sequence}};
const Names<KlEstimator> kKlEstimators = {
    {"k1", KlEstimator::k1}, {"k2", KlEstimator::k2}, {"k3", KlEstimator::k3}};
const Names<KlPlacement> kPlacements = {
    {"none", KlPlacement::none}, {"loss", KlPlacement::loss}, {"reward", KlPlacement::reward}};
const Names<LossAggregation> kAggregations = {
    {"seq_mean_token_mean", LossAggregation::seq_mean_token_mean},
    {"token_mean", LossAggregation::token_mean},
    {"seq_mean_token_sum_norm", LossAggregation::seq_mean_token_sum_norm}};

// The keyword of an enum value (the tables above are the one source for both directions).
template <typename E>
std::string keyword(const Names<E>& names, E v) {
  for (const auto& [n, e] : names)
    if (e == v) return n;
  return names.front().first;
}

}  // namespace

AdvantageConfig AdvantageConfig::from_json(const Json& j, std::string_view where) {
  require_object(j, where);
  reject_unknown_keys(j, {"estimator", "batch_std", "eps"}, where);
  AdvantageConfig c;
  c.estimator = get_enum(j, "estimator", where, kEstimators, c.estimator);
  c.batch_std = get_optional<bool>(j, "batch_std", where, c.batch_std);
  c.eps = get_optional<double>(j, "eps", where, c.eps);
  R1_CHECK(std::isfinite(c.eps) && c.eps >= 0, "{}: 'eps' must be finite and >= 0, got {}", where,
           c.eps);
  return c;
}

Json AdvantageConfig::to_json() const {
  return Json{
      {"estimator", keyword(kEstimators, estimator)}, {"batch_std", batch_std}, {"eps", eps}};
}

LossConfig LossConfig::from_json(const Json& j, std::string_view where) {
  require_object(j, where);
  reject_unknown_keys(j,
                      {"ratio", "clip_low", "clip_high", "dual_clip", "aggregation",
                       "norm_constant", "importance_sampling", "is_cap", "entropy_coef"},
                      where);
  LossConfig c;
  c.ratio = get_enum(j, "ratio", where, kRatios, c.ratio);
  c.clip_low = get_optional<double>(j, "clip_low", where, c.clip_low);
  c.clip_high = get_optional<double>(j, "clip_high", where, c.clip_high);
  c.dual_clip = get_optional<double>(j, "dual_clip", where, c.dual_clip);
  c.aggregation = get_enum(j, "aggregation", where, kAggregations, c.aggregation);
  c.norm_constant = get_optional<double>(j, "norm_constant", where, c.norm_constant);
  c.importance_sampling =
      get_optional<bool>(j, "importance_sampling", where, c.importance_sampling);
  c.is_cap = get_optional<double>(j, "is_cap", where, c.is_cap);
  c.entropy_coef = get_optional<double>(j, "entropy_coef", where, c.entropy_coef);
  R1_CHECK(c.clip_low >= 0 && c.clip_low < 1 && c.clip_high >= 0 && std::isfinite(c.clip_high),
           "{}: 'clip_low' must be in [0, 1) and 'clip_high' finite and >= 0, got {} and {}", where,
           c.clip_low, c.clip_high);
  R1_CHECK(c.dual_clip == 0 || (c.dual_clip > 1 && std::isfinite(c.dual_clip)),
           "{}: 'dual_clip' must be 0 (off) or > 1, got {}", where, c.dual_clip);
  R1_CHECK(c.norm_constant >= 0 && std::isfinite(c.norm_constant),
           "{}: 'norm_constant' must be >= 0 (0 = max_new_tokens), got {}", where, c.norm_constant);
  R1_CHECK(c.is_cap >= 1 && std::isfinite(c.is_cap), "{}: 'is_cap' must be finite and >= 1, got {}",
           where, c.is_cap);
  R1_CHECK(std::isfinite(c.entropy_coef), "{}: 'entropy_coef' must be finite", where);
  return c;
}

Json LossConfig::to_json() const {
  return Json{{"ratio", keyword(kRatios, ratio)},
              {"clip_low", clip_low},
              {"clip_high", clip_high},
              {"dual_clip", dual_clip},
              {"aggregation", keyword(kAggregations, aggregation)},
              {"norm_constant", norm_constant},
              {"importance_sampling", importance_sampling},
              {"is_cap", is_cap},
              {"entropy_coef", entropy_coef}};
}

KlConfig KlConfig::from_json(const Json& j, std::string_view where) {
  require_object(j, where);
  reject_unknown_keys(j, {"beta", "estimator", "placement"}, where);
  KlConfig c;
  c.beta = get_optional<double>(j, "beta", where, c.beta);
  R1_CHECK(std::isfinite(c.beta) && c.beta >= 0, "{}: 'beta' must be finite and >= 0, got {}",
           where, c.beta);
  c.estimator = get_enum(j, "estimator", where, kKlEstimators, c.estimator);
  // Without a placement: in the loss when β > 0, else no reference model at all. A placement with
  // β = 0 keeps the reference model for the KL metric only.
  c.placement = get_enum(j, "placement", where, kPlacements,
                         c.beta > 0 ? KlPlacement::loss : KlPlacement::none);
  R1_CHECK(c.placement != KlPlacement::none || c.beta == 0,
           "{}: 'beta' is {} but 'placement' is none (set placement to loss or reward)", where,
           c.beta);
  return c;
}

Json KlConfig::to_json() const {
  return Json{{"beta", beta},
              {"estimator", keyword(kKlEstimators, estimator)},
              {"placement", keyword(kPlacements, placement)}};
}

double kl_value(KlEstimator e, double logprob, double ref_logprob) {
  const double d = logprob - ref_logprob;
  switch (e) {
    case KlEstimator::k1:
      return d;
    case KlEstimator::k2:
      return 0.5 * d * d;
    case KlEstimator::k3:
      return std::expm1(-d) + d;
  }
  return d;
}

double kl_grad(KlEstimator e, double logprob, double ref_logprob) {
  const double d = logprob - ref_logprob;
  switch (e) {
    case KlEstimator::k1:
      return 1.0;
    case KlEstimator::k2:
      return d;
    case KlEstimator::k3:
      return -std::expm1(-d);
  }
  return 1.0;
}

std::vector<double> compute_advantages(const std::vector<double>& rewards,
                                       const std::vector<int64_t>& group,
                                       const std::vector<uint8_t>& keep,
                                       const AdvantageConfig& cfg) {
  const size_t n = rewards.size();
  R1_CHECK(group.size() == n && keep.size() == n,
           "[grpo] compute_advantages: {} rewards, {} group ids, {} keep flags", n, group.size(),
           keep.size());
  for (size_t i = 0; i < n; ++i)
    R1_CHECK(!keep[i] || std::isfinite(rewards[i]), "[grpo] sample {} has a non-finite reward {}",
             i, rewards[i]);
  struct Sums {
    double sum = 0, count = 0;
    std::vector<size_t> members;
  };
  std::map<int64_t, Sums> groups;
  for (size_t i = 0; i < n; ++i) {
    if (!keep[i]) continue;
    Sums& g = groups[group[i]];
    g.sum += rewards[i];
    g.count += 1;
    g.members.push_back(i);
  }
  // Unbiased standard deviation of the values at `idx` (0 with fewer than two).
  auto stdev = [&](const std::vector<size_t>& idx) {
    if (idx.size() < 2) return 0.0;
    double mean = 0;
    for (const size_t i : idx) mean += rewards[i];
    mean /= static_cast<double>(idx.size());
    double ss = 0;
    for (const size_t i : idx) ss += (rewards[i] - mean) * (rewards[i] - mean);
    return std::sqrt(ss / static_cast<double>(idx.size() - 1));
  };
  double batch_div = 1;
  if (cfg.batch_std) {
    std::vector<size_t> all;
    for (size_t i = 0; i < n; ++i)
      if (keep[i]) all.push_back(i);
    batch_div = stdev(all) + cfg.eps;
  }
  std::vector<double> adv(n, 0.0);
  for (const auto& [id, g] : groups) {
    const double mean = g.sum / g.count;
    double div = 1;
    if (cfg.batch_std)
      div = batch_div;
    else if (cfg.estimator == AdvantageEstimator::grpo)
      div = stdev(g.members) + cfg.eps;
    // Equal rewards carry no signal: exactly 0 (R − mean is rounding noise when the mean is
    // inexact, and so is a zero-ε std: noise / noise would be a large advantage).
    bool equal = true;
    for (const size_t i : g.members) equal = equal && rewards[i] == rewards[g.members[0]];
    for (const size_t i : g.members) {
      double a = 0;
      switch (cfg.estimator) {
        case AdvantageEstimator::grpo:
        case AdvantageEstimator::dr_grpo:
          a = rewards[i] - mean;
          break;
        case AdvantageEstimator::rloo:
          a = g.count > 1 ? rewards[i] - (g.sum - rewards[i]) / (g.count - 1) : 0.0;
          break;
      }
      adv[i] = equal || a == 0 ? 0.0 : a / div;
    }
  }
  return adv;
}

void LossStats::add(const LossStats& o) {
  loss += o.loss;
  pg += o.pg;
  tokens += o.tokens;
  clipped += o.clipped;
  dual_clipped += o.dual_clipped;
  ratio += o.ratio;
  ratio_max = std::max(ratio_max, o.ratio_max);
  kl += o.kl;
  entropy += o.entropy;
  is_weight += o.is_weight;
  is_weight_max = std::max(is_weight_max, o.is_weight_max);
  is_capped += o.is_capped;
}

LossStats sequence_loss(const SequenceTerms& s, const LossConfig& cfg, const KlConfig& kl,
                        const LossNorms& norms, double* dlogprob, double* dentropy) {
  R1_CHECK(s.n >= 0 && s.logprob && s.old_logprob && s.advantage && s.mask,
           "[grpo] sequence_loss needs log-probs, old log-probs, advantages and a mask");
  const bool kl_loss = kl.placement == KlPlacement::loss;
  R1_CHECK(!kl_loss || s.ref_logprob, "[grpo] the KL in the loss needs reference log-probs");
  R1_CHECK(cfg.entropy_coef == 0 || s.entropy, "[grpo] the entropy bonus needs the entropies");
  LossStats st;
  double len = 0;
  for (int64_t t = 0; t < s.n; ++t) len += s.mask[t];
  st.tokens = len;
  for (int64_t t = 0; t < s.n; ++t) {
    dlogprob[t] = 0;
    if (dentropy) dentropy[t] = 0;
  }
  if (len == 0) return st;
  // c: the aggregation weight of each masked token of this sequence.
  double c = 0;
  switch (cfg.aggregation) {
    case LossAggregation::seq_mean_token_mean:
      c = 1.0 / (norms.sequences * len);
      break;
    case LossAggregation::token_mean:
      c = 1.0 / norms.tokens;
      break;
    case LossAggregation::seq_mean_token_sum_norm:
      c = 1.0 / (norms.sequences * norms.constant);
      break;
  }
  double seq_ratio = 1;
  if (cfg.ratio == RatioLevel::sequence) {
    double sum = 0;
    for (int64_t t = 0; t < s.n; ++t)
      if (s.mask[t]) sum += s.logprob[t] - s.old_logprob[t];
    seq_ratio = std::exp(sum / len);
  }
  for (int64_t t = 0; t < s.n; ++t) {
    if (!s.mask[t]) continue;
    const double a = s.advantage[t];
    const double r =
        cfg.ratio == RatioLevel::token ? std::exp(s.logprob[t] - s.old_logprob[t]) : seq_ratio;
    // ∂r/∂ℓ_t: r for both forms (the sequence form is GSPO-token's).
    const double dr = r;
    const double rc = std::clamp(r, 1.0 - cfg.clip_low, 1.0 + cfg.clip_high);
    const double unclipped = -a * r, clipped = -a * rc;
    double pg = std::max(unclipped, clipped);
    bool active = unclipped >= clipped;  // the unclipped term is taken (ties to it)
    if (cfg.dual_clip > 0 && a < 0 && pg > -cfg.dual_clip * a) {
      pg = -cfg.dual_clip * a;
      active = false;
      st.dual_clipped += 1;
    }
    if (!active) st.clipped += 1;
    double w = 1;
    if (cfg.importance_sampling && s.rollout_logprob) {
      w = std::exp(s.old_logprob[t] - s.rollout_logprob[t]);
      if (w >= cfg.is_cap) {
        w = cfg.is_cap;
        st.is_capped += 1;
      }
    }
    st.is_weight += w;
    st.is_weight_max = std::max(st.is_weight_max, w);
    st.ratio += r;
    st.ratio_max = std::max(st.ratio_max, r);
    double x = w * pg;
    double g = active ? w * (-a) * dr : 0.0;
    st.pg += c * w * pg;
    if (s.ref_logprob) {
      const double k = kl_value(kl.estimator, s.logprob[t], s.ref_logprob[t]);
      st.kl += k;
      if (kl_loss) {
        x += kl.beta * k;
        g += kl.beta * kl_grad(kl.estimator, s.logprob[t], s.ref_logprob[t]);
      }
    }
    if (s.entropy) {
      st.entropy += s.entropy[t];
      x -= cfg.entropy_coef * s.entropy[t];
      if (dentropy) dentropy[t] = -cfg.entropy_coef * c;
    }
    st.loss += c * x;
    dlogprob[t] = c * g;
  }
  return st;
}

}  // namespace r1kit::grpo
