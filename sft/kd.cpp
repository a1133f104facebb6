// Distillation losses over a teacher's top-k plus the remaining mass (sft/kd.h).
#include "sft/kd.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/error.h"

namespace r1kit::sft {
namespace {

// x·log(x / y) with the limit 0 at x = 0.
double xlogxy(double x, double y) {
  return x > 0 ? x * std::log(x / y) : 0.0;
}

const double kLogTiny = std::log(kKdTinyMass);

}  // namespace

KdConfig KdConfig::from_json(const Json& j, std::string_view where) {
  require_object(j, where);
  reject_unknown_keys(j, {"loss", "jsd_beta", "weight", "topk"}, where);
  KdConfig c;
  c.loss = get_enum<KdLoss>(j, "loss", where,
                            {{"forward_kl", KdLoss::forward_kl},
                             {"reverse_kl", KdLoss::reverse_kl},
                             {"jsd", KdLoss::jsd}},
                            c.loss);
  c.jsd_beta = get_optional<double>(j, "jsd_beta", where, c.jsd_beta);
  R1_CHECK(c.jsd_beta > 0 && c.jsd_beta < 1, "{}: 'jsd_beta' must be in (0, 1), got {}", where,
           c.jsd_beta);
  c.weight = get_optional<double>(j, "weight", where, c.weight);
  R1_CHECK(c.weight >= 0 && c.weight <= 1, "{}: 'weight' must be in [0, 1], got {}", where,
           c.weight);
  c.topk = get_optional<int64_t>(j, "topk", where, c.topk);
  R1_CHECK(c.topk >= 1, "{}: 'topk' must be >= 1, got {}", where, c.topk);
  return c;
}

double kd_position_loss(const float* teacher_logprob, const double* student_logprob, int64_t k,
                        const KdConfig& cfg, double* dstudent) {
  // Bins 0..k-1 the top-k tokens, bin k the rest.
  std::vector<double> p(static_cast<size_t>(k + 1)), q(static_cast<size_t>(k + 1));
  double sp = 0, sq = 0;
  for (int64_t j = 0; j < k; ++j) {
    p[static_cast<size_t>(j)] = std::exp(static_cast<double>(teacher_logprob[j]));
    q[static_cast<size_t>(j)] = std::exp(student_logprob[j]);
    sp += p[static_cast<size_t>(j)];
    sq += q[static_cast<size_t>(j)];
  }
  p[static_cast<size_t>(k)] = std::max(1.0 - sp, kKdTinyMass);
  q[static_cast<size_t>(k)] = std::max(1.0 - sq, kKdTinyMass);
  // loss and ∂L/∂q_b per bin.
  std::vector<double> dq(static_cast<size_t>(k + 1));
  double loss = 0;
  const double beta = cfg.jsd_beta;
  for (size_t b = 0; b < p.size(); ++b) {
    const bool top = b + 1 < p.size();
    const double pb = p[b], qb = q[b];
    // Logs of the top-k bins are the given log-probs themselves (no exp/log round trip).
    const double lp = top ? static_cast<double>(teacher_logprob[b]) : std::log(pb);
    const double lq = top ? student_logprob[b] : std::log(qb);
    switch (cfg.loss) {
      case KdLoss::forward_kl:
        loss += pb > 0 ? pb * (lp - lq) : 0.0;
        dq[b] = -pb / qb;
        break;
      case KdLoss::reverse_kl: {
        const double lpc = std::max(lp, kLogTiny);  // a teacher zero would make KL(Q‖P) infinite
        loss += qb > 0 ? qb * (lq - lpc) : 0.0;
        dq[b] = lq - lpc + 1;
        break;
      }
      case KdLoss::jsd: {
        const double m = beta * pb + (1 - beta) * qb;
        loss += beta * xlogxy(pb, m) + (1 - beta) * xlogxy(qb, m);
        dq[b] = (1 - beta) * std::log(qb / m);
        break;
      }
    }
  }
  const double drest = dq[static_cast<size_t>(k)];
  for (int64_t j = 0; j < k; ++j)
    dstudent[j] = q[static_cast<size_t>(j)] * (dq[static_cast<size_t>(j)] - drest);
  return loss;
}

}  // namespace r1kit::sft
