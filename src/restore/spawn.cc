#include "restore/spawn.h"

#include <fcntl.h>
#include <signal.h>
#include <linux/futex.h>
#include <linux/sched.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/rseq.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <optional>

#include "base/task_text.h"
#include "arch/x86_64/start.h"
#include "base/mapping.h"
#include "pie/sys.h"
#include "restore/fd_moves.h"

namespace ckpt::restore {

namespace {

constexpr int kStatusFd = 0, kGoFd = 1;  // indices in SpawnTask::temp_fds
constexpr int kTidRetries = 200;          // 1 ms apart

// The task's status pipe, or -1 for a zombie (its parent reports for it).
CKPT_TASK_TEXT int status_fd(const SpawnTree& tree, const SpawnTask& t) {
  return t.zombie ? -1 : tree.temp_fd_base + kStatusFd;
}

[[noreturn]] CKPT_TASK_TEXT void child_fail(const SpawnTree& tree, int status, const std::string& msg) {
  if (status >= 0) (void)!write(status, msg.data(), msg.size());
  __atomic_store_n(&tree.barrier->failed, 1, __ATOMIC_RELEASE);
  syscall(SYS_futex, &tree.barrier->arrived, FUTEX_WAKE, INT32_MAX, nullptr, nullptr, 0);
  syscall(SYS_futex, &tree.barrier->joined, FUTEX_WAKE, INT32_MAX, nullptr, nullptr, 0);
  _exit(127);
}

// glibc registered rseq for this thread; the kernel would write to that area
// on every return to user space after the restorer unmaps it (pitfall 3).
CKPT_TASK_TEXT bool unregister_glibc_rseq() {
  if (__rseq_size == 0) return true;
  void* area = static_cast<char*>(__builtin_thread_pointer()) + __rseq_offset;
  for (unsigned len : {static_cast<unsigned>(__rseq_size), 32u})
    if (syscall(SYS_rseq, area, len, RSEQ_FLAG_UNREGISTER, RSEQ_SIG) == 0) return true;
  return false;
}

// clone3 with one wanted PID. The PID of a task reaped a moment ago can stay
// allocated for a short while after the last wait for it (seen about once in
// 30 restores straight after a reap): it gets that while. Raw syscalls only
// (no errno): a thread-making stream with the main thread's TLS calls it too.
template <typename Clone>
CKPT_TASK_TEXT long clone_with_pid(clone_args& a, pid_t want, Clone&& clone) {
  a.set_tid = reinterpret_cast<uint64_t>(&want);
  a.set_tid_size = 1;
  long r = clone();
  for (int tries = 0; r == -EEXIST && tries < kTidRetries; tries++) {
    const struct timespec ms{0, 1000 * 1000};
    pie::sys(SYS_nanosleep, &ms, nullptr);
    r = clone();
  }
  return r;
}

CKPT_TASK_TEXT long raw_clone3(clone_args* a) {
  long r = syscall(SYS_clone3, a, sizeof *a);
  return r < 0 ? -errno : r;
}

CKPT_TASK_TEXT clone_args thread_args(const SpawnTask::Thread& t) {
  clone_args a{};
  a.flags = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD | CLONE_SYSVSEM;
  a.stack = t.stack_top - t.stack_size;
  a.stack_size = t.stack_size;
  return a;
}

// Many threads are made by two: the main thread makes the first half, and
// the first thread it makes makes the second half before it goes into the
// blob as itself (10,000 threads: two streams of 5,000 clone3 calls, one on
// each core). That thread runs ckpt's code on the stack of the thread it
// becomes, with the main thread's TLS (no CLONE_SETTLS): raw syscalls only,
// no errno, no sanitizer's per-thread state.
constexpr size_t kTwoStreams = 64;

// A thread that could not be made: its TID and the negative errno.
struct ThreadFailure {
  pid_t tid = 0;
  long err = 0;
};

struct SecondStream {
  const SpawnTask* task;
  size_t from;                         // it makes threads [from, end)
  std::atomic<pid_t> failed_tid{0};    // its first failure, 0: none
  long failed_err = 0;                 // written before failed_tid
};

// Entered by a jump on a fresh stack: realigned as a call would have left it.
[[noreturn, gnu::no_sanitize_address, gnu::force_align_arg_pointer]] CKPT_TASK_TEXT void second_stream(uint64_t arg) {
  auto* s = reinterpret_cast<SecondStream*>(arg);
  const SpawnTask& p = *s->task;
  for (size_t i = s->from; i < p.threads.size(); i++) {
    const SpawnTask::Thread& t = p.threads[i];
    clone_args a = thread_args(t);
    long r = clone_with_pid(a, t.tid, [&] { return arch::clone3_thread(&a, sizeof a, p.thread_entry, t.arg); });
    if (r < 0) {
      s->failed_err = r;
      s->failed_tid.store(t.tid, std::memory_order_release);
      // The count moves too, so that a main thread asleep on it wakes.
      __atomic_add_fetch(p.threads_ready, 1, __ATOMIC_RELEASE);
      pie::sys(SYS_futex, p.threads_ready, FUTEX_WAKE_PRIVATE, 1, nullptr, nullptr, 0);
      pie::sys(SYS_exit, 0);
    }
  }
  reinterpret_cast<void (*)(uint64_t)>(p.thread_entry)(p.threads[0].arg);
  __builtin_unreachable();
}

// The first thread that could not be made, if any.
CKPT_TASK_TEXT std::optional<ThreadFailure> create_threads(const SpawnTask& p) {
  const size_t n = p.threads.size();
  SecondStream second{&p, n >= kTwoStreams ? n / 2 : n};
  auto second_failed = [&]() -> std::optional<ThreadFailure> {
    if (const pid_t tid = second.failed_tid.load(std::memory_order_acquire)) return ThreadFailure{tid, second.failed_err};
    return std::nullopt;
  };
  for (size_t i = 0; i < second.from; i++) {
    const SpawnTask::Thread& t = p.threads[i];
    clone_args a = thread_args(t);
    const bool starts_second = i == 0 && second.from < n;
    const uint64_t entry = starts_second ? reinterpret_cast<uint64_t>(&second_stream) : p.thread_entry;
    const uint64_t arg = starts_second ? reinterpret_cast<uint64_t>(&second) : t.arg;
    long r = clone_with_pid(a, t.tid, [&] { return arch::clone3_thread(&a, sizeof a, entry, arg); });
    if (r < 0) return ThreadFailure{t.tid, r};
  }
  // Until each has left arch::clone3_thread (and the second stream ckpt's
  // code, and `second`), ckpt's code must stay mapped.
  for (;;) {
    if (auto f = second_failed()) return f;
    const uint32_t seen = __atomic_load_n(p.threads_ready, __ATOMIC_ACQUIRE);
    if (seen >= n) break;
    syscall(SYS_futex, p.threads_ready, FUTEX_WAIT_PRIVATE, seen, nullptr, nullptr, 0);
  }
  return second_failed();
}

// Counts the task in, then waits until every task is: a futex barrier on
// `counter`, left early if a task fails.
CKPT_TASK_TEXT void barrier_phase(const SpawnTree& tree, uint32_t* counter, int status) {
  const uint32_t all = tree.tasks.size();
  if (__atomic_add_fetch(counter, 1, __ATOMIC_ACQ_REL) == all)
    syscall(SYS_futex, counter, FUTEX_WAKE, INT32_MAX, nullptr, nullptr, 0);
  for (uint32_t seen; (seen = __atomic_load_n(counter, __ATOMIC_ACQUIRE)) < all;) {
    if (__atomic_load_n(&tree.barrier->failed, __ATOMIC_ACQUIRE)) child_fail(tree, status, "");
    syscall(SYS_futex, counter, FUTEX_WAIT, seen, nullptr, nullptr, 0);
  }
}

// Every task of the tree exists and leads what it leads (helpers included):
// groups led by others can be joined.
CKPT_TASK_TEXT void wait_for_tree(const SpawnTree& tree, int status) { barrier_phase(tree, &tree.barrier->arrived, status); }

// ckpt has opened what needs the tasks to exist (open_when_arrived).
CKPT_TASK_TEXT void wait_for_late(const SpawnTree& tree, int status) {
  if (tree.ckpt_pidfd < 0) return;
  while (!__atomic_load_n(&tree.barrier->late_opened, __ATOMIC_ACQUIRE)) {
    if (__atomic_load_n(&tree.barrier->failed, __ATOMIC_ACQUIRE)) child_fail(tree, status, "");
    syscall(SYS_futex, &tree.barrier->late_opened, FUTEX_WAIT, 0, nullptr, nullptr, 0);
  }
}

// The task is in its group. Only helpers wait for the others: a group whose
// helper left before the last member joined would be gone.
CKPT_TASK_TEXT void joined(const SpawnTree& tree, const SpawnTask& p, int status) {
  if (!p.helper) {
    if (__atomic_add_fetch(&tree.barrier->joined, 1, __ATOMIC_ACQ_REL) == tree.tasks.size())
      syscall(SYS_futex, &tree.barrier->joined, FUTEX_WAKE, INT32_MAX, nullptr, nullptr, 0);
    return;
  }
  barrier_phase(tree, &tree.barrier->joined, status);
}

// Dies as the zombie did: its parent's wait() will get `status`. Nothing
// may dump core on the way (a core file, or a core_pattern helper run).
[[noreturn]] CKPT_TASK_TEXT void die_as(int status) {
  if (WIFEXITED(status)) _exit(WEXITSTATUS(status));
  const int sig = WTERMSIG(status);
  prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  signal(sig, SIG_DFL);
  sigset_t one;
  sigemptyset(&one);
  sigaddset(&one, sig);
  sigprocmask(SIG_UNBLOCK, &one, nullptr);
  kill(getpid(), sig);
  _exit(126);  // a signal whose default is to go on: not a status a zombie can have
}

[[noreturn]] void task_main(const SpawnTree& tree, const SpawnTask& p);
[[noreturn]] void helper_main(const SpawnTree& tree, const SpawnTask& h, int status);

// Forks task `i` with its PID. `status` is the forking task's status pipe:
// a helper, which has none, reports there.
CKPT_TASK_TEXT void fork_task(const SpawnTree& tree, size_t i, int status) {
  const SpawnTask& t = tree.tasks[i];
  clone_args a{};
  a.exit_signal = SIGCHLD;
  long r = clone_with_pid(a, t.pid, [&] { return raw_clone3(&a); });
  if (r == 0 && t.helper) helper_main(tree, t, status);
  if (r == 0) task_main(tree, t);
  if (r < 0)
    child_fail(tree, status, r == -EEXIST ? fmt::format("pid {} is taken by another process (restore --pidns: into a new PID namespace)", t.pid)
                                          : fmt::format("clone3 with pid {}: {}", t.pid, strerror(static_cast<int>(-r))));
}

// The zombies among the task's children have exited (not reaped: WNOWAIT)
// with their dumped statuses, so their SIGCHLDs are pending before the
// restorer flushes what is pending. Those a session's helper forked are the
// task's children once the helper is reaped.
CKPT_TASK_TEXT void wait_for_zombies(const SpawnTree& tree, const SpawnTask& p, int status) {
  auto wait_for = [&](const SpawnTask& z) {
    if (!z.zombie) return;
    siginfo_t si{};
    while (waitid(P_PID, z.pid, &si, WEXITED | WNOWAIT) < 0)
      if (errno != EINTR) child_fail(tree, status, fmt::format("wait for zombie {}: {}", z.pid, strerror(errno)));
    const int got = si.si_code == CLD_EXITED ? W_EXITCODE(si.si_status, 0) : W_EXITCODE(0, si.si_status);
    if ((got & 0x7f7f) != (z.exit_status & 0x7f7f))
      child_fail(tree, status, fmt::format("zombie {} exited with status {:#x}, not {:#x}", z.pid, got, z.exit_status));
  };
  for (int c : p.children) {
    const SpawnTask& child = tree.tasks[c];
    if (!child.helper) wait_for(child);
    else
      for (int a : child.children) wait_for(tree.tasks[a]);
  }
}

// The task's helpers have exited once every task joined its group: reaped
// here, before the task parks, so that its wait() never sees them (and the
// restorer discards their SIGCHLD with what else is pending). The orphans a
// session's helper left are the task's children by then.
CKPT_TASK_TEXT void reap_helpers(const SpawnTree& tree, const SpawnTask& p, int status) {
  bool adopted = false;
  for (int c : p.children) {
    const SpawnTask& h = tree.tasks[c];
    if (!h.helper) continue;
    int st = 0;
    while (waitpid(h.pid, &st, 0) < 0)
      if (errno != EINTR) child_fail(tree, status, fmt::format("reap helper {}: {}", h.pid, strerror(errno)));
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
      child_fail(tree, status, fmt::format("helper {} (leader of {} {}) failed: status {:#x}", h.pid,
                                           h.joins.new_session ? "session" : "group", h.pid, st));
    adopted |= !h.children.empty();
  }
  // The restorer sets the dumped value later.
  if (adopted && prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0) < 0)
    child_fail(tree, status, fmt::format("pid {}: PR_SET_CHILD_SUBREAPER: {}", p.pid, strerror(errno)));
}

// Forks the children of task `p` (helpers included). Before a helper with
// children exits, `p` must be a child subreaper: they are to become its own,
// not the nearest subreaper's above (ckpt).
CKPT_TASK_TEXT void fork_children(const SpawnTree& tree, const SpawnTask& p, int status) {
  for (int c : p.children)
    if (tree.tasks[c].helper && !tree.tasks[c].children.empty() && prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0)
      child_fail(tree, status, fmt::format("pid {}: PR_SET_CHILD_SUBREAPER: {}", p.pid, strerror(errno)));
  for (int c : p.children) fork_task(tree, c, status);
}

[[noreturn]] CKPT_TASK_TEXT void helper_main(const SpawnTree& tree, const SpawnTask& h, int status) {
  if (h.joins.new_session && setsid() < 0)
    child_fail(tree, status, fmt::format("helper {}: setsid: {}", h.pid, strerror(errno)));
  if (h.joins.lead_group && setpgid(0, 0) < 0)
    child_fail(tree, status, fmt::format("helper {}: lead process group {}: {}", h.pid, h.pid, strerror(errno)));
  fork_children(tree, h, status);
  wait_for_tree(tree, status);
  joined(tree, h, status);
  _exit(0);
}

[[noreturn]] CKPT_TASK_TEXT void task_main(const SpawnTree& tree, const SpawnTask& p) {
  // ckpt's status pipe for this task stays where ckpt opened it until the
  // fds move (step 3): use it there meanwhile.
  const int base = tree.temp_fd_base;
  const int early_status = p.zombie ? -1 : p.temp_fds[kStatusFd];

  // 1. Every signal blocked but SIGTRAP: a breakpoint's forced SIGTRAP on a
  //    blocked signal would reset its handler (pitfall 5). Children inherit it.
  uint64_t mask = ~0ULL & ~(1ULL << (SIGTRAP - 1));
  if (syscall(SYS_rt_sigprocmask, SIG_SETMASK, &mask, nullptr, 8) < 0)
    child_fail(tree, early_status, fmt::format("block signals: {}", strerror(errno)));

  // 2. Its session and group, its children, then the groups others lead.
  if (p.joins.new_session && setsid() < 0)
    child_fail(tree, early_status, fmt::format("pid {}: setsid: {}", p.pid, strerror(errno)));
  if (p.joins.lead_group && setpgid(0, 0) < 0)
    child_fail(tree, early_status, fmt::format("pid {}: lead its process group: {}", p.pid, strerror(errno)));
  if (p.ctty_fd >= 0 && ioctl(p.ctty_fd, TIOCSCTTY, 0) < 0)
    child_fail(tree, early_status, fmt::format("pid {}: take its controlling terminal (TIOCSCTTY): {}", p.pid,
                                               strerror(errno)));
  if (p.premap)
    if (std::string err = fill_premapped(*p.premap); !err.empty()) child_fail(tree, early_status, err);
  fork_children(tree, p, early_status);
  wait_for_tree(tree, early_status);
  wait_for_late(tree, early_status);
  // SIGTTOU, which a background caller would get, is blocked (step 1).
  if (p.ctty_fd >= 0 && p.foreground > 0 && ioctl(p.ctty_fd, TIOCSPGRP, &p.foreground) < 0)
    child_fail(tree, early_status, fmt::format("pid {}: set the foreground process group {} of its terminal: {}",
                                               p.pid, p.foreground, strerror(errno)));
  const pid_t group = p.joins.join_restorer_group ? tree.restorer_pgid : p.joins.join_group;
  if (group != 0 && setpgid(0, group) < 0)
    child_fail(tree, early_status, fmt::format("pid {}: join process group {}: {}", p.pid, group, strerror(errno)));
  joined(tree, p, early_status);
  if (p.zombie) {
    prctl(PR_SET_NAME, p.comm.c_str(), 0, 0, 0);
    die_as(p.exit_status);
  }
  reap_helpers(tree, p, early_status);
  wait_for_zombies(tree, p, early_status);

  // 3. The task's fds take their numbers and its temporary fds go above
  //    them, in as many fd slots as the highest of those or of ckpt's fds
  //    (fd_moves.h); every other fd of ckpt is closed.
  int status = early_status;
  if (tree.ckpt_pidfd >= 0)
    if (std::string err = files::take_late_fds(*p.fds, tree.ckpt_pidfd); !err.empty())
      child_fail(tree, status, fmt::format("pid {}: {}", p.pid, err));
  if (std::string err = run_fd_ops(p.fd_ops, &status); !err.empty()) child_fail(tree, status, err);
  status = status_fd(tree, p);
  if (std::string err = files::run_in_task(p.fds->steps); !err.empty())
    child_fail(tree, status, fmt::format("pid {}: {}", p.pid, err));
  if (chdir(p.cwd.c_str()) < 0) child_fail(tree, status, fmt::format("chdir {}: {}", p.cwd, strerror(errno)));

  // 4. The boot region: the blob and what it is told.
  void* m = mmap(reinterpret_cast<void*>(p.boot_start), p.boot_size, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
  if (m == MAP_FAILED)
    child_fail(tree, status, fmt::format("map the boot region at {:#x}: {}", p.boot_start, strerror(errno)));
  // Faulted in at once where a first touch is dear (a sigframe a thread:
  // 10,000 threads' are 35 MB); the stacks fill as the threads use them.
  prefault(m, p.data_offset + p.data.size());
  std::memcpy(m, p.blob.data(), p.blob.size());
  std::memcpy(static_cast<char*>(m) + p.data_offset, p.data.data(), p.data.size());
  if (mprotect(m, p.data_offset, PROT_READ | PROT_EXEC) < 0)
    child_fail(tree, status, fmt::format("protect the restorer blob: {}", strerror(errno)));

  // 5. Threads: they inherit the mask above and no rseq registration (CLONE_VM).
  if (!unregister_glibc_rseq()) child_fail(tree, status, fmt::format("unregister rseq: {}", strerror(errno)));
  if (auto f = create_threads(p))
    child_fail(tree, status, fmt::format("pid {}: create a thread with tid {}: {}", p.pid, f->tid,
                                         strerror(static_cast<int>(-f->err))));

  // 6. Parked until released.
  // From the stack: a literal would be one more page of ckpt to fault in.
  const char ready = 'R';
  if (write(status, &ready, 1) != 1) _exit(125);
  char go = 0;
  if (read(base + kGoFd, &go, 1) != 1 || go != 'G') _exit(124);
  arch::switch_stack_and_jump(p.stack_top, p.entry, p.args);
}

}  // namespace

Result<void> plan_task_fds(SpawnTask& t, int temp_fd_base) {
  std::vector<FdMove> moves;
  moves.reserve(t.temp_fds.size() + t.fds->fds.size());
  for (size_t i = 0; i < t.temp_fds.size(); i++) moves.push_back({t.temp_fds[i], temp_fd_base + static_cast<int>(i), false});
  for (const files::PreparedFd& f : t.fds->fds) moves.push_back({f.fd, f.target, f.cloexec});
  t.fd_ops = TRY(plan_fd_moves(moves, t.temp_fds[kStatusFd]));
  return {};
}

Result<bool> open_when_arrived(const SpawnTree& tree, const std::function<Result<void>()>& open) {
  SpawnBarrier* b = tree.barrier;
  const uint32_t all = tree.tasks.size();
  auto give_up = [b] {
    __atomic_store_n(&b->failed, 1, __ATOMIC_RELEASE);
    for (uint32_t* f : {&b->arrived, &b->joined, &b->late_opened})
      syscall(SYS_futex, f, FUTEX_WAKE, INT32_MAX, nullptr, nullptr, 0);
  };
  // Timed: a task that dies without saying so must not hang ckpt here.
  const timespec tick{0, 50'000'000};
  for (uint32_t seen; (seen = __atomic_load_n(&b->arrived, __ATOMIC_ACQUIRE)) < all;) {
    if (__atomic_load_n(&b->failed, __ATOMIC_ACQUIRE)) return false;
    siginfo_t si{};
    if (waitid(P_PID, tree.tasks[0].pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid != 0) {
      give_up();  // the root is gone: its status pipe says why
      return false;
    }
    syscall(SYS_futex, &b->arrived, FUTEX_WAIT, seen, &tick, nullptr, 0);
  }
  if (auto r = open(); !r) {
    give_up();
    return std::unexpected(r.error());
  }
  __atomic_store_n(&b->late_opened, 1, __ATOMIC_RELEASE);
  syscall(SYS_futex, &b->late_opened, FUTEX_WAKE, INT32_MAX, nullptr, nullptr, 0);
  return true;
}

Result<pid_t> spawn(const SpawnTree& tree) {
  const SpawnTask& root = tree.tasks[0];
  clone_args a{};
  a.flags = tree.sibling ? CLONE_PARENT : 0;
  a.exit_signal = tree.sibling ? 0 : SIGCHLD;
  long r = clone_with_pid(a, root.pid, [&] { return raw_clone3(&a); });
  if (r == 0) task_main(tree, root);
  if (r == -EEXIST)
    return error(EEXIST, "pid {} is taken by another process (restore --pidns: into a new PID namespace)", root.pid);
  if (r < 0) return error(static_cast<int>(-r), "clone3 with pid {}", root.pid);
  return static_cast<pid_t>(r);
}

}  // namespace ckpt::restore
