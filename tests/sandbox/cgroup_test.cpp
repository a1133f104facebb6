// cgroup v2 support: the pure parsers on fake /proc and cgroupfs contents (run everywhere), the
// RLIMIT_AS fallback (run everywhere), and real cgroup runs (only where a writable cgroup v2
// hierarchy exists; skipped on cgroup v1 hosts such as this project's dev and CI machines).
#include <dirent.h>
#include <gtest/gtest.h>

#include "sandbox/cgroup.h"
#include "sandbox/sandbox.h"

namespace r1kit::sandbox {
namespace {

using namespace cgroup;

TEST(Cgroup, UnifiedPath) {
  EXPECT_EQ(unified_path("0::/user.slice/user-1000.slice/session-2.scope\n"),
            "/user.slice/user-1000.slice/session-2.scope");
  // Hybrid: v1 controllers plus the unified line.
  EXPECT_EQ(unified_path("12:pids:/\n4:memory:/x\n1:name=systemd:/\n0::/\n"), "/");
  // Pure v1: no "0::" line.
  EXPECT_EQ(unified_path("4:memory:/docker/abc\n1:cpu:/\n"), std::nullopt);
  EXPECT_EQ(unified_path(""), std::nullopt);
}

TEST(Cgroup, FindCgroup2Mount) {
  const char* v2 =
      "22 28 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw\n"
      "27 22 0:24 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 "
      "rw,nsdelegate,memory_recursiveprot\n";
  auto m = find_cgroup2_mount(v2);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->mount_point, "/sys/fs/cgroup");
  EXPECT_EQ(m->root, "/");
  // Hybrid: the unified hierarchy elsewhere; optional fields of any count before "-".
  const char* hybrid =
      "30 25 0:26 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755\n"
      "31 30 0:27 / /sys/fs/cgroup/unified rw shared:10 master:3 - cgroup2 cgroup2 rw\n"
      "32 30 0:28 / /sys/fs/cgroup/memory rw shared:11 - cgroup cgroup rw,memory\n";
  m = find_cgroup2_mount(hybrid);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->mount_point, "/sys/fs/cgroup/unified");
  // v1 only (this machine's layout).
  EXPECT_FALSE(
      find_cgroup2_mount("30 25 0:26 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n"
                         "32 30 0:28 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"));
  EXPECT_FALSE(find_cgroup2_mount("garbage\n\n1 2 3\n"));
}

TEST(Cgroup, CgroupDir) {
  Mount root{"/", "/sys/fs/cgroup"};
  EXPECT_EQ(cgroup_dir(root, "/"), "/sys/fs/cgroup");
  EXPECT_EQ(cgroup_dir(root, "/a/b.scope"), "/sys/fs/cgroup/a/b.scope");
  EXPECT_EQ(cgroup_dir(root, "/a/"), "/sys/fs/cgroup/a");
  Mount sub{"/docker/abc", "/sys/fs/cgroup"};
  EXPECT_EQ(cgroup_dir(sub, "/docker/abc/x"), "/sys/fs/cgroup/x");
  EXPECT_EQ(cgroup_dir(sub, "/docker/abc"), "/sys/fs/cgroup");
  EXPECT_EQ(cgroup_dir(sub, "/docker/abcd"), std::nullopt);
  EXPECT_EQ(cgroup_dir(sub, "/other"), std::nullopt);
  EXPECT_EQ(cgroup_dir(root, "/a/../../etc"), std::nullopt);
  EXPECT_EQ(cgroup_dir(root, "/a (deleted)"), std::nullopt);
  EXPECT_EQ(cgroup_dir(root, "relative"), std::nullopt);
}

TEST(Cgroup, HasControllers) {
  EXPECT_TRUE(has_controllers("cpuset cpu io memory hugetlb pids rdma misc\n", {"memory", "pids"}));
  EXPECT_FALSE(has_controllers("cpu io memory\n", {"memory", "pids"}));
  EXPECT_FALSE(has_controllers("\n", {"memory"}));
  EXPECT_FALSE(has_controllers("memoryx pids", {"memory"}));
  EXPECT_TRUE(has_controllers("", {}));
}

TEST(Cgroup, MemoryEvents) {
  auto ev = parse_memory_events("low 0\nhigh 0\nmax 17\noom 2\noom_kill 1\noom_group_kill 1\n");
  EXPECT_TRUE(ev.valid);
  EXPECT_EQ(ev.max, 17);
  EXPECT_EQ(ev.oom, 2);
  EXPECT_EQ(ev.oom_kill, 1);
  ev = parse_memory_events("low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n");
  EXPECT_TRUE(ev.valid);
  EXPECT_EQ(ev.oom_kill, 0);
  EXPECT_FALSE(parse_memory_events("").valid);
  EXPECT_FALSE(parse_memory_events("low 0\nhigh 0\n").valid);  // no oom_kill
  EXPECT_FALSE(parse_memory_events("oom_kill x\n").valid);
  EXPECT_FALSE(parse_memory_events("oom_kill 1 2\n").valid);
}

TEST(Cgroup, ParseU64) {
  EXPECT_EQ(parse_u64("123456789\n"), 123456789u);
  EXPECT_EQ(parse_u64("0"), 0u);
  EXPECT_EQ(parse_u64("18446744073709551615"), UINT64_MAX);
  EXPECT_EQ(parse_u64("18446744073709551616"), std::nullopt);
  EXPECT_EQ(parse_u64("max\n"), std::nullopt);
  EXPECT_EQ(parse_u64(""), std::nullopt);
  EXPECT_EQ(parse_u64("-1"), std::nullopt);
}

TEST(Cgroup, DetectExplainsWhyNot) {
  auto s = detect("/proc");  // not a cgroup2 file system
  EXPECT_FALSE(s.usable);
  EXPECT_NE(s.reason.find("not on a cgroup2"), std::string::npos) << s.reason;
  s = detect("/no/such/cgroup");
  EXPECT_FALSE(s.usable);
  EXPECT_FALSE(s.reason.empty());
}

RunResult py(const Sandbox& sb, const std::string& code, Limits lim) {
  RunSpec spec;
  spec.argv = {"/usr/bin/python3", "-B", "main.py"};
  spec.files = {{"main.py", code, false}};
  spec.limits = lim;
  return sb.run(spec);
}

Limits quick(uint64_t mem_mib) {
  Limits l;
  l.wall_s = 10;
  l.memory_bytes = mem_mib << 20;
  return l;
}

// The fallback, here and everywhere: RLIMIT_AS, and memory_limit from the error text.
TEST(Cgroup, ForcedOffUsesRlimit) {
  SandboxOptions o;
  o.use_cgroup = false;
  Sandbox sb(o);
  EXPECT_FALSE(sb.isolation().cgroup);
  EXPECT_NE(sb.isolation().cgroup_reason.find("turned off"), std::string::npos);
  auto r = py(sb, "x = bytearray(1 << 30)", quick(128));
  EXPECT_EQ(r.status, Status::memory_limit) << r.message << r.stderr_data;
  EXPECT_EQ(r.memory_mechanism, "rlimit_as");
  EXPECT_NE(r.message.find("RLIMIT_AS"), std::string::npos) << r.message;
  EXPECT_EQ(result_to_json(r)["memory_mechanism"], "rlimit_as");
  // The documented weakness of the fallback: the text can be imitated.
  r = py(sb, "import sys\nprint('MemoryError', file=sys.stderr)\nsys.exit(1)", quick(128));
  EXPECT_EQ(r.status, Status::memory_limit);
}

std::vector<std::string> run_cgroups_in(const std::string& dir) {
  std::vector<std::string> out;
  DIR* d = opendir(dir.c_str());
  if (!d) return out;
  while (dirent* e = readdir(d)) {
    std::string n = e->d_name;
    if (n.rfind("r1kit-", 0) == 0) out.push_back(n);
  }
  closedir(d);
  return out;
}

// Real cgroup v2 runs: only where a writable cgroup v2 hierarchy exists.
TEST(Cgroup, Integration) {
  Sandbox sb;
  if (!sb.isolation().cgroup)
    GTEST_SKIP() << "cgroup v2 not usable here: " << sb.isolation().cgroup_reason;
  const std::string base = sb.isolation().cgroup_dir;
  auto before = run_cgroups_in(base);

  // Touching memory past memory.max: the OOM killer, counted in memory.events.
  auto r = py(sb, "x = bytearray(512 << 20)\nprint(len(x))", quick(128));
  EXPECT_EQ(r.status, Status::memory_limit) << r.message << r.stderr_data;
  EXPECT_EQ(r.memory_mechanism, "cgroup_v2");
  EXPECT_NE(r.message.find("OOM kill"), std::string::npos) << r.message;
  EXPECT_TRUE(r.stdout_data.empty());
  EXPECT_LE(r.max_rss_kb, 140 * 1024);

  // Faking the words is now just a runtime error.
  r = py(sb, "import sys\nprint('MemoryError std::bad_alloc', file=sys.stderr)\nsys.exit(1)",
         quick(128));
  EXPECT_EQ(r.status, Status::runtime_error) << r.message;
  EXPECT_EQ(r.memory_mechanism, "cgroup_v2");

  // Within the limit: ok, with the cgroup's peak as max_rss_kb.
  r = py(sb, "x = bytearray(32 << 20)\nprint(len(x))", quick(128));
  EXPECT_EQ(r.status, Status::ok) << r.message << r.stderr_data;
  EXPECT_GE(r.max_rss_kb, 32 * 1024);

  // Four children of 100 MiB each under 256 MiB: the tree is limited, not each process.
  r = py(sb,
         "import os\nfor i in range(4):\n  if os.fork() == 0:\n    x = bytearray(100 << 20)\n"
         "    import time; time.sleep(3); os._exit(0)\nfor i in range(4): os.wait()\n",
         quick(256));
  EXPECT_EQ(r.status, Status::memory_limit) << r.message << r.stderr_data;

  // pids.max: a fork bomb stays bounded and the run ends.
  Limits l = quick(256);
  l.wall_s = 3;
  l.max_processes = 16;
  r = py(sb, "import os\nwhile True:\n  try: os.fork()\n  except OSError: pass\n", l);
  EXPECT_TRUE(r.status == Status::timeout || r.status == Status::killed) << status_name(r.status);

  // Every run cgroup was removed.
  EXPECT_EQ(run_cgroups_in(base), before);
}

}  // namespace
}  // namespace r1kit::sandbox
