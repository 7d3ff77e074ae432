#include "restore/spawn.h"

#include <fcntl.h>
#include <signal.h>
#include <linux/futex.h>
#include <linux/sched.h>
#include <sys/prctl.h>
#include <sys/rseq.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstring>

namespace ckpt::restore {

namespace {

constexpr int kStatusFd = 0, kGoFd = 1;  // indices in SpawnPlan::temp_fds
constexpr int kTidRetries = 200;          // 1 ms apart

[[noreturn]] void child_fail(int status_fd, const std::string& msg) {
  (void)!write(status_fd, msg.data(), msg.size());
  _exit(127);
}

// glibc registered rseq for this thread; the kernel would write to that area
// on every return to user space after the restorer unmaps it (pitfall 3).
bool unregister_glibc_rseq() {
  if (__rseq_size == 0) return true;
  void* area = static_cast<char*>(__builtin_thread_pointer()) + __rseq_offset;
  for (unsigned len : {static_cast<unsigned>(__rseq_size), 32u})
    if (syscall(SYS_rseq, area, len, RSEQ_FLAG_UNREGISTER, RSEQ_SIG) == 0) return true;
  return errno == EINVAL && false;
}

// clone3 for a thread that starts in the blob on its own stack: the child
// side must not return through C++ frames that live on the parent's stack.
extern "C" long ckpt_clone3_thread(clone_args* args, size_t size, uint64_t entry, uint64_t arg);
asm(R"(
  .text
  .globl ckpt_clone3_thread
  .type ckpt_clone3_thread, @function
ckpt_clone3_thread:
  mov %rdx, %r8
  mov %rcx, %r9
  mov $435, %eax          /* __NR_clone3 */
  syscall
  test %rax, %rax
  jnz 1f
  mov %r9, %rdi
  jmp *%r8
1:
  ret
)");

// 0, or the negative errno of the first clone3 that failed.
long create_threads(const SpawnPlan& p) {
  for (const SpawnPlan::Thread& t : p.threads) {
    clone_args a{};
    pid_t want = t.tid;
    a.flags = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD | CLONE_SYSVSEM;
    a.stack = t.stack_top - t.stack_size;
    a.stack_size = t.stack_size;
    a.set_tid = reinterpret_cast<uint64_t>(&want);
    a.set_tid_size = 1;
    long r = ckpt_clone3_thread(&a, sizeof a, p.thread_entry, t.arg);
    // The TID of a thread of a group reaped a moment ago can stay allocated
    // for a short while after the group's last wait (seen about once in 30
    // restores straight after a reap): give it that while.
    for (int tries = 0; r == -EEXIST && tries < kTidRetries; tries++) {
      usleep(1000);
      r = ckpt_clone3_thread(&a, sizeof a, p.thread_entry, t.arg);
    }
    if (r < 0) return r;
  }
  // Until each has left ckpt_clone3_thread, ckpt's code must stay mapped.
  const uint32_t want = p.threads.size();
  for (uint32_t seen; (seen = __atomic_load_n(p.threads_ready, __ATOMIC_ACQUIRE)) < want;)
    syscall(SYS_futex, p.threads_ready, FUTEX_WAIT_PRIVATE, seen, nullptr, nullptr, 0);
  return 0;
}

[[noreturn]] void child_main(const SpawnPlan& p) {
  const int base = p.temp_fd_base;
  const int status = base + kStatusFd;
  // 1. Everything we need moves above every number in use, then the rest of
  //    ckpt's fds go, then the task's own fds take their numbers.
  for (size_t i = 0; i < p.temp_fds.size(); i++)
    if (dup2(p.temp_fds[i], base + static_cast<int>(i)) < 0) _exit(126);
  const int moved = base + static_cast<int>(p.temp_fds.size());
  for (size_t i = 0; i < p.fds->size(); i++)
    if (dup2((*p.fds)[i].fd.get(), moved + static_cast<int>(i)) < 0)
      child_fail(status, fmt::format("dup fd {}: {}", (*p.fds)[i].target, strerror(errno)));
  if (base > 0 && syscall(SYS_close_range, 0, base - 1, 0) < 0)
    child_fail(status, fmt::format("close ckpt's fds: {}", strerror(errno)));
  for (size_t i = 0; i < p.fds->size(); i++) {
    const files::PreparedFd& f = (*p.fds)[i];
    if (dup3(moved + static_cast<int>(i), f.target, f.cloexec ? O_CLOEXEC : 0) < 0)
      child_fail(status, fmt::format("install fd {}: {}", f.target, strerror(errno)));
  }
  if (chdir(p.cwd.c_str()) < 0) child_fail(status, fmt::format("chdir {}: {}", p.cwd, strerror(errno)));

  // 2. Every signal blocked but SIGTRAP: a breakpoint's forced SIGTRAP on a
  //    blocked signal would reset its handler (pitfall 5).
  uint64_t mask = ~0ULL & ~(1ULL << (SIGTRAP - 1));
  if (syscall(SYS_rt_sigprocmask, SIG_SETMASK, &mask, nullptr, 8) < 0)
    child_fail(status, fmt::format("block signals: {}", strerror(errno)));
  if (!unregister_glibc_rseq()) child_fail(status, fmt::format("unregister rseq: {}", strerror(errno)));
  // They inherit the mask above and no rseq registration (CLONE_VM).
  if (long r = create_threads(p); r < 0) child_fail(status, fmt::format("create a thread: {}", strerror(-r)));

  // 3. Parked until released.
  if (write(status, "R", 1) != 1) _exit(125);
  char go = 0;
  if (read(base + kGoFd, &go, 1) != 1 || go != 'G') _exit(124);
  asm volatile(
      "mov %0, %%rsp\n\t"
      "jmp *%1\n\t" ::"r"(p.stack_top),
      "r"(p.entry), "D"(p.args)
      : "memory");
  __builtin_unreachable();
}

}  // namespace

Result<pid_t> spawn(const SpawnPlan& p) {
  clone_args a{};
  pid_t want = p.pid;
  a.flags = p.sibling ? CLONE_PARENT : 0;
  a.exit_signal = p.sibling ? 0 : SIGCHLD;
  a.set_tid = reinterpret_cast<uint64_t>(&want);
  a.set_tid_size = 1;
  long r = syscall(SYS_clone3, &a, sizeof a);
  for (int tries = 0; r < 0 && errno == EEXIST && tries < kTidRetries; tries++) {
    usleep(1000);  // see create_threads()
    r = syscall(SYS_clone3, &a, sizeof a);
  }
  if (r < 0) {
    if (errno == EEXIST) return error(EEXIST, "pid {} is taken by another process", p.pid);
    return sys_error("clone3 with pid {}", p.pid);
  }
  if (r == 0) child_main(p);
  return static_cast<pid_t>(r);
}

}  // namespace ckpt::restore
