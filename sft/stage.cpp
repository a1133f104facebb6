// Shared pieces of the training stages (sft/stage.h).
#include "sft/stage.h"

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "core/error.h"
#include "sft/checkpoint.h"

namespace r1kit::sft {
namespace fs = std::filesystem;

// The keys of the optim block; total_steps is the trainer's to compute.
OptimConfig optim_from_json(const Json& j, std::string_view where) {
  require_object(j, where);
  reject_unknown_keys(j,
                      {"lr", "min_lr_ratio", "warmup_steps", "schedule", "weight_decay", "beta1",
                       "beta2", "eps", "max_grad_norm"},
                      where);
  OptimConfig c;
  c.lr = get_optional<double>(j, "lr", where, c.lr);
  c.min_lr_ratio = get_optional<double>(j, "min_lr_ratio", where, c.min_lr_ratio);
  c.warmup_steps = get_optional<int64_t>(j, "warmup_steps", where, c.warmup_steps);
  c.schedule = get_enum<LrSchedule>(j, "schedule", where,
                                    {{"constant", LrSchedule::constant},
                                     {"linear", LrSchedule::linear},
                                     {"cosine", LrSchedule::cosine}},
                                    c.schedule);
  c.weight_decay = get_optional<double>(j, "weight_decay", where, c.weight_decay);
  c.beta1 = get_optional<double>(j, "beta1", where, c.beta1);
  c.beta2 = get_optional<double>(j, "beta2", where, c.beta2);
  c.eps = get_optional<double>(j, "eps", where, c.eps);
  c.max_grad_norm = get_optional<double>(j, "max_grad_norm", where, c.max_grad_norm);
  R1_CHECK(std::isfinite(c.lr) && c.lr > 0, "{}: 'lr' must be finite and > 0, got {}", where, c.lr);
  R1_CHECK(c.min_lr_ratio >= 0 && c.min_lr_ratio <= 1,
           "{}: 'min_lr_ratio' must be in [0, 1], got {}", where, c.min_lr_ratio);
  R1_CHECK(c.warmup_steps >= 0, "{}: 'warmup_steps' must be >= 0, got {}", where, c.warmup_steps);
  R1_CHECK(c.weight_decay >= 0, "{}: 'weight_decay' must be >= 0, got {}", where, c.weight_decay);
  R1_CHECK(c.beta1 >= 0 && c.beta1 < 1 && c.beta2 >= 0 && c.beta2 < 1,
           "{}: 'beta1' and 'beta2' must be in [0, 1), got {} and {}", where, c.beta1, c.beta2);
  R1_CHECK(c.eps > 0, "{}: 'eps' must be > 0, got {}", where, c.eps);
  R1_CHECK(c.max_grad_norm >= 0, "{}: 'max_grad_norm' must be >= 0 (0 = no clipping), got {}",
           where, c.max_grad_norm);
  return c;
}

Json optim_to_json(const OptimConfig& c) {
  const char* sched = c.schedule == LrSchedule::constant ? "constant"
                      : c.schedule == LrSchedule::linear ? "linear"
                                                         : "cosine";
  return Json{{"lr", c.lr},
              {"min_lr_ratio", c.min_lr_ratio},
              {"warmup_steps", c.warmup_steps},
              {"schedule", sched},
              {"weight_decay", c.weight_decay},
              {"beta1", c.beta1},
              {"beta2", c.beta2},
              {"eps", c.eps},
              {"max_grad_norm", c.max_grad_norm}};
}

std::unique_ptr<Context> make_context(const std::string& device, int threads, uint64_t seed) {
  ContextOptions co;
  co.threads = threads;
  co.seed = seed;
  if (device == "cpu") return Context::cpu(co);
  if (device == "cuda") return Context::cuda(co);
  return Context::best_available(co);
}

DType working_dtype(const std::string& dtype, const Context& ctx) {
  if (dtype == "f32") return DType::f32;
  if (dtype == "bf16") return DType::bf16;
  return ctx.is_cuda() ? DType::bf16 : DType::f32;
}

void check_device_and_dtype(const std::string& device, const std::string& dtype,
                            std::string_view where) {
  R1_CHECK(device == "auto" || device == "cpu" || device == "cuda",
           "{}: 'device' must be auto, cpu or cuda, got \"{}\"", where, device);
  R1_CHECK(dtype == "auto" || dtype == "f32" || dtype == "bf16",
           "{}: 'dtype' must be auto, f32 or bf16, got \"{}\"", where, dtype);
}

std::string step_dir_name(int64_t step) {
  return fmt::format("step-{:08d}", step);
}

// Checkpoint directories under `root` by step (complete ones: trainer_state.json present).
std::vector<std::pair<int64_t, std::string>> list_checkpoints(const std::string& root) {
  std::vector<std::pair<int64_t, std::string>> out;
  std::error_code ec;
  if (!fs::is_directory(root, ec)) return out;
  for (const auto& e : fs::directory_iterator(root, ec)) {
    const std::string name = e.path().filename().string();
    if (name.size() != 13 || name.rfind("step-", 0) != 0) continue;
    if (!std::all_of(name.begin() + 5, name.end(), [](char ch) { return ch >= '0' && ch <= '9'; }))
      continue;
    if (!fs::exists(e.path() / "trainer_state.json", ec)) continue;
    out.emplace_back(std::stoll(name.substr(5)), e.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

// Bit-exact comparison of two trajectory objects, naming the first differing field.
void check_same_trajectory(const Json& saved, const Json& now, const std::string& ck) {
  for (auto it = now.begin(); it != now.end(); ++it) {
    if (!saved.contains(it.key()) || saved.at(it.key()) != it.value())
      R1_THROW(
          "{}: cannot resume: '{}' was {} when the checkpoint was written and is {} now (use a "
          "new output directory, or restore the setting)",
          ck, it.key(), saved.contains(it.key()) ? saved.at(it.key()).dump() : "absent",
          it.value().dump());
  }
}

// Probe texts both tokenizers must encode alike for logit distillation.
void check_same_tokenizer(const policy::Tokenizer& a, const policy::Tokenizer& b,
                          const std::string& student, const std::string& teacher) {
  const char* probes[] = {
      "Hello, world! 123 + 456 = 579.", "<think>\nLet x = 2.\n</think>\n<answer>4</answer>",
      "def f(n):\n    return [i * i for i in range(n)]\n", "Ünïcödé — 数学 ∑ éà"};
  for (const char* text : probes)
    if (a.encode(text) != b.encode(text))
      R1_THROW(
          "logit distillation needs the teacher and the student to share a tokenizer: {} and {} "
          "encode \"{}\" differently (for different tokenizers distil at the sequence level: SFT "
          "on the teacher's traces, without 'teacher')",
          student, teacher, text);
}

// Keeps metrics lines up to `step` (a resumed run rewrites what came after its checkpoint).
void cut_metrics(const std::string& path, int64_t step) {
  std::error_code ec;
  if (!fs::exists(path, ec)) return;
  JsonlReadOptions ro;
  ro.allow_truncated_last_line = true;
  std::vector<Json> keep;
  for (Json& j : read_jsonl_file(path, ro))
    if (j.is_object() && j.value("step", int64_t{0}) <= step) keep.push_back(std::move(j));
  write_jsonl_file_atomic(path, keep);
}

void save_checkpoint_keeping(const std::string& root, int64_t step, int64_t keep,
                             const policy::Policy& policy, const Json& trainer_state, Context& ctx,
                             const std::string& tokenizer_dir) {
  fs::create_directories(root);
  save_training_checkpoint((fs::path(root) / step_dir_name(step)).string(), policy, trainer_state,
                           ctx, tokenizer_dir);
  const auto all = list_checkpoints(root);
  for (size_t i = 0; i + static_cast<size_t>(keep) < all.size(); ++i) fs::remove_all(all[i].second);
}

std::string save_final_model(const std::string& output, const policy::Policy& policy, DType working,
                             const std::string& tokenizer_dir, Context& ctx) {
  const std::string dir = (fs::path(output) / "final").string();
  policy::SaveOptions so;
  so.dtype = working == DType::bf16 ? DType::bf16 : DType::f32;
  so.overwrite = true;
  so.tokenizer_dir = tokenizer_dir;
  policy.save(dir, ctx, so);
  return dir;
}

}  // namespace r1kit::sft
