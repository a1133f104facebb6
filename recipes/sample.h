// The rejection-sampling stage (R1's stage 3): k completions of every prompt from the model,
// scored by the composed reward, filtered, selected and written as SFT-ready conversations.
//
// For each batch of prompts (prompts_per_batch rows, in file order):
//   1. the rollout engine (rollout/engine.h) samples samples_per_prompt completions of each; the
//      request index is the prompt's line in the file, so a completion depends on (seed, line,
//      sample, position) only: never on the batch, the batch size or which rows were skipped;
//   2. completion text that is not UTF-8 gets U+FFFD per ill-formed byte (counted: invalid_utf8),
//      so what is scored is what is written;
//   3. each completion is judged by the filters in this fixed order, the first failure naming
//      its rejection; the reward is scored only for completions that pass the first four (a
//      truncated program is never run in a sandbox):
//        empty       the text is empty or whitespace only (SFT cannot train on it)
//        truncated   finish_reason length (drop_truncated)
//        max_tokens  more completion tokens than max_tokens (0 = off)
//        repetition  repetition_rate(text) > max_repetition (0 or null = off), where
//                    repetition_rate = 1 − distinct / total over the word 4-grams (words: runs of
//                    non-whitespace bytes; 0 for fewer than 4 words)
//        reward      the reward's status is skip or error
//        correct     the "accuracy" component < 1 (require_correct)
//        format      the "format" component < 1 (require_format)
//        language    the "language" component < min_language (null = off)
//        min_reward  the total reward < min_reward (null = off)
//      (a filter that reads a component the result lacks fails; a filter whose component the
//      reward config does not have at all is a config error);
//   4. selection among one prompt's passing completions: an order ("all": sample order; "best":
//      highest reward, then fewer tokens, then lower sample index; "shortest": fewer tokens, then
//      higher reward, then lower sample index), dedupe (a text already kept earlier in that order
//      is dropped: rejection "duplicate"), then a count limit (max_per_prompt when > 0, else
//      unlimited for "all" and 1 for "best"/"shortest"; those beyond: rejection "select").
// Every sample ends accepted or with exactly one rejection, so accepted + Σ rejected_by = samples.
//
// Output directory (SampleConfig::output), each file written atomically at the end:
//   accepted.jsonl  one row per kept completion, prompts in file order, a prompt's rows in its
//                   selection order: {"messages": [system?, user..., {"role": "assistant",
//                   "content": completion}], "prompt_line", "sample", "reward", "components",
//                   "length", "finish_reason"} — the messages shape sft/chat_data.h reads (the
//                   other fields are ignored there); the prompt side is the row's messages array
//                   as written, or the system prompt (if any) and the user question
//   stats.json      {"prompts", "skipped_prompts", "failed_prompts", "samples", "accepted",
//                   "acceptance_rate", "rejected_by" (every rejection name, zeros included),
//                   "duplicates", "invalid_utf8", "prompts_with_any", "per_prompt": [{"line",
//                   "samples", "passed" (the filters), "kept"}], "length_histogram": {"bin_width",
//                   "counts"} of accepted lengths}
//   config.json     the stage's config as run
// The histogram's bin i counts lengths in [i·w, (i + 1)·w) with w = ceil(max_new_tokens / 16);
// it has max_new_tokens / w + 1 bins (more if a longer length is added).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/json.h"
#include "policy/chat_template.h"
#include "rewards/reward.h"
#include "rollout/engine.h"
#include "rollout/request.h"

namespace r1kit::recipes {

enum class SampleSelect { all, best, shortest };

struct SampleFilters {
  std::optional<double> min_reward;    // total reward >= it; nullopt = off
  bool require_correct = true;         // "accuracy" >= 1
  bool require_format = false;         // "format" >= 1
  std::optional<double> min_language;  // "language" >= it; nullopt = off
  int64_t max_tokens = 0;              // completion tokens <= it; 0 = off
  bool drop_truncated = true;          // finish_reason length is rejected
  double max_repetition = 0.5;         // repetition_rate <= it; 0 = off (null in the JSON too)

  // Unknown keys, wrong types and out-of-range values are errors naming `where` and the key.
  static SampleFilters from_json(const Json& j, std::string_view where);
  Json to_json() const;
};

struct SampleConfig {
  std::string model;            // HF model directory
  std::string tokenizer;        // "" = the model's
  std::string chat_template;    // a built-in template name ("" = the model directory's)
  std::string prompt_template;  // a pattern with {prompt}; overrides the above
  std::string system_prompt;
  std::string prompts;               // JSONL prompt rows (rollout/prompts.h)
  std::string prompt_field;          // "" = the first of messages, prompt, question, problem
  int64_t max_prompt_tokens = 1024;  // longer prompts are skipped (counted)
  Json rewards;                      // a composed reward config object, or the path of one
  rollout::SamplingParams sampling;  // n is samples_per_prompt, seed is seed
  int64_t samples_per_prompt = 8;
  SampleFilters filters;
  SampleSelect select = SampleSelect::all;
  int64_t max_per_prompt = 0;  // 0: no limit for "all", 1 for "best" and "shortest"
  bool dedupe = true;
  int64_t prompts_per_batch = 64;  // prompts per engine call (and per progress callback)
  rollout::EngineOptions engine;
  std::string output;
  std::string device = "auto";
  std::string dtype = "auto";
  int threads = 0;
  uint64_t seed = 0;

  // The stage block; unknown keys, wrong types and bad values are errors naming `where` and the
  // key (with a "did you mean" for unknown keys). The reward config is built here, so its
  // mistakes and a filter that needs a component it lacks fail before any model is loaded.
  static SampleConfig from_json(const Json& j, std::string_view where);
  Json to_json() const;
};

// Why a sample was not accepted; `none` = accepted. The filters come first, in judging order.
enum class Rejection {
  none,
  empty,
  truncated,
  max_tokens,
  repetition,
  reward,
  correct,
  format,
  language,
  min_reward,
  duplicate,
  select,
};
// "empty", "truncated", ... ("accepted" for none).
std::string_view rejection_name(Rejection r);
// Every rejection but none, in judging order.
const std::vector<Rejection>& rejection_order();

// One sampled completion as the filters see it.
struct Candidate {
  int64_t sample = 0;  // index among the prompt's samples
  std::string text;
  int64_t length = 0;  // completion tokens
  rollout::FinishReason finish_reason = rollout::FinishReason::eos;
  bool invalid_utf8 = false;  // the engine's text had ill-formed bytes (replaced in `text`)
  // The reward's verdict (unused when a filter before "reward" rejects the sample).
  rewards::RewardStatus status = rewards::RewardStatus::ok;
  double reward = 0;
  std::map<std::string, double> components;
};

// 1 − distinct / total over the word 4-grams of `text` (see the file comment); in [0, 1).
double repetition_rate(std::string_view text);
// `text` with each byte that is not part of well-formed UTF-8 replaced by U+FFFD; *replaced (if
// given) is the number of replacements.
std::string utf8_sanitize(std::string_view text, int64_t* replaced = nullptr);

// The filters that need no reward (empty, truncated, max_tokens, repetition): the first that
// fails, or none.
Rejection judge_unscored(const Candidate& c, const SampleFilters& f);
// All filters in order: the first that fails, or none.
Rejection judge(const Candidate& c, const SampleFilters& f);

// One prompt's outcome: a verdict per candidate (same order) and the kept candidates' indices in
// selection order.
struct Selection {
  std::vector<Rejection> verdicts;
  std::vector<size_t> kept;
  int64_t passed = 0;  // candidates the filters accepted (before dedupe and the count limit)
};
Selection select_candidates(const std::vector<Candidate>& candidates, const SampleFilters& f,
                            SampleSelect select, int64_t max_per_prompt, bool dedupe);

// One prompt with its candidates: its line in the prompts file and its conversation so far.
struct PromptSamples {
  int64_t line = 0;
  std::vector<policy::ChatMessage> messages;
  std::vector<Candidate> candidates;
};

// The prompt's conversation for an accepted row (rollout/prompts.h's rule): the row's prompt
// field when it is a messages array, else the system prompt (if any) and the field as the user.
std::vector<policy::ChatMessage> prompt_messages(const Json& row, const std::string& field,
                                                 const std::string& system_prompt);

// Accumulates the stage's rows and statistics prompt by prompt.
class SampleTally {
 public:
  explicit SampleTally(const SampleConfig& cfg);
  // Judges and selects one prompt's candidates and appends its accepted rows.
  Selection add(const PromptSamples& p);
  void add_skipped_prompts(int64_t n) { skipped_prompts_ += n; }
  void add_failed_prompt() { ++failed_prompts_; }  // the engine could not run it

  const std::vector<Json>& rows() const { return rows_; }
  int64_t prompts() const { return static_cast<int64_t>(per_prompt_.size()); }
  int64_t samples() const { return samples_; }
  int64_t accepted() const { return static_cast<int64_t>(rows_.size()); }
  int64_t prompts_with_any() const { return prompts_with_any_; }
  Json stats() const;  // stats.json (see the file comment)

 private:
  SampleFilters filters_;
  SampleSelect select_;
  int64_t max_per_prompt_;
  bool dedupe_;
  int64_t bin_width_;
  std::vector<Json> rows_;
  std::vector<Json> per_prompt_;
  std::map<Rejection, int64_t> rejected_;
  std::vector<int64_t> histogram_;
  int64_t samples_ = 0, prompts_with_any_ = 0, invalid_utf8_ = 0;
  int64_t skipped_prompts_ = 0, failed_prompts_ = 0;
};

struct SampleResult {
  int64_t prompts = 0;          // usable prompt rows sampled
  int64_t skipped_prompts = 0;  // rows the loader skipped (malformed, too long)
  int64_t samples = 0;
  int64_t accepted = 0;
  int64_t prompts_with_any = 0;
  std::string accepted_path;  // OUTPUT/accepted.jsonl
  std::string stats_path;     // OUTPUT/stats.json
  std::string config_path;    // OUTPUT/config.json
};

// Writes OUTPUT/accepted.jsonl, stats.json and config.json (atomically) from a finished tally.
SampleResult write_sample_outputs(const SampleConfig& cfg, const SampleTally& tally);

// Called after each batch of prompts with {"batch", "prompts_done", "prompts", "samples",
// "accepted", "seconds"}.
using SampleCallback = std::function<void(const Json& progress)>;

SampleResult run_sample(const SampleConfig& cfg, const SampleCallback& on_batch = {});

}  // namespace r1kit::recipes
