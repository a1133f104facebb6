// The rollout engine's scheduler (rollout/engine.h): admission under the block budget, chunked
// prefill, batched decode, forking of a request's samples, stop handling, preemption by recompute.
#include "rollout/engine.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <deque>
#include <map>
#include <optional>
#include <tuple>

#include "core/error.h"
#include "kernels/embedding.h"
#include "kernels/sampling.h"
#include "policy/policy.h"
#include "rollout/stop.h"

namespace r1kit::rollout {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// A contiguous 1-D view's bytes as another dtype of the same element size (i32 ↔ f32) or as
// fewer elements of a smaller one (i64 slots holding i32 ids).
TensorView retyped(const TensorView& v, DType dtype, const Shape& shape) {
  TensorView r(v.data, dtype, v.device, shape, v.name);
  R1_CHECK(v.is_contiguous() && r.nbytes() <= v.nbytes(), "[engine] cannot view {} as {}",
           v.describe(), r.describe());
  return r;
}

// One sequence: an unforked request (group_n = n > 1 until its prompt is prefilled) or a sample.
struct Seq {
  size_t req = 0;
  int64_t sample = 0;
  int64_t group_n = 1;
  SeqId id = 0;
  int64_t stamp = 0;            // admission order: the largest is the youngest
  std::vector<int32_t> tokens;  // prompt + generated
  int64_t prompt_len = 0;
  int64_t cached = 0;  // tokens whose K/V the cache holds
  int64_t limit = 0;   // tokens.size() at which generation stops (length)
  Completion out;
  std::unique_ptr<policy::StreamDecoder> dec;
  std::unique_ptr<StopMatcher> stop;
  bool done = false;
};

struct Entry {
  Seq* seq;
  int64_t chunk;
};

// The sampling key shared by rows that one sample_forward call can draw together.
using SampleKey = std::tuple<double, int64_t, double, double, uint64_t>;

SampleKey sample_key(const SamplingParams& p) {
  return {p.temperature, p.top_k, p.top_p, p.min_p, p.seed};
}

}  // namespace

Engine::Engine(policy::Policy& policy, const policy::Tokenizer* tokenizer,
               const EngineOptions& opts, Context& ctx)
    : policy_(policy),
      tok_(tokenizer),
      opts_(opts),
      ctx_(ctx),
      fwd_(policy, ctx),
      cache_(policy::PagedKvCache::make(
          policy.config(),
          policy::KvCacheSpec{opts.num_blocks, opts.block_size, policy.options().dtype}, ctx)),
      alloc_(opts.block_size, opts.num_blocks) {
  R1_CHECK(opts.max_batch_tokens >= 1, "[engine] max_batch_tokens must be >= 1, got {}",
           opts.max_batch_tokens);
  R1_CHECK(opts.max_sequences >= 1, "[engine] max_sequences must be >= 1, got {}",
           opts.max_sequences);
  if (tok_) eos_ = tok_->eos_ids();
  eos_.insert(eos_.end(), opts.extra_eos.begin(), opts.extra_eos.end());
}

Engine::~Engine() = default;

void Engine::refresh_weights() {
  fwd_.refresh_weights(ctx_);
}

std::vector<RequestOutput> Engine::generate(const std::vector<Request>& requests,
                                            const StepCallback& on_step) {
  const policy::ModelConfig& cfg = policy_.config();
  const int64_t V = cfg.vocab_size;
  const int64_t max_pos = cfg.max_position_embeddings;
  int64_t moe_layers = 0;
  for (int64_t l = 0; l < cfg.num_hidden_layers; ++l) moe_layers += cfg.is_moe_layer(l) ? 1 : 0;
  const int64_t K = cfg.is_moe() ? cfg.num_experts_per_tok() : 0;
  const int64_t LK = moe_layers * K;

  std::vector<RequestOutput> outputs(requests.size());
  std::vector<std::unique_ptr<Seq>> seqs;
  std::deque<Seq*> waiting;
  std::vector<Seq*> running;  // in stamp order
  SeqId next_id = 0;
  int64_t next_stamp = 0;

  auto new_seq = [&](size_t req) {
    auto s = std::make_unique<Seq>();
    s->req = req;
    s->id = next_id++;
    const SamplingParams& sp = requests[req].sampling;
    if (tok_) s->dec = std::make_unique<policy::StreamDecoder>(*tok_, policy::DecodeOptions{true});
    s->stop = std::make_unique<StopMatcher>(sp.stop, sp.include_stop_str_in_output);
    s->out.expert_layers = LK > 0 ? moe_layers : 0;
    s->out.experts_per_token = LK > 0 ? K : 0;
    seqs.push_back(std::move(s));
    return seqs.back().get();
  };

  // Prompts, validated; a request that cannot run gets its error and no sequence.
  for (size_t r = 0; r < requests.size(); ++r) {
    const Request& q = requests[r];
    const std::string where = fmt::format("request {}", r);
    try {
      q.validate(where);
      std::vector<int32_t> ids;
      if (q.prompt_kind == PromptKind::token_ids) {
        ids = q.prompt_ids;
      } else if (q.prompt_kind == PromptKind::text) {
        R1_CHECK(tok_, "{}: a text prompt needs the model's tokenizer (give prompt_ids)", where);
        ids = tok_->encode(q.prompt);
        R1_CHECK(!ids.empty(),
                 "{}: the prompt is empty and the tokenizer adds no BOS: there is no token to "
                 "start from",
                 where);
      } else {
        R1_THROW("{}: messages must be rendered with the chat template and encoded first", where);
      }
      for (size_t i = 0; i < ids.size(); ++i)
        R1_CHECK(ids[i] >= 0 && ids[i] < V,
                 "{}: prompt token {} (position {}) is outside the model's vocabulary [0, {})",
                 where, ids[i], i, V);
      if (!q.sampling.stop.empty())
        R1_CHECK(tok_, "{}: stop strings need the model's tokenizer", where);
      const int64_t P = static_cast<int64_t>(ids.size());
      R1_CHECK(P < max_pos,
               "{}: the prompt has {} tokens, but the model's context is {} positions "
               "(max_position_embeddings) and a new token needs one more: shorten the prompt",
               where, P, max_pos);
      const int64_t limit = std::min(P + q.sampling.max_new_tokens, max_pos);
      const int64_t need = alloc_.blocks_for_tokens(limit);
      R1_CHECK(need <= alloc_.num_blocks(),
               "{}: the prompt ({} tokens) plus max_new_tokens ({}) needs {} KV blocks of {} "
               "tokens, but the pool has {}: raise the block budget (--kv-blocks)",
               where, P, q.sampling.max_new_tokens, need, alloc_.block_size(), alloc_.num_blocks());
      R1_CHECK(limit < (int64_t{1} << 32), "{}: positions must stay below 2^32", where);
      outputs[r].completions.resize(static_cast<size_t>(q.sampling.n));
      if (LK > 0) outputs[r].prompt_experts.resize(static_cast<size_t>((P - 1) * LK));
      Seq* s = new_seq(r);
      s->group_n = q.sampling.n;
      s->tokens = std::move(ids);
      s->prompt_len = P;
      s->limit = limit;
      waiting.push_back(s);
    } catch (Error& e) {
      outputs[r].error = e.what();
      outputs[r].completions.clear();
    }
  }

  const policy::CachedForward::GraphStats graphs_before = fwd_.graph_stats();
  if (opts_.cuda_graphs && ctx_.is_cuda() && !cfg.is_moe()) {
    int64_t longest = 1;
    for (const Seq* q : waiting) longest = std::max(longest, q->limit);
    fwd_.enable_cuda_graphs(longest);
  }

  auto remove_running = [&](Seq* s) {
    running.erase(std::find(running.begin(), running.end(), s));
  };
  std::vector<Entry> entries;
  // Frees the youngest running sequence's blocks and requeues it at the front for recompute.
  auto preempt_youngest = [&]() -> Seq* {
    Seq* v = running.back();
    alloc_.free(v->id);
    v->cached = 0;
    running.pop_back();
    entries.erase(
        std::remove_if(entries.begin(), entries.end(), [&](const Entry& e) { return e.seq == v; }),
        entries.end());
    waiting.push_front(v);
    ++stats_.preemptions;
    return v;
  };
  // Blocks for `chunk` more tokens of s, preempting the youngest sequences while the pool is short;
  // false when s itself was preempted.
  auto reserve = [&](Seq* s, int64_t chunk) {
    while (!alloc_.can_append(s->id, chunk))
      if (preempt_youngest() == s) return false;
    const AppendResult res = alloc_.append(s->id, chunk);
    if (res.copy) {
      cache_.copy_block(res.copy->src, res.copy->dst, res.copy->num_tokens, ctx_);
      ++stats_.copy_on_writes;
    }
    return true;
  };

  // Completes a sequence: flushes its text and returns its completion to the request's output.
  auto finish = [&](Seq* s, FinishReason reason) {
    s->done = true;
    s->out.finish_reason = reason;
    if (s->dec && !s->stop->stopped()) {
      if (reason != FinishReason::stop) {
        const std::string rest = s->dec->finish();
        if (!rest.empty()) s->stop->feed(rest);
      }
      if (!s->stop->stopped()) s->stop->finish();
    }
    s->out.text = s->stop->text();
    alloc_.free(s->id);
    remove_running(s);
    outputs[s->req].completions[static_cast<size_t>(s->sample)] = std::move(s->out);
  };

  auto is_in = [](const std::vector<int32_t>& v, int32_t t) {
    return std::find(v.begin(), v.end(), t) != v.end();
  };
  // Appends a drawn token; true when the sequence is finished.
  auto accept = [&](Seq* s, int32_t token, float logprob, const int32_t* experts) {
    const SamplingParams& sp = requests[s->req].sampling;
    s->tokens.push_back(token);
    s->out.token_ids.push_back(token);
    s->out.logprobs.push_back(logprob);
    if (experts) s->out.experts.insert(s->out.experts.end(), experts, experts + LK);
    ++stats_.generated_tokens;
    std::optional<FinishReason> reason;
    if (is_in(sp.stop_token_ids, token)) {
      reason = FinishReason::stop;
    } else if (!sp.ignore_eos && is_in(eos_, token)) {
      reason = FinishReason::eos;
    } else {
      // Ids past the tokenizer's vocabulary (a model's padded embedding rows, e.g. Qwen2.5's
      // 151936 rows for 151665 tokens) have no text: they are kept as tokens and decode to "".
      if (s->dec && token < tok_->vocab_size()) {
        const std::string piece = s->dec->push(token);
        if (!piece.empty()) s->stop->feed(piece);
      }
      if (s->stop->stopped())
        reason = FinishReason::stop;
      else if (static_cast<int64_t>(s->tokens.size()) >= s->limit)
        reason = FinishReason::length;
    }
    if (reason) finish(s, *reason);
    return reason.has_value();
  };

  while (!waiting.empty() || !running.empty()) {
    const auto t_step = Clock::now();
    entries.clear();
    int64_t budget = opts_.max_batch_tokens;
    // Decodes first (one token each), then the chunks of prompts being prefilled, oldest first.
    for (const bool decode : {true, false}) {
      const std::vector<Seq*> order = running;
      for (Seq* s : order) {
        if (budget == 0 || static_cast<int64_t>(entries.size()) >= opts_.max_sequences) break;
        if (std::find(running.begin(), running.end(), s) == running.end()) continue;
        const int64_t rem = static_cast<int64_t>(s->tokens.size()) - s->cached;
        if ((rem == 1) != decode) continue;
        const int64_t chunk = std::min(rem, budget);
        if (!reserve(s, chunk)) continue;
        entries.push_back({s, chunk});
        budget -= chunk;
      }
    }
    // Admission while the pool holds the whole prompt (and a block per sample to grow into).
    while (!waiting.empty() && budget > 0 &&
           static_cast<int64_t>(entries.size()) < opts_.max_sequences &&
           static_cast<int64_t>(running.size()) < opts_.max_sequences) {
      Seq* s = waiting.front();
      const int64_t len = static_cast<int64_t>(s->tokens.size());
      if (!alloc_.can_admit(len, running.empty() ? 0 : s->group_n)) break;
      waiting.pop_front();
      alloc_.add_sequence(s->id, 0);
      s->cached = 0;
      s->stamp = next_stamp++;
      running.push_back(s);
      const int64_t chunk = std::min(len, budget);
      if (!reserve(s, chunk)) break;  // cannot happen after can_admit; requeued if it does
      entries.push_back({s, chunk});
      budget -= chunk;
    }
    R1_CHECK(!entries.empty(), "[engine] no sequence could be scheduled ({} waiting, {} running)",
             waiting.size(), running.size());
    stats_.peak_used_blocks = std::max(stats_.peak_used_blocks, alloc_.num_used_blocks());
    stats_.peak_batch_sequences =
        std::max(stats_.peak_batch_sequences, static_cast<int64_t>(entries.size()));
    if (on_blocks) on_blocks(alloc_);

    policy::CachedBatch batch;
    for (const Entry& e : entries) {
      const auto first = e.seq->tokens.begin() + e.seq->cached;
      batch.tokens.insert(batch.tokens.end(), first, first + e.chunk);
      batch.cached_len.push_back(e.seq->cached);
      batch.new_len.push_back(e.chunk);
      batch.block_tables.push_back(alloc_.block_table(e.seq->id));
    }
    const auto t_forward = Clock::now();
    stats_.schedule_seconds += std::chrono::duration<double>(t_forward - t_step).count();
    const policy::CachedOutput out = fwd_.step(batch, cache_, ctx_);
    if (opts_.time_phases) ctx_.synchronize();
    stats_.forward_seconds += seconds_since(t_forward);
    ++stats_.steps;

    // Rows to sample: (entry, sample index, stream, position), grouped by sampling key.
    struct Row {
      size_t entry;
      int64_t sample;
    };
    std::map<SampleKey, std::vector<Row>> groups;
    int64_t offset = 0;
    std::vector<int64_t> last_row(entries.size());
    for (size_t i = 0; i < entries.size(); ++i) {
      Seq* s = entries[i].seq;
      // The prompt's routing, from its first prefill (sample 0 before the fork; a recompute after
      // a preemption rewrites the same positions).
      if (LK > 0 && s->sample == 0 && s->cached < s->prompt_len - 1) {
        std::vector<int32_t>& pe = outputs[s->req].prompt_experts;
        const int64_t end = std::min(s->cached + entries[i].chunk, s->prompt_len - 1);
        for (int64_t p = s->cached; p < end; ++p) {
          const int32_t* src =
              out.experts.data() + static_cast<size_t>((offset + p - s->cached) * LK);
          std::copy(src, src + LK, pe.begin() + p * LK);
        }
      }
      s->cached += entries[i].chunk;
      offset += entries[i].chunk;
      last_row[i] = offset - 1;
      (entries[i].chunk == 1 ? stats_.decode_tokens : stats_.prefill_tokens) += entries[i].chunk;
      if (s->cached != static_cast<int64_t>(s->tokens.size())) continue;
      auto& g = groups[sample_key(requests[s->req].sampling)];
      for (int64_t j = 0; j < s->group_n; ++j) g.push_back({i, s->group_n > 1 ? j : s->sample});
    }
    // tokens/logprobs per (entry, sample). Per group: one upload (Philox counters and the logits
    // rows to gather, skipped when the group is every row in order), one gather kernel, the
    // sampling launches, one download of tokens and log-probs.
    const auto t_sample = Clock::now();
    std::map<std::pair<size_t, int64_t>, std::pair<int32_t, float>> drawn;
    for (const auto& [key, rows] : groups) {
      const int64_t B = static_cast<int64_t>(rows.size());
      bool identity = B == static_cast<int64_t>(entries.size());
      for (int64_t b = 0; identity && b < B; ++b)
        identity = rows[static_cast<size_t>(b)].entry == static_cast<size_t>(b);
      // Host buffer: counters (B, 2) i64, then the B i32 row ids in the following i64 slots.
      const int64_t n_up = 2 * B + (B + 1) / 2;
      Tensor up({n_up}, DType::i64, ctx_.host_allocator(), "sample_index");
      int64_t* cnt = up.ptr<int64_t>();
      int32_t* src_rows = reinterpret_cast<int32_t*>(cnt + 2 * B);
      for (int64_t b = 0; b < B; ++b) {
        const Row& row = rows[static_cast<size_t>(b)];
        const Seq* s = entries[row.entry].seq;
        const Request& q = requests[s->req];
        cnt[2 * b] = static_cast<int64_t>(q.index) * q.sampling.n + row.sample;
        cnt[2 * b + 1] = static_cast<int64_t>(s->tokens.size());
        src_rows[b] = static_cast<int32_t>(row.entry);
      }
      Tensor up_dev = ctx_.empty({n_up}, DType::i64, "sample_index");
      ctx_.copy(up_dev, up);
      const TensorView counters = up_dev.view().slice(0, 2 * B).reshape({B, 2});
      TensorView logits = out.logits.view();
      Tensor gathered;
      if (!identity) {
        const TensorView idx = retyped(up_dev.view().slice(2 * B, n_up), DType::i32, {B});
        gathered = ctx_.empty({B, V}, out.logits.dtype(), "sample_logits");
        kernels::embedding_forward(gathered, idx, out.logits, ctx_);
        logits = gathered.view();
      }
      // Results: B tokens (i32) then B log-probs (f32) in one buffer, one download.
      Tensor res = ctx_.empty({2 * B}, DType::i32, "sampled");
      const TensorView tokens = res.view().slice(0, B);
      const TensorView lp = retyped(res.view().slice(B, 2 * B), DType::f32, {B});
      kernels::SamplingParams kp;
      kp.temperature = std::get<0>(key);
      kp.top_k = std::get<1>(key);
      kp.top_p = std::get<2>(key);
      kp.min_p = std::get<3>(key);
      kernels::sample_forward(tokens, lp, logits, counters, kp, std::get<4>(key), ctx_);
      Tensor hres({2 * B}, DType::i32, ctx_.host_allocator(), "sampled");
      ctx_.copy(hres, res);
      for (int64_t b = 0; b < B; ++b) {
        const Row& row = rows[static_cast<size_t>(b)];
        float logprob;
        std::memcpy(&logprob, hres.ptr<int32_t>() + B + b, sizeof logprob);
        drawn[{row.entry, row.sample}] = {hres.ptr<int32_t>()[b], logprob};
      }
    }
    stats_.sample_seconds += seconds_since(t_sample);

    int64_t finished = 0, new_tokens = 0;
    for (size_t i = 0; i < entries.size(); ++i) {
      Seq* s = entries[i].seq;
      if (s->cached != static_cast<int64_t>(s->tokens.size())) continue;
      const int32_t* experts =
          LK > 0 ? out.experts.data() + static_cast<size_t>(last_row[i] * LK) : nullptr;
      // Fork the samples of a request whose prompt is now cached: they share its blocks.
      std::vector<Seq*> samples = {s};
      if (s->group_n > 1) {
        for (int64_t j = 1; j < s->group_n; ++j) {
          Seq* c = new_seq(s->req);
          c->sample = j;
          c->tokens = s->tokens;
          c->prompt_len = s->prompt_len;
          c->cached = s->cached;
          c->limit = s->limit;
          c->stamp = next_stamp++;
          alloc_.fork(s->id, c->id);
          running.push_back(c);
          samples.push_back(c);
        }
        s->group_n = 1;
      }
      for (Seq* t : samples) {
        const auto [token, logprob] = drawn.at({i, t->sample});
        ++new_tokens;
        if (accept(t, token, logprob, experts)) ++finished;
      }
    }
    // Keep `running` in stamp order (forked children got the newest stamps).
    std::stable_sort(running.begin(), running.end(),
                     [](const Seq* a, const Seq* b) { return a->stamp < b->stamp; });
    if (on_step) on_step(finished, new_tokens);
  }
  stats_.graph_captures += fwd_.graph_stats().captures - graphs_before.captures;
  stats_.graph_replays += fwd_.graph_stats().replays - graphs_before.replays;
  return outputs;
}

std::vector<Tensor> replay_experts(const policy::ModelConfig& cfg, const RequestOutput& out,
                                   size_t sample, Allocator& host) {
  R1_CHECK(out.ok(), "[replay_experts] the request failed: {}", out.error);
  R1_CHECK(sample < out.completions.size(), "[replay_experts] sample {} of {}", sample,
           out.completions.size());
  const Completion& c = out.completions[sample];
  std::vector<Tensor> views;
  if (!cfg.is_moe()) return views;
  const int64_t K = cfg.num_experts_per_tok(), L = c.expert_layers,
                n = static_cast<int64_t>(c.token_ids.size());
  const int64_t p1 = static_cast<int64_t>(out.prompt_experts.size()) / std::max<int64_t>(L * K, 1);
  R1_CHECK(L > 0 && c.experts_per_token == K &&
               static_cast<int64_t>(out.prompt_experts.size()) == p1 * L * K &&
               static_cast<int64_t>(c.experts.size()) == n * L * K,
           "[replay_experts] the completion's experts ({} layers × {}) do not fit the model's {} "
           "experts per token",
           L, c.experts_per_token, K);
  R1_CHECK(n >= 1, "[replay_experts] the completion has no tokens");
  const int64_t T = p1 + 1 + n;  // prompt (P = p1 + 1) + completion
  int64_t j = 0;                 // MoE layer index
  for (int64_t l = 0; l < cfg.num_hidden_layers; ++l) {
    if (!cfg.is_moe_layer(l)) {
      views.emplace_back();
      continue;
    }
    Tensor t({T, K}, DType::i32, host, fmt::format("replay_topk_idx.{}", l));
    int32_t* d = t.ptr<int32_t>();
    for (int64_t p = 0; p < T - 1; ++p) {
      const int32_t* src = p < p1 ? out.prompt_experts.data() + (p * L + j) * K
                                  : c.experts.data() + ((p - p1) * L + j) * K;
      std::copy(src, src + K, d + p * K);
    }
    std::copy(d + (T - 2) * K, d + (T - 1) * K, d + (T - 1) * K);
    views.push_back(std::move(t));
    ++j;
  }
  return views;
}

std::vector<std::vector<Completion>> generate(Engine& engine, const std::vector<Request>& requests,
                                              const StepCallback& on_step) {
  std::vector<RequestOutput> outs = engine.generate(requests, on_step);
  std::vector<std::vector<Completion>> result;
  result.reserve(outs.size());
  for (RequestOutput& o : outs) {
    if (!o.ok()) R1_THROW("[generate] {}", o.error);
    result.push_back(std::move(o.completions));
  }
  return result;
}

EngineOptions EngineOptions::from_json(const Json& j, std::string_view where) {
  require_object(j, where);
  reject_unknown_keys(
      j, {"num_blocks", "block_size", "max_batch_tokens", "max_sequences", "cuda_graphs"}, where);
  EngineOptions e;
  e.num_blocks = get_optional<int64_t>(j, "num_blocks", where, e.num_blocks);
  e.block_size = get_optional<int64_t>(j, "block_size", where, e.block_size);
  e.max_batch_tokens = get_optional<int64_t>(j, "max_batch_tokens", where, e.max_batch_tokens);
  e.max_sequences = get_optional<int64_t>(j, "max_sequences", where, e.max_sequences);
  e.cuda_graphs = get_optional<bool>(j, "cuda_graphs", where, e.cuda_graphs);
  R1_CHECK(
      e.num_blocks >= 1 && e.block_size >= 1 && e.max_batch_tokens >= 1 && e.max_sequences >= 1,
      "{}: num_blocks, block_size, max_batch_tokens and max_sequences must be >= 1", where);
  return e;
}

Json EngineOptions::to_json() const {
  return Json{{"num_blocks", num_blocks},
              {"block_size", block_size},
              {"max_batch_tokens", max_batch_tokens},
              {"max_sequences", max_sequences},
              {"cuda_graphs", cuda_graphs}};
}

}  // namespace r1kit::rollout
