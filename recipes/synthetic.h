// Built-in synthetic reasoning tasks for recipes that need no downloaded data (the tiny-r1
// pipeline): problems with exact answers, each also written as an R1-format trace
// ("<think>worked steps</think>\n<answer>N</answer>") for cold-start SFT.
//
// Tasks:
//   addition  "What is 47 + 85?"  Operands have 1..digits digits (uniform in the digit count,
//             then in the value). The trace adds column by column from the right, with carries:
//               7 + 5 = 12, write 2 carry 1
//               4 + 8 + 1 = 13, write 3 carry 1
//               carry 1
//             then </think> and <answer>132</answer>.
//   sum       "What is 3 + 5 + 2?"  2..terms operands of 1..digits digits each; the trace keeps a
//             running total, one line per operand after the first:
//               3 + 5 = 8
//               8 + 2 = 10
//             then </think> and <answer>10</answer>. Every step is one small addition fact, so a
//             tiny model learns it in a few hundred steps and held-out problems are new
//             combinations of facts seen in training.
//
// Two training sets, as a pretraining corpus and a cold-start set: pretrain.jsonl holds every
// training problem as a plain document (question, newline, worked trace; no chat template), for
// the model to learn the task's facts from; sft.jsonl holds the first sft_size of them as chat rows
// (question → trace) for the cold start, which teaches the chat format and the R1 output shape.
//
// Answers at a glance (direct_fraction > 0): that share of the rows of sft.jsonl, chosen with a
// seeded generator of their own so that the problems do not change with it, skip the worked steps:
// "<think>\nAt a glance: 132.\n</think>\n<answer>132</answer>". That makes a cold-start set of
// mixed quality, as R1's was. A policy trained on it answers some prompts without working, and a
// tiny model guesses a multi-digit sum far less reliably than it adds column by column, so GRPO's
// reward favours the worked trace (and the responses grow longer). The glance line has no "+" or
// "=": one that looked like a column step ("47 + 85 = 132") confused the column facts themselves.
//
// Generation is a pure function of (task config, seed): problems are drawn with a seeded
// std::mt19937_64 and deduplicated by question, train first, then test disjoint from train (so
// held-out accuracy measures generalisation). Too few distinct problems for the sizes asked is an
// error naming the sizes.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/json.h"

namespace r1kit::recipes {

struct SyntheticConfig {
  std::string task = "addition";
  int64_t digits = 2;          // operand width bound
  int64_t terms = 3;           // sum: the most operands (at least 2)
  int64_t train_size = 512;    // problems in train.jsonl (and pretrain.jsonl, the same problems)
  int64_t test_size = 128;     // held-out problems in test.jsonl
  int64_t sft_size = 0;        // rows of sft.jsonl: the first sft_size training problems (0: all)
  double direct_fraction = 0;  // the share of sft.jsonl rows that answer at a glance
  uint64_t seed = 0;

  static SyntheticConfig from_json(const Json& j, std::string_view where);
  Json to_json() const;
};

struct Problem {
  std::string question;  // the user prompt
  std::string answer;    // the exact answer ("132")
  std::string trace;     // the R1-format completion: <think>…</think>\n<answer>…</answer>
};

// The column-by-column worked steps of a + b (the trace's inside, one line per column).
std::string addition_trace(int64_t a, int64_t b);
// The running-total steps of terms[0] + terms[1] + ... (one line per operand after the first).
std::string sum_trace(const std::vector<int64_t>& terms);

// The pretraining document of a problem: the question, a newline, the worked trace
// ("What is 47 + 85?\n<think>\n…</think>\n<answer>132</answer>").
std::string pretrain_text(const Problem& p);

// The R1-format completion that answers at a glance, without working:
// "<think>\nAt a glance: 132.\n</think>\n<answer>132</answer>".
std::string glance_trace(const std::string& answer);

// train_size + test_size distinct problems: train then test.
std::vector<Problem> generate_problems(const SyntheticConfig& c);

// Writes DIR/train.jsonl and DIR/test.jsonl ({"question", "answer"}), DIR/pretrain.jsonl
// ({"text": pretrain_text}, every training problem, worked) and DIR/sft.jsonl ({"question",
// "answer": trace}, the first sft_size training problems, direct_fraction of them at a glance),
// each atomically. Returns {"train", "test", "sft", "pretrain"}: the row counts.
Json write_synthetic_dataset(const SyntheticConfig& c, const std::string& dir);

}  // namespace r1kit::recipes
