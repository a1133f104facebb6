// GRPO step speed (grpo/trainer.h run_grpo) on a preset's shapes with random weights: each step
// samples `group` completions of `prompts` prompts (exactly `new` tokens each: EOS ignored), scores
// them, and takes one AdamW update on all of them. The split of a step into rollout, reward,
// log-prob, update and weight-refresh time is the point: it says where a GRPO step's time goes.
// Figure: step time (median of the steps after the first). Floor: rollout — `new` decode passes
// each reading every weight once (2 bytes per bf16 parameter) at the measured copy bandwidth
// (4.3 TB/s on the H200; --gbps), or the rollout's 2 · N_active · tokens FLOPs at the bf16 GEMM
// peak (785 TFLOP/s; --tflops), whichever is larger; update — 6 · N_active · tokens FLOPs at the
// GEMM peak. Ratio = figure / floor (rollout and update also reported alone).
// Usage: grpo_bench --arch qwen2 --preset qwen2.5-0.5b [--device cuda|cpu] [--prompts P]
//        [--group G] [--new T] [--steps N] [--recompute] [--tflops F] [--gbps B]
// Prints one JSON line: {"bench":"grpo",...}. Writes its model under /tmp/r1kit-grpo-bench.
#include <algorithm>
#include <filesystem>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/json.h"
#include "grpo/trainer.h"
#include "policy/checkpoint.h"
#include "policy/presets.h"

namespace {

using namespace r1kit;
namespace fs = std::filesystem;

struct Args {
  std::string arch = "qwen2", preset = "qwen2.5-0.5b", device = "cuda";
  int64_t prompts = 16, group = 8, new_tokens = 256, steps = 3;
  bool recompute = false;
  double tflops = 785, gbps = 4300;
};

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    auto val = [&]() -> std::string {
      R1_CHECK(i + 1 < argc, "grpo_bench: {} needs a value", k);
      return argv[++i];
    };
    if (k == "--arch") {
      a.arch = val();
    } else if (k == "--preset") {
      a.preset = val();
    } else if (k == "--device") {
      a.device = val();
    } else if (k == "--prompts") {
      a.prompts = std::stoll(val());
    } else if (k == "--group") {
      a.group = std::stoll(val());
    } else if (k == "--new") {
      a.new_tokens = std::stoll(val());
    } else if (k == "--steps") {
      a.steps = std::stoll(val());
    } else if (k == "--tflops") {
      a.tflops = std::stod(val());
    } else if (k == "--gbps") {
      a.gbps = std::stod(val());
    } else if (k == "--recompute") {
      a.recompute = true;
    } else {
      R1_THROW("grpo_bench: unknown argument {}", k);
    }
  }
  return a;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const Args a = parse(argc, argv);
    const auto arch = policy::model_arch_from_name(a.arch);
    R1_CHECK(arch.has_value(), "grpo_bench: unknown --arch {}", a.arch);
    policy::ModelConfig cfg = policy::preset_config(*arch, a.preset);
    cfg.vocab_size = std::max<int64_t>(cfg.vocab_size, 4096);  // the test tokenizers' ids fit
    const std::string tok_dir =
        std::string(R1KIT_SOURCE_DIR) + "/tests/policy/data/tokenizers/" +
        (*arch == policy::ModelArch::qwen2 ? "qwen3-mini" : "deepseek-v3-mini");
    const fs::path root = fs::path("/tmp/r1kit-grpo-bench") / a.preset;
    fs::remove_all(root);
    fs::create_directories(root);
    policy::InitOptions io;
    io.seed = 1;
    io.dtype = DType::bf16;
    io.tokenizer_dir = tok_dir;
    policy::init_checkpoint((root / "model").string(), cfg, io);
    std::vector<Json> rows;
    for (int i = 0; i < a.prompts * (a.steps + 1); ++i)
      rows.push_back(Json{{"question", fmt::format("What is {} + {}?", 17 * i % 89, 31 * i % 97)},
                          {"answer", std::to_string(17 * i % 89 + 31 * i % 97)}});
    write_jsonl_file_atomic((root / "train.jsonl").string(), rows);

    Json j = Json::object();
    j["model"] = (root / "model").string();
    j["train"] = (root / "train.jsonl").string();
    j["output"] = (root / "out").string();
    j["chat_template"] = *arch == policy::ModelArch::qwen2 ? "qwen3" : "deepseek-r1";
    j["device"] = a.device;
    j["rewards"] = Json::parse(R"({"rewards": [{"type": "accuracy"}, {"type": "format"}]})");
    j["sampling"] = {{"temperature", 1.0}, {"max_new_tokens", a.new_tokens}, {"ignore_eos", true}};
    j["group_size"] = a.group;
    j["prompts_per_step"] = a.prompts;
    j["max_steps"] = a.steps + 1;
    j["micro_batch_tokens"] = 16384;
    j["recompute"] = a.recompute;
    j["log_samples"] = 0;
    j["engine"] = {{"num_blocks", 8192},
                   {"block_size", 16},
                   {"max_batch_tokens", 8192},
                   {"max_sequences", a.prompts * a.group}};
    j["optim"] = {{"lr", 1e-6}, {"schedule", "constant"}};
    // The stage is stopped after its last timed step (the callback throws), before it writes its
    // final checkpoint: a dsv3-mini checkpoint with AdamW state is 60+ GB.
    struct Done {};
    std::vector<Json> lines;
    try {
      grpo::run_grpo(grpo::GrpoConfig::from_json(j, "grpo_bench"), [&](const Json& m) {
        lines.push_back(m);
        if (m.at("step").get<int64_t>() == a.steps + 1) throw Done{};
      });
    } catch (const Done&) {
    }
    fs::remove_all(root);

    std::map<std::string, std::vector<double>> t;
    double gen = 0;
    for (size_t i = 1; i < lines.size(); ++i) {
      for (const auto& [k, v] : lines[i].at("time_s").items()) t[k].push_back(v.get<double>());
      gen = lines[i].at("generated_tokens").get<double>();
    }
    const double n_active = static_cast<double>(policy::count_parameters(cfg).active);
    const double n_total = static_cast<double>(policy::count_parameters(cfg).total);
    const double prompt_tokens = 24.0 * static_cast<double>(a.prompts * a.group);  // about
    const double rollout_floor =
        std::max(static_cast<double>(a.new_tokens) * 2.0 * n_total / (a.gbps * 1e9),
                 2.0 * n_active * gen / (a.tflops * 1e12));
    const double update_floor = 6.0 * n_active * (gen + prompt_tokens) / (a.tflops * 1e12);
    Json split = Json::object();
    for (const auto& [k, v] : t) split[k] = median(v);
    const double step = median(t["step"]);
    std::cout << Json{{"bench", "grpo"},
                      {"preset", a.preset},
                      {"device", a.device},
                      {"dtype", a.device == "cpu" ? "f32" : "bf16"},
                      {"prompts", a.prompts},
                      {"group", a.group},
                      {"new_tokens", a.new_tokens},
                      {"generated_tokens", gen},
                      {"figure", "step_s"},
                      {"value", step},
                      {"time_s", split},
                      {"rollout_floor_s", rollout_floor},
                      {"update_floor_s", update_floor},
                      {"floor_s", rollout_floor + update_floor},
                      {"ratio", step / (rollout_floor + update_floor)},
                      {"rollout_ratio", median(t["rollout"]) / rollout_floor},
                      {"update_ratio", median(t["update"]) / update_floor},
                      {"sampled_tokens_per_s", gen / step}}
                     .dump()
              << std::endl;
  } catch (const std::exception& e) {
    std::cerr << "grpo_bench: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
