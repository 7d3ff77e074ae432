// The last check of a restore: a restore that reports success must mean
// every thread runs its own code. After completion each thread is stopped at
// the registers it was dumped with; before ckpt lets go, each one takes its
// first step under ckpt's eyes, judged by its own seccomp filters, so that a
// task that dies at once (a filter that kills its next syscall, a rip on a
// page it can't execute) is a failed restore, not a success followed by a
// death nobody reports.
//
//   1. every thread is alive and at its dumped rip (PTRACE_GETREGS);
//   2. a thread at a syscall instruction, in executable memory, without a
//      seccomp filter has nothing between it and its syscall that can kill
//      it: it is not stepped (the common case: threads blocked in a syscall
//      at dump re-enter it; no stop, no wait);
//   3. every other thread runs, all at once, with seccomp no longer
//      suspended (PTRACE_SETOPTIONS): one at a syscall goes through it
//      with PTRACE_SYSCALL (its filter judges it after the entry stop) and
//      takes one more instruction from the exit stop (a filter that kills
//      has by then only queued its SIGSYS), any other takes one instruction
//      with PTRACE_SINGLESTEP. Then each is
//      waited for, with one deadline of kSettle for all: the step's trap or
//      the syscall's exit means it ran; a death, or a fault it has no
//      handler for, fails the restore; a thread still in its syscall at the
//      deadline runs (it is interrupted with PTRACE_INTERRUPT to be let go:
//      ERESTART* syscalls restart as after any stop; one that returns a
//      bare EINTR on a signal, epoll_wait for one, sees EINTR);
//   4. a signal that was pending is not delivered under ckpt: it is handed
//      back when ckpt lets go (PTRACE_DETACH with it).
//
// Costs: one PTRACE_GETREGS per thread; for the others, 1 to 4 stops each,
// and kSettle when one of them blocks in its syscall.
#pragma once

#include <chrono>
#include <span>
#include <vector>

#include "base/result.h"
#include "ckpt.pb.h"
#include "ptrace/completion.h"

namespace ckpt::restore {

inline constexpr auto kSettle = std::chrono::milliseconds(2);

struct FirstSteps {
  std::vector<int> deliver;  // per task: a signal to hand back at detach (0: none)
  unsigned stepped = 0;      // threads stepped
  unsigned stops = 0;        // ptrace stops taken
};

// `tasks` as complete() left them; `core` and `mm` the task's images.
// `extra_options`: the ptrace options besides TRACESYSGOOD the tasks were
// seized with (seccomp suspension is dropped from them).
Result<FirstSteps> take_first_steps(std::span<CompletionTask> tasks, const img::TaskCore& core, const img::MmImage& mm,
                                    unsigned long extra_options);

}  // namespace ckpt::restore
