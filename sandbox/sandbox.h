// The sandbox: runs one untrusted program in fresh user, PID, network, mount, IPC and UTS
// namespaces, on a minimal read-only root with a private tmpfs work directory, under seccomp,
// no_new_privs and rlimits, and reports what happened in a RunResult. See docs/SANDBOX.md.
// Sandbox::run never throws because of what the program did; misuse (an empty argv, a bad limit)
// throws r1kit::Error, and a sandbox that cannot be set up reports internal_error.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/json.h"

namespace r1kit::sandbox {

// What happened to a run:
//   ok             exited with status 0
//   runtime_error  exited with a non-zero status, or died of a fault signal (SIGSEGV, SIGABRT,
//                  SIGFPE, SIGBUS, SIGILL, SIGSYS, SIGXFSZ: the file-size limit)
//   timeout        the wall-clock or CPU-time limit was reached
//   memory_limit   the memory limit was reached: with cgroup v2, memory.events counted an OOM kill
//                  in the run's cgroup; in the RLIMIT_AS fallback, the program failed with
//                  MemoryError / std::bad_alloc / ENOMEM in its stderr (a heuristic the program
//                  can imitate)
//   output_limit   stdout or stderr went past the capture limit (the run is then stopped)
//   compile_error  the compile step failed (C++)
//   killed         died of SIGKILL/SIGTERM or another non-fault signal not caused by a limit
//   internal_error the sandbox itself failed (message says why); nothing is known of the program
enum class Status {
  ok,
  runtime_error,
  timeout,
  memory_limit,
  output_limit,
  compile_error,
  killed,
  internal_error
};
std::string_view status_name(Status s);
std::optional<Status> status_from_name(std::string_view name);
// Every status, in the order above.
const std::vector<Status>& all_statuses();

// Per-run limits. The defaults are the issue's: 10 s wall, 10 s CPU, 1 GiB, 64 processes, 64 open
// files, 16 MiB written, 1 MiB captured per output stream.
struct Limits {
  double wall_s = 10.0;
  double cpu_s = 10.0;  // per process (RLIMIT_CPU); the wall limit bounds the whole tree
  uint64_t memory_bytes = 1ull << 30;  // cgroup v2 memory.max for the tree, else RLIMIT_AS
  int max_processes = 64;  // RLIMIT_NPROC in the run's user namespace (+ pids.max with cgroup v2)
  int max_open_files = 64;
  uint64_t disk_bytes = 16ull << 20;   // RLIMIT_FSIZE and the size of the work-dir tmpfs
  uint64_t output_bytes = 1ull << 20;  // captured per stream; the rest is discarded
};
// Throws naming the field when a limit is not positive or out of range.
void validate_limits(const Limits& l);

// A file written into the work directory before the program starts. `path` is relative to the
// work directory, without ".." components.
struct SandboxFile {
  std::string path;
  std::string content;
  bool executable = false;
};

struct RunSpec {
  // argv[0] is an absolute path inside the sandbox (e.g. /usr/bin/python3).
  std::vector<std::string> argv;
  std::vector<SandboxFile> files;
  std::string stdin_data;
  Limits limits;
  // Harness channels: when control_input is set, fd 3 of the program is a pipe holding it (then
  // EOF); when capture_report is set, fd 4 is a pipe whose bytes land in RunResult::report
  // (capped at limits.output_bytes). Neither exists otherwise.
  std::optional<std::string> control_input;
  bool capture_report = false;
  // Stop the run as soon as a stream overflows (status output_limit) instead of discarding the
  // rest until the program ends by itself.
  bool kill_on_output_limit = true;
};

struct RunResult {
  Status status = Status::internal_error;
  int exit_code = -1;  // -1 unless the program exited normally
  int signal = 0;      // the signal that ended it, 0 when it exited
  std::string stdout_data;
  std::string stderr_data;
  bool stdout_truncated = false;
  bool stderr_truncated = false;
  int64_t wall_ms = 0;
  int64_t cpu_ms = 0;      // user + system of the whole tree that was waited for
  int64_t max_rss_kb = 0;  // cgroup v2: the run cgroup's memory.peak; else the largest process
  // How memory was limited: "cgroup_v2" (memory.max on the run's own cgroup) or "rlimit_as"
  // (per-process address space). Empty when the run never started.
  std::string memory_mechanism;
  std::string message;  // why, for every status but ok and runtime_error; empty otherwise
  std::string report;   // fd 4 (capture_report)
  bool report_truncated = false;
};

// The JSON the command line prints: status, exit_code, signal, stdout, stderr, stdout_truncated,
// stderr_truncated, wall_ms, cpu_ms, max_rss_kb (+ memory_mechanism and message when set). Output
// that is not UTF-8 is given with U+FFFD replacements plus the exact bytes in stdout_base64 /
// stderr_base64.
Json result_to_json(const RunResult& r);
std::string base64_encode(std::string_view bytes);

// Which isolation features a Sandbox uses. All are required unless allow_weaker_isolation.
struct IsolationReport {
  bool user_ns = false, pid_ns = false, net_ns = false, mount_ns = false, ipc_ns = false,
       uts_ns = false, seccomp = false;
  bool complete() const {
    return user_ns && pid_ns && net_ns && mount_ns && ipc_ns && uts_ns && seccomp;
  }
  std::vector<std::string> missing() const;  // e.g. {"user namespace", "seccomp"}
  std::vector<std::string> reasons;          // what the kernel said for each missing feature
  // cgroup v2 (not part of complete(): without it memory is limited by RLIMIT_AS instead).
  bool cgroup = false;
  std::string cgroup_dir;     // where run cgroups are created, when cgroup
  std::string cgroup_reason;  // why cgroup v2 is not used, when !cgroup
};

struct SandboxOptions {
  // Host paths mounted read-only into the sandbox root at the same place (directories are bound,
  // symlinks are recreated, missing paths skipped). /etc is not mounted; /etc/ld.so.cache is.
  std::vector<std::string> readonly_paths = {"/usr",   "/bin",   "/sbin",           "/lib",
                                             "/lib64", "/lib32", "/etc/ld.so.cache"};
  // Run with whatever isolation the kernel allows instead of refusing (logs a loud warning, and
  // the run is no longer safe against hostile code).
  bool allow_weaker_isolation = false;
  // When r1kit runs as root, sandbox processes run as this host uid/gid (RLIMIT_NPROC is not
  // enforced for host root, and a distinct unprivileged id owns nothing on the host).
  uint32_t uid_when_root = 65534;
  uint32_t gid_when_root = 65534;
  // For tests of the refusal path: features treated as refused by the kernel ("user", "pid",
  // "net", "mount", "ipc", "uts", "seccomp").
  std::vector<std::string> simulate_unavailable;
  // Limit memory and processes with a cgroup v2 child per run where a writable cgroup v2
  // hierarchy with the memory and pids controllers exists (else RLIMIT_AS). false forces the
  // RLIMIT_AS fallback.
  bool use_cgroup = true;
  // The cgroup v2 directory run cgroups are created in; empty: the process's own cgroup (from
  // /proc/self/cgroup), or $R1KIT_SANDBOX_CGROUP when set. Give a delegated, empty cgroup when
  // r1kit's own cgroup holds processes (cgroup v2 refuses controllers for children there).
  std::string cgroup_parent;
};

// The work directory inside the sandbox, HOME, and the only writable place.
constexpr const char* kWorkDir = "/sandbox";
constexpr const char* kSandboxPath = "/usr/local/bin:/usr/bin:/bin";
constexpr const char* kSandboxLang = "C.UTF-8";

class Sandbox {
 public:
  // Probes the kernel (one trivial isolated run). Throws r1kit::Error explaining what is missing
  // and how to enable it when a feature is refused, unless allow_weaker_isolation.
  explicit Sandbox(SandboxOptions opts = {});
  ~Sandbox();
  Sandbox(const Sandbox&) = delete;
  Sandbox& operator=(const Sandbox&) = delete;

  // Runs one program. Thread-safe: many runs may be in flight at once.
  RunResult run(const RunSpec& spec) const;

  const IsolationReport& isolation() const { return isolation_; }
  const SandboxOptions& options() const { return opts_; }

  struct Impl;

 private:
  SandboxOptions opts_;
  IsolationReport isolation_;
  Impl* impl_ = nullptr;
};

}  // namespace r1kit::sandbox
