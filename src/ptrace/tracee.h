// Tracee: one thread under PTRACE_SEIZE, for as long as this object lives.
// Every operation can find the task gone (killed under us): that is an Error
// with err == ESRCH, never an assertion (rr's *_if_alive lesson).
#pragma once

#include <signal.h>
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "arch/x86_64/regs.h"
#include "base/owed.h"
#include "base/result.h"

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

struct RseqConfig {
  uint64_t abi_pointer = 0;
  uint32_t abi_size = 0;
  uint32_t signature = 0;
  uint32_t flags = 0;
};

class Tracee {
 public:
  using Clock = std::chrono::steady_clock;

  // PTRACE_SEIZE with TRACESYSGOOD (pitfall 4) and `extra` options.
  static Result<Tracee> seize(pid_t tid, unsigned long extra_options = 0);
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

  Result<void> interrupt();
  // Next stop or death; with a deadline, ETIMEDOUT when it passes first.
  Result<Stop> wait(std::optional<Clock::time_point> deadline = std::nullopt);
  // The next stop or death of any of `group` (waitpid(-1): for paths that
  // must keep many tracees moving at once; everything else waits on one TID).
  static Result<std::pair<Tracee*, Stop>> wait_any(std::span<Tracee* const> group);
  // wait(), but a SIGSTOP about to be delivered (someone stopped the task
  // while ckpt works on it) is taken, the task resumed as it ran (`syscall`:
  // PTRACE_SYSCALL), and the signal given back when ckpt lets go.
  Result<Stop> wait_past_sigstop(bool syscall);
  // If `s`, a stop of this task, is such a SIGSTOP: takes it, resumes the
  // task as wait_past_sigstop does, and says true.
  Result<bool> took_sigstop(const Stop& s, bool syscall);
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
  // Either queues a SIGSTOP that ckpt took back to the task.
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
  // Seccomp filter `index` (0: the newest) as sock_filter bytes and its
  // flags; ENOENT past the oldest.
  Result<std::pair<std::string, uint64_t>> seccomp_filter(unsigned long index);
  Result<uint64_t> peek_user(size_t offset);
  Result<void> poke_user(size_t offset, uint64_t value);

  Result<void> read_mem(uint64_t addr, void* buf, size_t len);
  Result<void> write_mem(uint64_t addr, const void* buf, size_t len);

 private:
  explicit Tracee(pid_t tid) : tid_(tid) {}
  std::unexpected<Error> err(std::string_view what);
  pid_t tid_;
  Owed attached_{true};  // detach owed
  bool sigstop_taken_ = false;
  bool seccomp_suspended_ = false;
  unsigned stops_ = 0;
};

}  // namespace ckpt
