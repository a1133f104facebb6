// Recipe runs end to end: the run directory's files (resolved.json, state.json, metrics.jsonl,
// TensorBoard events, report.html), resume after a crash during SFT and during GRPO giving the
// uninterrupted run's metrics and weights, Ctrl-C checkpointing, the resume checks, and the
// built-in tiny-r1 recipe in a shortened configuration.
#include "recipes/run.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "core/interrupt.h"
#include "core/tensorboard.h"
#include "gtest/gtest.h"
#include "policy/policy.h"
#include "tests/common/test_util.h"

namespace r1kit::recipes {
namespace {

namespace fs = std::filesystem;
using testing::expect_error_contains;
using testing::ScratchDir;

std::string tok_dir() {
  return std::string(R1KIT_SOURCE_DIR) + "/tests/policy/data/tokenizers/deepseek-v3-mini";
}

// data → init (tiny dense) → sft (8 steps, checkpoint every 3) → grpo (6 steps, every 2) → eval.
std::string write_small_recipe(const ScratchDir& dir) {
  Json j = Json::parse(R"({
    "name": "small", "seed": 3,
    "stages": [
      {"name": "data", "type": "data",
       "config": {"digits": 1, "train_size": 24, "test_size": 8}},
      {"name": "base", "type": "init",
       "config": {"arch": "qwen2", "preset": "tiny",
                  "config": {"max_position_embeddings": 256}}},
      {"name": "cold", "type": "sft",
       "config": {"model": "@base", "train": "@data.sft", "chat_template": "deepseek-r1",
                  "device": "cpu", "threads": 2, "epochs": 100, "max_steps": 8,
                  "save_every": 3, "micro_batch_tokens": 512, "optim": {"lr": 3e-3}}},
      {"name": "rl", "type": "grpo",
       "config": {"model": "@cold", "train": "@data.train", "chat_template": "deepseek-r1",
                  "device": "cpu", "threads": 2,
                  "rewards": {"rewards": [{"type": "accuracy"}]},
                  "sampling": {"temperature": 1.0, "max_new_tokens": 12},
                  "group_size": 4, "prompts_per_step": 4, "max_steps": 6, "save_every": 2,
                  "loss": {"entropy_coef": 0.01},
                  "optim": {"lr": 1e-3, "schedule": "constant"}}},
      {"name": "check", "type": "eval",
       "config": {"model": "@rl", "chat_template": "deepseek-r1", "device": "cpu", "threads": 2,
                  "datasets": [{"name": "sums", "path": "@data.test"}],
                  "samples": 2, "sampling": {"temperature": 1.0, "max_new_tokens": 12}}}
    ]})");
  j["stages"][1]["config"]["tokenizer"] = tok_dir();
  const std::string path = dir.file("small.json");
  write_json_file_atomic(path, j);
  return path;
}

RunOptions quiet(const std::string& run_dir) {
  RunOptions o;
  o.run_dir = run_dir;
  o.progress = false;
  return o;
}

std::vector<Json> training_rows(const std::string& run_dir) {
  std::vector<Json> out;
  for (Json& r : read_jsonl_file(run_dir + "/metrics.jsonl"))
    if (r.value("type", "") == "train") out.push_back(std::move(r));
  return out;
}

void expect_same_training(const std::vector<Json>& a, const std::vector<Json>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].at("stage"), b[i].at("stage"));
    EXPECT_EQ(a[i].at("step"), b[i].at("step"));
    for (const char* k : {"loss", "lr", "grad_norm", "reward_mean", "entropy", "tokens"})
      if (a[i].contains(k)) {
        EXPECT_EQ(a[i].at(k), b[i].at(k)) << i << " " << k;
      }
  }
}

std::vector<double> weights(const std::string& dir) {
  policy::Policy p = policy::Policy::load(dir, testing::cpu_ctx());
  return testing::to_double(p.params().flat());
}

TEST(RecipeRun, WritesTheRunDirectoryAndResumesAfterCrashesInSftAndGrpo) {
  ScratchDir dir;
  const std::string recipe = write_small_recipe(dir);
  const RunResult whole = run_recipe(recipe, quiet(dir.file("whole")));
  // The run directory.
  for (const char* f : {"resolved.json", "state.json", "metrics.jsonl", "report.html",
                        "cold/final/model.safetensors", "rl/final/model.safetensors",
                        "check/results.json", "data/test.jsonl", "base/model/config.json"})
    EXPECT_TRUE(fs::exists(dir.file("whole/") + f)) << f;
  for (const char* s : {"data", "base", "cold", "rl", "check"})
    EXPECT_EQ(whole.state.at("stages").at(s).at("status"), "done") << s;
  const auto rows = training_rows(dir.file("whole"));
  int cold = 0, rl = 0;
  for (const Json& r : rows) (r.at("stage") == "cold" ? cold : rl) += 1;
  EXPECT_EQ(cold, 8);
  EXPECT_EQ(rl, 6);
  bool eval_row = false;
  for (const Json& r : read_jsonl_file(dir.file("whole/metrics.jsonl")))
    if (r.value("type", "") == "eval" && r.at("dataset") == "sums") eval_row = true;
  EXPECT_TRUE(eval_row);
  EXPECT_NE(whole.table.find("sums"), std::string::npos) << whole.table;
  // TensorBoard: one event file per training stage, with the stage's scalars at every step.
  for (const char* s : {"cold", "rl"}) {
    std::vector<std::string> files;
    for (const auto& e : fs::directory_iterator(dir.file("whole/tensorboard/") + s))
      files.push_back(e.path().string());
    ASSERT_EQ(files.size(), 1u) << s;
    const auto scalars = read_tensorboard_scalars(files[0]);
    int64_t max_step = 0;
    bool has_loss = false;
    for (const TbScalar& t : scalars) {
      max_step = std::max(max_step, t.step);
      if (t.tag == std::string(s) + "/loss") has_loss = true;
    }
    EXPECT_TRUE(has_loss) << s;
    EXPECT_EQ(max_step, std::string(s) == "cold" ? 8 : 6);
  }
  // The report holds a chart per curve and the eval table.
  const std::string report = read_file(dir.file("whole/report.html"));
  EXPECT_NE(report.find("<svg"), std::string::npos);
  EXPECT_NE(report.find("rl: reward"), std::string::npos);
  EXPECT_NE(report.find("sums"), std::string::npos);

  // A crash during SFT step 5 (after the checkpoint of step 3), resume; a crash during GRPO step
  // 3 (after the checkpoint of step 2), resume: the same metrics and weights.
  const std::string run = dir.file("crashed");
  auto crash_at = [&](const std::string& stage, int64_t step) {
    RunOptions o = quiet(run);
    o.resume = fs::exists(run);
    o.on_step = [=](const std::string& s, const Json& m) {
      if (s == stage && m.at("step") == step) throw std::runtime_error("killed");
    };
    EXPECT_THROW(run_recipe(recipe, o), std::runtime_error);
  };
  crash_at("cold", 5);
  Json state = read_json_file(run + "/state.json");
  EXPECT_EQ(state.at("stages").at("base").at("status"), "done");
  EXPECT_EQ(state.at("stages").at("cold").at("status"), "running");
  crash_at("rl", 3);
  state = read_json_file(run + "/state.json");
  EXPECT_EQ(state.at("stages").at("cold").at("status"), "done");
  RunOptions o = quiet(run);
  o.resume = true;
  const RunResult resumed = run_recipe(recipe, o);
  expect_same_training(rows, training_rows(run));
  EXPECT_EQ(weights(dir.file("whole/rl/final")), weights(run + "/rl/final"));
  EXPECT_EQ(resumed.table, whole.table);

  // Resuming a finished run runs nothing; a run directory is not reused without --resume; a
  // changed recipe is refused naming the key.
  const RunResult again = run_recipe(recipe, o);
  EXPECT_EQ(training_rows(run).size(), rows.size());
  EXPECT_EQ(again.table, whole.table);
  expect_error_contains([&] { run_recipe(recipe, quiet(run)); },
                        {"already holds a run", "--resume"});
  o.overrides = {"stages.rl.config.max_steps=7"};
  expect_error_contains([&] { run_recipe(recipe, o); },
                        {"differs", "stages[3].config.max_steps", "was 6, is 7"});
  RunOptions none = quiet(dir.file("nothing-here"));
  none.resume = true;
  fs::create_directories(dir.file("nothing-here/x"));
  expect_error_contains([&] { run_recipe(recipe, none); }, {"holds no run"});
}

// `r1kit run` as a child process (output to LOG); its pid.
pid_t spawn_cli(const std::vector<std::string>& args, const std::string& log) {
  std::vector<std::string> argv{R1KIT_CLI_BINARY};
  argv.insert(argv.end(), args.begin(), args.end());
  // Everything the child needs is built before fork: the test process has threads, so the child
  // may only make async-signal-safe calls (open, dup2, execv) until it execs.
  std::vector<char*> c;
  for (std::string& a : argv) c.push_back(a.data());
  c.push_back(nullptr);
  const pid_t pid = fork();
  if (pid == 0) {
    const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
    }
    execv(c[0], c.data());
    _exit(127);
  }
  return pid;
}

// Waits until `path` exists while the child runs, then SIGKILLs it. False when the child ended
// first or two minutes passed. This polls a file the child writes (the condition itself), it does
// not sleep in place of synchronising.
bool kill_when_exists(pid_t pid, const std::string& path) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(2);
  while (!fs::exists(path)) {
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == pid) return false;
    if (std::chrono::steady_clock::now() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  kill(pid, SIGKILL);
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
}

// kill -9 of the real command line during SFT and then during GRPO (each right after a
// checkpoint appeared, while later steps run): the resumed runs finish with the uninterrupted
// run's metrics and final weights, so the kills lost only work since the checkpoints and left no
// checkpoint a resume could not read.
TEST(RecipeRun, KillNineDuringSftAndGrpoResumesToTheSameResult) {
  ScratchDir dir;
  const std::string recipe = write_small_recipe(dir);
  const std::vector<std::string> sets{"stages.cold.config.max_steps=40",
                                      "stages.rl.config.max_steps=16"};
  RunOptions whole = quiet(dir.file("whole"));
  whole.overrides = sets;
  run_recipe(recipe, whole);

  const std::string run = dir.file("killed"), log = dir.file("killed.log");
  std::vector<std::string> args{"run", recipe, "--run-dir", run};
  for (const std::string& s : sets) args.insert(args.end(), {"--set", s});
  ASSERT_TRUE(kill_when_exists(spawn_cli(args, log),
                               run + "/cold/checkpoints/step-00000006/trainer_state.json"))
      << read_file(log);
  EXPECT_EQ(read_json_file(run + "/state.json").at("stages").at("cold").at("status"), "running");
  args.push_back("--resume");
  ASSERT_TRUE(kill_when_exists(spawn_cli(args, log),
                               run + "/rl/checkpoints/step-00000004/trainer_state.json"))
      << read_file(log);
  const Json state = read_json_file(run + "/state.json");
  EXPECT_EQ(state.at("stages").at("cold").at("status"), "done");
  EXPECT_EQ(state.at("stages").at("rl").at("status"), "running");
  const pid_t last = spawn_cli(args, log);
  int status = 0;
  ASSERT_EQ(waitpid(last, &status, 0), last);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << read_file(log);
  expect_same_training(training_rows(dir.file("whole")), training_rows(run));
  EXPECT_EQ(weights(dir.file("whole/rl/final")), weights(run + "/rl/final"));
}

TEST(RecipeRun, CtrlCCheckpointsTheRunningStepAndResumeFinishes) {
  ScratchDir dir;
  const std::string recipe = write_small_recipe(dir);
  RunOptions o = quiet(dir.file("run"));
  o.overrides = {"stages.rl.config.save_every=0"};  // only the interrupt writes a checkpoint
  // TensorBoard is written while the stage runs: at GRPO step 3 the event file already holds
  // steps 1..3.
  int64_t live_max_step = 0;
  const std::string tb_dir = dir.file("run/tensorboard/rl");
  o.on_step = [&](const std::string& s, const Json& m) {
    if (s == "rl" && m.at("step") == 3)
      for (const auto& e : fs::directory_iterator(tb_dir))
        for (const TbScalar& t : read_tensorboard_scalars(e.path().string(), true))
          live_max_step = std::max(live_max_step, t.step);
    if (s == "rl" && m.at("step") == 4) request_interrupt();
  };
  EXPECT_THROW(run_recipe(recipe, o), Interrupted);
  clear_interrupt();
  EXPECT_TRUE(fs::exists(dir.file("run/rl/checkpoints/step-00000004/trainer_state.json")));
  o.on_step = {};
  o.resume = true;
  const RunResult r = run_recipe(recipe, o);
  EXPECT_EQ(live_max_step, 3);
  EXPECT_EQ(r.state.at("stages").at("rl").at("summary").at("resumed_from"), 4);
  EXPECT_EQ(r.state.at("stages").at("check").at("status"), "done");
  // After the resume: one event file with each of the 6 steps' loss once.
  std::vector<std::string> files;
  for (const auto& e : fs::directory_iterator(tb_dir)) files.push_back(e.path().string());
  ASSERT_EQ(files.size(), 1u);
  std::vector<int64_t> loss_steps;
  for (const TbScalar& t : read_tensorboard_scalars(files[0]))
    if (t.tag == "rl/loss") loss_steps.push_back(t.step);
  EXPECT_EQ(loss_steps, (std::vector<int64_t>{1, 2, 3, 4, 5, 6}));
}

TEST(RecipeRun, ValidateOnlyWritesNothing) {
  ScratchDir dir;
  const std::string recipe = write_small_recipe(dir);
  RunOptions o = quiet(dir.file("v"));
  o.validate_only = true;
  const RunResult r = run_recipe(recipe, o);
  EXPECT_EQ(r.resolved.at("stages").size(), 5u);
  EXPECT_FALSE(fs::exists(dir.file("v")));
}

// The README's main job in a shortened configuration (fewer problems and steps): every stage runs
// and the table has a row per eval stage. The full configuration's numbers are in the README.
TEST(RecipeRun, TinyR1RunsEndToEndShortened) {
#ifdef R1KIT_SANITIZED_BUILD
  GTEST_SKIP() << "a minutes-long pipeline run: checked in the release build";
#endif
  ScratchDir dir;
  RunOptions o = quiet(dir.file("tiny"));
  o.overrides = {"stages.data.config.train_size=200", "stages.data.config.test_size=20",
                 "stages.data.config.sft_size=100", "stages.pretrain.config.max_steps=10",
                 "stages.cold_start.config.max_steps=20", "stages.rl.config.max_steps=3",
                 "stages.rl.config.prompts_per_step=4", "stages.reject.config.samples_per_prompt=2",
                 // 20 SFT steps leave few correct answers: keep every sample for the student
                 "stages.reject.config.filters.require_correct=false",
                 "stages.reject.config.filters.drop_truncated=false",
                 "stages.reject.config.filters.max_repetition=0",
                 "stages.distill.config.max_steps=5"};
  for (const char* s : {"pretrain", "cold_start", "rl", "distill"})
    o.overrides.push_back(fmt::format("stages.{}.config.threads=2", s));
  const RunResult r = run_recipe("tiny-r1", o);
  for (const auto& [name, st] : r.state.at("stages").items())
    EXPECT_EQ(st.at("status"), "done") << name;
  for (const char* s : {"eval_cold_start", "eval_rl", "eval_student"})
    EXPECT_NE(r.table.find(s), std::string::npos) << r.table;
  EXPECT_TRUE(fs::exists(dir.file("tiny/reject/accepted.jsonl")));
  EXPECT_TRUE(fs::exists(dir.file("tiny/distill/final/model.safetensors")));
}

}  // namespace
}  // namespace r1kit::recipes
