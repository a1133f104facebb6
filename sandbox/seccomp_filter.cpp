// The sandbox's seccomp filter (see seccomp_filter.h), built with libseccomp and exported to BPF.
#include "sandbox/seccomp_filter.h"

#include <sched.h>
#include <seccomp.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/error.h"
#include "core/fs.h"

namespace r1kit::sandbox {

const std::vector<std::string>& seccomp_denied_syscalls() {
  static const std::vector<std::string> names = {
      // debugging other processes / reading their memory
      "ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd",
      // file systems and the mount table
      "mount", "umount", "umount2", "pivot_root", "chroot", "fsopen", "fsconfig", "fsmount",
      "fspick", "move_mount", "open_tree", "mount_setattr", "name_to_handle_at",
      "open_by_handle_at", "quotactl", "quotactl_fd", "swapon", "swapoff", "acct",
      // kernel modules, kexec, reboot
      "init_module", "finit_module", "delete_module", "create_module", "kexec_load",
      "kexec_file_load", "reboot",
      // keyrings
      "add_key", "request_key", "keyctl",
      // bpf, perf, userfaultfd, io_uring (its operations bypass this filter)
      "bpf", "perf_event_open", "userfaultfd", "io_uring_setup", "io_uring_enter",
      "io_uring_register",
      // namespaces
      "unshare", "setns",
      // host-wide state
      "settimeofday", "clock_settime", "clock_adjtime", "adjtimex", "syslog", "sethostname",
      "setdomainname", "iopl", "ioperm", "vhangup", "uselib", "lookup_dcookie", "nfsservctl",
      "_sysctl"};
  return names;
}

namespace {

struct FilterCtx {
  scmp_filter_ctx ctx = nullptr;
  ~FilterCtx() {
    if (ctx) seccomp_release(ctx);
  }
};

void check_rc(int rc, const char* what) {
  R1_CHECK(rc == 0, "[sandbox] seccomp: {} failed: {}", what, errno_message(-rc));
}

}  // namespace

std::vector<sock_filter> build_seccomp_filter() {
  FilterCtx f;
  f.ctx = seccomp_init(SCMP_ACT_ALLOW);
  R1_CHECK(f.ctx != nullptr, "[sandbox] seccomp_init failed");
  // A syscall of another ABI (int 0x80, x32) would not be checked by the rules below.
  check_rc(seccomp_attr_set(f.ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS),
           "bad-arch action");
  const uint32_t deny = SCMP_ACT_ERRNO(EPERM);
  for (const auto& name : seccomp_denied_syscalls()) {
    int nr = seccomp_syscall_resolve_name(name.c_str());
    if (nr == __NR_SCMP_ERROR) continue;  // not on this architecture
    int rc = seccomp_rule_add(f.ctx, deny, nr, 0);
    if (rc == -EDOM || rc == -EINVAL) continue;  // pseudo-syscall libseccomp cannot filter here
    check_rc(rc, name.c_str());
  }
  // clone with a namespace flag: one rule per flag, (flags & f) == f.
  for (uint64_t flag : {uint64_t(CLONE_NEWUSER), uint64_t(CLONE_NEWNS), uint64_t(CLONE_NEWPID),
                        uint64_t(CLONE_NEWNET), uint64_t(CLONE_NEWIPC), uint64_t(CLONE_NEWUTS),
                        uint64_t(CLONE_NEWCGROUP)}) {
    check_rc(
        seccomp_rule_add(f.ctx, deny, SCMP_SYS(clone), 1, SCMP_A0(SCMP_CMP_MASKED_EQ, flag, flag)),
        "clone rule");
  }
  // clone3 passes its flags in memory, which seccomp cannot read: make libc fall back to clone.
  int clone3 = seccomp_syscall_resolve_name("clone3");
  if (clone3 != __NR_SCMP_ERROR)
    check_rc(seccomp_rule_add(f.ctx, SCMP_ACT_ERRNO(ENOSYS), clone3, 0), "clone3");
  // Sockets: AF_UNIX only.
  for (int nr : {SCMP_SYS(socket), SCMP_SYS(socketpair)}) {
    check_rc(seccomp_rule_add(f.ctx, SCMP_ACT_ERRNO(EAFNOSUPPORT), nr, 1,
                              SCMP_A0(SCMP_CMP_NE, uint64_t(AF_UNIX))),
             "socket rule");
  }

  // Export through a memfd, then read the BPF program back.
  int fd = memfd_create("r1kit-seccomp", MFD_CLOEXEC);
  R1_CHECK(fd >= 0, "[sandbox] memfd_create failed: {}", errno_message(errno));
  int rc = seccomp_export_bpf(f.ctx, fd);
  if (rc != 0) {
    close(fd);
    check_rc(rc, "export");
  }
  off_t size = lseek(fd, 0, SEEK_END);
  std::vector<sock_filter> prog(size_t(size) / sizeof(sock_filter));
  ssize_t got = pread(fd, prog.data(), prog.size() * sizeof(sock_filter), 0);
  close(fd);
  R1_CHECK(size > 0 && got == size && size % sizeof(sock_filter) == 0,
           "[sandbox] seccomp: exported filter has {} bytes", size);
  return prog;
}

}  // namespace r1kit::sandbox
