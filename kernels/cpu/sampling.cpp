// Sampling CPU reference: one row at a time (rows in parallel), scores and noise in double; the
// filters sort token ids by (z descending, id ascending) when top-k or top-p needs an order.
#include "kernels/sampling.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "kernels/cpu/common.h"

namespace r1kit::kernels::cpu {
namespace {

struct Draw {
  int32_t token;
  double logprob;
};

// log Σ_j exp(z_j) with z_j = x_j / τ, max-shifted; −inf entries contribute 0.
template <class T>
double row_lse(const T* x, int64_t vocab, double tau, double zmax) {
  double s = 0;
  for (int64_t j = 0; j < vocab; ++j) s += std::exp(static_cast<double>(x[j]) / tau - zmax);
  return zmax + std::log(s);
}

// Greedy: argmax of x, the lowest id among ties; log-prob under τ = 1.
template <class T>
Draw greedy_row(const T* x, int64_t vocab) {
  int64_t best = 0;
  for (int64_t j = 1; j < vocab; ++j)
    if (x[j] > x[best]) best = j;
  const double zmax = x[best];
  return {static_cast<int32_t>(best), zmax - row_lse(x, vocab, 1.0, zmax)};
}

// Temperature, filters, Gumbel-max. z and order are per-thread scratch of size V.
template <class T>
Draw sample_row(const T* x, int64_t vocab, const SamplingParams& sp, uint64_t seed, uint64_t stream,
                uint32_t position, std::vector<double>& z, std::vector<int32_t>& order) {
  const double tau = sp.temperature;
  double zmax = -INFINITY;
  for (int64_t j = 0; j < vocab; ++j) {
    z[j] = static_cast<double>(x[j]) / tau;
    zmax = std::max(zmax, z[j]);
  }
  // token_logprob: the unfiltered log softmax(z) at the drawn token.
  const double lse = row_lse(x, vocab, tau, zmax);

  int64_t best = -1;
  double best_score = -INFINITY;
  // score_j = z_j + g_j; ties (measure zero) go to the lowest id. Masked (−inf) tokens never win.
  auto consider = [&](int64_t j) {
    if (z[j] == -INFINITY) return;
    const double s = z[j] + sampling_gumbel(seed, stream, position, static_cast<uint32_t>(j));
    if (best < 0 || s > best_score || (s == best_score && j < best)) {
      best = j;
      best_score = s;
    }
  };
  // min-p: p_j ≥ min_p·p_max  ⇔  exp(z_j − z_max) ≥ min_p (renormalisation cancels).
  auto min_p_keeps = [&](int64_t j) { return std::exp(z[j] - zmax) >= sp.min_p; };

  const bool use_top_k = sp.top_k > 0 && sp.top_k < vocab;
  const bool use_top_p = sp.top_p < 1.0;
  if (!use_top_k && !use_top_p) {
    for (int64_t j = 0; j < vocab; ++j)
      if (min_p_keeps(j)) consider(j);
  } else {
    // Order by (z descending, id ascending); top-k keeps the first k.
    const int64_t kept_k = use_top_k ? sp.top_k : vocab;
    std::iota(order.begin(), order.end(), 0);
    std::partial_sort(order.begin(), order.begin() + kept_k, order.end(),
                      [&](int32_t a, int32_t b) { return z[a] > z[b] || (z[a] == z[b] && a < b); });
    // top-p: the shortest prefix with Σ_{i<L} e_i ≥ top_p·Σ_{i<k} e_i, e = exp(z − z_max); the
    // same summation order on both sides, so L <= k always, and L >= 1.
    int64_t kept = kept_k;
    if (use_top_p) {
      double total = 0;
      for (int64_t i = 0; i < kept_k; ++i) total += std::exp(z[order[i]] - zmax);
      double cum = 0;
      for (int64_t i = 0; i < kept_k; ++i) {
        cum += std::exp(z[order[i]] - zmax);
        if (cum >= sp.top_p * total) {
          kept = i + 1;
          break;
        }
      }
    }
    for (int64_t i = 0; i < kept; ++i)
      if (min_p_keeps(order[i])) consider(order[i]);
  }
  return {static_cast<int32_t>(best), z[best] - lse};
}

}  // namespace

void sample_forward(const TensorView& tokens, const TensorView& token_logprob,
                    const TensorView& logits_, const TensorView& rng_counters,
                    const SamplingParams& params, uint64_t seed, Context& ctx) {
  CpuUpcast up(ctx);
  TensorView logits = up.in(logits_);
  const int64_t rows = logits.shape[0], vocab = logits.shape[1];
  const int64_t* counters = rng_counters.ptr<int64_t>();
  dispatch_float(logits.dtype, [&](auto tag) {
    using T = decltype(tag);
    ctx.pool().parallel_for(rows, 1, [&](int64_t b, int64_t e) {
      std::vector<double> z;
      std::vector<int32_t> order;
      if (params.temperature > 0) {
        z.resize(static_cast<size_t>(vocab));
        order.resize(static_cast<size_t>(vocab));
      }
      for (int64_t r = b; r < e; ++r) {
        const T* x = logits.ptr<T>() + r * vocab;
        const Draw d =
            params.temperature == 0
                ? greedy_row(x, vocab)
                : sample_row(x, vocab, params, seed, static_cast<uint64_t>(counters[2 * r]),
                             static_cast<uint32_t>(counters[2 * r + 1]), z, order);
        tokens.ptr<int32_t>()[r] = d.token;
        store_from_double(token_logprob.data, token_logprob.dtype, static_cast<size_t>(r),
                          d.logprob);
      }
    });
  });
}

}  // namespace r1kit::kernels::cpu
