// The completion primitive, shared by restore and by parasite cure: the
// threads of a task run freestanding code of ours that ends in a noinline
// sigreturn function; ckpt catches each there, unmaps the code, and leaves
// every thread stopped at the registers it must go on with.
//
// Breakpoint mode (1 stop per thread, 3 for the one that unmaps):
//   1. the hardware breakpoint on the sigreturn function fires (debug
//      registers are per thread: each was armed before release);
//      ptrace loads the final registers, xsave and signal mask: exactly what
//      rt_sigreturn would have loaded, so the sigreturn itself, and the stops
//      to step over it, are not needed;
//   2-3. once every thread is out of the blob, the first one runs
//      munmap(blob) (entry and exit stops) from the blob's own syscall
//      instruction, its registers at the breakpoint ours to clobber.
// At dump, where a ckpt killed at any moment must not lose the task, the
// thread held at the breakpoint would die of its SIGTRAP: it goes on at once
// through its own rt_sigreturn (2 more stops), and the munmap runs from its
// final state through kill-safe RemoteSyscalls.
//
// Syscall-trace mode (fallback, --no-breakpoints; restore only: at dump a
// task without breakpoints is cured from outside, parasite.h), from a
// barrier: 1 stop per thread, 3 for the one that unmaps, as with
// breakpoints. Threads are waited for one TID after the other, unless they
// wait for each other (see CompletionSite).
//   1. each thread runs untraced (PTRACE_CONT) until it stops itself at the
//      site's barrier (an int3's SIGTRAP, or a SIGSTOP it sends itself)
//      right before the sigreturn function: ckpt loads its final state
//      there, as at the breakpoint, and suppresses the signal;
//   2-3. the munmap, as above.
// A restored thread dies with ckpt (PTRACE_O_EXITKILL) wherever it is, so
// running untraced up to the barrier, or being held at its signal, risks
// nothing if ckpt is killed.
#pragma once

#include <linux/perf_event.h>
#include <sched.h>

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <unordered_map>
#include <vector>

#include "arch/x86_64/regs.h"
#include "base/log.h"
#include "base/result.h"
#include "ptrace/on_cpu.h"
#include "ptrace/remote_syscall.h"
#include "ptrace/tracee.h"

namespace ckpt {

enum class CompletionMode { Breakpoint, SyscallTrace };
enum class Armed { Yes, Unsupported };

// Can this machine set hardware breakpoints through ptrace? Probed once on a
// throwaway child; the answer is passed around, not kept in a global.
struct BreakpointSupport {
  bool usable = false;
  std::string why_not;
};

// The probe's child, waiting to call the probed function once a byte comes
// on `go`. It shares ckpt's memory (CLONE_VM: no copy of ckpt's address
// space to make, fault in and tear down, 0.6 ms of a tiny restore's wall
// time here) but not its fd table: it closes its copy of the table but `go`
// first thing, so that it keeps no file of ckpt's open (a UDP stand-in
// bound at a port for one datagram would catch those meant for the socket
// it stood in for). A shared table would cost more: while two tasks share
// it, the kernel waits for an RCU grace period each time the table grows
// (8 ms of a 50-task tree's restore, the probe living through it). It runs
// on `stack` and makes raw syscalls only; `c` must outlive it.
//
// Its first act opens a dummy perf event on itself (`warm`). The first
// perf event bound to a task, on a machine that has none (a hardware
// breakpoint is one), waits for an RCU grace period while the kernel turns
// on its context-switch hooks (perf_event_alloc: 3-25 ms here), and they
// stay on until a second after the last such event goes: the child takes
// that wait while ckpt loads the images and spawns the tree, and the
// breakpoints armed later find the hooks on. It sets `warmed` once the
// event is open (or refused): a restore that finds it still waiting then
// goes on without it (result_unless_waiting).
struct ProbeChild {
  int go = -1;
  pid_t parent = 0;  // set by fork_probe_child
  perf_event_attr warm{};  // set by fork_probe_child
  uint32_t warmed = 0;     // atomic: written by the child
  alignas(16) std::array<char, 16 << 10> stack;
};
// -1 and errno on failure.
pid_t fork_probe_child(ProbeChild& c);
// A perf event bound to a task that counts nothing: opening one turns the
// kernel's perf hooks on (the probe child's `warm`), holding it keeps them on.
perf_event_attr dummy_task_perf_event();

// The probe in two steps, so that ckpt goes on with its work while the
// child runs, with no thread of its own (starting one, and waking the other
// core for it, cost a tiny restore 0.3 ms here): the constructor forks the
// child and seizes it; result() stops it (once its perf event is open),
// arms the breakpoint, lets the child call the function and reads the
// answer. The child is gone once result() returns, or
// once the probe is destroyed.
class BreakpointProbe {
 public:
  BreakpointProbe();
  BreakpointProbe(const BreakpointProbe&) = delete;
  BreakpointProbe& operator=(const BreakpointProbe&) = delete;
  ~BreakpointProbe();

  BreakpointSupport result();
  // The answer, or none while the kernel keeps the probe's first perf event
  // waiting for its grace period: a wait ckpt need not take (restore then
  // completes by syscall tracing). The child, killed at the end, is not
  // waited for either: its parent's reaper takes it.
  std::optional<BreakpointSupport> result_unless_waiting();

 private:
  Result<void> run();
  void end();

  std::unique_ptr<ProbeChild> child_;  // its stack: where the child runs
  UniqueFd go_read_, go_write_;
  pid_t pid_ = -1;
  std::optional<Tracee> tracee_;
  std::string failed_;  // why the constructor could not start it
  bool left_waiting_ = false;  // by result_unless_waiting()
};
BreakpointSupport probe_breakpoints();  // both steps at once

// Arming where the threads stop. Writing a thread's debug registers changes
// a perf event on the CPU the thread last ran on: a cross-CPU call (an IPI,
// a VM exit here) unless ckpt writes from that CPU. The `threads` to arm are
// pinned, in the order given, in contiguous blocks over the CPUs ckpt may
// use (its own CPU first) before they are asked to stop, so that each stops
// on its block's CPU; ckpt arms them in the same order, from each block's
// CPU (one move per CPU). The spread matters as much: a restored thread runs
// on where it was armed until its restorer sets its own affinity (which
// undoes the pin; ckpt spends no call on it), and one CPU for them all would
// leave the others idle. With one CPU nothing moves; a thread ckpt could not
// pin costs an IPI, no more. (Disarming goes the other way round: ckpt moves
// to the threads' CPUs, completion.cc's DisarmByCpu.)
class ArmByCpu {
 public:
  explicit ArmByCpu(size_t threads);

  // The next thread in order, not yet stopped (or stopped: it runs there next).
  void pin(pid_t tid);
  // Before ckpt arms `tid`: onto the CPU it was pinned to.
  void go_to(pid_t tid);

 private:
  OnCpu ckpt_;
  size_t threads_, pinned_ = 0;
  std::unordered_map<pid_t, int> cpu_of_;
};

// Is a SIGTRAP stop with `si` at `rip` the hardware breakpoint on `at`?
// The kernel says TRAP_HWBKPT when DR6 names the breakpoint. On this
// machine's hypervisor, about once in 15 restores of 10,000 threads (more
// when threads moved between CPUs just before), a thread stopped right
// there with a SIGTRAP that said otherwise (most likely DR6 lost on the
// way, so that the kernel took the trap for an icebp's). An instruction
// breakpoint stops before its instruction, an int3 or icebp after theirs
// (none precedes `at`), so a trap the kernel raised (si_code > 0, where
// kill() and tgkill() give 0 or less) exactly at `at` is ours either way.
bool at_our_breakpoint(const siginfo_t& si, uint64_t rip, RemoteAddr at);

// Arms DR0/DR7 of a stopped task on `addr`. Does not resume it.
Result<Armed> arm_breakpoint(Tracee& t, RemoteAddr addr);
Result<void> disarm_breakpoint(Tracee& t);
// Clears a breakpoint that may have been armed by a ckpt of which we know
// nothing (a killed one): where the debug registers can't be written at all,
// nothing was armed and the error says so; any other error is returned.
Result<void> disarm_breakpoint_if_supported(Tracee& t);

struct CompletionSite {
  RemoteAddr sigreturn_fn;  // breakpoint address
  RemoteAddr syscall_insn;  // the sigreturn function's own syscall instruction
  RemoteAddr unmap_start;
  uint64_t unmap_len;
  // The blob's threads wait for each other on the way: syscall tracing must
  // then keep all of them moving at once (waitpid(-1), O(threads) in the
  // kernel per stop) instead of one TID after the other.
  bool threads_wait_for_each_other = false;
  // Where the munmap runs from, outside the blob (dump); else from the blob's
  // own syscall instruction (restore).
  std::optional<SyscallSite> outside = std::nullopt;
  // Where each thread stops itself in syscall-trace mode (required there): a
  // signal-delivery stop of barrier_sig (SIGTRAP of an int3, or SIGSTOP of a
  // tgkill to itself) at barrier_rip. Threads past it wait for no one.
  RemoteAddr barrier_rip;
  int barrier_sig = 0;
};

struct FinalState {
  arch::Regs regs;
  std::span<const uint8_t> xsave;
  uint64_t sigmask;
};

// Loads what rt_sigreturn from a frame of `fin` would have: xsave (padded
// to the regset's size), signal mask, and last the registers (no syscall
// restart), so that a ckpt killed in between leaves the thread where it
// was (a parasite returns to its own state by itself) and never in its own
// code with ckpt's mask (every signal blocked, for good). `before_regs`:
// a test's fault point there.
Result<void> load_final_state(Tracee& t, const FinalState& fin,
                              const std::function<Result<void>()>& before_regs = nullptr);

// Explains a stop that is not the completion (the blob reported an error and
// trapped, crashed, or the task died): returns the Error to give the user.
using StrayStopExplainer = std::function<Error(Tracee&, const Stop&)>;

struct CompletionTask {
  Tracee* tracee;
  FinalState final_state;
  unsigned stops = 0;  // out: ptrace stops from release to the end
  // Already resumed (and armed) by the caller: the parasite's daemon runs
  // from injection on, with its breakpoint set while it was stopped; a
  // restored thread traced from its barrier on was never stopped.
  bool running = false;
};

// Every task (the threads of one process) is stopped, armed if mode is
// Breakpoint, or running (Breakpoint mode, or syscall tracing from a barrier). Resumes the stopped ones,
// calls `release` (which lets the blob go), and waits on each thread in turn
// for its completion point; tasks[0] then runs the munmap. Leaves every task
// stopped at its final state.
Result<void> complete(std::span<CompletionTask> tasks, CompletionMode mode, const CompletionSite& site,
                      const std::function<Result<void>()>& release, const StrayStopExplainer& explain);

// The threads of one process of a tree, and how they complete.
struct CompletionGroup {
  std::span<CompletionTask> threads;
  CompletionMode mode;
  CompletionSite site;
};

// The same for many processes at once: all are resumed, `release` lets all
// their blobs go. Groups that unmap from the blob (restore), with
// breakpoints or syscall tracing from a barrier, complete in sweeps over
// every thread of all of them, so that a wait is rarely for a thread ckpt
// has only just resumed: every barrier and every breakpoint, and the start
// of every munmap, then every munmap's entry stop, then every exit stop (the same
// stops as one group alone; an error lets the tasks of the later sweeps go
// where they are, to be killed by the caller). The other groups then
// complete in turn, no stop of any lost on the way.
Result<void> complete(std::span<CompletionGroup> groups, const std::function<Result<void>()>& release,
                      const StrayStopExplainer& explain);

}  // namespace ckpt
