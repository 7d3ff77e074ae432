#include "ptrace/tracee.h"

#include <elf.h>
#include <linux/filter.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstring>
#include <utility>

#include "arch/x86_64/uapi.h"
#include "arch/x86_64/xsave.h"
#include "base/parallel.h"
#include "proc/status.h"

namespace ckpt {

namespace {

// What PTRACE_GET_RSEQ_CONFIGURATION fills, field for field.
static_assert(sizeof(RseqConfig) == sizeof(__ptrace_rseq_configuration));
static_assert(offsetof(RseqConfig, flags) == offsetof(__ptrace_rseq_configuration, flags));

using Clock = Tracee::Clock;

// A wait that sleeps in waitpid() can sleep forever: the main thread of a
// process killed under ckpt is a zombie whose death the kernel reports only
// once its other threads are reaped (delay_group_leader()), and those, traced
// by ckpt, wait for ckpt to reap them, which the caller may do only after this
// wait returns. So waits on a main thread (and waits with a deadline) poll
// with WNOHANG and sleep in ChildEvents in between; a wait that found nothing
// for kStallCheck asks /proc whether the task is dead, so a death is seen
// within that even when its SIGCHLD came before the wait began.
constexpr auto kStallCheck = std::chrono::milliseconds(20);

// A tracee that has died but that waitpid() does not report (yet): a zombie
// main thread waiting for its other threads to be reaped, or one on its way
// out of the kernel.
bool dead_but_unreported(pid_t tid) {
  auto st = proc::read_stat(tid);
  return !st || st->state == 'Z' || st->state == 'X';
}

// A tracer that sleeps as soon as it waits pays for its own wake-up at every
// stop, and on a VM an idle vCPU is slow to wake (an IPI the host has to
// deliver and schedule). A main thread's stops come within tens of
// microseconds of the request (a remote syscall: 4 to inject a parasite, 5
// to cure it), so a wait on one polls for that long first: a 50-task tree
// dumps ~7% faster here. Not a wait on one of many threads, which may come
// in any order (1,000 threads dumped 28% slower), and not with one CPU,
// where polling would only keep the tracee from running.
constexpr auto kPollFirst = std::chrono::microseconds(50);

bool polling_helps() {
  static const bool helps = usable_cpus() > 1;
  return helps;
}

// The stop of `tid` if it comes within kPollFirst; an error is left to the
// wait that follows.
bool poll_for_stop(pid_t tid, int* status) {
  if (!polling_helps()) return false;
  const auto until = Clock::now() + kPollFirst;
  do {
    const pid_t r = waitpid(tid, status, __WALL | WNOHANG);
    if (r == tid) return true;
    if (r < 0) return false;
    __builtin_ia32_pause();
  } while (Clock::now() < until);
  return false;
}

std::string signal_name(int sig) {
  if (const char* abbrev = sigabbrev_np(sig)) return fmt::format("SIG{}", abbrev);
  if (sig >= SIGRTMIN && sig <= SIGRTMAX) return fmt::format("SIGRTMIN+{}", sig - SIGRTMIN);
  return fmt::format("signal {}", sig);
}

thread_local int child_events_depth = 0;  // nested ChildEvents leave the mask alone
thread_local ChildEvents* outermost_events = nullptr;  // whose signalfd the nested ones use
thread_local std::span<const std::atomic<pid_t>> sigchld_peers;  // ChildEvents::set_peers

}  // namespace

ChildEvents::ChildEvents() {
  sigemptyset(&chld_);
  sigaddset(&chld_, SIGCHLD);
  if (child_events_depth++ == 0) {
    pthread_sigmask(SIG_BLOCK, &chld_, &old_);
    outermost_events = this;
  }
}

ChildEvents::~ChildEvents() {
  if (--child_events_depth == 0) {
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);
    outermost_events = nullptr;
  }
}

void ChildEvents::sleep(Clock::time_point until) {
  const auto left = std::chrono::duration_cast<std::chrono::nanoseconds>(until - Clock::now());
  if (left.count() <= 0) return;
  const timespec ts{static_cast<time_t>(left.count() / 1000000000), static_cast<long>(left.count() % 1000000000)};
  siginfo_t si;
  took(sigtimedwait(&chld_, &si, &ts), si);  // EAGAIN (timeout) and EINTR end the sleep as well
}

void ChildEvents::set_peers(std::span<const std::atomic<pid_t>> peers) { sigchld_peers = peers; }

void ChildEvents::took(int sig, const siginfo_t& si) {
  if (sig != SIGCHLD || si.si_code <= 0) return;  // none, or one a peer passed on (SI_TKILL)
  const pid_t self = gettid();
  for (const std::atomic<pid_t>& peer : sigchld_peers)
    if (const pid_t tid = peer.load(std::memory_order_acquire); tid != 0 && tid != self)
      (void)syscall(SYS_tgkill, getpid(), tid, SIGCHLD);
}

Result<int> ChildEvents::fd() {
  if (outermost_events != this && outermost_events) return outermost_events->fd();
  if (!fd_) {
    fd_ = UniqueFd(signalfd(-1, &chld_, SFD_CLOEXEC | SFD_NONBLOCK));
    if (!fd_) return sys_error("signalfd for SIGCHLD");
  }
  return fd_.get();
}

void ChildEvents::drain() {
  const timespec now{0, 0};
  siginfo_t si;
  took(sigtimedwait(&chld_, &si, &now), si);  // a standard signal is pending once at most
}

std::string Stop::describe() const {
  if (exited()) return fmt::format("exited with status {}", WEXITSTATUS(status));
  if (killed()) return fmt::format("killed by {}", signal_name(WTERMSIG(status)));
  if (syscall_stop()) return "syscall stop";
  if (event()) return fmt::format("ptrace event {} stop", event());
  if (stopped()) return fmt::format("stopped by {}", signal_name(sig()));
  return fmt::format("status {:#x}", status);
}

Result<Tracee> Tracee::seize(pid_t tid, unsigned long extra, std::optional<bool> leader) {
  // Seccomp filters of the task must not judge the syscalls we make it run;
  // suspending them needs CAP_SYS_ADMIN, without it they stay in force.
  const unsigned long opts = PTRACE_O_TRACESYSGOOD | extra;
  const bool suspended = ptrace(PTRACE_SEIZE, tid, nullptr, opts | PTRACE_O_SUSPEND_SECCOMP) == 0;
  if (!suspended && !(errno == EPERM && ptrace(PTRACE_SEIZE, tid, nullptr, opts) == 0))
    return sys_error("ptrace seize task {}", tid);
  Tracee t(tid);
  t.seccomp_suspended_ = suspended;
  // tgkill(tgid, tid, 0) finds the task only if `tgid` is its thread group.
  t.leader_ = leader ? *leader : syscall(SYS_tgkill, tid, tid, 0) == 0;
  return t;
}

// Leaving a tracee: PTRACE_DETACH works only on a stopped task, so a running
// one is interrupted first. If it died meanwhile there is nothing to do.
Tracee::~Tracee() {
  if (!attached_) return;
  bool detached = ptrace(PTRACE_DETACH, tid_, nullptr, 0) == 0;
  if (!detached && ptrace(PTRACE_INTERRUPT, tid_, nullptr, nullptr) == 0) {
    // A dead tracee takes the interrupt too: wait() reaps it or says it is
    // gone. A signal about to be delivered is not ckpt's to eat.
    auto s = wait();
    const int sig = s && s->stopped() && !s->event() && !s->syscall_stop() ? s->sig() : 0;
    if (s && s->stopped()) detached = ptrace(PTRACE_DETACH, tid_, nullptr, sig) == 0;
  }
}

std::unexpected<Error> Tracee::err(std::string_view what) {
  int e = errno;
  if (e == ESRCH) return error(e, "task {} is gone ({})", tid_, what);
  return error(e, "ptrace {} of task {}", what, tid_);
}

Result<void> Tracee::interrupt() {
  if (ptrace(PTRACE_INTERRUPT, tid_, nullptr, nullptr) < 0) return err("interrupt");
  interrupt_pending_ = true;
  return {};
}

Result<Stop> Tracee::wait(std::optional<Clock::time_point> deadline) {
  if (held_) return *std::exchange(held_, std::nullopt);
  Stop s;
  if (leader_ && poll_for_stop(tid_, &s.status)) {
    saw(s);
    return s;
  }
  if (!deadline && !leader_) {
    // Only a main thread can be dead and unreported: any other thread's
    // death is reported at once, and one blocking waitpid() is the cheapest
    // wait (syscall tracing makes dozens of stops per thread).
    for (;;) {
      pid_t r = waitpid(tid_, &s.status, __WALL);
      if (r == tid_) {
        saw(s);
        return s;
      }
      if (r < 0 && errno == EINTR) continue;
      if (r < 0 && errno == ECHILD) {
        attached_ = false;
        return error(ESRCH, "task {} is gone (no longer traced by ckpt)", tid_);
      }
      return sys_error("wait for task {}", tid_);
    }
  }
  ChildEvents events;
  for (auto checked = Clock::now();;) {
    // A SIGCHLD pending now came before the waitpid() below, which sees what
    // caused it: a later wake is news.
    events.drain();
    pid_t r = waitpid(tid_, &s.status, __WALL | WNOHANG);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0 && errno == ECHILD) {
      attached_ = false;
      return error(ESRCH, "task {} is gone (no longer traced by ckpt)", tid_);
    }
    if (r < 0) return sys_error("wait for task {}", tid_);
    if (r == tid_) {
      saw(s);
      return s;
    }
    // Nothing yet. Is it a dead main thread? Asked when the wait is over, and
    // every kStallCheck: not on every wake, which other tracees' stops cause too.
    const auto now = Clock::now();
    const bool expired = deadline && now >= *deadline;
    if (leader_ && (expired || now - checked >= kStallCheck)) {
      if (dead_but_unreported(tid_)) {
        attached_ = false;
        return error(ESRCH, "task {} is gone (it died while ckpt waited for it)", tid_);
      }
      checked = now;
    }
    if (expired) return error(ETIMEDOUT, "task {} did not stop in time", tid_);
    events.sleep(std::min(deadline.value_or(Clock::time_point::max()), checked + kStallCheck));
  }
}

void Tracee::saw(const Stop& s) {
  if (s.gone()) {
    attached_ = false;
    return;
  }
  stops_++;
  unasked_event_ = false;
  // Any trap clears a pending interrupt (ptrace_stop()): a syscall stop
  // answers it too. Not a signal-delivery stop: the one ckpt lets through
  // first is followed by the interrupt's stop (get_signal() runs job control
  // traps before it takes a signal), a SIGSTOP by the group stop's trap.
  if (s.syscall_stop()) interrupt_pending_ = false;
  if (s.event() != PTRACE_EVENT_STOP) return;
  // Reported with the group stop's signal while one is in effect, with
  // SIGTRAP otherwise (do_jobctl_trap()).
  group_stopped_ = s.sig() != SIGTRAP;
  unasked_event_ = !interrupt_pending_;
  interrupt_pending_ = false;
}

// Blocks in waitpid(-1): unlike a wait on one TID it cannot wait forever for
// a dead task, since it reaps whatever child or tracee of ckpt dies, so the
// other threads of a killed process go first and its main thread's death is
// reported after them.
Result<std::pair<Tracee*, Stop>> Tracee::wait_any(std::span<Tracee* const> group, std::span<Tracee* const> others) {
  for (Tracee* t : group)
    if (t->held_) return std::make_pair(t, *std::exchange(t->held_, std::nullopt));
  for (;;) {
    Stop s;
    // This thread's tracees only (__WNOTHREAD): another tracer thread's
    // are its own to reap (ptrace/tracer_pool.h).
    pid_t r = waitpid(-1, &s.status, __WALL | __WNOTHREAD);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return sys_error("wait for {} tasks", group.size());
    for (Tracee* t : group) {
      if (t->tid_ != r) continue;
      t->saw(s);
      return std::make_pair(t, s);
    }
    // Another tracee's: kept for its own next wait.
    for (Tracee* t : others) {
      if (t->tid_ != r) continue;
      t->saw(s);
      t->held_ = s;
      break;
    }
  }
}

Result<void> Tracee::cont(int sig) {
  if (ptrace(PTRACE_CONT, tid_, nullptr, sig) < 0) return err("cont");
  return {};
}

Result<void> Tracee::resume_syscall(int sig) {
  if (ptrace(PTRACE_SYSCALL, tid_, nullptr, sig) < 0) return err("syscall");
  return {};
}

Result<void> Tracee::step(int sig) {
  if (ptrace(PTRACE_SINGLESTEP, tid_, nullptr, sig) < 0) return err("singlestep");
  return {};
}

Result<void> Tracee::set_options(unsigned long extra) {
  if (ptrace(PTRACE_SETOPTIONS, tid_, nullptr, PTRACE_O_TRACESYSGOOD | extra) < 0) return err("setoptions");
  seccomp_suspended_ = extra & PTRACE_O_SUSPEND_SECCOMP;
  return {};
}

Result<void> Tracee::detach(int sig) {
  if (ptrace(PTRACE_DETACH, tid_, nullptr, sig) < 0) return err("detach");
  attached_ = false;
  return {};
}

Result<Stop> Tracee::wait_past_sigstop(bool syscall) {
  for (;;) {
    Stop s = TRY(wait());
    if (!TRY(took_sigstop(s, syscall))) return s;
  }
}

Result<bool> Tracee::took_sigstop(const Stop& s, bool syscall) {
  if (!s.stopped()) return false;
  int deliver;
  if (s.event() == PTRACE_EVENT_STOP && unasked_event_) deliver = 0;
  else if (!s.event() && !s.syscall_stop() && s.sig() == SIGSTOP) deliver = SIGSTOP;
  else return false;
  TRY(syscall ? resume_syscall(deliver) : cont(deliver));
  return true;
}

Result<arch::Regs> Tracee::regs() {
  arch::Regs r;
  iovec iov{&r, sizeof r};
  if (ptrace(PTRACE_GETREGSET, tid_, NT_PRSTATUS, &iov) < 0) return err("get registers");
  return r;
}

Result<void> Tracee::set_regs(const arch::Regs& r) {
  iovec iov{const_cast<arch::Regs*>(&r), sizeof r};
  if (ptrace(PTRACE_SETREGSET, tid_, NT_PRSTATUS, &iov) < 0) return err("set registers");
  return {};
}

Result<std::vector<uint8_t>> Tracee::xstate() {
  std::vector<uint8_t> buf(arch::kXsaveMaxRegsetSize);
  iovec iov{buf.data(), buf.size()};
  if (ptrace(PTRACE_GETREGSET, tid_, NT_X86_XSTATE, &iov) < 0) return err("get xsave state");
  buf.resize(iov.iov_len);
  return buf;
}

Result<void> Tracee::set_xstate(std::span<const uint8_t> xsave) {
  iovec iov{const_cast<uint8_t*>(xsave.data()), xsave.size()};
  if (ptrace(PTRACE_SETREGSET, tid_, NT_X86_XSTATE, &iov) < 0) return err("set xsave state");
  return {};
}

Result<uint64_t> Tracee::blocked() {
  uint64_t m;
  if (ptrace(PTRACE_GETSIGMASK, tid_, sizeof m, &m) < 0) return err("get signal mask");
  return m;
}

Result<void> Tracee::set_blocked(uint64_t m) {
  if (ptrace(PTRACE_SETSIGMASK, tid_, sizeof m, &m) < 0) return err("set signal mask");
  return {};
}

Result<siginfo_t> Tracee::siginfo() {
  siginfo_t si;
  if (ptrace(PTRACE_GETSIGINFO, tid_, nullptr, &si) < 0) return err("get siginfo");
  return si;
}

Result<std::vector<siginfo_t>> Tracee::pending(bool shared) {
  std::vector<siginfo_t> out;
  for (;;) {
    siginfo_t batch[32];
    __ptrace_peeksiginfo_args a{out.size(), shared ? uint32_t{PTRACE_PEEKSIGINFO_SHARED} : 0u, 32};
    long n = ptrace(PTRACE_PEEKSIGINFO, tid_, &a, batch);
    if (n < 0) return err("peek pending signals");
    out.insert(out.end(), batch, batch + n);
    if (n < 32) return out;
  }
}

Result<RseqConfig> Tracee::rseq() {
  RseqConfig c;
  if (ptrace(PTRACE_GET_RSEQ_CONFIGURATION, tid_, sizeof c, &c) < 0)
    return err("get rseq configuration");
  return c;
}

Result<SyscallUserDispatch> Tracee::syscall_user_dispatch() {
  uapi::ptrace_sud_config c{};
  if (ptrace(static_cast<__ptrace_request>(uapi::kPtraceGetSyscallUserDispatchConfig), tid_, sizeof c, &c) < 0) {
    if (errno == EIO) return SyscallUserDispatch{};
    return err("get syscall user dispatch configuration");
  }
  return SyscallUserDispatch{c.mode == PR_SYS_DISPATCH_ON, RemoteAddr(c.selector), c.offset, c.len};
}

Result<void> Tracee::set_syscall_user_dispatch(const SyscallUserDispatch& d) {
  uapi::ptrace_sud_config c{d.on ? uint64_t{PR_SYS_DISPATCH_ON} : uint64_t{PR_SYS_DISPATCH_OFF}, d.selector.raw(),
                            d.offset, d.len};
  if (ptrace(static_cast<__ptrace_request>(uapi::kPtraceSetSyscallUserDispatchConfig), tid_, sizeof c, &c) < 0)
    return err("set syscall user dispatch configuration");
  return {};
}

Result<std::pair<std::string, uint64_t>> Tracee::seccomp_filter(unsigned long index) {
  long n = ptrace(PTRACE_SECCOMP_GET_FILTER, tid_, index, nullptr);
  if (n < 0) return err(fmt::format("get seccomp filter {}", index));
  std::string prog(n * sizeof(sock_filter), '\0');
  if (ptrace(PTRACE_SECCOMP_GET_FILTER, tid_, index, prog.data()) != n)
    return err(fmt::format("get seccomp filter {}", index));
  __ptrace_seccomp_metadata meta{index, 0};
  if (ptrace(PTRACE_SECCOMP_GET_METADATA, tid_, sizeof meta, &meta) < 0)
    return err(fmt::format("get seccomp metadata {}", index));
  return std::make_pair(std::move(prog), meta.flags);
}

Result<uint64_t> Tracee::peek_user(size_t offset) {
  errno = 0;
  long v = ptrace(PTRACE_PEEKUSER, tid_, offset, nullptr);
  if (errno) return err(fmt::format("peek user area at {:#x}", offset));
  return static_cast<uint64_t>(v);
}

Result<void> Tracee::poke_user(size_t offset, uint64_t value) {
  if (ptrace(PTRACE_POKEUSER, tid_, offset, value) < 0) return err(fmt::format("poke user area at {:#x}", offset));
  return {};
}

Result<void> Tracee::read_mem(RemoteAddr addr, void* buf, size_t len) {
  iovec local{buf, len}, remote{reinterpret_cast<void*>(addr.raw()), len};
  ssize_t n = process_vm_readv(tid_, &local, 1, &remote, 1, 0);
  if (n != static_cast<ssize_t>(len))
    return n < 0 ? sys_error("read {} bytes at {:#x} of task {}", len, addr, tid_)
                 : error(EIO, "short read at {:#x} of task {}", addr, tid_);
  return {};
}

Result<void> write_task_mem(pid_t tid, RemoteAddr addr, const void* buf, size_t len) {
  iovec local{const_cast<void*>(buf), len}, remote{reinterpret_cast<void*>(addr.raw()), len};
  ssize_t n = process_vm_writev(tid, &local, 1, &remote, 1, 0);
  if (n != static_cast<ssize_t>(len))
    return n < 0 ? sys_error("write {} bytes at {:#x} of task {}", len, addr, tid)
                 : error(EIO, "short write at {:#x} of task {}", addr, tid);
  return {};
}

}  // namespace ckpt
