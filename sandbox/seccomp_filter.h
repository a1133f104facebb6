// The seccomp filter every sandboxed program runs under, built once with libseccomp in the parent
// and exported as a classic BPF program, so the child only needs prctl(PR_SET_SECCOMP) (no
// allocation between clone and exec, which a multithreaded parent requires).
#pragma once

#include <linux/filter.h>

#include <string>
#include <vector>

namespace r1kit::sandbox {

// Default allow; returns EPERM for ptrace and process_vm_*, mount and the new mount API,
// pivot_root, chroot, kernel modules, kexec, keyrings, bpf, perf_event_open, userfaultfd,
// io_uring, unshare, setns, clone with any CLONE_NEW* flag (clone3 answers ENOSYS so libc falls
// back to clone), reboot, swap, clock setting, syslog, acct, quotactl, handle-based opens,
// iopl/ioperm; EAFNOSUPPORT for socket()/socketpair() of any family but AF_UNIX. System calls of
// other architectures (i386, x32) kill the process. Throws r1kit::Error if libseccomp fails.
std::vector<sock_filter> build_seccomp_filter();

// The names of the system calls the filter refuses unconditionally (for docs and tests).
const std::vector<std::string>& seccomp_denied_syscalls();

}  // namespace r1kit::sandbox
