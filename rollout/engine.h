// The rollout engine: continuous batching over a paged KV cache (policy/decode.h). A scheduler
// admits requests while the block budget allows, runs chunked prefill and batched decode steps
// through CachedForward::step, forks the n samples of a request once its prompt is prefilled (they
// share the prompt's blocks; a shared partial block is copied on write), retires finished sequences
// at once and, when blocks run out, preempts the youngest sequence by recompute (its blocks are
// freed and it is requeued with its generated tokens appended to its prompt).
//
// Reproducibility: the token at position p of sample s of request r is drawn by
// kernels::sample_forward with Philox counters (stream = r.index * n + s, position = p), so it
// depends on (seed, r.index, s, p, logits) only, never on the batch or on scheduling.
// Completion::experts[t] (MoE): the experts routed at the position whose logits token t was drawn
// from (the last prompt token for t = 0, token t - 1 after that), over the MoE layers.
// EOS: the tokenizer's eos_ids() plus EngineOptions::extra_eos (none without a tokenizer).
// CUDA graphs: decode steps of dense policies replay a graph per batch size (EngineOptions).
// Not built yet: swap-out preemption, prefix caching across requests, CUDA graphs for MoE policies
// (their layers synchronise), one batched sample_forward over rows of different sampling
// parameters (rows are grouped by parameters; each group is one gather and one draw).
#pragma once

#include <string_view>

#include "core/json.h"

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/context.h"
#include "policy/decode.h"
#include "policy/tokenizer.h"
#include "rollout/kv_blocks.h"
#include "rollout/request.h"

namespace r1kit::policy {
class Policy;
}

namespace r1kit::rollout {

struct EngineOptions {
  int64_t num_blocks = 4096;       // KV blocks in the pool (the memory budget)
  int64_t block_size = 16;         // token slots per block
  int64_t max_batch_tokens = 512;  // tokens per step: decodes plus prefill chunks
  int64_t max_sequences = 256;     // sequences in one step
  std::vector<int32_t> extra_eos;  // EOS ids besides the tokenizer's (models without one)
  // Synchronise the device after each forward so that EngineStats' forward and sampling times
  // are each phase's own (otherwise queued GPU work is counted where the host first waits).
  bool time_phases = false;
  // CUDA graphs for decode steps of dense policies (CachedForward::enable_cuda_graphs, with the
  // longest sequence of each generate() call); bit-identical to eager steps.
  bool cuda_graphs = true;

  // The "engine" block of a stage config (grpo, sample, eval): num_blocks, block_size,
  // max_batch_tokens, max_sequences, cuda_graphs; unknown keys and values < 1 are errors naming
  // `where`.
  static EngineOptions from_json(const Json& j, std::string_view where);
  Json to_json() const;
};

struct EngineStats {
  int64_t steps = 0;
  int64_t prefill_tokens = 0;  // tokens run in steps that did not sample (chunks) or sampled
  int64_t decode_tokens = 0;   //   after one new token (decodes)
  int64_t generated_tokens = 0;
  int64_t preemptions = 0;     // sequences freed and requeued for recompute
  int64_t copy_on_writes = 0;  // shared partial blocks copied
  int64_t peak_used_blocks = 0;
  int64_t peak_batch_sequences = 0;
  // Host wall time per phase (see EngineOptions::time_phases): scheduling and batch assembly,
  // the cached forward, sampling (gather, draw, download).
  double schedule_seconds = 0, forward_seconds = 0, sample_seconds = 0;
  int64_t graph_captures = 0, graph_replays = 0;  // CUDA graphs of decode steps
};

// One request's outcome: n completions in sample order, or an error (the prompt does not fit).
struct RequestOutput {
  std::vector<Completion> completions;
  // MoE policies: (P − 1, L, K) experts routed at prompt positions 0 .. P − 2 during the prefill
  // (position P − 1 starts each completion's `experts`); empty for dense policies.
  std::vector<int32_t> prompt_experts;
  std::string error;
  bool ok() const { return error.empty(); }
};

// Router replay for the training forward over prompt + completion `sample` (T = P + n tokens):
// per main decoder layer, a (T, K) i32 host tensor of the experts the engine routed each position
// to (undefined tensors for dense layers; an empty vector for dense policies) — prompt positions
// from prompt_experts, positions P − 1 .. T − 2 from the completion's experts, and the last token
// (never run by the engine; its output is no log-prob) repeating the row before it. These are
// ForwardOptions::replay_topk_idx's tensors.
std::vector<Tensor> replay_experts(const policy::ModelConfig& cfg, const RequestOutput& out,
                                   size_t sample, Allocator& host);

// Called after each step: sequences finished in it and tokens sampled in it.
using StepCallback = std::function<void(int64_t finished_sequences, int64_t new_tokens)>;

class Engine {
 public:
  // `tokenizer` (may be null): text of completions, EOS ids, stop strings, text prompts. Both the
  // policy and the tokenizer must outlive the engine.
  Engine(policy::Policy& policy, const policy::Tokenizer* tokenizer, const EngineOptions& opts,
         Context& ctx);
  ~Engine();

  // Runs the requests to completion; outputs in request order. Requests must have token-id or
  // text prompts (messages are rendered and encoded by the caller).
  std::vector<RequestOutput> generate(const std::vector<Request>& requests,
                                      const StepCallback& on_step = {});
  // After the policy's weights changed (an optimizer step): rebuilds what the cache derives.
  void refresh_weights();

  const EngineStats& stats() const { return stats_; }
  void reset_stats() { stats_ = {}; }
  const KvBlockAllocator& allocator() const { return alloc_; }
  const EngineOptions& options() const { return opts_; }
  // Called after each step's block appends, before the forward (tests inspect sharing here).
  std::function<void(const KvBlockAllocator&)> on_blocks;

 private:
  policy::Policy& policy_;
  const policy::Tokenizer* tok_;
  EngineOptions opts_;
  Context& ctx_;
  policy::CachedForward fwd_;
  policy::PagedKvCache cache_;
  KvBlockAllocator alloc_;
  std::vector<int32_t> eos_;
  EngineStats stats_;
};

// generate() that throws for the first request whose output is an error.
std::vector<std::vector<Completion>> generate(Engine& engine, const std::vector<Request>& requests,
                                              const StepCallback& on_step = {});

}  // namespace r1kit::rollout
