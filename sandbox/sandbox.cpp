// One isolated run: clone() into new namespaces, a minimal read-only root, a tmpfs work dir,
// rlimits, dropped capabilities, no_new_privs and seccomp, then exec; the parent feeds stdin,
// captures output with caps, enforces the wall clock and kills the whole tree.
//
// Why clone() and not Boost.Process: Boost.Process (v1, Boost 1.74) forks and then runs
// on_exec_setup hooks in the child, but a PID namespace needs the *clone* to create it (unshare
// only affects later children), and after fork() in a multithreaded parent the child may not
// allocate (malloc locks of other threads); everything between clone and exec here is raw
// system calls on memory prepared by the parent.
#include "sandbox/sandbox.h"

#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/seccomp.h>
#include <linux/securebits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <memory>

#include "core/error.h"
#include "core/fs.h"
#include "core/log.h"
#include "sandbox/cgroup.h"
#include "sandbox/seccomp_filter.h"

#ifndef CLONE_PIDFD
#define CLONE_PIDFD 0x00001000
#endif

namespace r1kit::sandbox {

// --- Statuses and JSON --------------------------------------------------------------------------

namespace {
constexpr const char* kStatusNames[] = {"ok",           "runtime_error", "timeout",
                                        "memory_limit", "output_limit",  "compile_error",
                                        "killed",       "internal_error"};
}

std::string_view status_name(Status s) {
  return kStatusNames[static_cast<int>(s)];
}

std::optional<Status> status_from_name(std::string_view name) {
  for (int i = 0; i < 8; ++i)
    if (name == kStatusNames[i]) return static_cast<Status>(i);
  return std::nullopt;
}

const std::vector<Status>& all_statuses() {
  static const std::vector<Status> all = {
      Status::ok,           Status::runtime_error, Status::timeout, Status::memory_limit,
      Status::output_limit, Status::compile_error, Status::killed,  Status::internal_error};
  return all;
}

void validate_limits(const Limits& l) {
  R1_CHECK(l.wall_s > 0 && l.wall_s <= 86400,
           "[sandbox] wall time limit {} s must be in (0, 86400]", l.wall_s);
  R1_CHECK(l.cpu_s > 0 && l.cpu_s <= 86400, "[sandbox] CPU time limit {} s must be in (0, 86400]",
           l.cpu_s);
  R1_CHECK(l.memory_bytes >= (16ull << 20),
           "[sandbox] memory limit {} bytes must be at least 16 MiB", l.memory_bytes);
  R1_CHECK(l.max_processes >= 1, "[sandbox] process limit {} must be at least 1", l.max_processes);
  R1_CHECK(l.max_open_files >= 8, "[sandbox] open-file limit {} must be at least 8",
           l.max_open_files);
  R1_CHECK(l.disk_bytes >= 4096, "[sandbox] disk limit {} bytes must be at least 4096",
           l.disk_bytes);
  R1_CHECK(l.output_bytes >= 1, "[sandbox] output limit must be at least 1 byte");
}

std::string base64_encode(std::string_view in) {
  static const char* t = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    uint32_t v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8) | uint8_t(in[i + 2]);
    out += t[v >> 18];
    out += t[(v >> 12) & 63];
    out += t[(v >> 6) & 63];
    out += t[v & 63];
  }
  if (i + 1 == in.size()) {
    uint32_t v = uint8_t(in[i]) << 16;
    out += t[v >> 18];
    out += t[(v >> 12) & 63];
    out += "==";
  } else if (i + 2 == in.size()) {
    uint32_t v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8);
    out += t[v >> 18];
    out += t[(v >> 12) & 63];
    out += t[(v >> 6) & 63];
    out += '=';
  }
  return out;
}

namespace {
// Valid UTF-8 as is; otherwise each ill-formed byte becomes U+FFFD.
std::string utf8_or_replaced(std::string_view s, bool* was_valid) {
  *was_valid = utf8_invalid_offset(s) == std::string_view::npos;
  if (*was_valid) return std::string(s);
  std::string out;
  while (!s.empty()) {
    size_t bad = utf8_invalid_offset(s);
    if (bad == std::string_view::npos) {
      out += s;
      break;
    }
    out += s.substr(0, bad);
    out += "\xEF\xBF\xBD";
    s.remove_prefix(bad + 1);
  }
  return out;
}
}  // namespace

Json result_to_json(const RunResult& r) {
  Json j;
  j["status"] = std::string(status_name(r.status));
  j["exit_code"] = r.exit_code;
  j["signal"] = r.signal;
  bool valid = true;
  j["stdout"] = utf8_or_replaced(r.stdout_data, &valid);
  if (!valid) j["stdout_base64"] = base64_encode(r.stdout_data);
  j["stderr"] = utf8_or_replaced(r.stderr_data, &valid);
  if (!valid) j["stderr_base64"] = base64_encode(r.stderr_data);
  j["stdout_truncated"] = r.stdout_truncated;
  j["stderr_truncated"] = r.stderr_truncated;
  j["wall_ms"] = r.wall_ms;
  j["cpu_ms"] = r.cpu_ms;
  j["max_rss_kb"] = r.max_rss_kb;
  if (!r.memory_mechanism.empty()) j["memory_mechanism"] = r.memory_mechanism;
  if (!r.message.empty()) j["message"] = utf8_or_replaced(r.message, &valid);
  return j;
}

std::vector<std::string> IsolationReport::missing() const {
  std::vector<std::string> m;
  if (!user_ns) m.push_back("user namespace");
  if (!pid_ns) m.push_back("PID namespace");
  if (!net_ns) m.push_back("network namespace");
  if (!mount_ns) m.push_back("mount namespace");
  if (!ipc_ns) m.push_back("IPC namespace");
  if (!uts_ns) m.push_back("UTS namespace");
  if (!seccomp) m.push_back("seccomp");
  return m;
}

// --- The child side: raw system calls only --------------------------------------------------

namespace {

constexpr int kInitSetupFailed = 125;
constexpr const char* kRootMount = "/tmp";  // where the new root is assembled (private mount ns)

struct MountStep {
  enum Kind { mkdir_, file_, symlink_, bind_, bind_dev_ } kind;
  std::string src, dst;  // dst is absolute in the host view, under kRootMount
  unsigned long remount_flags = 0;
};

struct InitReport {
  int status;
  long max_rss_kb;
};

struct ChildFile {
  const char* path;  // absolute inside the sandbox
  const char* data;
  size_t size;
  int mode;
};

struct ChildMount {
  int kind;
  const char* src;
  const char* dst;
  unsigned long remount_flags;
};

struct ChildPlan {
  int sync_r = -1, err_w = -1, status_w = -1;
  int stdin_r = -1, stdout_w = -1, stderr_w = -1, control_r = -1, report_w = -1;
  bool set_ids = false, drop_groups = false, mount_ns = false, uts_ns = false, seccomp = false;
  const ChildMount* mounts = nullptr;
  size_t n_mounts = 0;
  const char* work_tmpfs_opts = nullptr;
  const char* work_root = nullptr;     // host view: <root>/sandbox
  const char* tmp_link = nullptr;      // host view: <root>/tmp
  const char* host_workdir = nullptr;  // no mount namespace: the program runs here
  const char* const* dirs = nullptr;   // subdirectories to create in the work dir
  size_t n_dirs = 0;
  const ChildFile* files = nullptr;
  size_t n_files = 0;
  char* const* argv = nullptr;
  char* const* envp = nullptr;
  const int* rlim_res = nullptr;
  const struct rlimit* rlims = nullptr;
  size_t n_rlims = 0;
  const sock_fprog* filter = nullptr;
};

size_t c_strlen(const char* s) {
  size_t n = 0;
  while (s[n]) ++n;
  return n;
}

void write_all_raw(int fd, const char* p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return;
    p += w;
    n -= size_t(w);
  }
}

// "<errno> <what>" on the error pipe, then exit. The parent turns errno into words.
[[noreturn]] void child_fail(int err_fd, const char* what, int err, int code) {
  char buf[16];
  int n = 0;
  unsigned v = unsigned(err);
  char tmp[16];
  do {
    tmp[n++] = char('0' + v % 10);
    v /= 10;
  } while (v && n < 15);
  for (int i = 0; i < n; ++i) buf[i] = tmp[n - 1 - i];
  buf[n++] = ' ';
  write_all_raw(err_fd, buf, size_t(n));
  write_all_raw(err_fd, what, c_strlen(what));
  _exit(code);
}

void close_range_raw(unsigned lo, unsigned hi) {
  if (lo > hi) return;
  if (syscall(SYS_close_range, lo, hi, 0) == 0) return;
  unsigned top = std::min(hi, 65535u);
  for (unsigned fd = lo; fd <= top; ++fd) close(int(fd));
}

// Closes every fd except those in keep[0..n) (small, unsorted, -1 entries ignored).
void close_all_but(int* keep, int n) {
  for (int i = 1; i < n; ++i)  // insertion sort
    for (int j = i; j > 0 && keep[j - 1] > keep[j]; --j) std::swap(keep[j - 1], keep[j]);
  unsigned lo = 0;
  for (int i = 0; i < n; ++i) {
    if (keep[i] < 0) continue;
    if (unsigned(keep[i]) > lo) close_range_raw(lo, unsigned(keep[i]) - 1);
    lo = unsigned(keep[i]) + 1;
  }
  close_range_raw(lo, ~0u);
}

void reset_signals() {
  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = SIG_DFL;
  for (int s = 1; s < NSIG; ++s) {
    if (s == SIGKILL || s == SIGSTOP) continue;
    sigaction(s, &sa, nullptr);
  }
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
}

void drop_capabilities() {
  for (int cap = 0; cap < 64; ++cap) prctl(PR_CAPBSET_DROP, cap, 0, 0, 0);
  prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
  prctl(PR_SET_SECUREBITS,
        SECBIT_NOROOT | SECBIT_NOROOT_LOCKED | SECBIT_NO_SETUID_FIXUP |
            SECBIT_NO_SETUID_FIXUP_LOCKED | SECBIT_KEEP_CAPS_LOCKED | SECBIT_NO_CAP_AMBIENT_RAISE |
            SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED,
        0, 0, 0);
  __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2];
  memset(data, 0, sizeof(data));
  syscall(SYS_capset, &hdr, data);
}

// The program: PID 2 of the namespace. Never returns.
[[noreturn]] void exec_program(const ChildPlan& p) {
  // Move every fd we keep above 10 first, so the dup2s below cannot clobber one another.
  int src[6] = {p.stdin_r, p.stdout_w, p.stderr_w, p.control_r, p.report_w, p.err_w};
  int moved[6];
  for (int i = 0; i < 6; ++i) moved[i] = src[i] >= 0 ? fcntl(src[i], F_DUPFD_CLOEXEC, 10) : -1;
  int err = moved[5];
  close_range_raw(0, 9);
  for (int i = 0; i < 5; ++i)
    if (moved[i] >= 0 && dup2(moved[i], i) < 0) child_fail(err, "dup2", errno, 127);
  if (err >= 0) {
    close_range_raw(5, unsigned(err) - 1);
    close_range_raw(unsigned(err) + 1, ~0u);
  } else {
    close_range_raw(5, ~0u);
  }
  if (chdir(p.mount_ns ? kWorkDir : p.host_workdir) != 0) child_fail(err, "chdir", errno, 127);
  for (size_t i = 0; i < p.n_rlims; ++i)
    if (setrlimit(static_cast<__rlimit_resource_t>(p.rlim_res[i]), &p.rlims[i]) != 0)
      child_fail(err, "setrlimit", errno, 127);
  drop_capabilities();
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) child_fail(err, "no_new_privs", errno, 127);
  if (p.seccomp && prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, p.filter, 0, 0) != 0)
    child_fail(err, "seccomp filter", errno, 127);
  execve(p.argv[0], p.argv, p.envp);
  child_fail(err, p.argv[0], errno, 127);
}

void setup_mounts(const ChildPlan& p) {
  int err = p.err_w;
  if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0)
    child_fail(err, "make / private", errno, kInitSetupFailed);
  if (mount("tmpfs", kRootMount, "tmpfs", MS_NOSUID | MS_NODEV,
            "size=1m,nr_inodes=1024,mode=0755") != 0)
    child_fail(err, "mount root tmpfs", errno, kInitSetupFailed);
  for (size_t i = 0; i < p.n_mounts; ++i) {
    const ChildMount& m = p.mounts[i];
    switch (m.kind) {
      case MountStep::mkdir_:
        if (mkdir(m.dst, 0755) != 0 && errno != EEXIST)
          child_fail(err, m.dst, errno, kInitSetupFailed);
        break;
      case MountStep::file_: {
        int fd = open(m.dst, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
        if (fd < 0) child_fail(err, m.dst, errno, kInitSetupFailed);
        close(fd);
        break;
      }
      case MountStep::symlink_:
        if (symlink(m.src, m.dst) != 0) child_fail(err, m.dst, errno, kInitSetupFailed);
        break;
      case MountStep::bind_:
      case MountStep::bind_dev_:
        if (mount(m.src, m.dst, nullptr, MS_BIND, nullptr) != 0)
          child_fail(err, m.src, errno, kInitSetupFailed);
        if (m.kind == MountStep::bind_ &&
            mount(nullptr, m.dst, nullptr, MS_REMOUNT | MS_BIND | m.remount_flags, nullptr) != 0)
          child_fail(err, "read-only remount", errno, kInitSetupFailed);
        break;
    }
  }
  if (mkdir(p.work_root, 0755) != 0) child_fail(err, "mkdir work dir", errno, kInitSetupFailed);
  if (mount("tmpfs", p.work_root, "tmpfs", MS_NOSUID | MS_NODEV, p.work_tmpfs_opts) != 0)
    child_fail(err, "mount work tmpfs", errno, kInitSetupFailed);
  if (symlink(kWorkDir, p.tmp_link) != 0) child_fail(err, "symlink /tmp", errno, kInitSetupFailed);
  if (chdir(kRootMount) != 0) child_fail(err, "chdir new root", errno, kInitSetupFailed);
  if (syscall(SYS_pivot_root, ".", ".") != 0)
    child_fail(err, "pivot_root", errno, kInitSetupFailed);
  if (umount2(".", MNT_DETACH) != 0) child_fail(err, "detach old root", errno, kInitSetupFailed);
  if (chdir("/") != 0) child_fail(err, "chdir /", errno, kInitSetupFailed);
  if (mount(nullptr, "/", nullptr, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV,
            nullptr) != 0)
    child_fail(err, "read-only root", errno, kInitSetupFailed);
}

void write_files(const ChildPlan& p) {
  int err = p.err_w;
  const char* base = p.mount_ns ? kWorkDir : p.host_workdir;
  if (chdir(base) != 0) child_fail(err, "chdir work dir", errno, kInitSetupFailed);
  for (size_t i = 0; i < p.n_dirs; ++i)
    if (mkdir(p.dirs[i], 0755) != 0 && errno != EEXIST)
      child_fail(err, p.dirs[i], errno, kInitSetupFailed);
  for (size_t i = 0; i < p.n_files; ++i) {
    const ChildFile& f = p.files[i];
    int fd = open(f.path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, f.mode);
    if (fd < 0) child_fail(err, f.path, errno, kInitSetupFailed);
    const char* d = f.data;
    size_t n = f.size;
    while (n > 0) {
      ssize_t w = write(fd, d, n);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) child_fail(err, f.path, w < 0 ? errno : ENOSPC, kInitSetupFailed);
      d += w;
      n -= size_t(w);
    }
    close(fd);
  }
}

// The namespace's init (PID 1): finish isolation, fork the program, reap everything, report the
// program's wait status, exit (which kills whatever is left in the PID namespace).
int init_main(void* arg) {
  const ChildPlan& p = *static_cast<const ChildPlan*>(arg);
  reset_signals();
  int keep[8] = {p.sync_r,   p.err_w,    p.status_w,  p.stdin_r,
                 p.stdout_w, p.stderr_w, p.control_r, p.report_w};
  close_all_but(keep, 8);
  char c = 0;
  ssize_t n;
  do n = read(p.sync_r, &c, 1);
  while (n < 0 && errno == EINTR);
  if (n != 1) _exit(kInitSetupFailed);  // the parent gave up
  close(p.sync_r);
  int err = p.err_w;
  if (p.set_ids) {
    // Raw system calls: glibc's set*id wrappers broadcast the change to every thread the copied
    // memory says exists, under a lock another parent thread may have held at clone time.
    if (p.drop_groups && syscall(SYS_setgroups, 0, nullptr) != 0)
      child_fail(err, "setgroups", errno, kInitSetupFailed);
    if (syscall(SYS_setresgid, 0, 0, 0) != 0) child_fail(err, "setresgid", errno, kInitSetupFailed);
    if (syscall(SYS_setresuid, 0, 0, 0) != 0) child_fail(err, "setresuid", errno, kInitSetupFailed);
  }
  setsid();
  prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);  // orphans come to us even without a PID namespace
  if (p.uts_ns && sethostname("sandbox", 7) != 0)
    child_fail(err, "sethostname", errno, kInitSetupFailed);
  if (p.mount_ns) setup_mounts(p);
  write_files(p);

  // A raw clone: glibc's fork() would run atfork handlers that take malloc locks, which another
  // thread of the parent may have held at the time of our clone.
  long pid = syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
  if (pid == 0) exec_program(p);
  if (pid < 0) child_fail(err, "fork", errno, kInitSetupFailed);
  int mine[1] = {p.status_w};
  close_all_but(mine, 1);
  // The program's wait status and the largest RSS of anything reaped (init's own RSS is a copy
  // of the parent's and says nothing about the program).
  InitReport rep{-1, 0};
  for (;;) {
    int st = 0;
    struct rusage ru;
    long w = syscall(SYS_wait4, -1, &st, __WALL, &ru);
    if (w < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (ru.ru_maxrss > rep.max_rss_kb) rep.max_rss_kb = ru.ru_maxrss;
    if (w == pid) {
      rep.status = st;
      break;
    }
  }
  write_all_raw(p.status_w, reinterpret_cast<const char*>(&rep), sizeof(rep));
  if (!p.mount_ns) kill(0, SIGKILL);  // no PID namespace to end: take our process group down
  _exit(0);
}

// --- Parent helpers ---------------------------------------------------------------------------

struct Fd {
  int fd = -1;
  Fd() = default;
  explicit Fd(int f) : fd(f) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { reset(); }
  void reset(int f = -1) {
    if (fd >= 0) close(fd);
    fd = f;
  }
};

void make_pipe(Fd& r, Fd& w) {
  int p[2];
  R1_CHECK(pipe2(p, O_CLOEXEC) == 0, "[sandbox] pipe2 failed: {}", errno_message(errno));
  r.reset(p[0]);
  w.reset(p[1]);
}

bool write_proc_file(const std::string& path, const std::string& text, std::string* why) {
  int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) {
    *why = path + ": " + errno_message(errno);
    return false;
  }
  ssize_t w = write(fd, text.data(), text.size());
  int e = errno;
  close(fd);
  if (w != ssize_t(text.size())) {
    *why = path + ": " + errno_message(e);
    return false;
  }
  return true;
}

// A SIGPIPE raised by writing stdin to a program that exited stays pending on this thread while
// blocked, and is consumed before unblocking, so the toolkit process never dies of it.
class SigpipeGuard {
 public:
  SigpipeGuard() {
    sigemptyset(&set_);
    sigaddset(&set_, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &set_, &old_);
  }
  ~SigpipeGuard() {
    timespec zero{0, 0};
    while (sigtimedwait(&set_, nullptr, &zero) > 0) {
    }
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }

 private:
  sigset_t set_, old_;
};

unsigned long remount_flags_for(const std::string& path) {
  unsigned long f = MS_RDONLY | MS_NOSUID | MS_NODEV;
  struct statvfs sv;
  if (statvfs(path.c_str(), &sv) == 0) {
    // Flags the kernel locks on mounts from a more privileged namespace must be kept.
    if (sv.f_flag & ST_NOEXEC) f |= MS_NOEXEC;
    if (sv.f_flag & ST_NOATIME) f |= MS_NOATIME;
    if (sv.f_flag & ST_NODIRATIME) f |= MS_NODIRATIME;
    if (sv.f_flag & ST_RELATIME) f |= MS_RELATIME;
  }
  return f;
}

bool contains_any(const std::string& s, std::initializer_list<const char*> needles) {
  for (const char* n : needles)
    if (s.find(n) != std::string::npos) return true;
  return false;
}

int64_t ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                               t0)
      .count();
}

}  // namespace

// --- Sandbox ------------------------------------------------------------------------------------

struct Sandbox::Impl {
  std::vector<sock_filter> filter_code;
  sock_fprog filter{};
  std::vector<MountStep> steps;
  std::vector<ChildMount> child_mounts;
  int clone_flags = 0;
  bool set_ids = false, drop_groups = false;
  uint32_t host_uid = 0, host_gid = 0;
  bool mount_ns = false, uts_ns = false, seccomp = false, user_ns = false;
  cgroup::Support cg;

  RunResult run(const RunSpec& spec) const;
};

namespace {

// Adds mkdir steps for every parent of `rel` (relative to the root) not yet created.
void add_parents(std::vector<MountStep>& steps, std::vector<std::string>& made,
                 const std::string& rel) {
  size_t pos = 0;
  while ((pos = rel.find('/', pos + 1)) != std::string::npos) {
    std::string dir = rel.substr(0, pos);
    if (std::find(made.begin(), made.end(), dir) != made.end()) continue;
    made.push_back(dir);
    steps.push_back({MountStep::mkdir_, "", std::string(kRootMount) + dir, 0});
  }
}

std::vector<MountStep> plan_mounts(const std::vector<std::string>& paths) {
  std::vector<MountStep> steps;
  std::vector<std::string> made;
  for (const auto& path : paths) {
    R1_CHECK(!path.empty() && path[0] == '/', "[sandbox] read-only path '{}' must be absolute",
             path);
    struct stat st;
    if (lstat(path.c_str(), &st) != 0) continue;
    add_parents(steps, made, path);
    std::string dst = std::string(kRootMount) + path;
    if (S_ISLNK(st.st_mode)) {
      std::error_code ec;
      auto target = std::filesystem::read_symlink(path, ec);
      if (ec) continue;
      steps.push_back({MountStep::symlink_, target.string(), dst, 0});
    } else if (S_ISDIR(st.st_mode)) {
      made.push_back(path);
      steps.push_back({MountStep::mkdir_, "", dst, 0});
      steps.push_back({MountStep::bind_, path, dst, remount_flags_for(path)});
    } else if (S_ISREG(st.st_mode)) {
      steps.push_back({MountStep::file_, "", dst, 0});
      steps.push_back({MountStep::bind_, path, dst, remount_flags_for(path)});
    }
  }
  // A minimal /dev: the harmless character devices, bound from the host.
  steps.push_back({MountStep::mkdir_, "", std::string(kRootMount) + "/dev", 0});
  for (const char* dev : {"null", "zero", "full", "random", "urandom"}) {
    std::string src = std::string("/dev/") + dev;
    struct stat st;
    if (stat(src.c_str(), &st) != 0 || !S_ISCHR(st.st_mode)) continue;
    std::string dst = std::string(kRootMount) + "/dev/" + dev;
    steps.push_back({MountStep::file_, "", dst, 0});
    steps.push_back({MountStep::bind_dev_, src, dst, 0});
  }
  return steps;
}

bool simulated(const SandboxOptions& o, const char* name) {
  return std::find(o.simulate_unavailable.begin(), o.simulate_unavailable.end(), name) !=
         o.simulate_unavailable.end();
}

int trivial_child(void*) {
  _exit(0);
}

// clone(flags) a child that exits at once; 0 or the errno.
int probe_clone(int flags) {
  std::vector<char> stack(64 * 1024);
  pid_t pid = clone(trivial_child, stack.data() + stack.size(), flags | SIGCHLD, nullptr);
  if (pid < 0) return errno;
  int st;
  waitpid(pid, &st, 0);
  return 0;
}

// Loads the filter in a throwaway child; 0 or the errno.
int probe_seccomp(const sock_fprog* prog) {
  pid_t pid = fork();
  if (pid < 0) return errno;
  if (pid == 0) {
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) _exit(100 + (errno & 63));
    if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, prog, 0, 0) != 0) _exit(100 + (errno & 63));
    _exit(0);
  }
  int st = 0;
  waitpid(pid, &st, 0);
  if (WIFEXITED(st) && WEXITSTATUS(st) == 0) return 0;
  return WIFEXITED(st) && WEXITSTATUS(st) >= 100 ? WEXITSTATUS(st) - 100 : EINVAL;
}

}  // namespace

Sandbox::Sandbox(SandboxOptions opts) : opts_(std::move(opts)), impl_(new Impl) {
  Impl& im = *impl_;
  try {
    im.filter_code = build_seccomp_filter();
    im.filter.len = static_cast<unsigned short>(im.filter_code.size());
    im.filter.filter = im.filter_code.data();
    im.steps = plan_mounts(opts_.readonly_paths);

    // Probe each feature on its own (with a user namespace where that works).
    auto feature = [&](const char* name, int flag, bool* ok, const char* what) {
      int e = simulated(opts_, name) ? EPERM : probe_clone(flag);
      *ok = e == 0;
      if (!*ok)
        isolation_.reasons.push_back(
            std::string(what) + ": " +
            (simulated(opts_, name) ? std::string("refused (simulated)") : errno_message(e)));
    };
    feature("user", CLONE_NEWUSER, &isolation_.user_ns, "clone(CLONE_NEWUSER)");
    int base = isolation_.user_ns ? CLONE_NEWUSER : 0;
    feature("pid", base | CLONE_NEWPID, &isolation_.pid_ns, "clone(CLONE_NEWPID)");
    feature("net", base | CLONE_NEWNET, &isolation_.net_ns, "clone(CLONE_NEWNET)");
    feature("mount", base | CLONE_NEWNS, &isolation_.mount_ns, "clone(CLONE_NEWNS)");
    feature("ipc", base | CLONE_NEWIPC, &isolation_.ipc_ns, "clone(CLONE_NEWIPC)");
    feature("uts", base | CLONE_NEWUTS, &isolation_.uts_ns, "clone(CLONE_NEWUTS)");
    int se = simulated(opts_, "seccomp") ? EPERM : probe_seccomp(&im.filter);
    isolation_.seccomp = se == 0;
    if (se != 0)
      isolation_.reasons.push_back("seccomp filter: " + (simulated(opts_, "seccomp")
                                                             ? std::string("refused (simulated)")
                                                             : errno_message(se)));
    // The mount namespace is only usable to build a private root when we may mount in it.
    if (isolation_.mount_ns && !isolation_.user_ns && geteuid() != 0) isolation_.mount_ns = false;

    if (!isolation_.complete()) {
      std::string missing;
      for (const auto& m : isolation_.missing()) missing += (missing.empty() ? "" : ", ") + m;
      std::string reasons;
      for (const auto& r : isolation_.reasons) reasons += "\n  " + r;
      if (!opts_.allow_weaker_isolation) {
        R1_THROW(
            "[sandbox] refusing to run untrusted code: the kernel does not allow {}.{}\n"
            "Enable unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1 and "
            "user.max_user_namespaces > 0; on Ubuntu 24.04 also "
            "kernel.apparmor_restrict_unprivileged_userns=0; in a container, run it with a seccomp "
            "profile that allows clone/unshare of namespaces) and a kernel with "
            "CONFIG_SECCOMP_FILTER, or accept weaker isolation explicitly "
            "(SandboxOptions::allow_weaker_isolation, --allow-weak-isolation).",
            missing, reasons);
      }
      logger()->warn(
          "SANDBOX ISOLATION IS WEAKER THAN REQUIRED: missing {}. Untrusted programs run this "
          "way can reach the host (files, processes{}). Use only with code you trust.{}",
          missing, isolation_.net_ns ? "" : ", network", reasons);
    }
    im.user_ns = isolation_.user_ns;
    im.mount_ns = isolation_.mount_ns;
    im.uts_ns = isolation_.uts_ns;
    im.seccomp = isolation_.seccomp;
    im.clone_flags =
        (isolation_.user_ns ? CLONE_NEWUSER : 0) | (isolation_.pid_ns ? CLONE_NEWPID : 0) |
        (isolation_.net_ns ? CLONE_NEWNET : 0) | (isolation_.mount_ns ? CLONE_NEWNS : 0) |
        (isolation_.ipc_ns ? CLONE_NEWIPC : 0) | (isolation_.uts_ns ? CLONE_NEWUTS : 0);
    bool root = geteuid() == 0;
    im.host_uid = root ? opts_.uid_when_root : geteuid();
    im.host_gid = root ? opts_.gid_when_root : getegid();
    im.set_ids = isolation_.user_ns;
    im.drop_groups = root;
    for (const auto& s : im.steps)
      im.child_mounts.push_back({s.kind, s.src.c_str(), s.dst.c_str(), s.remount_flags});

    // cgroup v2 where usable, else RLIMIT_AS.
    if (opts_.use_cgroup) {
      std::string parent = opts_.cgroup_parent;
      if (const char* env = getenv("R1KIT_SANDBOX_CGROUP"); parent.empty() && env) parent = env;
      im.cg = cgroup::detect(parent);
    } else {
      im.cg.reason = "turned off (SandboxOptions::use_cgroup = false)";
    }

    // The probe run: the whole machinery once, end to end.
    const char* true_bin = access("/usr/bin/true", X_OK) == 0 ? "/usr/bin/true" : "/bin/true";
    RunSpec probe;
    probe.argv = {true_bin};
    probe.limits.wall_s = 10;
    auto probe_run = [&] {
      try {
        return im.run(probe);
      } catch (const std::exception& e) {
        RunResult f;
        f.message = e.what();
        return f;
      }
    };
    RunResult r = probe_run();
    if (r.status != Status::ok && im.cg.usable) {
      // The cgroup path failed end to end: fall back to RLIMIT_AS, saying so.
      im.cg.usable = false;
      im.cg.reason = "the probe run in a cgroup under " + im.cg.base + " failed: " + r.message;
      logger()->warn("[sandbox] not using cgroup v2 ({}); memory is limited by RLIMIT_AS",
                     im.cg.reason);
      r = probe_run();
    }
    isolation_.cgroup = im.cg.usable;
    isolation_.cgroup_dir = im.cg.usable ? im.cg.base : "";
    isolation_.cgroup_reason = im.cg.usable ? "" : im.cg.reason;
    if (im.cg.usable)
      logger()->debug("[sandbox] memory and processes limited by cgroup v2 under {}", im.cg.base);
    else
      logger()->debug("[sandbox] cgroup v2 not used ({}); memory limited by RLIMIT_AS",
                      im.cg.reason);
    if (r.status != Status::ok) {
      R1_THROW(
          "[sandbox] the isolated probe run of {} failed ({}): {}{}\nThe sandbox cannot run "
          "programs on this machine; see docs/SANDBOX.md (requirements).",
          true_bin, status_name(r.status), r.message,
          r.stderr_data.empty() ? "" : "\n" + r.stderr_data);
    }
  } catch (...) {
    delete impl_;
    impl_ = nullptr;
    throw;
  }
}

Sandbox::~Sandbox() {
  delete impl_;
}

RunResult Sandbox::run(const RunSpec& spec) const {
  R1_CHECK(!spec.argv.empty() && !spec.argv[0].empty() && spec.argv[0][0] == '/',
           "[sandbox] argv[0] must be an absolute path inside the sandbox");
  validate_limits(spec.limits);
  for (const auto& f : spec.files) {
    R1_CHECK(!f.path.empty() && f.path[0] != '/' && f.path.find("..") == std::string::npos &&
                 f.path.back() != '/',
             "[sandbox] file path '{}' must be relative to the work directory, without '..'",
             f.path);
  }
  try {
    return impl_->run(spec);
  } catch (const std::exception& e) {
    RunResult r;
    r.status = Status::internal_error;
    r.message = e.what();
    return r;
  }
}

RunResult Sandbox::Impl::run(const RunSpec& spec) const {
  using clock = std::chrono::steady_clock;
  const Limits& lim = spec.limits;
  RunResult res;

  // Everything the child reads, laid out before clone (it may not allocate afterwards).
  std::vector<std::string> argv_s = spec.argv;
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<std::string> env_s = {std::string("PATH=") + kSandboxPath,
                                    std::string("LANG=") + kSandboxLang,
                                    std::string("HOME=") + kWorkDir};
  std::string host_workdir;
  std::unique_ptr<std::filesystem::path, void (*)(std::filesystem::path*)> cleanup(
      nullptr, [](std::filesystem::path* p) {
        std::error_code ec;
        std::filesystem::remove_all(*p, ec);
        delete p;
      });
  if (!mount_ns) {  // weaker isolation: a host temp dir
    std::string tmpl = (std::filesystem::temp_directory_path() / "r1kit-sandbox-XXXXXX").string();
    R1_CHECK(mkdtemp(tmpl.data()) != nullptr, "[sandbox] mkdtemp failed: {}", errno_message(errno));
    host_workdir = tmpl;
    cleanup.reset(new std::filesystem::path(host_workdir));
    env_s[2] = "HOME=" + host_workdir;
  }
  std::vector<char*> envp;
  for (auto& e : env_s) envp.push_back(e.data());
  envp.push_back(nullptr);

  std::vector<std::string> dirs_s;
  std::vector<std::string> file_paths;
  std::vector<ChildFile> files;
  for (const auto& f : spec.files) {
    for (size_t pos = f.path.find('/'); pos != std::string::npos; pos = f.path.find('/', pos + 1))
      dirs_s.push_back(f.path.substr(0, pos));
    file_paths.push_back(f.path);
  }
  for (size_t i = 0; i < spec.files.size(); ++i)
    files.push_back({file_paths[i].c_str(), spec.files[i].content.data(),
                     spec.files[i].content.size(), spec.files[i].executable ? 0755 : 0644});
  std::vector<const char*> dirs;
  for (auto& d : dirs_s) dirs.push_back(d.c_str());

  // Memory: the run's own cgroup v2 (memory.max for the whole tree) where usable, else the
  // per-process address-space rlimit. A creation failure is an internal_error (never a silent
  // run without the limit).
  std::unique_ptr<cgroup::RunCgroup> cg_run;
  if (cg.usable)
    cg_run = std::make_unique<cgroup::RunCgroup>(cg, lim.memory_bytes, lim.max_processes);
  res.memory_mechanism = cg_run ? "cgroup_v2" : "rlimit_as";
  const rlim_t as_limit = cg_run ? RLIM_INFINITY : rlim_t(lim.memory_bytes);

  auto ceil_s = [](double s) { return static_cast<rlim_t>(s < 1 ? 1 : s + 0.999); };
  std::vector<int> rres = {RLIMIT_CPU,   RLIMIT_AS,   RLIMIT_NPROC,   RLIMIT_NOFILE,
                           RLIMIT_FSIZE, RLIMIT_CORE, RLIMIT_MEMLOCK, RLIMIT_MSGQUEUE};
  rlim_t cpu = ceil_s(lim.cpu_s);
  std::vector<struct rlimit> rl = {{cpu, cpu + 1},
                                   {as_limit, as_limit},
                                   {rlim_t(lim.max_processes), rlim_t(lim.max_processes)},
                                   {rlim_t(lim.max_open_files), rlim_t(lim.max_open_files)},
                                   {rlim_t(lim.disk_bytes), rlim_t(lim.disk_bytes)},
                                   {0, 0},
                                   {0, 0},
                                   {0, 0}};
  // The program may write disk_bytes; the files we put there come on top (plus slack for
  // metadata), so a single file hits RLIMIT_FSIZE (SIGXFSZ) before the tmpfs is full.
  uint64_t given = 0;
  for (const auto& f : spec.files) given += f.content.size() + 4096;
  uint64_t tmpfs_bytes = lim.disk_bytes + given + (64 << 10);
  std::string tmpfs_opts =
      "size=" + std::to_string((tmpfs_bytes + 4095) / 4096 * 4096) + ",nr_inodes=4096,mode=0755";
  std::string work_root = std::string(kRootMount) + kWorkDir;
  std::string tmp_link = std::string(kRootMount) + "/tmp";

  Fd sync_r, sync_w, err_r, err_w, status_r, status_w, in_r, in_w, out_r, out_w, errs_r, errs_w,
      ctl_r, ctl_w, rep_r, rep_w;
  make_pipe(sync_r, sync_w);
  make_pipe(err_r, err_w);
  make_pipe(status_r, status_w);
  make_pipe(in_r, in_w);
  make_pipe(out_r, out_w);
  make_pipe(errs_r, errs_w);
  if (spec.control_input) make_pipe(ctl_r, ctl_w);
  if (spec.capture_report) make_pipe(rep_r, rep_w);

  ChildPlan plan;
  plan.sync_r = sync_r.fd;
  plan.err_w = err_w.fd;
  plan.status_w = status_w.fd;
  plan.stdin_r = in_r.fd;
  plan.stdout_w = out_w.fd;
  plan.stderr_w = errs_w.fd;
  plan.control_r = ctl_r.fd;
  plan.report_w = rep_w.fd;
  plan.set_ids = set_ids;
  plan.drop_groups = drop_groups;
  plan.mount_ns = mount_ns;
  plan.uts_ns = uts_ns;
  plan.seccomp = seccomp;
  plan.mounts = child_mounts.data();
  plan.n_mounts = child_mounts.size();
  plan.work_tmpfs_opts = tmpfs_opts.c_str();
  plan.work_root = work_root.c_str();
  plan.tmp_link = tmp_link.c_str();
  plan.host_workdir = host_workdir.c_str();
  plan.dirs = dirs.data();
  plan.n_dirs = dirs.size();
  plan.files = files.data();
  plan.n_files = files.size();
  plan.argv = argv.data();
  plan.envp = envp.data();
  plan.rlim_res = rres.data();
  plan.rlims = rl.data();
  plan.n_rlims = rl.size();
  plan.filter = &filter;

  SigpipeGuard sigpipe_guard;
  std::vector<char> stack(256 * 1024);
  int pidfd = -1;
  auto t0 = clock::now();
  pid_t pid = clone(init_main, stack.data() + stack.size(), clone_flags | CLONE_PIDFD | SIGCHLD,
                    &plan, &pidfd);
  if (pid < 0) {
    res.status = Status::internal_error;
    res.message =
        "clone into new namespaces failed: " + errno_message(errno) +
        (errno == ENOSPC ? " (user.max_user_namespaces or max_pid_namespaces reached)" : "");
    return res;
  }
  Fd pidfd_guard(pidfd);
  sync_r.reset();
  err_w.reset();
  status_w.reset();
  in_r.reset();
  out_w.reset();
  errs_w.reset();
  ctl_r.reset();
  rep_w.reset();

  // uid/gid maps: sandbox root is the host uid (or uid_when_root when we are root).
  std::string why;
  bool mapped = true;
  if (user_ns) {
    std::string proc = "/proc/" + std::to_string(pid);
    mapped = write_proc_file(proc + "/uid_map", "0 " + std::to_string(host_uid) + " 1\n", &why) &&
             (drop_groups || write_proc_file(proc + "/setgroups", "deny", &why)) &&
             write_proc_file(proc + "/gid_map", "0 " + std::to_string(host_gid) + " 1\n", &why);
  }
  // Into the run's cgroup before init forks the program, so everything the program starts is
  // born there.
  bool placed = true;
  std::string place_why;
  if (mapped && cg_run) placed = cg_run->place(pid, &place_why);
  if (mapped && placed) {
    char c = 1;
    if (write(sync_w.fd, &c, 1) != 1) mapped = false;
  }
  sync_w.reset();

  // The I/O loop.
  fcntl(in_w.fd, F_SETFL, O_NONBLOCK);
  if (ctl_w.fd >= 0) fcntl(ctl_w.fd, F_SETFL, O_NONBLOCK);
  struct Sink {
    Fd* fd;
    std::string* out;
    uint64_t cap;
    bool* truncated;
  };
  std::string err_text, status_bytes;
  bool dummy_trunc = false;
  Sink sinks[5] = {{&out_r, &res.stdout_data, lim.output_bytes, &res.stdout_truncated},
                   {&errs_r, &res.stderr_data, lim.output_bytes, &res.stderr_truncated},
                   {&rep_r, &res.report, lim.output_bytes, &res.report_truncated},
                   {&err_r, &err_text, 4096, &dummy_trunc},
                   {&status_r, &status_bytes, 64, &dummy_trunc}};
  struct Source {
    Fd* fd;
    const std::string* data;
    size_t off;
  };
  Source sources[2] = {{&in_w, &spec.stdin_data, 0},
                       {&ctl_w, spec.control_input ? &*spec.control_input : nullptr, 0}};
  if (!sources[1].data) ctl_w.reset();

  bool timed_out = false, output_killed = false, killed_by_us = !mapped || !placed, exited = false;
  if (killed_by_us) kill(pid, SIGKILL);
  auto deadline = t0 + std::chrono::microseconds(int64_t(lim.wall_s * 1e6));
  auto drain_deadline = clock::time_point::max();
  std::vector<char> buf(64 * 1024);
  for (;;) {
    pollfd pfds[8];
    int kinds[8];  // 0..4 sinks, 10..11 sources, 20 pidfd
    int n = 0;
    for (int i = 0; i < 5; ++i)
      if (sinks[i].fd->fd >= 0) {
        pfds[n] = {sinks[i].fd->fd, POLLIN, 0};
        kinds[n++] = i;
      }
    for (int i = 0; i < 2; ++i)
      if (sources[i].fd->fd >= 0) {
        if (sources[i].off >= sources[i].data->size()) {
          sources[i].fd->reset();  // all written: EOF for the program
          continue;
        }
        pfds[n] = {sources[i].fd->fd, POLLOUT, 0};
        kinds[n++] = 10 + i;
      }
    if (!exited) {
      pfds[n] = {pidfd, POLLIN, 0};
      kinds[n++] = 20;
    }
    bool sinks_open = false;
    for (auto& s : sinks) sinks_open |= s.fd->fd >= 0;
    if (exited && !sinks_open) break;
    auto now = clock::now();
    if (!exited && now >= deadline && !killed_by_us) {
      timed_out = true;
      killed_by_us = true;
      kill(pid, SIGKILL);
    }
    if (exited && now >= drain_deadline) break;
    auto until =
        exited ? drain_deadline : (killed_by_us ? now + std::chrono::seconds(5) : deadline);
    int64_t wait_ms = std::max<int64_t>(
        0, std::chrono::duration_cast<std::chrono::milliseconds>(until - now).count() + 1);
    int pr = poll(pfds, nfds_t(n), int(std::min<int64_t>(wait_ms, 1000)));
    if (pr < 0 && errno != EINTR) break;
    if (pr <= 0) continue;
    for (int k = 0; k < n; ++k) {
      if (!pfds[k].revents) continue;
      int kind = kinds[k];
      if (kind == 20) {
        exited = true;
        // Still a zombie, so its process group id cannot have been reused yet.
        kill(-pid, SIGKILL);
        drain_deadline = clock::now() + std::chrono::seconds(2);
      } else if (kind >= 10) {
        Source& s = sources[kind - 10];
        size_t left = s.data->size() - s.off;
        ssize_t w = write(s.fd->fd, s.data->data() + s.off, std::min<size_t>(left, 65536));
        if (w > 0) {
          s.off += size_t(w);
        } else if (w < 0 && errno != EAGAIN && errno != EINTR) {
          s.fd->reset();  // EPIPE: the program stopped reading
        }
      } else {
        Sink& s = sinks[kind];
        ssize_t r = read(s.fd->fd, buf.data(), buf.size());
        if (r > 0) {
          uint64_t room = s.cap > s.out->size() ? s.cap - s.out->size() : 0;
          s.out->append(buf.data(), size_t(std::min<uint64_t>(room, uint64_t(r))));
          if (uint64_t(r) > room) {
            *s.truncated = true;
            if (kind <= 1 && spec.kill_on_output_limit && !killed_by_us) {
              output_killed = true;
              killed_by_us = true;
              kill(pid, SIGKILL);
            }
          }
        } else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
          s.fd->reset();
        }
      }
    }
  }
  int st = 0;
  struct rusage ru;
  memset(&ru, 0, sizeof(ru));
  if (!exited) {
    kill(pid, SIGKILL);
    kill(-pid, SIGKILL);
  }
  while (wait4(pid, &st, __WALL, &ru) < 0 && errno == EINTR) {
  }
  res.wall_ms = ms_since(t0);
  res.cpu_ms = (int64_t(ru.ru_utime.tv_sec) + int64_t(ru.ru_stime.tv_sec)) * 1000 +
               (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1000;
  cgroup::MemoryEvents mem_events;
  std::optional<uint64_t> peak;
  if (cg_run) {
    cg_run->kill_all();
    mem_events = cg_run->events();
    peak = cg_run->peak_bytes();
    cg_run->remove();
  }

  // Classify.
  if (!mapped) {
    res.status = Status::internal_error;
    res.message = "writing the user namespace id maps failed: " + why;
    return res;
  }
  if (!placed) {
    res.status = Status::internal_error;
    res.message = "moving the sandbox into its cgroup failed: " + place_why;
    return res;
  }
  if (!err_text.empty()) {
    int e = atoi(err_text.c_str());
    size_t sp = err_text.find(' ');
    std::string what = sp == std::string::npos ? err_text : err_text.substr(sp + 1);
    res.status = Status::internal_error;
    res.message = "sandbox setup failed: " + what + ": " + errno_message(e);
    return res;
  }
  int main_status = -1;
  bool have_status = status_bytes.size() == sizeof(InitReport);
  if (have_status) {
    InitReport ir;
    memcpy(&ir, status_bytes.data(), sizeof(ir));
    main_status = ir.status;
    res.max_rss_kb = ir.max_rss_kb;
  }
  if (peak) res.max_rss_kb = int64_t(*peak / 1024);
  if (have_status && WIFEXITED(main_status)) res.exit_code = WEXITSTATUS(main_status);
  if (have_status && WIFSIGNALED(main_status)) res.signal = WTERMSIG(main_status);
  const int64_t cpu_limit_ms = int64_t(lim.cpu_s * 1000);
  // Only in the RLIMIT_AS fallback: the program's own words (which it could fake) are all we
  // have. With cgroup v2 the kernel's OOM-kill count decides.
  bool memory_words =
      !cg_run &&
      contains_any(res.stderr_data, {"MemoryError", "std::bad_alloc", "Cannot allocate memory",
                                     "out of memory", "memory exhausted"});
  const bool oom_killed = cg_run && mem_events.oom_kill > 0;
  if (oom_killed) {
    res.status = Status::memory_limit;
    res.message = "memory limit of " + std::to_string(lim.memory_bytes >> 20) +
                  " MiB reached (cgroup v2 memory.max: " + std::to_string(mem_events.oom_kill) +
                  " OOM kill" + (mem_events.oom_kill == 1 ? "" : "s") + ")";
    if (!have_status && WIFSIGNALED(st)) res.signal = WTERMSIG(st);
  } else if (timed_out) {
    res.status = Status::timeout;
    res.message = "wall-clock limit of " + fmt::format("{:g}", lim.wall_s) + " s reached";
  } else if (output_killed) {
    res.status = Status::output_limit;
    res.message =
        "output went past the " + std::to_string(lim.output_bytes) + "-byte capture limit";
  } else if (!have_status) {
    res.status = Status::internal_error;
    res.message = WIFSIGNALED(st)
                      ? "the sandbox init was killed by signal " + std::to_string(WTERMSIG(st))
                      : "the sandbox init exited without reporting (status " +
                            std::to_string(WIFEXITED(st) ? WEXITSTATUS(st) : -1) + ")";
  } else if (res.signal == SIGXCPU || (res.signal == SIGKILL && res.cpu_ms >= cpu_limit_ms)) {
    res.status = Status::timeout;
    res.message = "CPU-time limit of " + fmt::format("{:g}", lim.cpu_s) + " s reached";
  } else if ((res.exit_code > 0 || res.signal == SIGABRT || res.signal == SIGSEGV ||
              res.signal == SIGKILL) &&
             memory_words) {
    res.status = Status::memory_limit;
    res.message = "memory limit of " + std::to_string(lim.memory_bytes >> 20) +
                  " MiB reached (RLIMIT_AS; judged from the program's error output)";
  } else if (res.stdout_truncated || res.stderr_truncated) {
    res.status = Status::output_limit;
    res.message =
        "output went past the " + std::to_string(lim.output_bytes) + "-byte capture limit";
  } else if (res.exit_code == 0) {
    res.status = Status::ok;
  } else if (res.exit_code > 0) {
    res.status = Status::runtime_error;
  } else {
    switch (res.signal) {
      case SIGSEGV:
      case SIGABRT:
      case SIGFPE:
      case SIGBUS:
      case SIGILL:
      case SIGSYS:
      case SIGTRAP:
        res.status = Status::runtime_error;
        break;
      case SIGXFSZ:
        res.status = Status::runtime_error;
        res.message = "file-size limit of " + std::to_string(lim.disk_bytes) + " bytes reached";
        break;
      default:
        res.status = Status::killed;
        res.message = std::string("killed by signal ") + std::to_string(res.signal) + " (" +
                      strsignal(res.signal) + ")";
    }
  }
  return res;
}

}  // namespace r1kit::sandbox
