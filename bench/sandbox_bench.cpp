// Sandbox throughput: runs per second on all cores for a trivial python program and for HumanEval
// test runs (the function harness), sandboxed and bare (plain posix_spawn, no isolation), and the
// isolation overhead. One JSON line per case. Usage: sandbox_bench [--runs N] [--jobs J]
//   [--humaneval PATH] (default ../shared/data/code/humaneval/HumanEval.jsonl.gz next to the repo).
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <thread>

#include "sandbox/eval.h"
#include "sandbox/harness.h"
#include "sandbox/pool.h"

namespace sb = r1kit::sandbox;
namespace fs = std::filesystem;

namespace {

std::string read_fd_all(int fd) {
  std::string out;
  char buf[65536];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0) out.append(buf, size_t(n));
  return out;
}

// The same program without isolation: files in a temp dir, posix_spawn, pipes for fds 0..4.
struct BareResult {
  int status = -1;
  std::string out, report;
};
BareResult run_bare(const std::vector<std::string>& argv, const std::vector<sb::SandboxFile>& files,
                    const std::string* control) {
  static std::atomic<int> counter{0};
  fs::path dir = fs::temp_directory_path() /
                 ("r1kit-bare-" + std::to_string(getpid()) + "-" + std::to_string(counter++));
  fs::create_directories(dir);
  for (const auto& f : files) std::ofstream(dir / f.path, std::ios::binary) << f.content;
  int in[2], out[2], ctl[2], rep[2];
  if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC) || pipe2(ctl, O_CLOEXEC) ||
      pipe2(rep, O_CLOEXEC))
    std::abort();
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, in[0], 0);
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  posix_spawn_file_actions_adddup2(&fa, out[1], 2);
  posix_spawn_file_actions_adddup2(&fa, ctl[0], 3);
  posix_spawn_file_actions_adddup2(&fa, rep[1], 4);
  posix_spawn_file_actions_addchdir_np(&fa, dir.c_str());
  std::vector<std::string> args = argv;
  std::vector<char*> cargv;
  for (auto& a : args) cargv.push_back(a.data());
  cargv.push_back(nullptr);
  char* envp[] = {const_cast<char*>("PATH=/usr/bin:/bin"), nullptr};
  pid_t pid;
  posix_spawn(&pid, cargv[0], &fa, nullptr, cargv.data(), envp);
  posix_spawn_file_actions_destroy(&fa);
  close(in[0]);
  close(in[1]);
  close(out[1]);
  close(ctl[0]);
  close(rep[1]);
  if (control) (void)!write(ctl[1], control->data(), control->size());
  close(ctl[1]);
  BareResult r;
  r.out = read_fd_all(out[0]);
  r.report = read_fd_all(rep[0]);
  close(out[0]);
  close(rep[0]);
  waitpid(pid, &r.status, 0);
  fs::remove_all(dir);
  return r;
}

template <class F>
double runs_per_second(int runs, int jobs, F one) {
  std::atomic<int> next{0}, failures{0};
  auto t0 = std::chrono::steady_clock::now();
  std::vector<std::thread> ts;
  for (int j = 0; j < jobs; ++j)
    ts.emplace_back([&] {
      for (int i; (i = next++) < runs;)
        if (!one(i)) ++failures;
    });
  for (auto& t : ts) t.join();
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (failures) std::cerr << "sandbox_bench: " << failures << " runs failed\n";
  return runs / s;
}

void report(const std::string& name, double sandboxed, double bare, int jobs, int runs) {
  std::cout << r1kit::Json{{"bench", "sandbox"},
                           {"case", name},
                           {"jobs", jobs},
                           {"runs", runs},
                           {"sandboxed_runs_per_s", sandboxed},
                           {"bare_runs_per_s", bare},
                           {"overhead_pct", 100.0 * (bare / sandboxed - 1.0)}}
                   .dump()
            << std::endl;
}

}  // namespace

int main(int argc, char** argv) {
  int runs = 400, jobs = int(std::max(1u, std::thread::hardware_concurrency()));
  std::string humaneval = (fs::path(__FILE__).parent_path().parent_path().parent_path() / "shared" /
                           "data" / "code" / "humaneval" / "HumanEval.jsonl.gz")
                              .string();
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--runs") runs = std::stoi(argv[i + 1]);
    if (a == "--jobs") jobs = std::stoi(argv[i + 1]);
    if (a == "--humaneval") humaneval = argv[i + 1];
  }
  sb::Sandbox sandbox;
  const std::string py = "/usr/bin/python3";

  // 1. A trivial python program.
  std::vector<sb::SandboxFile> hello = {{"main.py", "print('hello')", false}};
  double s1 = runs_per_second(runs, jobs, [&](int) {
    sb::RunSpec spec;
    spec.argv = {py, "-B", "main.py"};
    spec.files = hello;
    return sandbox.run(spec).stdout_data == "hello\n";
  });
  double b1 = runs_per_second(runs, jobs, [&](int) {
    return run_bare({py, "-B", "main.py"}, hello, nullptr).out == "hello\n";
  });
  report("python_hello", s1, b1, jobs, runs);

  // 2. HumanEval canonical solutions through the function harness.
  if (!fs::exists(humaneval)) {
    std::cerr << "sandbox_bench: " << humaneval << " not found; HumanEval case skipped\n";
    return 0;
  }
  auto rows = sb::read_dataset(humaneval);
  std::vector<sb::FunctionTest> tests;
  for (auto& r : rows)
    tests.push_back(sb::humaneval_function_test(r, r["canonical_solution"], "row"));
  double s2 = runs_per_second(runs, jobs, [&](int i) {
    return sb::run_function_tests(sandbox, tests[size_t(i) % tests.size()]).passed;
  });
  double b2 = runs_per_second(runs, jobs, [&](int i) {
    const auto& t = tests[size_t(i) % tests.size()];
    r1kit::Json ctrl = {{"nonce", "n"},
                        {"setup", t.setup_code},
                        {"test", t.test_code},
                        {"entry_point", t.entry_point},
                        {"check", t.check_call}};
    std::string c = ctrl.dump();
    auto r = run_bare(
        {py, "-I", "-B", "harness.py"},
        {{"harness.py", sb::function_harness_source(), false}, {"solution.py", t.program, false}},
        &c);
    return r.report.find("\"passed\": true") != std::string::npos;
  });
  report("humaneval_function_tests", s2, b2, jobs, runs);
  return 0;
}
