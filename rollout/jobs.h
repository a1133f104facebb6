// Generation jobs on top of the engine (rollout/engine.h): sample-and-filter (k completions per
// prompt, a scoring callback, keep or drop each) and evaluation (pass@1, pass@k, maj@k from a
// scoring callback). The scorers are callbacks, so rollout/ never links rewards/.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "rollout/engine.h"

namespace r1kit::rollout {

// Score of completion `c` of request `request` (an index into the job's requests).
using Scorer = std::function<double(size_t request, const Completion& c)>;

struct ScoredCompletion {
  Completion completion;
  double score = 0;
  bool kept = false;  // score >= the job's threshold
};

// k completions per request (each request's sampling.n is replaced by k), scored; kept when
// score >= keep_threshold. Result: per request, its k scored completions in sample order.
std::vector<std::vector<ScoredCompletion>> sample(Engine& engine, std::vector<Request> requests,
                                                  int64_t k, const Scorer& scorer,
                                                  double keep_threshold,
                                                  const StepCallback& on_step = {});

// What an evaluation scorer says of one completion: correct or not, and the final answer it gives
// (normalised by the scorer; "" for none) for majority voting.
struct EvalScore {
  bool correct = false;
  std::string answer;
};
using EvalScorer = std::function<EvalScore(size_t request, const Completion& c)>;

struct EvalResult {
  int64_t prompts = 0;
  int64_t samples_per_prompt = 0;       // n
  double pass_at_1 = 0;                 // mean over prompts of c / n
  std::map<int64_t, double> pass_at_k;  // k -> mean over prompts of pass@k(n, c, k)
  double maj_at_n = 0;                  // fraction of prompts whose majority answer is correct
  std::map<int64_t, double> maj_at_k;   // k -> the same vote over each prompt's first k samples
  std::vector<int64_t> correct;         // c per prompt
};

// Unbiased pass@k (Chen et al. 2021): 1 - C(n - c, k) / C(n, k), computed as the product
// 1 - prod_{i = n - c + 1}^{n} (1 - k / i) to stay finite. Needs 0 <= c <= n and 1 <= k <= n.
double pass_at_k(int64_t n, int64_t c, int64_t k);

// n samples per request (sampling.n replaced by n); pass@k and maj@k for each k in ks (each <= n).
// maj@k: the most frequent non-empty answer among a prompt's first k samples (ties: the one seen
// first) counts as correct when the first sample giving it was scored correct; a prompt with no
// answer counts as wrong. maj_at_n is maj@k with k = n.
EvalResult evaluate(Engine& engine, std::vector<Request> requests, int64_t n,
                    const std::vector<int64_t>& ks, const EvalScorer& scorer,
                    const StepCallback& on_step = {});

}  // namespace r1kit::rollout
