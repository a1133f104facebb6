// What the rollout engine is asked for and what it returns: a prompt (token ids, text, or chat
// messages), sampling parameters with n samples, and one Completion per sample; plus the JSONL
// rows of `r1kit generate`. The engine is rollout/engine.h; `r1kit generate`
// (apps/cmd_generate.cpp) encodes text and messages prompts into prompt_ids.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/json.h"
#include "policy/chat_template.h"

namespace r1kit::rollout {

// JSON keys as in vLLM where it has one (top_k, top_p, min_p, stop, stop_token_ids, seed, n,
// ignore_eos, include_stop_str_in_output); max_new_tokens is HF's name.
struct SamplingParams {
  double temperature = 1.0;      // >= 0; 0 is greedy (argmax)
  int64_t top_k = 0;             // keep the k most likely tokens; 0: off
  double top_p = 1.0;            // in (0, 1]: keep the smallest set with this much mass; 1: off
  double min_p = 0.0;            // in [0, 1]: drop tokens below min_p * max prob; 0: off
  int64_t max_new_tokens = 256;  // >= 1
  std::vector<int32_t> stop_token_ids;  // ends with finish_reason stop, token kept
  std::vector<std::string> stop;        // stop strings (rollout/stop.h), non-empty UTF-8
  bool include_stop_str_in_output = false;
  bool ignore_eos = false;  // generate past the tokenizer's EOS (benchmarks)
  uint64_t seed = 0;
  int64_t n = 1;  // samples per prompt (a GRPO group)

  // Throws r1kit::Error naming `where` and the field: "sampling: top_p must be in (0, 1], got 0".
  void validate(std::string_view where = "sampling") const;
};

Json to_json(const SamplingParams& p);
// Each key present in `j` overrides `base`; unknown keys are errors with a "did you mean".
SamplingParams sampling_params_from_json(const Json& j, std::string_view where,
                                         SamplingParams base = {});

enum class PromptKind { token_ids, text, messages };

struct Request {
  PromptKind prompt_kind = PromptKind::token_ids;
  std::vector<int32_t> prompt_ids;  // token_ids
  std::string prompt;               // text; "" means BOS only (when the tokenizer adds it)
  std::vector<policy::ChatMessage> messages;  // messages
  SamplingParams sampling;
  // The request's place in the sampling RNG's key (seed, index, sample, position); `r1kit
  // generate` uses the row's index. Not part of the JSON row.
  uint64_t index = 0;

  void validate(std::string_view where) const;  // sampling, and ids >= 0 (vocab: the engine's)
};

enum class FinishReason {
  stop,    // a stop string or a stop token id
  length,  // max_new_tokens (or the context length)
  eos,     // the tokenizer's EOS
};
std::string_view finish_reason_name(FinishReason r);
FinishReason parse_finish_reason(std::string_view name, std::string_view where);

struct Completion {
  std::vector<int32_t> token_ids;  // (T) generated tokens, the stop/EOS token included
  std::string text;                // decoded; cut before a stop string unless it is included
  std::vector<float> logprobs;     // (T) of each token under the distribution it was drawn from
  FinishReason finish_reason = FinishReason::length;
  // MoE policies: (T, L, K) routed experts per generated token, L = MoE layers, K = experts per
  // token, flattened; empty with L = K = 0 for dense policies.
  std::vector<int32_t> experts;
  int64_t expert_layers = 0;
  int64_t experts_per_token = 0;

  void validate(std::string_view where) const;  // sizes agree
};

// {"text", "token_ids", "logprobs", "finish_reason"} and "experts" ([T][L][K]) for MoE.
Json to_json(const Completion& c);
Completion completion_from_json(const Json& j, std::string_view where);

// An input row of `r1kit generate`: exactly one of "prompt" (text), "messages" or "prompt_ids",
// an optional "sampling" object whose keys override `defaults` (the command line), and any other
// fields, which are the caller's and pass through to the output. A row that already has
// "completions" is an error (the output would replace it).
Request request_from_json(const Json& row, const SamplingParams& defaults, std::string_view where);
// The prompt field and the full "sampling" object (request_from_json reads it back).
Json to_json(const Request& r);
// The output row: the input row's fields plus "completions" and, for MoE policies,
// "prompt_experts" ([P − 1][L][K]: the routing of prompt positions 0 .. P − 2, for router replay;
// RequestOutput::prompt_experts).
Json generate_output_row(const Json& input_row, const std::vector<Completion>& completions,
                         const std::vector<int32_t>& prompt_experts = {});

}  // namespace r1kit::rollout
