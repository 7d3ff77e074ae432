#include "restore/first_step.h"

#include <signal.h>
#include <sys/mman.h>
#include <sys/ptrace.h>

#include <algorithm>
#include <cstring>
#include <optional>
#include <unordered_map>

#include "arch/x86_64/uapi.h"
#include "proc/status.h"

namespace ckpt::restore {

namespace {

using Clock = Tracee::Clock;

// VMAs are sorted and apart (image::check_mm): a binary search, as it runs
// for every thread (10,000 threads have 20,000 stack VMAs).
bool executable(const img::MmImage& mm, uint64_t addr) {
  auto after = std::upper_bound(mm.vmas().begin(), mm.vmas().end(), addr,
                                [](uint64_t a, const img::Vma& v) { return a < v.start(); });
  if (after == mm.vmas().begin()) return false;
  const img::Vma& v = *std::prev(after);
  return addr < v.end() && (v.prot() & PROT_EXEC);
}

// Would `sig`, raised by the thread's own instruction, kill it? Yes unless it
// has a handler and doesn't block it: the kernel forces a blocked or ignored
// fault signal to its default action, which for these is to die.
bool fatal_fault(const img::TaskCore& core, uint64_t sigmask, int sig) {
  if (sigmask & (1ULL << (sig - 1))) return true;
  for (const img::SigAction& a : core.sigactions())
    if (a.signo() == sig)
      return a.handler() == reinterpret_cast<uint64_t>(SIG_DFL) || a.handler() == reinterpret_cast<uint64_t>(SIG_IGN);
  return true;
}

constexpr uint64_t kSigtrapBit = 1ULL << (SIGTRAP - 1);

bool sigtrap_ignored(const img::TaskCore& core) {
  for (const img::SigAction& a : core.sigactions())
    if (a.signo() == SIGTRAP) return a.handler() == reinterpret_cast<uint64_t>(SIG_IGN);
  return false;
}

// How a thread takes its first step.
enum class How {
  None,     // at a syscall, no filter: nothing between it and its syscall can kill it
  Syscall,  // at a syscall, under seccomp: PTRACE_SYSCALL through the filter to the syscall's exit
  Step,     // anywhere else: PTRACE_SINGLESTEP, one instruction
};

// What became of one stepped thread.
struct Outcome {
  bool dead = false;
  std::optional<Stop> stop;  // the death, when it was seen
  int deliver = 0;           // a signal to hand back at detach
};

class Stepper {
 public:
  Stepper(const img::TaskCore& core, Clock::time_point deadline) : core_(core), deadline_(deadline) {}

  Result<Outcome> watch(CompletionTask& c, How how) {
    Tracee& t = *c.tracee;
    Clock::time_point deadline = deadline_;
    bool entered = false;
    for (;;) {
      auto s = t.wait(deadline);
      if (!s && s.error().err == ETIMEDOUT) return settle(t, c.final_state.sigmask);
      if (!s && s.error().err == ESRCH) return Outcome{true, std::nullopt, 0};  // a dead main thread
      if (!s) return std::unexpected(s.error());
      if (s->gone()) return Outcome{true, *s, 0};
      // Someone stopped the task meanwhile: taken, resumed, given back at detach.
      if (TRY(t.took_sigstop(*s, how == How::Syscall))) continue;
      if (how == How::Syscall && s->syscall_stop()) {
        if (!entered) {
          // The entry stop comes before the filter judges: on to the exit.
          entered = true;
          TRY(t.resume_syscall());
        } else {
          // There a filter that kills has only queued its SIGSYS (one that
          // ptrace can't hold back): one more instruction, out of the
          // syscall, shows whether the thread survives it.
          TRY(refused_by_filter(t, c.final_state.sigmask));
          how = How::Step;
          TRY(t.step());
        }
        // A moment of its own if the shared deadline has passed.
        deadline = std::max(deadline_, Clock::now() + kSettle / 4);
        continue;
      }
      return judge(t, *s, c.final_state.sigmask);
    }
  }

 private:
  // Still in a syscall at the deadline (it runs), or just not scheduled yet:
  // stop it to let go of it; it may die or trap meanwhile.
  Result<Outcome> settle(Tracee& t, uint64_t sigmask) {
    // A main thread that died while other threads live stays a zombie that
    // no wait reports and no interrupt stops (but ptrace still lets us try).
    if (dead(t)) return Outcome{true, std::nullopt, 0};
    if (auto r = t.interrupt(); !r) {
      if (r.error().err != ESRCH) return std::unexpected(r.error());
      t.mark_gone();
      return Outcome{true, std::nullopt, 0};
    }
    // Its stop comes at once; a thread that is dying takes a moment to be a
    // zombie (a filter's kill is logged first).
    const auto give_up = Clock::now() + std::chrono::seconds(2);
    for (;;) {
      auto w = t.wait(std::min(give_up, Clock::now() + std::chrono::milliseconds(20)));
      if (!w && w.error().err == ETIMEDOUT) {
        if (dead(t)) return Outcome{true, std::nullopt, 0};
        if (Clock::now() < give_up) continue;
      }
      if (!w && w.error().err == ESRCH) return Outcome{true, std::nullopt, 0};
      Stop s = TRY(std::move(w));
      if (s.gone()) return Outcome{true, s, 0};
      if (TRY(t.took_sigstop(s, false))) continue;
      // The interrupt can overtake the step's trap: the SIGTRAP is queued
      // behind the interrupt's stop, and would kill the thread once let go.
      // Let it come and take it (it is not handed back).
      if (s.event() == PTRACE_EVENT_STOP && TRY(step_trap_pending(t))) {
        TRY(t.cont());
        continue;
      }
      return judge(t, s, sigmask);
    }
  }

  // At a syscall's exit: a seccomp filter that refused it with a kill (or a
  // trap the thread has no handler for) has queued a SIGSYS that ptrace
  // can't hold back, and the thread dies of it as soon as ckpt lets go.
  Result<void> refused_by_filter(Tracee& t, uint64_t sigmask) {
    for (const siginfo_t& si : TRY(t.pending(false)))
      if (si.si_signo == SIGSYS && si.si_code == uapi::kSysSeccomp && fatal_fault(core_, sigmask, SIGSYS))
        return error(ESRCH, "task {} thread {} is killed by SIGSYS right after its restore, before ckpt let go: its "
                     "own seccomp filter refuses syscall {}", core_.pid(), t.tid(), si.si_syscall);
    return {};
  }

  static Result<bool> step_trap_pending(Tracee& t) {
    for (const siginfo_t& si : TRY(t.pending(false)))
      if (si.si_signo == SIGTRAP && (si.si_code == TRAP_TRACE || si.si_code == TRAP_BRKPT)) return true;
    return false;
  }

  // A zombie, or gone: nothing of it to detach from.
  static bool dead(Tracee& t) {
    auto st = proc::read_thread_stat(t.tid());  // not read_stat: O(threads) each
    if (st && st->state != 'Z' && st->state != 'X') return false;
    t.mark_gone();
    return true;
  }

  // A stop of a stepped thread that is alive.
  Result<Outcome> judge(Tracee& t, const Stop& s, uint64_t sigmask) {
    // The interrupt's stop, or the syscall's exit (the filter may have
    // refused the syscall slowly: logging a kill takes its time).
    if (s.syscall_stop()) TRY(refused_by_filter(t, sigmask));
    if (s.event() == PTRACE_EVENT_STOP || s.syscall_stop()) return Outcome{};
    siginfo_t si = TRY(t.siginfo());
    // The step's trap (TRAP_TRACE, or TRAP_BRKPT / SI_USER after a syscall);
    // an int3 of the task's own (SI_KERNEL) is its signal, handed back.
    if (s.sig() == SIGTRAP && si.si_code != SI_KERNEL) return Outcome{};
    // A fault of its first instruction (si_code > 0: raised by the kernel for
    // what the instruction did), without a handler: it would die of it.
    if (si.si_code > 0 && (s.sig() == SIGSEGV || s.sig() == SIGBUS || s.sig() == SIGILL || s.sig() == SIGFPE ||
                           s.sig() == SIGSYS || s.sig() == SIGTRAP) &&
        fatal_fault(core_, sigmask, s.sig())) {
      const uint64_t rip = TRY(t.regs()).rip;
      return error(EFAULT, "task {} thread {} {} (si_code {}, address {:#x}) at rip {:#x}, its first instruction "
                   "after restore, and has no handler for it: it would die of it", core_.pid(), t.tid(),
                   s.describe(), si.si_code, reinterpret_cast<uint64_t>(si.si_addr), rip);
    }
    // A signal that was pending, or a fault it handles: delivered once ckpt
    // lets go, as it would have been without ckpt.
    return Outcome{false, {}, s.sig()};
  }

  const img::TaskCore& core_;
  Clock::time_point deadline_;
};

Error death(const img::TaskCore& core, pid_t tid, const std::optional<Stop>& s, uint64_t rip) {
  std::string how = s ? s->describe() : "died";
  std::string why = s && s->killed() && WTERMSIG(s->status) == SIGSYS
                        ? " (a seccomp filter of its own refused a syscall)" : "";
  return Error{ESRCH, fmt::format("task {} thread {} {} right after its restore, before ckpt let go (it was to go on "
                                  "at rip {:#x}){}", core.pid(), tid, how, rip, why)};
}

}  // namespace

Result<FirstSteps> take_first_steps(std::span<CompletionTask> tasks, const img::TaskCore& core, const img::MmImage& mm,
                                    unsigned long extra_options) {
  FirstSteps out;
  out.deliver.assign(tasks.size(), 0);
  std::vector<unsigned> before;
  std::vector<How> how(tasks.size());
  std::unordered_map<uint64_t, bool> at_syscall_of;  // rip: a syscall instruction there
  // 1-2. Alive and where it should be; how it steps.
  for (size_t i = 0; i < tasks.size(); i++) {
    Tracee& t = *tasks[i].tracee;
    const img::ThreadCore& th = core.threads(i);
    before.push_back(t.stops());
    const uint64_t want = tasks[i].final_state.regs.rip;
    auto regs = t.regs();
    if (!regs && regs.error().err == ESRCH) return std::unexpected(death(core, t.tid(), std::nullopt, want));
    if (!regs) return std::unexpected(regs.error());
    if (regs->rip != want)
      return error(EINVAL, "task {} thread {} is at rip {:#x} after completion, not at its dumped rip {:#x}",
                   core.pid(), t.tid(), regs->rip, want);
    // Threads blocked in the same call share its rip: read once per rip.
    auto [known, fresh] = at_syscall_of.try_emplace(want, false);
    if (fresh) {
      uint8_t insn[arch::kSyscallInsnLen];
      known->second = executable(mm, want) && t.read_mem(RemoteAddr(want), insn, sizeof insn) &&
                      std::memcmp(insn, arch::kSyscallInsn, sizeof insn) == 0;
    }
    const bool at_syscall = known->second;
    // A syscall is not single-stepped: one that blocks would be interrupted
    // to let go of it, and its exit under PTRACE_SINGLESTEP queues a real
    // SIGTRAP that would kill the task after detach.
    how[i] = !at_syscall ? How::Step : th.seccomp_mode() != 0 ? How::Syscall : How::None;
    // A step's trap is forced: were SIGTRAP ignored, the kernel would reset
    // it to its default for good. Such a thread is not stepped.
    if (sigtrap_ignored(core)) how[i] = How::None;
  }
  // 3. All steps at once, judged by the task's own filters.
  for (size_t i = 0; i < tasks.size(); i++) {
    if (how[i] == How::None) continue;
    Tracee& t = *tasks[i].tracee;
    if (t.seccomp_suspended()) TRY(t.set_options(extra_options));
    // Nor may SIGTRAP be blocked: the forced trap would unblock it for good
    // (and reset its handler). Blocked again once the steps are judged.
    TRY(t.set_blocked(tasks[i].final_state.sigmask & ~kSigtrapBit));
    TRY(how[i] == How::Step ? t.step() : t.resume_syscall());
    out.stepped++;
  }
  // Each thread in turn, the main thread last: a dead leader is reported
  // only once the other threads are reaped.
  Stepper stepper(core, Clock::now() + kSettle);
  std::optional<size_t> dead;
  std::vector<Outcome> outcomes(tasks.size());
  for (size_t k = tasks.size(); k-- > 0;) {
    if (how[k] == How::None) continue;
    outcomes[k] = TRY(stepper.watch(tasks[k], how[k]));
    if (outcomes[k].dead && (!dead || k < *dead)) dead = k;
    out.deliver[k] = outcomes[k].deliver;
  }
  if (dead) {
    Outcome& o = outcomes[*dead];
    // Its threads are reaped by now: a leader that was gone has its status.
    if (!o.stop && *dead == 0)
      if (auto s = tasks[*dead].tracee->wait(Clock::now() + std::chrono::milliseconds(100)); s && s->gone()) o.stop = *s;
    return std::unexpected(death(core, tasks[*dead].tracee->tid(), o.stop, tasks[*dead].final_state.regs.rip));
  }
  for (size_t i = 0; i < tasks.size(); i++) {
    if (how[i] != How::None) TRY(tasks[i].tracee->set_blocked(tasks[i].final_state.sigmask));
    out.stops += tasks[i].tracee->stops() - before[i];
  }
  return out;
}

}  // namespace ckpt::restore
