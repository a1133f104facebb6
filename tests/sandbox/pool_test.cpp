// The pool (budget, back-pressure, order), the 2,000-run stress test (no leaked process, file or
// descriptor), and the refusal to run with missing isolation unless weaker isolation is accepted.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <thread>

#include "core/error.h"
#include "sandbox/pool.h"

namespace r1kit::sandbox {
namespace {

namespace fs = std::filesystem;

const Sandbox& sb() {
  static Sandbox s;
  return s;
}

size_t open_fds() {
  size_t n = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator("/proc/self/fd")) ++n;
  return n;
}

size_t temp_entries() {
  size_t n = 0;
  for (const auto& e : fs::directory_iterator(fs::temp_directory_path()))
    n += e.path().filename().string().rfind("r1kit-sandbox-", 0) == 0;
  return n;
}

RunSpec echo_spec(int i) {
  RunSpec s;
  s.argv = {"/bin/sh", "-c", "echo $0", std::to_string(i)};
  s.limits.wall_s = 10;
  return s;
}

TEST(Pool, ResultsInOrderWithBackPressure) {
  SandboxPool pool(sb(), 2, 1);
  EXPECT_EQ(pool.jobs(), 2);
  std::vector<RunSpec> specs;
  for (int i = 0; i < 20; ++i) specs.push_back(echo_spec(i));
  auto results = pool.run_all(specs);
  ASSERT_EQ(results.size(), 20u);
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ(results[i].status, Status::ok) << results[i].message;
    EXPECT_EQ(results[i].stdout_data, std::to_string(i) + "\n");
  }
  // A full queue blocks the submitter until a worker takes something.
  std::atomic<int> started{0};
  std::vector<std::future<int>> futs;
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < 5; ++i)
    futs.push_back(pool.submit_task([&started] {
      ++started;
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      return 1;
    }));
  // 2 running + 1 queued fit; the 4th and 5th submits waited for workers.
  EXPECT_GE(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(150));
  for (auto& f : futs) EXPECT_EQ(f.get(), 1);
}

TEST(Pool, DefaultBudgetIsTheMachine) {
  SandboxPool pool(sb());
  EXPECT_EQ(pool.jobs(), int(std::max(1u, std::thread::hardware_concurrency())));
}

// 2,000 runs in a row through the pool. About 10 s on 2 cores, so it runs in CI.
TEST(Pool, Stress2000RunsLeakNothing) {
  size_t fds_before = open_fds(), tmp_before = temp_entries();
  SandboxPool pool(sb());
  std::vector<std::future<RunResult>> futs;
  const int n = 2000;
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < n; ++i) futs.push_back(pool.submit(echo_spec(i)));
  int ok = 0;
  for (int i = 0; i < n; ++i) {
    auto r = futs[i].get();
    ok += r.status == Status::ok && r.stdout_data == std::to_string(i) + "\n";
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(ok, n);
  std::cout << "[ stress ] " << n << " runs in " << secs << " s (" << n / secs << " runs/s, "
            << pool.jobs() << " jobs)\n";
  EXPECT_EQ(open_fds(), fds_before) << "descriptors leaked";
  EXPECT_EQ(temp_entries(), tmp_before) << "temporary directories leaked";
  EXPECT_EQ(waitpid(-1, nullptr, WNOHANG), -1) << "an unreaped child is left";
  EXPECT_EQ(errno, ECHILD);
}

TEST(Isolation, FullByDefault) {
  EXPECT_TRUE(sb().isolation().complete()) << "missing features on this machine";
  EXPECT_TRUE(sb().isolation().missing().empty());
}

TEST(Isolation, RefusesWhenAFeatureIsMissing) {
  for (const char* f : {"user", "pid", "net", "mount", "seccomp"}) {
    SandboxOptions o;
    o.simulate_unavailable = {f};
    try {
      Sandbox s(o);
      FAIL() << "constructed without " << f;
    } catch (const Error& e) {
      std::string m = e.what();
      EXPECT_NE(m.find("refusing to run untrusted code"), std::string::npos) << m;
      EXPECT_NE(m.find("allow_weaker_isolation"), std::string::npos) << m;
      EXPECT_NE(m.find("simulated"), std::string::npos) << m;
    }
  }
}

TEST(Isolation, WeakerIsolationOnlyWhenAccepted) {
  SandboxOptions o;
  o.simulate_unavailable = {"seccomp"};
  o.allow_weaker_isolation = true;
  Sandbox s(o);
  EXPECT_FALSE(s.isolation().seccomp);
  EXPECT_EQ(s.isolation().missing(), std::vector<std::string>{"seccomp"});
  RunSpec spec;
  spec.argv = {"/bin/sh", "-c", "echo weak"};
  auto r = s.run(spec);
  EXPECT_EQ(r.status, Status::ok) << r.message;
  EXPECT_EQ(r.stdout_data, "weak\n");

  // No namespaces at all: a host temp dir, removed afterwards.
  SandboxOptions none;
  none.simulate_unavailable = {"user", "pid", "net", "mount", "ipc", "uts"};
  none.allow_weaker_isolation = true;
  size_t tmp_before = temp_entries();
  Sandbox bare(none);
  spec.argv = {"/bin/sh", "-c", "pwd; echo x > f; cat f"};
  r = bare.run(spec);
  EXPECT_EQ(r.status, Status::ok) << r.message << r.stderr_data;
  EXPECT_NE(r.stdout_data.find("r1kit-sandbox-"), std::string::npos) << r.stdout_data;
  EXPECT_EQ(temp_entries(), tmp_before);
}

TEST(Isolation, MisuseThrows) {
  RunSpec spec;
  EXPECT_THROW(sb().run(spec), Error);
  spec.argv = {"relative"};
  EXPECT_THROW(sb().run(spec), Error);
  spec.argv = {"/bin/true"};
  spec.files = {{"../escape", "x", false}};
  EXPECT_THROW(sb().run(spec), Error);
  spec.files.clear();
  spec.limits.wall_s = 0;
  EXPECT_THROW(sb().run(spec), Error);
}

TEST(Result, JsonFieldsAndStatusNames) {
  for (Status s : all_statuses()) EXPECT_EQ(status_from_name(status_name(s)), s);
  RunResult r;
  r.status = Status::ok;
  r.stdout_data = "a";
  Json j = result_to_json(r);
  for (const char* k : {"status", "exit_code", "signal", "stdout", "stderr", "stdout_truncated",
                        "stderr_truncated", "wall_ms", "cpu_ms", "max_rss_kb"})
    EXPECT_TRUE(j.contains(k)) << k;
  EXPECT_EQ(base64_encode(std::string("\xff\x00\x01"
                                      "ab",
                                      5)),
            "/wABYWI=");
}

}  // namespace
}  // namespace r1kit::sandbox
