// SFT step speed (sft/loss.h optimizer_step) on a preset's shapes with random weights: each step
// packs `rows` rows of `seq` tokens (loss on the second half of each, as a prompt + completion)
// into micro-batches of `micro` tokens and takes one AdamW step. Figure: trained tokens per second
// (median of the timed steps, after one warm-up step). Floor: the matmul work of a step,
// 6 · N_active · tokens FLOPs (forward 2, backward 4; the log-prob head counted in N_active),
// at the measured bf16 GEMM peak (785 TFLOP/s on the H200; --tflops) — attention, norms and the
// optimizer are left out, so the ratio (floor / figure) is a lower bound on the distance to peak.
// Usage: sft_bench --arch qwen2 --preset qwen2.5-0.5b [--device cuda|cpu] [--seq S] [--rows R]
//        [--micro T] [--steps N] [--recompute] [--tflops F]
// Prints one JSON line: {"bench":"sft",...}.
#include <algorithm>
#include <chrono>
#include <iostream>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/json.h"
#include "policy/policy.h"
#include "policy/presets.h"
#include "sft/loss.h"

namespace {

using namespace r1kit;
using Clock = std::chrono::steady_clock;

struct Args {
  std::string arch = "qwen2", preset = "qwen2.5-0.5b", device = "cuda";
  int64_t seq = 1024, rows = 32, micro = 16384, steps = 5;
  bool recompute = false;
  double tflops = 785;
};

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    auto val = [&]() -> std::string {
      R1_CHECK(i + 1 < argc, "sft_bench: {} needs a value", k);
      return argv[++i];
    };
    if (k == "--arch") {
      a.arch = val();
    } else if (k == "--preset") {
      a.preset = val();
    } else if (k == "--device") {
      a.device = val();
    } else if (k == "--seq") {
      a.seq = std::stoll(val());
    } else if (k == "--rows") {
      a.rows = std::stoll(val());
    } else if (k == "--micro") {
      a.micro = std::stoll(val());
    } else if (k == "--steps") {
      a.steps = std::stoll(val());
    } else if (k == "--tflops") {
      a.tflops = std::stod(val());
    } else if (k == "--recompute") {
      a.recompute = true;
    } else {
      R1_THROW("sft_bench: unknown argument {}", k);
    }
  }
  return a;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const Args a = parse(argc, argv);
    const auto arch = policy::model_arch_from_name(a.arch);
    R1_CHECK(arch.has_value(), "sft_bench: unknown --arch {}", a.arch);
    policy::ModelConfig cfg = policy::preset_config(*arch, a.preset);
    cfg.max_position_embeddings = std::max(cfg.max_position_embeddings, a.seq);
    auto ctx = a.device == "cpu" ? Context::cpu() : Context::cuda();
    policy::PolicyOptions po;
    po.dtype = ctx->is_cuda() ? DType::bf16 : DType::f32;
    po.recompute = a.recompute;
    policy::Policy p = policy::Policy::init(cfg, 1, *ctx, po);

    std::vector<sft::Example> ex(static_cast<size_t>(a.rows));
    for (int64_t r = 0; r < a.rows; ++r)
      for (int64_t j = 0; j < a.seq; ++j) {
        ex[static_cast<size_t>(r)].tokens.push_back(
            static_cast<int32_t>(1 + (131 * r + 17 * j) % (cfg.vocab_size - 1)));
        ex[static_cast<size_t>(r)].loss_mask.push_back(j >= a.seq / 2 ? 1 : 0);
      }
    std::vector<std::vector<const sft::Example*>> mbs(1);
    int64_t in_mb = 0;
    for (const auto& e : ex) {
      if (in_mb + a.seq > a.micro && !mbs.back().empty()) {
        mbs.emplace_back();
        in_mb = 0;
      }
      mbs.back().push_back(&e);
      in_mb += a.seq;
    }
    sft::OptimConfig oc;
    oc.lr = 1e-5;
    oc.total_steps = a.steps + 1;
    std::vector<double> times;
    sft::StepResult last;
    for (int64_t s = 0; s <= a.steps; ++s) {
      ctx->synchronize();
      const auto t0 = Clock::now();
      last = sft::optimizer_step(p, mbs, oc, *ctx);
      ctx->synchronize();
      if (s > 0) times.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
    }
    std::sort(times.begin(), times.end());
    const double t = times[times.size() / 2];
    const double tokens = static_cast<double>(a.rows * a.seq);
    const double n_active = static_cast<double>(policy::count_parameters(cfg).active);
    const double floor_s = 6.0 * n_active * tokens / (a.tflops * 1e12);
    std::cout << Json{{"bench", "sft"},
                      {"preset", a.preset},
                      {"device", ctx->is_cuda() ? "cuda" : "cpu"},
                      {"dtype", dtype_name(po.dtype)},
                      {"recompute", a.recompute},
                      {"seq", a.seq},
                      {"rows", a.rows},
                      {"micro_batches", mbs.size()},
                      {"figure", "tokens_per_s"},
                      {"value", tokens / t},
                      {"step_s", t},
                      {"floor_s", floor_s},
                      {"ratio", t / floor_s},
                      {"tflops_achieved", 6.0 * n_active * tokens / t / 1e12},
                      {"loss", last.loss}}
                     .dump()
              << std::endl;
  } catch (const std::exception& e) {
    std::cerr << "sft_bench: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
