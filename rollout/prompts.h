// Prompt rows for the stages that sample (GRPO, rejection sampling, evaluation): a JSONL file of
// rows, each rendered with a chat template (generation prompt on) and encoded.
//
// A row's prompt is its `field` (default: the first of messages, prompt, question, problem): a
// string becomes one user message (after the system prompt, if any); a messages array is used as
// it is (the last user message is the row's question). The whole row is kept: it is the reward's
// reference (gold answer, tests, ...). Malformed lines, rows without the field, prompts with ids
// outside the vocabulary and prompts longer than max_tokens are skipped, counted and logged with
// file:line; no usable row at all is an error naming the file.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/json.h"
#include "policy/chat_template.h"
#include "policy/tokenizer.h"

namespace r1kit::rollout {

struct PromptRow {
  Json row;              // the dataset row (the reward's reference)
  std::string question;  // the user prompt text (the reward's prompt)
  std::vector<int32_t> ids;
  int64_t line = 0;  // 1-based line in the file
};

struct PromptSetOptions {
  std::string path;
  std::string field;              // "" = the first of messages, prompt, question, problem
  std::string system_prompt;      // prepended to string prompts
  int64_t max_tokens = 1024;      // longer prompts are skipped
  int64_t vocab = 0;              // ids must be below it (0 = unchecked)
  std::string label = "prompts";  // the config key named in errors and log lines
};

struct PromptSet {
  std::vector<PromptRow> rows;
  int64_t skipped = 0;
};

PromptSet load_prompt_set(const PromptSetOptions& o, const policy::Tokenizer& tok,
                          const policy::ChatTemplate& chat);

}  // namespace r1kit::rollout
