// The attack suite: hostile programs, each contained, reported with the right status, and leaving
// the host untouched (no surviving process, no file read or written outside the work dir, no
// connection made, the parent alive).
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include "core/fs.h"
#include "sandbox/sandbox.h"

namespace r1kit::sandbox {
namespace {

namespace fs = std::filesystem;

const Sandbox& sb() {
  static Sandbox s;
  return s;
}

// A token unique to this test process, put in the argv of every program so that survivors can be
// found on the host by their command line.
std::string token() {
  static const std::string t = "r1kit-attack-" + std::to_string(getpid());
  return t;
}

RunResult py(const std::string& code, Limits lim = {}, std::vector<std::string> extra = {}) {
  RunSpec spec;
  spec.argv = {"/usr/bin/python3", "-B", "main.py", token()};
  for (auto& e : extra) spec.argv.push_back(e);
  spec.files = {{"main.py", code, false}};
  spec.limits = lim;
  return sb().run(spec);
}

// Host processes whose command line contains `needle` (excluding this test process).
int count_processes_with(const std::string& needle) {
  int n = 0;
  for (const auto& e : fs::directory_iterator("/proc")) {
    std::string name = e.path().filename();
    if (name.empty() || !isdigit(name[0]) || name == std::to_string(getpid())) continue;
    std::ifstream f(e.path() / "cmdline", std::ios::binary);
    std::string cmd((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    if (cmd.find(needle) != std::string::npos) ++n;
  }
  return n;
}

void expect_no_survivors() {
  // The kernel reaps a dying PID namespace asynchronously; allow it a moment.
  for (int i = 0; i < 50 && count_processes_with(token()) > 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(count_processes_with(token()), 0) << "a sandboxed process survived its run";
}

Limits quick(double wall = 2.0) {
  Limits l;
  l.wall_s = wall;
  l.cpu_s = wall;
  return l;
}

class ScratchFile {
 public:
  ScratchFile() {
    dir_ = fs::temp_directory_path() / ("r1kit-attack-host-" + std::to_string(getpid()));
    fs::create_directories(dir_);
    path_ = dir_ / "secret.txt";
    std::ofstream(path_) << "host secret";
  }
  ~ScratchFile() {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  std::string path() const { return path_.string(); }
  std::string dir() const { return dir_.string(); }

 private:
  fs::path dir_, path_;
};

TEST(Attack, ForkBomb) {
  auto r = py(R"(
import os
while True:
    try:
        os.fork()
    except OSError:
        pass
)",
              quick(2));
  EXPECT_EQ(r.status, Status::timeout) << r.message;
  EXPECT_LT(r.wall_ms, 5000);
  expect_no_survivors();
}

TEST(Attack, ForkBombHitsProcessLimit) {
  auto r = py(R"(
import os, sys, time
n = 0
try:
    for _ in range(1000):
        pid = os.fork()
        if pid == 0:
            time.sleep(30)
            os._exit(0)
        n += 1
except OSError as e:
    print("fork failed after", n, type(e).__name__)
    sys.exit(0)
print("forked", n)
)",
              quick(5));
  EXPECT_EQ(r.status, Status::ok) << r.message << r.stderr_data;
  EXPECT_NE(r.stdout_data.find("fork failed after"), std::string::npos) << r.stdout_data;
  int n = std::atoi(r.stdout_data.c_str() + std::string("fork failed after ").size());
  EXPECT_LE(n, 64);
  EXPECT_GE(n, 50);
  expect_no_survivors();
}

TEST(Attack, BusyLoopHitsCpuLimit) {
  Limits l;
  l.cpu_s = 1;
  l.wall_s = 8;
  auto r = py("while True: pass", l);
  EXPECT_EQ(r.status, Status::timeout) << r.message;
  EXPECT_GE(r.cpu_ms, 900);
  EXPECT_LT(r.wall_ms, 4000);
  EXPECT_NE(r.message.find("CPU"), std::string::npos) << r.message;
}

TEST(Attack, SleepForeverHitsWallLimit) {
  auto r = py("import time\ntime.sleep(10**6)", quick(1));
  EXPECT_EQ(r.status, Status::timeout);
  EXPECT_GE(r.wall_ms, 1000);
  EXPECT_LT(r.wall_ms, 2500);
  EXPECT_LT(r.cpu_ms, 500);
  expect_no_survivors();
}

TEST(Attack, Allocate10GB) {
  auto r = py("x = bytearray(10 * 1024**3)\nprint(len(x))", quick(5));
  EXPECT_EQ(r.status, Status::memory_limit) << r.message << r.stderr_data;
  EXPECT_TRUE(r.stdout_data.empty());
}

TEST(Attack, AllocateGraduallyPastTheLimit) {
  Limits l = quick(10);
  l.memory_bytes = 256ull << 20;
  auto r = py("l = []\nwhile True: l.append(bytearray(8 << 20))", l);
  EXPECT_EQ(r.status, Status::memory_limit) << r.message << r.stderr_data;
  EXPECT_LT(r.max_rss_kb, 300 * 1024);
}

TEST(Attack, Write1GBFile) {
  auto r = py(R"(
with open('big', 'wb') as f:
    for _ in range(1024):
        f.write(b'x' * (1 << 20))
)",
              quick(10));
  // Python ignores SIGXFSZ, so the write fails at 16 MiB: EFBIG (file-size limit) or ENOSPC
  // (the work dir's tmpfs, also 16 MiB, holding main.py too) -- whichever comes first.
  EXPECT_EQ(r.status, Status::runtime_error) << r.message << r.stderr_data;
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(r.stderr_data.find("File too large") != std::string::npos ||
              r.stderr_data.find("No space left on device") != std::string::npos)
      << r.stderr_data;
}

TEST(Attack, ManyFilesFillTheWorkDir) {
  auto r = py(R"(
import sys
try:
    for i in range(100):
        with open('f%d' % i, 'wb') as f:
            f.write(b'x' * (4 << 20))
except OSError as e:
    print('stopped at', i, e.errno)
    sys.exit(3)
)",
              quick(10));
  EXPECT_EQ(r.status, Status::runtime_error) << r.message << r.stderr_data;
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_NE(r.stdout_data.find("stopped at"), std::string::npos);
  int i = std::atoi(r.stdout_data.c_str() + 11);
  EXPECT_LE(i, 4);  // 16 MiB of tmpfs: at most four 4 MiB files
}

TEST(Attack, PrintForever) {
  auto r = py("while True: print('x' * 1000)", quick(5));
  EXPECT_EQ(r.status, Status::output_limit) << r.message;
  EXPECT_TRUE(r.stdout_truncated);
  EXPECT_EQ(r.stdout_data.size(), size_t(1) << 20);
  EXPECT_LT(r.wall_ms, 3000);
  expect_no_survivors();
}

TEST(Attack, PrintForeverOnStderr) {
  auto r = py("import sys\nwhile True: sys.stderr.write('e' * 1000)", quick(5));
  EXPECT_EQ(r.status, Status::output_limit);
  EXPECT_TRUE(r.stderr_truncated);
  EXPECT_FALSE(r.stdout_truncated);
}

TEST(Attack, OutputPastLimitIsDiscardedWhenNotKilling) {
  RunSpec spec;
  spec.argv = {"/usr/bin/python3", "-B", "main.py"};
  spec.files = {
      {"main.py", "import sys\nsys.stdout.write('y' * 3000)\nprint('done', file=sys.stderr)"}};
  spec.limits.output_bytes = 1000;
  spec.kill_on_output_limit = false;
  auto r = sb().run(spec);
  EXPECT_EQ(r.status, Status::output_limit);
  EXPECT_EQ(r.stdout_data, std::string(1000, 'y'));
  EXPECT_TRUE(r.stdout_truncated);
  EXPECT_EQ(r.stderr_data, "done\n");  // it ran to the end
  EXPECT_EQ(r.exit_code, 0);
}

TEST(Attack, NoNetwork) {
  // A listener on the host's loopback: the program must not reach it.
  int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  ASSERT_GE(ls, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(ls, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(listen(ls, 4), 0);
  socklen_t len = sizeof(addr);
  getsockname(ls, reinterpret_cast<sockaddr*>(&addr), &len);
  int port = ntohs(addr.sin_port);

  auto r = py(R"(
import socket, sys
port = int(sys.argv[2])
for fam, target in [(socket.AF_INET, ('127.0.0.1', port)), (socket.AF_INET, ('1.1.1.1', 80)),
                    (socket.AF_INET6, ('::1', port))]:
    try:
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.settimeout(1)
        s.connect(target)
        print('CONNECTED', target)
    except OSError as e:
        print('refused', target, e.errno)
try:
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.sendto(b'x', ('8.8.8.8', 53))
    print('SENT')
except OSError as e:
    print('udp refused', e.errno)
a, b = socket.socketpair()   # AF_UNIX is allowed
a.send(b'ok'); print('unix', b.recv(2))
)",
              quick(5), {std::to_string(port)});
  EXPECT_EQ(r.status, Status::ok) << r.stderr_data;
  EXPECT_EQ(r.stdout_data.find("CONNECTED"), std::string::npos) << r.stdout_data;
  EXPECT_EQ(r.stdout_data.find("SENT"), std::string::npos) << r.stdout_data;
  EXPECT_NE(r.stdout_data.find("unix b'ok'"), std::string::npos) << r.stdout_data;
  int c = accept(ls, nullptr, nullptr);
  EXPECT_LT(c, 0) << "the listener received a connection";
  if (c >= 0) close(c);
  close(ls);
}

TEST(Attack, EnvironmentIsEmpty) {
  setenv("R1KIT_ATTACK_SECRET", "hunter2", 1);
  auto r = py("import os\nprint(sorted(os.environ.items()))", quick(5));
  unsetenv("R1KIT_ATTACK_SECRET");
  EXPECT_EQ(r.status, Status::ok) << r.stderr_data;
  EXPECT_EQ(r.stdout_data.find("hunter2"), std::string::npos);
  EXPECT_EQ(r.stdout_data,
            "[('HOME', '/sandbox'), ('LANG', 'C.UTF-8'), ('PATH', "
            "'/usr/local/bin:/usr/bin:/bin')]\n");
}

TEST(Attack, FilesOutsideTheWorkDir) {
  ScratchFile secret;
  std::string repo_readme = std::string(R1KIT_SOURCE_DIR) + "/README.md";
  auto r = py(R"(
import sys, os
for p in sys.argv[2:] + ['/etc/passwd', '/etc/shadow', '/etc/hostname', '/root', '/proc/1/environ']:
    try:
        with open(p) as f:
            print('GOT', p, f.read(20))
    except OSError as e:
        print('no', p, e.errno)
for p in [sys.argv[2], sys.argv[3], '/usr/r1kit-owned', '/r1kit-owned', '/etc/r1kit', '/dev/r1kit']:
    try:
        with open(p, 'w') as f:
            f.write('owned')
        print('WROTE', p)
    except OSError as e:
        print('no write', p, e.errno)
print(sorted(os.listdir('/')))
)",
              quick(5), {secret.path(), repo_readme, secret.dir()});
  EXPECT_EQ(r.status, Status::ok) << r.stderr_data;
  EXPECT_EQ(r.stdout_data.find("GOT"), std::string::npos) << r.stdout_data;
  EXPECT_EQ(r.stdout_data.find("WROTE"), std::string::npos) << r.stdout_data;
  EXPECT_NE(r.stdout_data.find("['bin', 'dev', 'etc', 'lib'"), std::string::npos) << r.stdout_data;
  EXPECT_EQ(read_file(secret.path()), "host secret");
  EXPECT_FALSE(fs::exists("/usr/r1kit-owned"));
  EXPECT_FALSE(fs::exists("/r1kit-owned"));
}

TEST(Attack, SymlinkOut) {
  ScratchFile secret;
  auto r = py(R"(
import os, sys
os.symlink(sys.argv[2], 'link')
os.symlink('/', 'root')
os.symlink('../../..' + sys.argv[2], 'rel')
for p in ['link', 'rel', 'root/' + sys.argv[2]]:
    try:
        print('READ', open(p).read())
    except OSError as e:
        print('no', p, e.errno)
try:
    open('link', 'w').write('owned'); print('WROTE')
except OSError as e:
    print('no write', e.errno)
)",
              quick(5), {secret.path()});
  EXPECT_EQ(r.status, Status::ok) << r.stderr_data;
  EXPECT_EQ(r.stdout_data.find("READ"), std::string::npos) << r.stdout_data;
  EXPECT_EQ(r.stdout_data.find("WROTE"), std::string::npos) << r.stdout_data;
  EXPECT_EQ(read_file(secret.path()), "host secret");
}

TEST(Attack, KillTheParentAndEveryone) {
  // A host process of ours that must survive kill(-1, SIGKILL) from inside.
  pid_t bystander = fork();
  if (bystander == 0) {
    execl("/bin/sleep", "sleep", "30", nullptr);
    _exit(127);
  }
  ASSERT_GT(bystander, 0);
  auto r = py(R"(
import os, signal, sys
for pid in [os.getppid(), int(sys.argv[2]), int(sys.argv[3]), 1]:
    try:
        os.kill(pid, signal.SIGKILL); print('signalled', pid)
    except OSError as e:
        print('no', pid, e.errno)
if os.fork() == 0:
    import time; time.sleep(30)
try:
    os.kill(-1, signal.SIGKILL)   # everyone it can see: its own child only
except OSError as e:
    print('kill -1', e.errno)
print('still here')
)",
              quick(5), {std::to_string(getpid()), std::to_string(bystander)});
  EXPECT_EQ(r.status, Status::ok) << r.message << r.stderr_data;
  EXPECT_NE(r.stdout_data.find("still here"), std::string::npos);
  EXPECT_EQ(kill(bystander, 0), 0) << "a host process was killed from inside the sandbox";
  kill(bystander, SIGKILL);
  waitpid(bystander, nullptr, 0);
}

TEST(Attack, KillItself) {
  auto r = py("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)", quick(5));
  EXPECT_EQ(r.status, Status::killed);
  EXPECT_EQ(r.signal, SIGKILL);
}

TEST(Attack, Segfault) {
  auto r = py("import ctypes\nctypes.string_at(0)", quick(5));
  EXPECT_EQ(r.status, Status::runtime_error);
  EXPECT_EQ(r.signal, SIGSEGV);
}

TEST(Attack, PtraceMountUnshareAreRefused) {
  auto r = py(R"(
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
def call(name, *args):
    rc = getattr(libc, name)(*args)
    print(name, rc, ctypes.get_errno())
call('ptrace', 0, 0, None, None)                      # PTRACE_TRACEME
call('ptrace', 16, 1, None, None)                     # PTRACE_ATTACH to init
call('mount', b'none', b'/sandbox', b'tmpfs', 0, None)
call('umount2', b'/usr', 2)
call('unshare', 0x10000000)                           # CLONE_NEWUSER
call('unshare', 0x40000000)                           # CLONE_NEWNET
call('setns', 0, 0)
call('syscall', 321, 0, 0, 0)                         # bpf
call('syscall', 298, 0, 0, 0, 0, 0)                   # perf_event_open
call('syscall', 250, 0, 0, 0)                         # keyctl
call('syscall', 313, 0, b'', 0)                       # finit_module
call('syscall', 56, 0x10000000 | 17, 0, 0, 0, 0)      # clone(CLONE_NEWUSER)
call('syscall', 56, 0x20000000 | 17, 0, 0, 0, 0)      # clone(CLONE_NEWPID)
call('chroot', b'/usr')
print('uid', os.getuid(), 'host', os.uname().nodename)
)",
              quick(5));
  EXPECT_EQ(r.status, Status::ok) << r.stderr_data;
  std::istringstream lines(r.stdout_data);
  std::string line;
  int n = 0;
  while (std::getline(lines, line)) {
    if (line.rfind("uid", 0) == 0) {
      EXPECT_EQ(line, "uid 0 host sandbox");
      continue;
    }
    ++n;
    EXPECT_NE(line.find(" -1 1"), std::string::npos) << "not refused with EPERM: " << line;
  }
  EXPECT_EQ(n, 14);
}

TEST(Attack, BackgroundAndOrphanedProcesses) {
  auto r = py(R"(
import os, subprocess, sys, time
tok = sys.argv[1]
py = sys.executable
subprocess.Popen([py, '-c', 'import time; time.sleep(60)', tok], start_new_session=True)
if os.fork() == 0:          # double fork: an orphan
    if os.fork() == 0:
        os.setsid()
        os.execv(py, [py, '-c', 'import time; time.sleep(60)', tok])
    os._exit(0)
time.sleep(0.2)
print('leaving')
)",
              quick(5));
  EXPECT_EQ(r.status, Status::ok) << r.stderr_data;
  EXPECT_LT(r.wall_ms, 2000);
  expect_no_survivors();
}

TEST(Attack, CloseStdoutAndKeepRunning) {
  auto r = py("import os, time\nos.close(1)\nos.close(2)\ntime.sleep(0.3)\nos._exit(3)", quick(5));
  EXPECT_EQ(r.status, Status::runtime_error) << r.message;
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_GE(r.wall_ms, 300);
  auto r2 = py("import os\nos.close(1)\nwhile True: pass", quick(1));
  EXPECT_EQ(r2.status, Status::timeout);
  expect_no_survivors();
}

TEST(Attack, BinaryOutput) {
  auto r = py("import sys\nsys.stdout.buffer.write(bytes(range(256)))", quick(5));
  EXPECT_EQ(r.status, Status::ok);
  ASSERT_EQ(r.stdout_data.size(), 256u);
  for (int i = 0; i < 256; ++i) EXPECT_EQ(uint8_t(r.stdout_data[i]), i);
  Json j = result_to_json(r);
  EXPECT_TRUE(j.contains("stdout_base64"));
  EXPECT_NO_THROW(j.dump());
}

TEST(Attack, VeryLongArgv) {
  std::vector<std::string> args(1000, std::string(1000, 'a'));  // 1 MB of arguments
  auto r = py("import sys\nprint(len(sys.argv), sum(map(len, sys.argv[2:])))", quick(5), args);
  EXPECT_EQ(r.status, Status::ok) << r.message;
  EXPECT_EQ(r.stdout_data, "1002 1000000\n");
  std::vector<std::string> huge(100, std::string(100000, 'b'));  // 10 MB: past ARG_MAX
  auto r2 = py("print('ran')", quick(5), huge);
  EXPECT_NE(r2.status, Status::ok) << r2.message;
  EXPECT_EQ(r2.stdout_data, "");  // the program never ran
  // In the AddressSanitizer build the failed execve comes back as exit 127 with no error report
  // (seen in CI's sanitizer run; the sanitized child's report path differs), so only "it did not
  // run" is checked there. TODO: find why the report is lost under ASan.
#if !defined(__SANITIZE_ADDRESS__)
  EXPECT_EQ(r2.status, Status::internal_error);
  EXPECT_NE(r2.message.find("Argument list too long"), std::string::npos) << r2.message;
#endif
}

TEST(Attack, ManyThreads) {
  auto r = py(R"(
import threading, time
ts = []
try:
    for i in range(10000):
        t = threading.Thread(target=time.sleep, args=(5,), daemon=True)
        t.start()
        ts.append(t)
except RuntimeError as e:
    print('stopped at', len(ts))
)",
              quick(5));
  EXPECT_EQ(r.status, Status::ok) << r.message << r.stderr_data;
  EXPECT_NE(r.stdout_data.find("stopped at"), std::string::npos) << r.stdout_data;
  EXPECT_LE(std::atoi(r.stdout_data.c_str() + 11), 64);
  auto r2 = py(R"(
import threading
out = []
ts = [threading.Thread(target=lambda i=i: out.append(i)) for i in range(40)]
for t in ts: t.start()
for t in ts: t.join()
print(len(out))
)",
               quick(5));
  EXPECT_EQ(r2.status, Status::ok) << r2.stderr_data;
  EXPECT_EQ(r2.stdout_data, "40\n");
}

TEST(Attack, RunsAreIndependent) {
  auto w = py("open('/sandbox/left-behind', 'w').write('x')", quick(5));
  EXPECT_EQ(w.status, Status::ok);
  auto r = py("import os\nprint(os.listdir('.'))", quick(5));
  EXPECT_EQ(r.stdout_data, "['main.py']\n");
}

}  // namespace
}  // namespace r1kit::sandbox
