// Rollout engine speed (rollout/engine.h) on a checkpoint directory (random weights from
// `r1kit init` in the shapes of Qwen2.5-0.5B or dsv3-mini, or any real one):
//   throughput  P prompts of L tokens → N new tokens each (EOS ignored, temperature 1), all
//               requests given at once: generated tokens / wall time of Engine::generate
//               (prefill included). bench/hf_generate.py measures Hugging Face `generate` on the
//               same directory, prompts and GPU; the two lines together give the ratio.
//   latency     batch 1, L-token prompt, N1 greedy tokens: the median time of a decode step.
//               Floor: the bytes one decode step must read (every weight once — the routed experts
//               at their top-k share, the MTP modules and the embedding table's unread rows left
//               out — plus the KV cache of the average context) ÷ the measured copy bandwidth
//               (4300 GB/s on the H200; --gbps).
// Prompt token j of prompt i is 1 + (131·i + 17·j) mod (V − 1), the formula hf_generate.py uses.
// Both report the engine's phase times (EngineOptions::time_phases: a sync after each forward).
// Usage: rollout_bench --model DIR [--device cuda|cpu] [--prompts P] [--prompt-len L]
//        [--new N] [--latency-new N1] [--batch-tokens T] [--gbps G] [--skip-throughput]
// Prints JSON lines: {"bench":"rollout","figure":...}.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/json.h"
#include "policy/decode.h"
#include "policy/policy.h"
#include "rollout/engine.h"

namespace {

using namespace r1kit;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

std::vector<rollout::Request> make_requests(int64_t prompts, int64_t len, int64_t new_tokens,
                                            int64_t vocab, double temperature) {
  std::vector<rollout::Request> reqs;
  for (int64_t i = 0; i < prompts; ++i) {
    rollout::Request r;
    r.index = static_cast<uint64_t>(i);
    for (int64_t j = 0; j < len; ++j)
      r.prompt_ids.push_back(static_cast<int32_t>(1 + (131 * i + 17 * j) % (vocab - 1)));
    r.sampling.max_new_tokens = new_tokens;
    r.sampling.temperature = temperature;
    r.sampling.ignore_eos = true;
    r.sampling.seed = 1;
    reqs.push_back(std::move(r));
  }
  return reqs;
}

// Bytes of weights one decode token reads (see the file comment).
double decode_weight_bytes(const policy::Policy& p) {
  const policy::ModelConfig& c = p.config();
  const double es = static_cast<double>(dtype_size(p.options().dtype));
  double bytes = 0;
  for (const policy::ParamEntry& e : p.params().entries()) {
    if (e.mtp) continue;
    double n = 1;
    for (int64_t d : e.shape) n *= static_cast<double>(d);
    if (e.kind == policy::ParamKind::embedding && !c.tie_word_embeddings) {
      n = static_cast<double>(e.shape.back());  // one row read
    }
    if (e.fused_experts)
      n *= static_cast<double>(c.num_experts_per_tok()) / static_cast<double>(c.n_routed_experts);
    bytes += n * es;
  }
  return bytes;
}

}  // namespace

int main(int argc, char** argv) {
  std::string model, device = "cuda";
  int64_t prompts = 256, prompt_len = 128, new_tokens = 512, latency_new = 128, batch_tokens = 8192;
  double gbps = 4300;
  bool throughput = true;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::cerr << "rollout_bench: " << a << " needs a value\n";
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--model") {
      model = next();
    } else if (a == "--device") {
      device = next();
    } else if (a == "--prompts") {
      prompts = std::stoll(next());
    } else if (a == "--prompt-len") {
      prompt_len = std::stoll(next());
    } else if (a == "--new") {
      new_tokens = std::stoll(next());
    } else if (a == "--latency-new") {
      latency_new = std::stoll(next());
    } else if (a == "--batch-tokens") {
      batch_tokens = std::stoll(next());
    } else if (a == "--gbps") {
      gbps = std::stod(next());
    } else if (a == "--skip-throughput") {
      throughput = false;
    } else {
      std::cerr << "rollout_bench: unknown argument " << a
                << "\nusage: rollout_bench --model DIR [--device cuda|cpu] [--prompts P] "
                   "[--prompt-len L] [--new N] [--latency-new N1] [--batch-tokens T] [--gbps G] "
                   "[--skip-throughput]\n";
      return 2;
    }
  }
  if (model.empty()) {
    std::cerr << "rollout_bench: --model DIR is required\n";
    return 2;
  }
  try {
    auto ctx = device == "cpu" ? Context::cpu({}) : Context::cuda({});
    policy::PolicyOptions po;
    po.dtype = ctx->is_cuda() ? DType::bf16 : DType::f32;
    const auto t_load = Clock::now();
    policy::Policy policy = policy::Policy::load(model, *ctx, po);
    const double load_s = seconds_since(t_load);
    const policy::ModelConfig& cfg = policy.config();
    const int64_t V = cfg.vocab_size, bs = 16;
    const std::string name = model.substr(model.find_last_of('/') + 1);
    const std::string dev = ctx->is_cuda() ? "cuda" : "cpu";

    auto engine_for = [&](int64_t n_prompts, int64_t len) {
      rollout::EngineOptions eo;
      eo.block_size = bs;
      eo.num_blocks = n_prompts * ((len + bs - 1) / bs) + 16;
      eo.max_batch_tokens = batch_tokens;
      eo.max_sequences = std::max<int64_t>(n_prompts, 1);
      eo.time_phases = true;
      return std::make_unique<rollout::Engine>(policy, nullptr, eo, *ctx);
    };

    // Warm-up (allocator pools, cuBLAS handles and heuristics): a few short requests.
    {
      auto e = engine_for(8, prompt_len + 8);
      rollout::generate(*e, make_requests(8, prompt_len, 8, V, 1.0));
      ctx->synchronize();
    }

    if (throughput) {
      auto e = engine_for(prompts, prompt_len + new_tokens);
      const auto reqs = make_requests(prompts, prompt_len, new_tokens, V, 1.0);
      const auto t0 = Clock::now();
      double first_decode_s = -1;
      int64_t steps = 0;
      const auto out = rollout::generate(*e, reqs, [&](int64_t, int64_t) {
        ++steps;
        if (first_decode_s < 0 && e->stats().decode_tokens > 0) first_decode_s = seconds_since(t0);
      });
      ctx->synchronize();
      const double s = seconds_since(t0);
      int64_t gen = 0;
      for (const auto& r : out) gen += static_cast<int64_t>(r[0].token_ids.size());
      const double decode_s = first_decode_s >= 0 ? s - first_decode_s : s;
      std::cout << Json{{"bench", "rollout"},
                        {"figure", "throughput"},
                        {"engine", "r1kit"},
                        {"model", name},
                        {"device", dev},
                        {"dtype", std::string(dtype_name(po.dtype))},
                        {"prompts", prompts},
                        {"prompt_len", prompt_len},
                        {"new_tokens", new_tokens},
                        {"generated", gen},
                        {"seconds", s},
                        {"tokens_per_s", static_cast<double>(gen) / s},
                        {"prefill_s", s - decode_s},
                        {"steps", e->stats().steps},
                        {"forward_s", e->stats().forward_seconds},
                        {"sample_s", e->stats().sample_seconds},
                        {"schedule_s", e->stats().schedule_seconds},
                        {"graph_replays", e->stats().graph_replays},
                        {"preemptions", e->stats().preemptions},
                        {"load_s", load_s}}
                       .dump()
                << std::endl;
    }

    // Batch 1: time of each decode step (callbacks after the prefill step).
    {
      auto e = engine_for(1, prompt_len + latency_new);
      const auto reqs = make_requests(1, prompt_len, latency_new, V, 0.0);
      std::vector<double> step_ms;
      auto last = Clock::now();
      rollout::generate(*e, reqs, [&](int64_t, int64_t) {
        const auto now = Clock::now();
        step_ms.push_back(std::chrono::duration<double, std::milli>(now - last).count());
        last = now;
      });
      R1_CHECK(step_ms.size() >= 3, "rollout_bench: too few decode steps to time");
      std::vector<double> dec(step_ms.begin() + 1, step_ms.end());  // after the prefill step
      std::sort(dec.begin(), dec.end());
      const double ms = dec[dec.size() / 2];
      const double avg_ctx = static_cast<double>(prompt_len) + latency_new / 2.0;
      const double kv_bytes =
          static_cast<double>(policy::PagedKvCache::bytes_per_block(cfg, 1, po.dtype)) * avg_ctx;
      const double bytes = decode_weight_bytes(policy) + kv_bytes;
      const double floor_ms = bytes / (gbps * 1e6);
      std::cout << Json{{"bench", "rollout"},
                        {"figure", "batch1_latency"},
                        {"engine", "r1kit"},
                        {"model", name},
                        {"device", dev},
                        {"dtype", std::string(dtype_name(po.dtype))},
                        {"prompt_len", prompt_len},
                        {"new_tokens", latency_new},
                        {"ms_per_token", ms},
                        {"forward_s", e->stats().forward_seconds},
                        {"sample_s", e->stats().sample_seconds},
                        {"schedule_s", e->stats().schedule_seconds},
                        {"graph_replays", e->stats().graph_replays},
                        {"bytes_per_token", bytes},
                        {"floor_ms", floor_ms},
                        {"ratio", ms / floor_ms}}
                       .dump()
                << std::endl;
    }
  } catch (const std::exception& e) {
    std::cerr << "rollout_bench: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
