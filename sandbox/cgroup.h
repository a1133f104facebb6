// cgroup v2 for sandbox runs: where a writable, delegated cgroup v2 hierarchy exists, every run
// gets its own child cgroup (memory.max, memory.swap.max = 0, pids.max, memory.oom.group), the
// sandbox's init is moved into it before the program is forked, memory.events says exactly
// whether the OOM killer fired, memory.peak gives the run's peak memory, cgroup.kill ends the
// tree, and the cgroup is removed afterwards. Without one, the sandbox falls back to RLIMIT_AS.
// The parsing functions are pure so they can be tested on fake /proc and cgroupfs contents.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace r1kit::sandbox::cgroup {

// The cgroup v2 path ("0::<path>" line) of /proc/self/cgroup, e.g. "/user.slice/x.scope".
// nullopt when there is no such line (a pure cgroup v1 system).
std::optional<std::string> unified_path(std::string_view proc_self_cgroup);

// A cgroup2 mount from /proc/self/mountinfo: its root inside the hierarchy and where it is
// mounted. Prefers the mount at `prefer` (/sys/fs/cgroup), else the first cgroup2 mount.
struct Mount {
  std::string root;
  std::string mount_point;
};
std::optional<Mount> find_cgroup2_mount(std::string_view mountinfo,
                                        std::string_view prefer = "/sys/fs/cgroup");

// The directory of cgroup `path` under `m`; nullopt when the path is not below the mount's root
// or looks odd ("..", " (deleted)").
std::optional<std::string> cgroup_dir(const Mount& m, std::string_view path);

// Whether a space-separated controller list (cgroup.controllers, cgroup.subtree_control) holds
// every one of `wanted`.
bool has_controllers(std::string_view list, const std::vector<std::string>& wanted);

// memory.events (flat keyed: "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n"). valid is false when a
// line does not parse or oom_kill is absent.
struct MemoryEvents {
  int64_t low = 0, high = 0, max = 0, oom = 0, oom_kill = 0;
  bool valid = false;
};
MemoryEvents parse_memory_events(std::string_view text);

// A single unsigned number with an optional trailing newline (memory.peak); nullopt otherwise.
std::optional<uint64_t> parse_u64(std::string_view text);

// What the host offers. usable: runs get a cgroup under `base`; otherwise `reason` says why not.
struct Support {
  bool usable = false;
  std::string base;    // the directory run cgroups are created in
  std::string reason;  // why cgroups are not used (empty when usable)
  bool has_swap_max = false, has_kill = false, has_peak = false, has_oom_group = false;
};
// Probes: the cgroup2 file system, the memory and pids controllers (enabling them in
// base/cgroup.subtree_control when needed), and a throwaway child whose memory.max and pids.max
// are written. `base_override` (SandboxOptions::cgroup_parent) replaces the process's own cgroup.
Support detect(const std::string& base_override);

// One run's cgroup. create() throws r1kit::Error with the failing file and errno.
class RunCgroup {
 public:
  RunCgroup(const Support& s, uint64_t memory_bytes, int max_pids);
  ~RunCgroup();  // kill + remove, errors logged
  RunCgroup(const RunCgroup&) = delete;
  RunCgroup& operator=(const RunCgroup&) = delete;

  const std::string& dir() const { return dir_; }
  // Writes pid to cgroup.procs; false (and *why) on failure.
  bool place(int pid, std::string* why) const;
  // SIGKILL to everything in the cgroup (cgroup.kill, else each pid of cgroup.procs).
  void kill_all() const;
  MemoryEvents events() const;
  std::optional<uint64_t> peak_bytes() const;
  // kill_all, then rmdir (retried while the last tasks exit, up to ~2 s). Idempotent.
  void remove();

 private:
  Support s_;
  std::string dir_;
  bool removed_ = false;
};

}  // namespace r1kit::sandbox::cgroup
