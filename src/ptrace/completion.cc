#include "ptrace/completion.h"

#include <fcntl.h>
#include <sched.h>
#include <linux/sched.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <tuple>

#include "arch/x86_64/debugreg.h"
#include "arch/x86_64/start.h"
#include "arch/x86_64/xsave.h"
#include "base/check.h"
#include "base/fs.h"
#include "base/unique_fd.h"
#include "pie/sys.h"
#include "proc/status.h"
#include "ptrace/remote_syscall.h"

namespace ckpt {

namespace {

// The munmap of the blob from its own syscall instruction, in parts, so that
// restore can have many tasks' under way at once (PipelinedCompletion):
// start_unmap() sets it up from `regs` and lets the thread go to the entry
// stop; unmap_stop() waits for the entry or the exit stop; end_unmap() reads
// the result. Every signal is blocked meanwhile (a timer of the task's may
// fire right now; the signal waits, pending); the thread's final state,
// loaded next (load_final_state), brings its own mask.
Result<void> start_unmap(Tracee& t, arch::Regs regs, const CompletionSite& site) {
  TRY(t.set_blocked(~0ULL));
  arch::setup_syscall(regs, site.syscall_insn.raw(), SYS_munmap, std::array{site.unmap_start.raw(), site.unmap_len});
  TRY(t.set_regs(regs));
  return t.resume_syscall();
}

Result<void> unmap_stop(Tracee& t, const char* phase) {
  Stop s = TRY(t.wait_past_sigstop(true));
  if (!s.syscall_stop())
    return error(s.gone() ? ESRCH : EINTR, "task {} {} instead of reaching syscall {} {}", t.tid(), s.describe(),
                 SYS_munmap, phase);
  return {};
}

Result<void> end_unmap(Tracee& t, const CompletionSite& site) {
  const long r = arch::syscall_result(TRY(t.regs()));
  if (r < 0) return error(static_cast<int>(-r), "task {}: munmap {:#x}-{:#x}", t.tid(), site.unmap_start,
                          site.unmap_start + site.unmap_len);
  return {};
}

// Munmap the blob, all parts in a row, starting at `regs`. With a site
// outside the blob, from the task's final state instead, which `t` then holds
// already: a remote syscall whose way back is that state.
Result<void> unmap_blob(Tracee& t, const arch::Regs& regs, const CompletionSite& site) {
  if (site.outside) {
    RemoteSyscalls rs = TRY(RemoteSyscalls::begin(t, *site.outside));
    TRY(rs.must(fmt::format("munmap {:#x}-{:#x}", site.unmap_start, site.unmap_start + site.unmap_len), SYS_munmap,
                {site.unmap_start.raw(), site.unmap_len}));
    return rs.end();
  }
  TRY(start_unmap(t, regs, site));
  TRY(unmap_stop(t, "entry"));
  TRY(t.resume_syscall());
  TRY(unmap_stop(t, "exit"));
  return end_unmap(t, site);
}

}  // namespace

Result<void> load_final_state(Tracee& t, const FinalState& fin, const std::function<Result<void>()>& before_regs) {
  // Images keep the xsave area only up to its last component in use; the
  // regset takes the whole of it, the rest in init state (XSTATE_BV clear).
  std::vector<uint8_t> xsave(fin.xsave.begin(), fin.xsave.end());
  xsave.resize(std::max(xsave.size(), arch::xsave_regset_size()), 0);
  TRY(t.set_xstate(xsave));
  TRY(t.set_blocked(fin.sigmask));
  if (before_regs) TRY(before_regs());
  arch::Regs r = fin.regs;
  r.orig_rax = static_cast<uint64_t>(-1);  // as after rt_sigreturn: no restart
  return t.set_regs(r);
}

bool at_our_breakpoint(const siginfo_t& si, uint64_t rip, RemoteAddr at) {
  return RemoteAddr(rip) == at && si.si_code > 0;  // TRAP_HWBKPT among them
}

namespace {

// Breakpoints cleared in batches, one per CPU their threads stopped on,
// each from that CPU: writing a stopped thread's debug registers changes its
// perf event by a call to the CPU the thread last ran on (an IPI, a VM exit
// here) unless ckpt is there. A thread's CPU is the blob's word (rsi at
// rst_sigreturn, arch/x86_64/cpu_now.h): a wrong one costs an IPI, no more.
// ckpt's thread gets its own affinity back at the end.
class DisarmByCpu {
 public:
  void add(Tracee& t, const arch::Regs& at_breakpoint) { held_.push_back({at_breakpoint.rsi, &t}); }

  Result<void> run() {
    std::ranges::sort(held_, {}, &std::pair<uint64_t, Tracee*>::first);
    std::optional<OnCpu> ckpt;
    if (held_.size() > 1) ckpt.emplace();
    for (auto [cpu, t] : held_) {
      if (ckpt && cpu < CPU_SETSIZE) ckpt->go(static_cast<int>(cpu));
      TRY(disarm_breakpoint(*t));
    }
    held_.clear();
    return {};
  }

 private:
  std::vector<std::pair<uint64_t, Tracee*>> held_;  // (CPU, thread)
};

// Waits for the breakpoint stop of one thread; returns its registers there.
// The breakpoint is still armed: the caller clears it (a leftover one would
// hang the next dump, pitfall 6) before the thread runs again.
Result<arch::Regs> reach_breakpoint(Tracee& t, const CompletionSite& site, const StrayStopExplainer& explain) {
  Stop s = TRY(t.wait_past_sigstop(false));
  if (s.sig() != SIGTRAP) return std::unexpected(explain(t, s));
  siginfo_t si = TRY(t.siginfo());
  arch::Regs regs = TRY(t.regs());
  if (!at_our_breakpoint(si, regs.rip, site.sigreturn_fn)) return std::unexpected(explain(t, s));
  return regs;
}

// Is `s`, a stop of `t`, the one it makes itself at the barrier? Its
// registers there if so.
Result<std::optional<arch::Regs>> at_barrier(Tracee& t, const Stop& s, pid_t tgid, const CompletionSite& site) {
  if (!s.stopped() || s.event() || s.sig() != site.barrier_sig) return std::nullopt;
  siginfo_t si = TRY(t.siginfo());
  const bool ours = site.barrier_sig == SIGTRAP ? si.si_code == SI_KERNEL : si.si_code == SI_TKILL && si.si_pid == tgid;
  if (!ours) return std::nullopt;
  arch::Regs regs = TRY(t.regs());
  if (RemoteAddr(regs.rip) != site.barrier_rip) return std::nullopt;
  return regs;
}

// Where a traced thread is on its way to the point where it holds its
// final state (its barrier, or the exit of its rt_sigreturn from the blob),
// and what its next stop does (on_stop).
enum class Phase { Barrier, Tracing, InSigreturn, Done };

// One stop of a thread in `phase`: moves it on (syscalls traced through),
// or holds it where it is done, with its registers in `out`: at its
// barrier (the trap or SIGSTOP suppressed when it goes on), or at the exit
// of its rt_sigreturn.
Result<void> on_stop(Tracee& t, const Stop& s, Phase& phase, pid_t tgid, const CompletionSite& site, arch::Regs* out,
                     const StrayStopExplainer& explain) {
  if (phase == Phase::Barrier) {
    if (auto regs = TRY(at_barrier(t, s, tgid, site))) {
      *out = *regs;
      phase = Phase::Done;
    } else if (!TRY(t.took_sigstop(s, false))) {
      return std::unexpected(explain(t, s));
    }
    return {};
  }
  if (TRY(t.took_sigstop(s, true))) return {};
  if (!s.syscall_stop() || phase == Phase::Done) return std::unexpected(explain(t, s));
  arch::Regs regs = TRY(t.regs());
  if (phase == Phase::InSigreturn) {
    // The exit stop: the kernel has loaded the frame. Hold it here.
    *out = regs;
    phase = Phase::Done;
    return {};
  }
  if (arch::syscall_nr(regs) == arch::kNrRtSigreturn && RemoteAddr(regs.rip) == site.syscall_insn + arch::kSyscallInsnLen)
    phase = Phase::InSigreturn;
  return t.resume_syscall();
}

// Waits for each thread at its barrier, or without one traces its syscalls
// until its rt_sigreturn from the blob has run, and leaves each stopped
// there; returns the registers of each there. One TID after the other (a
// thread that gets ahead sits in its stop), or all at once when they wait
// for each other and must not wait for a tracer busy with another thread.
Result<std::vector<arch::Regs>> reach_sigreturns(std::span<CompletionTask> tasks, const CompletionSite& site,
                                                  const StrayStopExplainer& explain,
                                                  std::span<Tracee* const> others = {}) {
  std::vector<Phase> phase(tasks.size(), site.barrier_rip ? Phase::Barrier : Phase::Tracing);
  // Threads that wait for each other (the main thread for the others'
  // credentials) all at once even with a barrier: a thread that fails before
  // it gets there leaves the main thread waiting for it forever.
  const bool all_at_once = site.threads_wait_for_each_other;
  const pid_t tgid = tasks[0].tracee->tid();
  std::vector<arch::Regs> out(tasks.size());
  std::vector<Tracee*> group;
  for (CompletionTask& c : tasks) group.push_back(c.tracee);
  for (size_t left = tasks.size(), next = 0; left > 0;) {
    Tracee* t;
    Stop s;
    if (all_at_once) std::tie(t, s) = TRY(Tracee::wait_any(group, others));
    else s = TRY((t = group[next])->wait());
    const size_t i = all_at_once ? std::find(group.begin(), group.end(), t) - group.begin() : next;
    TRY(on_stop(*t, s, phase[i], tgid, site, &out[i], explain));
    if (phase[i] == Phase::Done) {
      left--;
      next++;
    }
  }
  return out;
}

// At dump: a thread held at the breakpoint would die of its SIGTRAP if ckpt
// died right then, so the first thing ckpt does there is let it go on, with
// no signal, through its rt_sigreturn (traced: its entry stop and its exit
// stop, where it holds its own state). Returns the registers loaded.
Result<arch::Regs> pass_breakpoint(CompletionTask& c, const CompletionSite& site, const StrayStopExplainer& explain) {
  Tracee& t = *c.tracee;
  Stop s = TRY(t.wait_past_sigstop(false));
  if (s.sig() != SIGTRAP) return std::unexpected(explain(t, s));
  siginfo_t si = TRY(t.siginfo());
  if (si.si_code != arch::kTrapHwBkpt && !at_our_breakpoint(si, TRY(t.regs()).rip, site.sigreturn_fn))
    return std::unexpected(explain(t, s));
  TRY(t.resume_syscall());
  arch::Regs regs = TRY(reach_sigreturns({&c, 1}, site, explain))[0];
  TRY(disarm_breakpoint(t));
  return regs;
}

}  // namespace

namespace {

// The function the probe's child calls once, with a breakpoint on it.
[[gnu::noinline]] void probe_target() { asm volatile(""); }

}  // namespace

namespace {

[[noreturn]] void probe_child_main(uint64_t arg) {
  ProbeChild& c = *reinterpret_cast<ProbeChild*>(arg);
  // Its copy of ckpt's fd table goes at once: it keeps its end of `go` only.
  if (c.go > 0) arch::raw_syscall(SYS_close_range, 0, c.go - 1, 0);
  arch::raw_syscall(SYS_close_range, c.go + 1, ~0U, 0);
  // It must not outlive a ckpt killed meanwhile.
  arch::raw_syscall(SYS_prctl, PR_SET_PDEATHSIG, SIGKILL);
  // Kept open until it dies; refused (perf_event_paranoid, no perf): no matter.
  pie::sys(SYS_perf_event_open, &c.warm, 0, -1, -1, PERF_FLAG_FD_CLOEXEC);
  __atomic_store_n(&c.warmed, 1, __ATOMIC_RELEASE);
  char go;
  if (arch::raw_syscall(SYS_getppid) == c.parent && arch::raw_syscall(SYS_read, c.go, reinterpret_cast<long>(&go), 1) == 1)
    probe_target();
  arch::raw_syscall(SYS_exit, 0);
  __builtin_unreachable();
}

}  // namespace

perf_event_attr dummy_task_perf_event() {
  perf_event_attr a{};
  a.type = PERF_TYPE_SOFTWARE;
  a.size = sizeof a;
  a.config = PERF_COUNT_SW_DUMMY;
  a.disabled = 1;
  a.exclude_kernel = 1;
  a.exclude_hv = 1;
  return a;
}

pid_t fork_probe_child(ProbeChild& c) {
  c.parent = getpid();
  c.warm = dummy_task_perf_event();
  clone_args a{};
  a.flags = CLONE_VM;
  a.exit_signal = SIGCHLD;
  a.stack = reinterpret_cast<uint64_t>(c.stack.data());
  // The top as a call leaves it (8 below a 16-byte boundary): the child
  // enters probe_child_main by a jump.
  a.stack_size = c.stack.size() - 8;
  const long r = arch::clone3_thread(&a, sizeof a, reinterpret_cast<uint64_t>(&probe_child_main),
                                     reinterpret_cast<uint64_t>(&c));
  if (r < 0) {
    errno = static_cast<int>(-r);
    return -1;
  }
  return static_cast<pid_t>(r);
}

// The child's stack is left as it comes (not zeroed): only the pages the
// child uses are faulted in.
BreakpointProbe::BreakpointProbe() : child_(std::make_unique_for_overwrite<ProbeChild>()) {
  int go[2];
  if (pipe2(go, O_CLOEXEC) < 0) {
    failed_ = fmt::format("pipe for the probe: {}", strerror(errno));
    return;
  }
  go_read_ = UniqueFd(go[0]);
  go_write_ = UniqueFd(go[1]);
  child_->go = go_read_.get();
  pid_ = fork_probe_child(*child_);
  if (pid_ < 0) {
    failed_ = fmt::format("clone3 for the probe: {}", strerror(errno));
    return;
  }
  // Not stopped yet: it opens its perf event first (ProbeChild).
  auto t = Tracee::seize(pid_);
  if (!t) {
    failed_ = t.error().str();
    return;
  }
  tracee_.emplace(std::move(*t));
}

BreakpointProbe::~BreakpointProbe() { end(); }

void BreakpointProbe::end() {
  // Asleep in the grace period, the child can't stop to be let go, and dies
  // of the SIGKILL below only at its end: neither is waited for.
  if (left_waiting_ && tracee_) tracee_->mark_gone();
  tracee_.reset();
  if (pid_ <= 0) return;
  kill(pid_, SIGKILL);
  waitpid(pid_, nullptr, left_waiting_ ? WNOHANG : 0);
  pid_ = -1;
}

// Some hypervisors take the debug registers and never raise the #DB
// (pitfall 7; also seen after a VM snapshot restore): a breakpoint that
// doesn't fire would hang every completion, so it must fire here. The child
// calls the function once it is armed and then exits: the answer is its
// stop at the breakpoint or its exit, whichever comes, with no time limit to
// guess (a limit only guards a child that never runs).
Result<void> BreakpointProbe::run() {
  Tracee& t = *tracee_;
  TRY(t.interrupt());
  TRY(t.wait());
  // On ckpt's CPU the child runs as soon as ckpt waits, with no other core
  // to wake (in a VM each is an exit; 0.1 ms here), and stops there to be
  // disarmed. It dies once it answered: it is never unpinned.
  ArmByCpu here(1);
  here.pin(pid_);
  here.go_to(pid_);
  const RemoteAddr at(reinterpret_cast<uint64_t>(&probe_target));
  Armed a = TRY(arm_breakpoint(t, at));
  if (a == Armed::Unsupported) return fail("the kernel refused the debug register values");
  TRY(t.cont());
  TRY(write_all(go_write_.get(), "g", 1));
  auto s = t.wait(Tracee::Clock::now() + std::chrono::seconds(5));
  if (!s && s.error().err == ETIMEDOUT) return fail("the probe's child did not run for 5 s");
  if (!s) return std::unexpected(s.error());
  if (s->gone()) return fail("a breakpoint armed on a function the probe called never fired");
  siginfo_t si = TRY(t.siginfo());
  if (s->sig() != SIGTRAP || !at_our_breakpoint(si, TRY(t.regs()).rip, at))
    return fail("the breakpoint probe stopped with {} instead of at its breakpoint", s->describe());
  return disarm_breakpoint(t);
}

BreakpointSupport BreakpointProbe::result() {
  BreakpointSupport out;
  if (!failed_.empty()) {
    out.why_not = failed_;
  } else if (!tracee_) {
    out.why_not = "the probe was asked twice";
  } else if (auto r = run(); r) {
    out.usable = true;
  } else {
    out.why_not = r.error().str();
  }
  end();
  return out;
}

std::optional<BreakpointSupport> BreakpointProbe::result_unless_waiting() {
  // Not warmed yet: either the child has not run its first syscalls (it
  // does in microseconds), or it sleeps in the kernel's grace period ('D').
  if (failed_.empty() && tracee_ && !__atomic_load_n(&child_->warmed, __ATOMIC_ACQUIRE)) {
    auto st = proc::read_stat(pid_);
    if (st && st->state == 'D' && !__atomic_load_n(&child_->warmed, __ATOMIC_ACQUIRE)) {
      left_waiting_ = true;
      end();
      return std::nullopt;
    }
  }
  return result();
}

BreakpointSupport probe_breakpoints() { return BreakpointProbe().result(); }

namespace {
// EINVAL/EIO from the kernel (no debug registers for us, a hypervisor that
// refuses them) means unsupported; anything else is a real error.
bool unsupported(const Error& e) { return e.err == EINVAL || e.err == EIO || e.err == EPERM; }
}  // namespace

ArmByCpu::ArmByCpu(size_t threads) : threads_(threads) {
  // Kept on its CPU from the start, where the first block's threads stop.
  if (ckpt_.cpus().size() > 1) ckpt_.go(ckpt_.cpus()[0]);
}

void ArmByCpu::pin(pid_t tid) {
  const std::vector<int>& cpus = ckpt_.cpus();
  if (cpus.size() < 2 || threads_ == 0) return;
  const int cpu = cpus[std::min(pinned_++ * cpus.size() / threads_, cpus.size() - 1)];
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(cpu, &one);
  if (sched_setaffinity(tid, sizeof one, &one) == 0) cpu_of_[tid] = cpu;
}

void ArmByCpu::go_to(pid_t tid) {
  if (auto it = cpu_of_.find(tid); it != cpu_of_.end()) ckpt_.go(it->second);
}

Result<Armed> arm_breakpoint(Tracee& t, RemoteAddr addr) {
  if (auto r = t.poke_user(arch::debugreg_offset(0), addr.raw()); !r) {
    if (unsupported(r.error())) return Armed::Unsupported;
    return std::unexpected(r.error());
  }
  if (auto r = t.poke_user(arch::debugreg_offset(7), arch::kDr7EnableDr0Exec); !r) {
    (void)t.poke_user(arch::debugreg_offset(0), 0);  // best effort: DR0 alone fires nothing; DR7's error is the news
    if (unsupported(r.error())) return Armed::Unsupported;
    return std::unexpected(r.error());
  }
  // No read back: the kernel keeps DR7 as written only once every
  // breakpoint it enables is registered, and says so by its error. Whether
  // one fires is the probe's to find out.
  return Armed::Yes;
}

Result<void> disarm_breakpoint(Tracee& t) {
  TRY(t.poke_user(arch::debugreg_offset(7), 0));
  return t.poke_user(arch::debugreg_offset(0), 0);
}

Result<void> disarm_breakpoint_if_supported(Tracee& t) {
  if (auto r = disarm_breakpoint(t); !r && !unsupported(r.error())) return r;
  return {};
}

namespace {

// The rest of one group's completion, once every thread was let go.
Result<void> finish_group(CompletionGroup& g, std::span<Tracee* const> others, const StrayStopExplainer& explain) {
  std::span<CompletionTask> tasks = g.threads;
  const CompletionSite& site = g.site;
  // Breakpoints: each thread in turn, waiting on its own TID; one that
  // arrives early simply sits in its stop until we get to it.
  arch::Regs first_regs{};
  if (g.mode == CompletionMode::Breakpoint) {
    DisarmByCpu disarms;
    for (size_t i = 0; i < tasks.size(); i++) {
      if (i == 0 && site.outside) {
        first_regs = TRY(pass_breakpoint(tasks[0], site, explain));
        continue;
      }
      arch::Regs at = TRY(reach_breakpoint(*tasks[i].tracee, site, explain));
      disarms.add(*tasks[i].tracee, at);
      if (i == 0) first_regs = at;
      else TRY(load_final_state(*tasks[i].tracee, tasks[i].final_state));
    }
    TRY(disarms.run());
  } else {
    first_regs = TRY(reach_sigreturns(tasks, site, explain, others))[0];
    for (size_t i = 1; i < tasks.size(); i++) TRY(load_final_state(*tasks[i].tracee, tasks[i].final_state));
  }

  // Every thread is out of the blob: unmap it from the first one.
  Tracee& t0 = *tasks[0].tracee;
  if (site.outside) {
    first_regs.orig_rax = static_cast<uint64_t>(-1);  // rt_sigreturn's: nothing to restart
    TRY(t0.set_regs(first_regs));
    TRY(unmap_blob(t0, first_regs, site));
  } else {
    // Held at its breakpoint or barrier, before its rt_sigreturn.
    TRY(unmap_blob(t0, first_regs, site));
    TRY(load_final_state(t0, tasks[0].final_state));
  }
  return {};
}

// Restore's groups, which unmap from the blob's own syscall instruction, in
// sweeps over all of them instead of one group after the other: (1) every
// thread's barrier (syscall tracing), then every thread's breakpoint, each
// thread but the first of its group loaded with its final state there, and
// the munmap set up and started in each group's first thread; (2) every
// munmap's entry stop; (3) every exit stop, and the first threads' final
// states. A thread resumed in one sweep has had the rest of the sweep to get
// to its next stop, so ckpt rarely waits for a task that is only being
// scheduled, and the tasks' way to their stops overlaps ckpt's work on the
// others (the other core). The same stops as one group alone, and the same
// checks.
class PipelinedCompletion {
 public:
  explicit PipelinedCompletion(const StrayStopExplainer& explain) : explain_(explain) {}

  static bool takes(const CompletionGroup& g) {
    if (g.site.outside) return false;
    if (g.mode == CompletionMode::Breakpoint) return true;
    // Threads that wait for each other: reach_sigreturns' all-at-once.
    return !g.site.threads_wait_for_each_other;
  }

  Result<void> run(std::span<CompletionGroup> groups) {
    std::vector<arch::Regs> first(groups.size());
    for (size_t i = 0; i < groups.size(); i++)
      if (takes(groups[i]) && groups[i].mode == CompletionMode::SyscallTrace) first[i] = TRY(reach_barriers(groups[i]));
    // Every breakpoint reached, then all of them cleared (by CPU), then the
    // munmaps started: a thread that ran again could be on another CPU.
    DisarmByCpu disarms;
    for (size_t i = 0; i < groups.size(); i++)
      if (takes(groups[i]) && groups[i].mode == CompletionMode::Breakpoint)
        first[i] = TRY(reach_breakpoints(groups[i], disarms));
    TRY(disarms.run());
    std::vector<CompletionGroup*> in_flight;
    for (size_t i = 0; i < groups.size(); i++) {
      if (!takes(groups[i])) continue;
      TRY(start_unmap(*groups[i].threads[0].tracee, first[i], groups[i].site));
      in_flight.push_back(&groups[i]);
    }
    for (CompletionGroup* g : in_flight) {
      Tracee& t = *g->threads[0].tracee;
      TRY(unmap_stop(t, "entry"));
      TRY(t.resume_syscall());
    }
    for (CompletionGroup* g : in_flight) {
      Tracee& t = *g->threads[0].tracee;
      TRY(unmap_stop(t, "exit"));
      TRY(end_unmap(t, g->site));
      TRY(load_final_state(t, g->threads[0].final_state));
    }
    return {};
  }

 private:
  // Sweep 1 of a breakpoint group: same stops and checks as finish_group().
  // Returns the first thread's registers at its breakpoint.
  Result<arch::Regs> reach_breakpoints(CompletionGroup& g, DisarmByCpu& disarms) {
    std::span<CompletionTask> tasks = g.threads;
    arch::Regs first{};
    for (size_t i = 0; i < tasks.size(); i++) {
      const arch::Regs at = TRY(reach_breakpoint(*tasks[i].tracee, g.site, explain_));
      disarms.add(*tasks[i].tracee, at);
      if (i == 0) first = at;
      else TRY(load_final_state(*tasks[i].tracee, tasks[i].final_state));
    }
    return first;
  }

  // The same for a group traced from its barrier, where every thread stops
  // right before its rt_sigreturn, as at a breakpoint.
  Result<arch::Regs> reach_barriers(CompletionGroup& g) {
    std::span<CompletionTask> tasks = g.threads;
    const pid_t tgid = tasks[0].tracee->tid();
    arch::Regs first{};
    for (size_t i = 0; i < tasks.size(); i++) {
      Tracee& t = *tasks[i].tracee;
      arch::Regs at{};
      for (Phase p = Phase::Barrier; p != Phase::Done;) TRY(on_stop(t, TRY(t.wait()), p, tgid, g.site, &at, explain_));
      if (i == 0) first = at;
      else TRY(load_final_state(t, tasks[i].final_state));
    }
    return first;
  }

  const StrayStopExplainer& explain_;
};

}  // namespace

Result<void> complete(std::span<CompletionGroup> groups, const std::function<Result<void>()>& release,
                      const StrayStopExplainer& explain) {
  std::vector<std::vector<unsigned>> before(groups.size());
  for (size_t g = 0; g < groups.size(); g++) {
    CHECK(groups[g].mode == CompletionMode::Breakpoint || groups[g].site.barrier_rip,
          "task {}: syscall tracing completes from a barrier", groups[g].threads[0].tracee->tid());
    for (CompletionTask& c : groups[g].threads) {
      before[g].push_back(c.tracee->stops());
      // Untraced up to the breakpoint or the barrier.
      if (!c.running) TRY(c.tracee->cont());
    }
  }
  TRY(release());
  TRY(PipelinedCompletion(explain).run(groups));
  // The others group after group; the others' blobs run on meanwhile, and a
  // stop of theirs that a wait for this group reaps is kept for them.
  for (size_t g = 0; g < groups.size(); g++) {
    if (!PipelinedCompletion::takes(groups[g])) {
      std::vector<Tracee*> others;
      if (groups[g].mode == CompletionMode::SyscallTrace && groups[g].site.threads_wait_for_each_other)
        for (size_t h = 0; h < groups.size(); h++)
          for (CompletionTask& c : groups[h].threads)
            if (h != g) others.push_back(c.tracee);
      TRY(finish_group(groups[g], others, explain));
    }
    for (size_t i = 0; i < groups[g].threads.size(); i++)
      groups[g].threads[i].stops = groups[g].threads[i].tracee->stops() - before[g][i];
  }
  return {};
}

Result<void> complete(std::span<CompletionTask> tasks, CompletionMode mode, const CompletionSite& site,
                      const std::function<Result<void>()>& release, const StrayStopExplainer& explain) {
  CompletionGroup g{tasks, mode, site};
  return complete({&g, 1}, release, explain);
}

}  // namespace ckpt
