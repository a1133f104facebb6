#include "sandbox/cgroup.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <thread>

#include "core/error.h"
#include "core/fs.h"
#include "core/log.h"

#ifndef CGROUP2_SUPER_MAGIC
#define CGROUP2_SUPER_MAGIC 0x63677270
#endif

namespace r1kit::sandbox::cgroup {

namespace {

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  size_t start = 0;
  while (start <= s.size()) {
    size_t end = s.find(sep, start);
    if (end == std::string_view::npos) end = s.size();
    if (end > start) out.push_back(s.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ' || s.back() == '\t'))
    s.remove_suffix(1);
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  return s;
}

std::optional<std::string> read_small(const std::string& path, int* err = nullptr) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (err) *err = errno;
    return std::nullopt;
  }
  std::string out;
  char buf[4096];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      if (err) *err = errno;
      close(fd);
      return std::nullopt;
    }
    if (n == 0) break;
    out.append(buf, size_t(n));
    if (out.size() > (1 << 20)) break;
  }
  close(fd);
  return out;
}

// 0 or the errno.
int write_small(const std::string& path, std::string_view text) {
  int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return errno;
  ssize_t w = write(fd, text.data(), text.size());
  int e = errno;
  close(fd);
  return w == ssize_t(text.size()) ? 0 : (w < 0 ? e : EIO);
}

bool exists(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0;
}

std::string unique_name(const char* what) {
  static std::atomic<uint64_t> counter{0};
  return std::string("r1kit-") + what + "-" + std::to_string(getpid()) + "-" +
         std::to_string(counter.fetch_add(1));
}

}  // namespace

std::optional<std::string> unified_path(std::string_view text) {
  for (std::string_view line : split(text, '\n')) {
    if (line.substr(0, 3) == "0::") return std::string(trim(line.substr(3)));
  }
  return std::nullopt;
}

std::optional<Mount> find_cgroup2_mount(std::string_view mountinfo, std::string_view prefer) {
  std::optional<Mount> first;
  for (std::string_view line : split(mountinfo, '\n')) {
    auto f = split(line, ' ');
    size_t dash = 0;
    for (size_t i = 6; i < f.size(); ++i)
      if (f[i] == "-") {
        dash = i;
        break;
      }
    if (dash == 0 || dash + 1 >= f.size() || f.size() < 5) continue;
    if (f[dash + 1] != "cgroup2") continue;
    Mount m{std::string(f[3]), std::string(f[4])};
    if (m.mount_point == prefer) return m;
    if (!first) first = m;
  }
  return first;
}

std::optional<std::string> cgroup_dir(const Mount& m, std::string_view path) {
  if (path.empty() || path[0] != '/' || path.find("/..") != std::string_view::npos ||
      path.find(" (deleted)") != std::string_view::npos)
    return std::nullopt;
  std::string_view root = m.root;
  while (root.size() > 1 && root.back() == '/') root.remove_suffix(1);
  std::string_view rel;
  if (root == "/") {
    rel = path;
  } else {
    if (path.substr(0, root.size()) != root) return std::nullopt;
    rel = path.substr(root.size());
    if (!rel.empty() && rel[0] != '/') return std::nullopt;  // "/a" is not below "/ab"
  }
  std::string dir = m.mount_point;
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  while (!rel.empty() && rel.back() == '/') rel.remove_suffix(1);
  dir += rel;
  return dir;
}

bool has_controllers(std::string_view list, const std::vector<std::string>& wanted) {
  std::vector<std::string_view> have;
  for (auto line : split(list, '\n'))
    for (auto w : split(line, ' ')) have.push_back(trim(w));
  for (const auto& w : wanted) {
    bool found = false;
    for (auto h : have) found |= h == w;
    if (!found) return false;
  }
  return true;
}

MemoryEvents parse_memory_events(std::string_view text) {
  MemoryEvents ev;
  bool saw_oom_kill = false;
  for (std::string_view line : split(text, '\n')) {
    auto kv = split(trim(line), ' ');
    if (kv.size() != 2) return MemoryEvents{};
    auto v = parse_u64(kv[1]);
    if (!v) return MemoryEvents{};
    int64_t n = int64_t(*v);
    if (kv[0] == "low")
      ev.low = n;
    else if (kv[0] == "high")
      ev.high = n;
    else if (kv[0] == "max")
      ev.max = n;
    else if (kv[0] == "oom")
      ev.oom = n;
    else if (kv[0] == "oom_kill") {
      ev.oom_kill = n;
      saw_oom_kill = true;
    }  // other keys (oom_group_kill, sock_throttled) are ignored
  }
  ev.valid = saw_oom_kill;
  return ev;
}

std::optional<uint64_t> parse_u64(std::string_view text) {
  text = trim(text);
  if (text.empty() || text.size() > 20) return std::nullopt;
  uint64_t v = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    uint64_t d = uint64_t(c - '0');
    if (v > (UINT64_MAX - d) / 10) return std::nullopt;
    v = v * 10 + d;
  }
  return v;
}

Support detect(const std::string& base_override) {
  Support s;
  auto fail = [&](std::string why) {
    s.usable = false;
    s.reason = std::move(why);
    return s;
  };
  std::string base = base_override;
  if (base.empty()) {
    auto cg = read_small("/proc/self/cgroup");
    if (!cg) return fail("/proc/self/cgroup is not readable");
    auto path = unified_path(*cg);
    if (!path) return fail("no cgroup v2 entry in /proc/self/cgroup (a cgroup v1 system)");
    auto mi = read_small("/proc/self/mountinfo");
    if (!mi) return fail("/proc/self/mountinfo is not readable");
    auto m = find_cgroup2_mount(*mi);
    if (!m) return fail("no cgroup2 file system is mounted (cgroup v1 hierarchy)");
    auto dir = cgroup_dir(*m, *path);
    if (!dir)
      return fail("our cgroup " + *path + " is not below the cgroup2 mount at " + m->mount_point);
    base = *dir;
  }
  struct statfs sf;
  if (statfs(base.c_str(), &sf) != 0) return fail(base + ": " + errno_message(errno));
  if (uint64_t(sf.f_type) != uint64_t(CGROUP2_SUPER_MAGIC))
    return fail(base + " is not on a cgroup2 file system");
  int e = 0;
  auto ctl = read_small(base + "/cgroup.controllers", &e);
  if (!ctl) return fail(base + "/cgroup.controllers: " + errno_message(e));
  if (!has_controllers(*ctl, {"memory", "pids"}))
    return fail("the memory and pids controllers are not available in " + base +
                " (cgroup.controllers: '" + std::string(trim(*ctl)) + "')");
  auto sub = read_small(base + "/cgroup.subtree_control", &e);
  if (!sub) return fail(base + "/cgroup.subtree_control: " + errno_message(e));
  if (!has_controllers(*sub, {"memory", "pids"})) {
    e = write_small(base + "/cgroup.subtree_control", "+memory +pids");
    if (e != 0)
      return fail("cannot enable memory and pids for children of " + base +
                  " (cgroup.subtree_control: " + errno_message(e) +
                  (e == EBUSY ? "; the cgroup holds processes, so give a delegated empty cgroup "
                                "as SandboxOptions::cgroup_parent"
                              : "") +
                  ")");
  }
  // A throwaway child: the limits we need must be writable there.
  std::string probe = base + "/" + unique_name("probe");
  if (mkdir(probe.c_str(), 0755) != 0) return fail("mkdir " + probe + ": " + errno_message(errno));
  std::string why;
  auto ctl_child = read_small(probe + "/cgroup.controllers");
  if (!ctl_child || !has_controllers(*ctl_child, {"memory", "pids"}))
    why = "a child cgroup of " + base + " does not get the memory and pids controllers";
  else if ((e = write_small(probe + "/memory.max", "1073741824")) != 0)
    why = probe + "/memory.max: " + errno_message(e);
  else if ((e = write_small(probe + "/pids.max", "64")) != 0)
    why = probe + "/pids.max: " + errno_message(e);
  s.has_swap_max = exists(probe + "/memory.swap.max");
  s.has_kill = exists(probe + "/cgroup.kill");
  s.has_peak = exists(probe + "/memory.peak");
  s.has_oom_group = exists(probe + "/memory.oom.group");
  if (rmdir(probe.c_str()) != 0 && why.empty())
    why = "rmdir " + probe + ": " + errno_message(errno);
  if (!why.empty()) return fail(why);
  s.usable = true;
  s.base = base;
  return s;
}

RunCgroup::RunCgroup(const Support& s, uint64_t memory_bytes, int max_pids) : s_(s) {
  R1_CHECK(s_.usable, "[sandbox] cgroup v2 is not usable: {}", s_.reason);
  dir_ = s_.base + "/" + unique_name("run");
  R1_CHECK(mkdir(dir_.c_str(), 0755) == 0, "[sandbox] mkdir {}: {}", dir_, errno_message(errno));
  auto set = [&](const char* file, const std::string& value) {
    int e = write_small(dir_ + "/" + file, value);
    if (e != 0) {
      remove();
      R1_THROW("[sandbox] writing '{}' to {}/{}: {}", value, dir_, file, errno_message(e));
    }
  };
  set("memory.max", std::to_string(memory_bytes));
  if (s_.has_swap_max) set("memory.swap.max", "0");
  // The OOM killer picks by RSS; init's is a copy-on-write image of this process, so without
  // group kills it could be chosen instead of the program. Kill the whole run instead.
  if (s_.has_oom_group) set("memory.oom.group", "1");
  set("pids.max", std::to_string(max_pids));
}

RunCgroup::~RunCgroup() {
  remove();
}

bool RunCgroup::place(int pid, std::string* why) const {
  int e = write_small(dir_ + "/cgroup.procs", std::to_string(pid));
  if (e == 0) return true;
  *why = dir_ + "/cgroup.procs: " + errno_message(e);
  return false;
}

void RunCgroup::kill_all() const {
  if (s_.has_kill && write_small(dir_ + "/cgroup.kill", "1") == 0) return;
  auto procs = read_small(dir_ + "/cgroup.procs");
  if (!procs) return;
  for (auto line : split(*procs, '\n'))
    if (auto p = parse_u64(line); p && *p > 0) ::kill(pid_t(*p), SIGKILL);
}

MemoryEvents RunCgroup::events() const {
  auto t = read_small(dir_ + "/memory.events");
  return t ? parse_memory_events(*t) : MemoryEvents{};
}

std::optional<uint64_t> RunCgroup::peak_bytes() const {
  if (!s_.has_peak) return std::nullopt;
  auto t = read_small(dir_ + "/memory.peak");
  return t ? parse_u64(*t) : std::nullopt;
}

void RunCgroup::remove() {
  if (removed_ || dir_.empty()) return;
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  for (;;) {
    kill_all();
    if (rmdir(dir_.c_str()) == 0 || errno == ENOENT) break;
    if (errno != EBUSY || std::chrono::steady_clock::now() >= until) {
      logger()->warn("[sandbox] could not remove cgroup {}: {}", dir_, errno_message(errno));
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  removed_ = true;
}

}  // namespace r1kit::sandbox::cgroup
