// The eval stage: pass@1, pass@k and maj@k of a model on benchmark datasets (GSM8K, MATH-500,
// AIME, AMC, HumanEval, MBPP, or any JSONL of prompts with references), scored by the rule-based
// rewards. What `r1kit eval --config` and a recipe's {"type": "eval", "config": {...}} read;
// docs/EVAL.md has the keys, the metric definitions and the ready-made configs (recipes/eval/).
//
// Per dataset: the rows (rollout/prompts.h: rendered with the chat template, encoded; the row is
// the scorer's reference; .json arrays and gzip'd files are first rewritten as OUTPUT/inputs/
// NAME.jsonl), the first max_problems of them, `samples` completions of each (request index = the
// problem's position, so a problem's samples depend on (seed, position, sample) only and a dataset
// cut by max_problems samples the same completions as the whole), each scored by the dataset's
// composed reward.
//
// A sample is correct when its correctness component scored >= 1: the scorer's first component of
// type accuracy, else its first of type code or countdown, else (no such component) its total
// score. A sample the scorer skips or fails on is not correct (counted: scorer_skipped,
// scorer_errors). The answer a sample votes with (maj@k) is what the accuracy component parsed
// from it (its details.pred_parsed: the math verifier's canonical form of the extracted answer);
// "" (no vote) when it found none. Scorers without an accuracy component (code) have no maj@k.
//
// Output directory (EvalConfig::output):
//   results.json   {"datasets": {NAME: metrics}, "model": ..., "config": ..., "timing": ...}
//   samples.jsonl  the first log_samples traces of each dataset (dataset, line, completion,
//                  correct, answer, ...)
//   config.json    the config as run
//   inputs/        .json / .gz datasets rewritten as JSONL
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/json.h"
#include "rollout/engine.h"
#include "rollout/jobs.h"
#include "rollout/request.h"

namespace r1kit::recipes {

struct EvalDataset {
  std::string name;          // unique; the key in results.json
  std::string path;          // JSONL rows (or a .json array, or either gzip'd)
  std::string prompt_field;  // "" = the first of messages, prompt, question, problem
  Json rewards;  // the scorer: a composed reward config object (rewards/compose.h) or its path
  int64_t max_problems = 0;          // 0 = all; else the first N usable rows
  int64_t max_prompt_tokens = 4096;  // longer prompts are skipped (counted)
};

struct EvalConfig {
  std::string model;            // HF model directory
  std::string tokenizer;        // "" = the model's
  std::string chat_template;    // a built-in template name ("" = the model directory's)
  std::string prompt_template;  // a pattern with {prompt} (chat_template.h); overrides the above
  std::string system_prompt;
  std::vector<EvalDataset> datasets;
  int64_t samples = 1;               // n completions per problem
  int64_t k = 1;                     // pass@k and maj@k (from_json: default = samples)
  rollout::SamplingParams sampling;  // n = samples, seed = seed
  int64_t log_samples = 8;           // traces per dataset in samples.jsonl
  std::string output;                // required to run (a recipe sets it)
  std::string device = "auto";
  std::string dtype = "auto";
  int threads = 0;
  uint64_t seed = 0;
  rollout::EngineOptions engine;

  // The stage block. Unknown keys (with a "did you mean"), wrong types and bad values are errors
  // naming `where` and the key. Files are not opened here (run_eval checks them), except that an
  // inline reward config is built once so that its mistakes show before anything runs.
  static EvalConfig from_json(const Json& j, std::string_view where);
  Json to_json() const;  // every key, defaults filled in; from_json(to_json()) is the same config
  // The files the stage reads: model, tokenizer (when given), each dataset's path and reward
  // config path (when a path).
  std::vector<std::string> input_paths() const;
};

// The sampling defaults of an eval stage: DeepSeek-R1's evaluation setting (temperature 0.6,
// top_p 0.95) with max_new_tokens 32768.
rollout::SamplingParams default_eval_sampling();

// --- Metric math (pure) -------------------------------------------------------------------------

// Unbiased pass@k, 1 - C(n - c, k) / C(n, k), in the stable product form (rollout/jobs.h).
using rollout::pass_at_k;

struct MajorityVote {
  int64_t index = -1;  // the first sample giving the winning answer; -1: no sample has an answer
  std::string answer;
  int64_t votes = 0;
  bool correct = false;  // correct[index]
};

// The most frequent non-empty answer (ties: the one that occurs first); correct when the first
// sample giving it is correct. Empty answers do not vote. Sizes must agree.
MajorityVote majority_vote(const std::vector<std::string>& answers,
                           const std::vector<bool>& correct);

// What the scorer said of one sample.
struct SampleScore {
  bool correct = false;
  std::string answer;            // "" = none (no vote)
  double reward = 0;             // the composed total (status ok only)
  bool scored = true;            // status ok
  bool error = false;            // status error (else skip when !scored)
  std::optional<double> format;  // the "format" component, when scored
  int64_t length = 0;            // completion tokens
  bool truncated = false;        // finish reason length
};

struct DatasetMetrics {
  std::string name;
  int64_t problems = 0;
  int64_t samples_per_problem = 0;  // n
  int64_t samples = 0;              // problems × n
  int64_t k = 0;
  double pass_at_1 = 0;               // mean over problems of c / n
  double pass_at_k = 0;               // mean over problems of pass_at_k(n, c, k)
  std::optional<double> maj_at_k;     // mean over problems of the vote over samples [0, k)
  std::optional<double> format_rate;  // mean "format" component over the samples that have it
  double response_length_mean = 0;    // tokens
  double truncated_fraction = 0;      // samples cut at max_new_tokens
  std::optional<double> reward_mean;  // over scored samples (null when none was)
  int64_t scorer_skipped = 0, scorer_errors = 0;
  int64_t skipped_rows = 0;      // rows load_prompt_set skipped (malformed, too long)
  std::vector<int64_t> correct;  // c per problem, in order

  // {"problems", "samples_per_problem", "samples", "k", "pass@1", "pass@k", "maj@k",
  //  "format_rate", "response_length_mean", "truncated_fraction", "reward_mean",
  //  "scorer_skipped", "scorer_errors", "skipped_rows", "correct"} (null for absent optionals).
  Json to_json() const;
};

// Metrics of one dataset from its samples' scores (scores[p] holds problem p's n samples in
// sample order; every problem has the same n >= k). `voting`: maj@k is defined (else null).
DatasetMetrics summarize_scores(const std::string& name,
                                const std::vector<std::vector<SampleScore>>& scores, int64_t k,
                                bool voting);

// An aligned plain-text table of results.json's datasets (config order when results holds the
// config): dataset, problems, n, k, pass@1, pass@k, maj@k, format, length, truncated, reward;
// "-" for null.
std::string format_eval_table(const Json& results);

// --- The stage ----------------------------------------------------------------------------------

struct EvalResult {
  std::vector<DatasetMetrics> datasets;  // in config order
  Json results;                          // what results.json holds
  std::string results_path;
  std::string table;  // format_eval_table(results)
};

// Runs the stage: checks every input file first (an error names the dataset and the path), loads
// the model once, evaluates each dataset in order, writes OUTPUT/ and logs the table.
// `on_progress` (optional) gets {"type": "progress", "dataset", "step": samples finished over all
// datasets, "total_steps": problems × samples over all datasets} as samples finish.
using EvalProgress = std::function<void(const Json&)>;
EvalResult run_eval(const EvalConfig& cfg, const EvalProgress& on_progress = {});

}  // namespace r1kit::recipes
