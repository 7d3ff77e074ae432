// Tracee: one thread under PTRACE_SEIZE, for as long as this object lives.
// Every operation can find the task gone (killed under us): that is an Error
// with err == ESRCH, never an assertion (rr's *_if_alive lesson).
#pragma once

#include <signal.h>
#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "arch/x86_64/regs.h"
#include "base/owed.h"
#include "base/result.h"
#include "base/unique_fd.h"
#include "ptrace/remote_addr.h"

namespace ckpt {

// A waitpid() status of a tracee, decoded.
struct Stop {
  int status = 0;
  bool exited() const { return WIFEXITED(status); }
  bool killed() const { return WIFSIGNALED(status); }
  bool gone() const { return exited() || killed(); }
  bool stopped() const { return WIFSTOPPED(status); }
  int sig() const { return stopped() ? WSTOPSIG(status) : 0; }
  int event() const { return stopped() ? (status >> 16) : 0; }
  bool syscall_stop() const { return stopped() && sig() == (SIGTRAP | 0x80); }
  std::string describe() const;
};

// SIGCHLD held pending in this thread for the object's life: every ptrace
// stop and every death of a tracee sends its tracer SIGCHLD
// (do_notify_parent_cldstop(), do_notify_parent()), so a wait sleeps here, or
// polls fd(), exactly until something may have changed for one of them.
// ckpt's main() holds one for the whole run, so that no SIGCHLD is lost
// between two waits and threads started later (which inherit the mask) never
// take one; the ones the waits make then change no signal mask.
class ChildEvents {
 public:
  using Clock = std::chrono::steady_clock;
  ChildEvents();
  ~ChildEvents();
  ChildEvents(const ChildEvents&) = delete;
  ChildEvents& operator=(const ChildEvents&) = delete;
  // Until a SIGCHLD comes (or came since the last sleep or drain) or `until`.
  void sleep(Clock::time_point until);
  // Readable while a SIGCHLD is pending (signalfd): the outermost
  // ChildEvents' of this thread, made once (a tracer that holds one for its
  // whole work makes one signalfd, and blocks SIGCHLD once, not once a wait).
  Result<int> fd();
  // Takes a pending SIGCHLD.
  void drain();

  // SIGCHLD goes to the process, so with several tracer threads
  // (ptrace/tracer_pool.h) the one that takes it may not be the one whose
  // tracee stopped. A thread that takes one the kernel sent passes it on to
  // each of its peers, to that thread (a SIGCHLD passed on is not passed on
  // again). Set for this thread; empty: none.
  static void set_peers(std::span<const std::atomic<pid_t>> peers);

 private:
  void took(int sig, const siginfo_t& si);
  sigset_t chld_, old_;
  UniqueFd fd_;
};

struct RseqConfig {
  RemoteAddr abi_pointer;
  uint32_t abi_size = 0;
  uint32_t signature = 0;
  uint32_t flags = 0;
};

// Syscall user dispatch (PR_SET_SYSCALL_USER_DISPATCH) of a thread.
struct SyscallUserDispatch {
  bool on = false;
  RemoteAddr selector;  // null: every syscall outside [offset, offset + len) is dispatched
  uint64_t offset = 0, len = 0;
};

// Writes into the memory of task `tid` (process_vm_writev: a tracer's
// permission, no ptrace stop needed).
Result<void> write_task_mem(pid_t tid, RemoteAddr addr, const void* buf, size_t len);

class Tracee {
 public:
  using Clock = std::chrono::steady_clock;

  // PTRACE_SEIZE with TRACESYSGOOD (pitfall 4) and `extra` options.
  // `leader`: whether `tid` is its process's main thread, where the caller
  // knows (a restore made it); else asked of the kernel.
  static Result<Tracee> seize(pid_t tid, unsigned long extra_options = 0, std::optional<bool> leader = std::nullopt);
  Tracee(Tracee&& o) noexcept = default;
  Tracee& operator=(Tracee&&) = delete;
  Tracee(const Tracee&) = delete;
  ~Tracee();

  pid_t tid() const { return tid_; }
  // Its seccomp filters judge nothing while traced (PTRACE_O_SUSPEND_SECCOMP,
  // which needs CAP_SYS_ADMIN); else they judge what ckpt makes it run.
  bool seccomp_suspended() const { return seccomp_suspended_; }
  // Stops observed by wait() so far.
  unsigned stops() const { return stops_; }

  // PTRACE_INTERRUPT: the next PTRACE_EVENT_STOP answers it.
  Result<void> interrupt();
  // Next stop or death; with a deadline, ETIMEDOUT when it passes first. A
  // task that died but whose death the kernel does not report (see the .cc)
  // is an ESRCH error naming it.
  Result<Stop> wait(std::optional<Clock::time_point> deadline = std::nullopt);
  // The next stop or death of any of `group` (waitpid(-1): for paths that
  // must keep many tracees moving at once; everything else waits on one TID).
  // What it reaps of `others` is held for their own next wait(); of anyone
  // else (ckpt has no other children meanwhile), dropped.
  static Result<std::pair<Tracee*, Stop>> wait_any(std::span<Tracee* const> group,
                                                   std::span<Tracee* const> others = {});
  // wait(), but stops of job control (someone stops or continues the task
  // while ckpt works on it) are taken as took_sigstop() does.
  Result<Stop> wait_past_sigstop(bool syscall);
  // If `s`, the stop of this task wait() or wait_any() reported last, is one
  // of job control that ckpt did not ask for, resumes the task as it ran (`syscall`: PTRACE_SYSCALL) and says true:
  //   - a SIGSTOP about to be delivered: delivered, so that the kernel starts
  //     the group stop and keeps its state (a later SIGCONT ends it); the
  //     thread then traps in it (next case) instead of stopping;
  //   - a PTRACE_EVENT_STOP that does not answer an interrupt(): a seized
  //     thread's trap for a group stop, for a SIGCONT (JOBCTL_TRAP_NOTIFY),
  //     or the one PTRACE_SEIZE leaves pending on a stopped task.
  // Whatever the group stop's state when ckpt lets go, the kernel applies it
  // at detach (__ptrace_unlink()): a stopped task stops again, a continued
  // one runs.
  Result<bool> took_sigstop(const Stop& s, bool syscall);
  // Was a group stop (SIGSTOP, SIGTSTP...) in effect at the task's last
  // PTRACE_EVENT_STOP? Right after the seize: was the task stopped.
  bool group_stopped() const { return group_stopped_; }
  Result<void> cont(int sig = 0);
  Result<void> resume_syscall(int sig = 0);
  // PTRACE_SINGLESTEP: one instruction (a syscall instruction: the whole
  // syscall; with `sig`: into its handler), then a SIGTRAP stop.
  Result<void> step(int sig = 0);
  // PTRACE_SETOPTIONS with TRACESYSGOOD and `extra` only: without
  // PTRACE_O_SUSPEND_SECCOMP in `extra`, the task's filters judge what it
  // runs next.
  Result<void> set_options(unsigned long extra);
  // After detach() (or a death seen by wait) the destructor does nothing.
  Result<void> detach(int sig = 0);
  void mark_gone() { attached_ = false; }

  Result<arch::Regs> regs();
  Result<void> set_regs(const arch::Regs& r);
  Result<std::vector<uint8_t>> xstate();
  Result<void> set_xstate(std::span<const uint8_t> xsave);
  Result<uint64_t> blocked();
  Result<void> set_blocked(uint64_t mask);
  Result<siginfo_t> siginfo();
  // Queued signals, thread-private or shared, oldest first.
  Result<std::vector<siginfo_t>> pending(bool shared);
  Result<RseqConfig> rseq();
  // Off on a kernel that can't tell (before 6.4: none can set it but the thread).
  Result<SyscallUserDispatch> syscall_user_dispatch();
  Result<void> set_syscall_user_dispatch(const SyscallUserDispatch& d);
  // Seccomp filter `index` (0: the newest) as sock_filter bytes and its
  // flags; ENOENT past the oldest.
  Result<std::pair<std::string, uint64_t>> seccomp_filter(unsigned long index);
  Result<uint64_t> peek_user(size_t offset);
  Result<void> poke_user(size_t offset, uint64_t value);

  Result<void> read_mem(RemoteAddr addr, void* buf, size_t len);
  Result<void> write_mem(RemoteAddr addr, const void* buf, size_t len) { return write_task_mem(tid_, addr, buf, len); }

 private:
  explicit Tracee(pid_t tid) : tid_(tid) {}
  std::unexpected<Error> err(std::string_view what);
  // Bookkeeping of a stop or death wait() reports.
  void saw(const Stop& s);
  pid_t tid_;
  Owed attached_{true};  // detach owed
  bool interrupt_pending_ = false;  // interrupt() not yet answered by an event stop
  bool unasked_event_ = false;      // the last stop: an event stop no interrupt() asked for
  bool group_stopped_ = false;
  bool seccomp_suspended_ = false;
  bool leader_ = false;  // the main thread of its process: its death can go unreported
  unsigned stops_ = 0;
  std::optional<Stop> held_;  // reaped by another's wait_any(), not yet reported
};

}  // namespace ckpt
