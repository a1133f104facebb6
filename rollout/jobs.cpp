// sample and evaluate (rollout/jobs.h).
#include "rollout/jobs.h"

#include <tuple>
#include <unordered_map>

#include "core/error.h"

namespace r1kit::rollout {

std::vector<std::vector<ScoredCompletion>> sample(Engine& engine, std::vector<Request> requests,
                                                  int64_t k, const Scorer& scorer,
                                                  double keep_threshold,
                                                  const StepCallback& on_step) {
  R1_CHECK(k >= 1, "[sample] k must be >= 1, got {}", k);
  R1_CHECK(static_cast<bool>(scorer), "[sample] no scorer given");
  for (Request& r : requests) r.sampling.n = k;
  std::vector<std::vector<Completion>> comps = generate(engine, requests, on_step);
  std::vector<std::vector<ScoredCompletion>> out(comps.size());
  for (size_t r = 0; r < comps.size(); ++r) {
    for (Completion& c : comps[r]) {
      ScoredCompletion s;
      s.score = scorer(r, c);
      s.kept = s.score >= keep_threshold;
      s.completion = std::move(c);
      out[r].push_back(std::move(s));
    }
  }
  return out;
}

double pass_at_k(int64_t n, int64_t c, int64_t k) {
  R1_CHECK(n >= 1 && c >= 0 && c <= n && k >= 1 && k <= n,
           "[pass_at_k] needs 0 <= c <= n and 1 <= k <= n, got n={} c={} k={}", n, c, k);
  if (n - c < k) return 1.0;
  double fail = 1.0;  // C(n - c, k) / C(n, k)
  for (int64_t i = n - c + 1; i <= n; ++i)
    fail *= 1.0 - static_cast<double>(k) / static_cast<double>(i);
  return 1.0 - fail;
}

EvalResult evaluate(Engine& engine, std::vector<Request> requests, int64_t n,
                    const std::vector<int64_t>& ks, const EvalScorer& scorer,
                    const StepCallback& on_step) {
  R1_CHECK(n >= 1, "[evaluate] n must be >= 1, got {}", n);
  R1_CHECK(static_cast<bool>(scorer), "[evaluate] no scorer given");
  for (int64_t k : ks)
    R1_CHECK(k >= 1 && k <= n, "[evaluate] pass@{} needs 1 <= k <= n = {}", k, n);
  for (Request& r : requests) r.sampling.n = n;
  const std::vector<std::vector<Completion>> comps = generate(engine, requests, on_step);
  EvalResult res;
  res.prompts = static_cast<int64_t>(comps.size());
  res.samples_per_prompt = n;
  for (int64_t k : ks) res.pass_at_k[k] = 0;
  // Majority vote over samples [0, k): whether the most frequent non-empty answer (ties: the one
  // seen first) was scored correct.
  auto majority_correct = [](const std::vector<EvalScore>& scores, int64_t k) {
    std::unordered_map<std::string, std::tuple<int64_t, size_t, bool>> votes;
    for (size_t s = 0; s < static_cast<size_t>(k); ++s) {
      if (scores[s].answer.empty()) continue;
      auto [it, fresh] = votes.try_emplace(scores[s].answer, 0, s, scores[s].correct);
      ++std::get<0>(it->second);
    }
    const std::tuple<int64_t, size_t, bool>* best = nullptr;
    for (const auto& [answer, v] : votes)
      if (!best || std::get<0>(v) > std::get<0>(*best) ||
          (std::get<0>(v) == std::get<0>(*best) && std::get<1>(v) < std::get<1>(*best)))
        best = &v;
    return best && std::get<2>(*best);
  };
  for (int64_t k : ks) res.maj_at_k[k] = 0;
  for (size_t r = 0; r < comps.size(); ++r) {
    std::vector<EvalScore> scores;
    int64_t c = 0;
    for (const Completion& comp : comps[r]) {
      scores.push_back(scorer(r, comp));
      c += scores.back().correct ? 1 : 0;
    }
    res.correct.push_back(c);
    res.pass_at_1 += static_cast<double>(c) / static_cast<double>(n);
    for (int64_t k : ks) {
      res.pass_at_k[k] += pass_at_k(n, c, k);
      res.maj_at_k[k] += majority_correct(scores, k) ? 1.0 : 0.0;
    }
    res.maj_at_n += majority_correct(scores, n) ? 1.0 : 0.0;
  }
  if (res.prompts > 0) {
    const double P = static_cast<double>(res.prompts);
    res.pass_at_1 /= P;
    for (auto& [k, v] : res.pass_at_k) v /= P;
    for (auto& [k, v] : res.maj_at_k) v /= P;
    res.maj_at_n /= P;
  }
  return res;
}

}  // namespace r1kit::rollout
