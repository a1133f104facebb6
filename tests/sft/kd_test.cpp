// Logit distillation (sft/kd.h, sft/loss.h): each KD loss and its gradient against a direct
// computation in double (the k + 1 bins built from full softmaxes, finite differences over the
// student's logits), and the whole objective (1 − α)·CE + α·KD of a packed micro-batch through the
// policy's multi-target head against finite differences of its parameters (f64, dense and MoE).
#include "sft/kd.h"

#include <cmath>
#include <random>

#include "gtest/gtest.h"
#include "policy/presets.h"
#include "sft/loss.h"
#include "tests/common/test_util.h"

namespace r1kit::sft {
namespace {

using testing::cpu_ctx;

std::vector<double> log_softmax(const std::vector<double>& x) {
  double m = -1e300, z = 0;
  for (double v : x) m = std::max(m, v);
  for (double v : x) z += std::exp(v - m);
  std::vector<double> out;
  for (double v : x) out.push_back(v - m - std::log(z));
  return out;
}

// The loss from full distributions: bins = the teacher's top-k ids, rest = the sum of the other
// probabilities (not 1 − Σ: an independent route).
double direct_loss(const std::vector<double>& teacher_logits,
                   const std::vector<double>& student_logits, const std::vector<int>& ids,
                   const KdConfig& cfg) {
  const auto lt = log_softmax(teacher_logits), ls = log_softmax(student_logits);
  std::vector<double> p, q;
  std::vector<bool> in(lt.size(), false);
  for (int i : ids) {
    p.push_back(std::exp(lt[static_cast<size_t>(i)]));
    q.push_back(std::exp(ls[static_cast<size_t>(i)]));
    in[static_cast<size_t>(i)] = true;
  }
  double pr = 0, qr = 0;
  for (size_t v = 0; v < lt.size(); ++v)
    if (!in[v]) {
      pr += std::exp(lt[v]);
      qr += std::exp(ls[v]);
    }
  p.push_back(pr);
  q.push_back(qr);
  double loss = 0;
  for (size_t b = 0; b < p.size(); ++b) {
    switch (cfg.loss) {
      case KdLoss::forward_kl:
        loss += p[b] * std::log(p[b] / q[b]);
        break;
      case KdLoss::reverse_kl:
        loss += q[b] * std::log(q[b] / p[b]);
        break;
      case KdLoss::jsd: {
        const double m = cfg.jsd_beta * p[b] + (1 - cfg.jsd_beta) * q[b];
        loss += cfg.jsd_beta * p[b] * std::log(p[b] / m) +
                (1 - cfg.jsd_beta) * q[b] * std::log(q[b] / m);
        break;
      }
    }
  }
  return loss;
}

TEST(KdLoss, ValuesAndGradientsMatchADirectComputation) {
  std::mt19937_64 rng(3);
  std::normal_distribution<double> nd(0.0, 1.5);
  const int V = 40, K = 6;
  for (const KdLoss l : {KdLoss::forward_kl, KdLoss::reverse_kl, KdLoss::jsd}) {
    for (const double beta : {0.5, 0.2}) {
      KdConfig cfg;
      cfg.loss = l;
      cfg.jsd_beta = beta;
      std::vector<double> tl(V), sl(V);
      for (auto& v : tl) v = nd(rng);
      for (auto& v : sl) v = nd(rng);
      // The teacher's top-k ids.
      std::vector<int> ids(V);
      for (int i = 0; i < V; ++i) ids[static_cast<size_t>(i)] = i;
      std::sort(ids.begin(), ids.end(), [&](int a, int b) { return tl[a] > tl[b]; });
      ids.resize(K);
      const auto lt = log_softmax(tl), ls = log_softmax(sl);
      std::vector<float> t(K);
      std::vector<double> s(K), ds(K);
      for (int j = 0; j < K; ++j) {
        t[static_cast<size_t>(j)] = static_cast<float>(lt[static_cast<size_t>(ids[j])]);
        s[static_cast<size_t>(j)] = ls[static_cast<size_t>(ids[j])];
      }
      // Teacher log-probs are stored in f32: the direct computation uses the same rounding.
      std::vector<double> tl_r(tl);
      const double loss = kd_position_loss(t.data(), s.data(), K, cfg, ds.data());
      const double ref = direct_loss(tl_r, sl, ids, cfg);
      EXPECT_NEAR(loss, ref, 1e-6 * std::max(1.0, std::abs(ref)));
      EXPECT_GT(loss, 0);
      // dL/dlogits by the chain dL/ds_j · ds_j/dz_v = dL/ds_j · ([v = id_j] − q_v), against
      // central differences of the direct loss over the student's logits.
      for (int v = 0; v < V; ++v) {
        double chain = 0;
        for (int j = 0; j < K; ++j)
          chain += ds[static_cast<size_t>(j)] * ((ids[static_cast<size_t>(j)] == v ? 1.0 : 0.0) -
                                                 std::exp(ls[static_cast<size_t>(v)]));
        const double h = 1e-6;
        std::vector<double> up(sl), dn(sl);
        up[static_cast<size_t>(v)] += h;
        dn[static_cast<size_t>(v)] -= h;
        const double fd =
            (direct_loss(tl_r, up, ids, cfg) - direct_loss(tl_r, dn, ids, cfg)) / (2 * h);
        EXPECT_NEAR(chain, fd, 2e-6) << "logit " << v;
      }
    }
  }
}

TEST(KdLoss, IdenticalDistributionsHaveZeroLossAndGradient) {
  const float t[3] = {std::log(0.5f), std::log(0.3f), std::log(0.1f)};
  const double s[3] = {t[0], t[1], t[2]};
  for (const KdLoss l : {KdLoss::forward_kl, KdLoss::reverse_kl, KdLoss::jsd}) {
    KdConfig cfg;
    cfg.loss = l;
    double ds[3];
    EXPECT_NEAR(kd_position_loss(t, s, 3, cfg, ds), 0.0, 1e-12);
    for (double d : ds) EXPECT_NEAR(d, 0.0, 1e-9);
  }
}

TEST(KdLoss, ConfigFromJson) {
  const KdConfig c = KdConfig::from_json(
      Json{{"loss", "jsd"}, {"jsd_beta", 0.3}, {"weight", 0.7}, {"topk", 8}}, "kd");
  EXPECT_EQ(c.loss, KdLoss::jsd);
  EXPECT_EQ(c.jsd_beta, 0.3);
  EXPECT_EQ(c.weight, 0.7);
  EXPECT_EQ(c.topk, 8);
  testing::expect_error_contains(
      [] {
        KdConfig::from_json(Json{{"weight", 2}}, "kd");
      },
      {"kd", "'weight' must be in [0, 1]"});
  testing::expect_error_contains(
      [] {
        KdConfig::from_json(Json{{"top_k", 2}}, "kd");
      },
      {"unknown key 'top_k'", "topk"});
}

// The objective of one micro-batch with stored teacher top-k, as micro_step computes it.
double objective(policy::Policy& p, const std::vector<const Example*>& mb, const StepNorms& n,
                 const LossOptions& lo) {
  const MicroResult m = micro_step(p, mb, n, lo, false, cpu_ctx());
  return ((1 - lo.kd->weight) * m.loss_sum + lo.kd->weight * m.kd_sum) / n.targets;
}

TEST(KdLoss, PolicyGradientOfTheMixedObjectiveMatchesFiniteDifferences) {
  for (const auto arch : {policy::ModelArch::qwen2, policy::ModelArch::deepseek_v3}) {
    SCOPED_TRACE(std::string(policy::model_arch_name(arch)));
    policy::PolicyOptions po;
    po.dtype = DType::f64;
    const auto cfg = policy::preset_config(arch, "tiny");
    policy::Policy p = policy::Policy::init(cfg, 9, cpu_ctx(), po);
    std::mt19937_64 rng(5);
    std::uniform_int_distribution<int32_t> tok(0, static_cast<int32_t>(cfg.vocab_size - 1));
    std::normal_distribution<double> nd(0.0, 1.0);
    const int64_t K = 4;
    std::vector<Example> ex(2);
    for (size_t e = 0; e < ex.size(); ++e) {
      const int len = 7 + 3 * static_cast<int>(e);
      for (int i = 0; i < len; ++i) {
        ex[e].tokens.push_back(tok(rng));
        ex[e].loss_mask.push_back(i >= 3 ? 1 : 0);
      }
      ex[e].teacher_k = K;
      for (int i = 3; i < len; ++i) {
        std::vector<double> z(K);
        for (auto& v : z) v = nd(rng);
        const double lz = std::log(std::exp(z[0]) + std::exp(z[1]) + std::exp(z[2]) +
                                   std::exp(z[3]) + 0.5);  // 0.5 of mass left for the rest bin
        for (int64_t j = 0; j < K; ++j) {
          ex[e].teacher_ids.push_back(tok(rng));
          ex[e].teacher_logprobs.push_back(static_cast<float>(z[static_cast<size_t>(j)] - lz));
        }
      }
    }
    const std::vector<const Example*> mb = {&ex[0], &ex[1]};
    for (const KdLoss l : {KdLoss::forward_kl, KdLoss::reverse_kl, KdLoss::jsd}) {
      KdConfig kd;
      kd.loss = l;
      kd.weight = 0.6;
      LossOptions lo;
      lo.kd = &kd;
      const StepNorms n = step_norms({mb}, lo);
      p.zero_grad(cpu_ctx());
      micro_step(p, mb, n, lo, true, cpu_ctx());
      const std::vector<double> g = testing::to_double(p.grads().flat());
      const TensorView flat = p.params().flat();
      double* w = flat.ptr<double>();
      std::uniform_int_distribution<int64_t> pick(0, flat.numel() - 1);
      int checked = 0;
      for (int trial = 0; trial < 200 && checked < 12; ++trial) {
        const int64_t i = pick(rng);
        if (std::abs(g[static_cast<size_t>(i)]) < 1e-6) continue;  // mostly unused rows
        const double h = 1e-5, w0 = w[i];
        w[i] = w0 + h;
        const double up = objective(p, mb, n, lo);
        w[i] = w0 - h;
        const double dn = objective(p, mb, n, lo);
        w[i] = w0;
        EXPECT_NEAR(g[static_cast<size_t>(i)], (up - dn) / (2 * h),
                    1e-6 + 1e-4 * std::abs(g[static_cast<size_t>(i)]))
            << "param " << i;
        ++checked;
      }
      EXPECT_GE(checked, 8);
    }
  }
}

}  // namespace
}  // namespace r1kit::sft
