// The completion primitive, shared by restore and by parasite cure: a task
// runs freestanding code of ours that ends in a noinline sigreturn function;
// ckpt catches it there, unmaps the code, and leaves the task stopped at the
// registers it must go on with.
//
// Breakpoint mode (3 stops):
//   1. the hardware breakpoint on the sigreturn function fires;
//   2-3. the task's registers are ours to clobber there, so the blob's own
//      syscall instruction runs munmap(blob) without saving anything
//      (entry and exit stops);
//   then ptrace loads the final registers, xsave and signal mask: exactly
//   what rt_sigreturn would have loaded, so the sigreturn itself, and the
//   stops to step over it, are not needed.
//
// Syscall-trace mode (fallback, --no-breakpoints): PTRACE_SYSCALL through
// every syscall until the rt_sigreturn of the sigreturn function has run,
// then munmap(blob) the same way and put back the registers rt_sigreturn set.
#pragma once

#include <cstdint>
#include <functional>
#include <span>

#include "arch/x86_64/regs.h"
#include "base/log.h"
#include "base/result.h"
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
BreakpointSupport probe_breakpoints();

// Arms DR0/DR7 of a stopped task on `addr`. Does not resume it.
Result<Armed> arm_breakpoint(Tracee& t, uint64_t addr);
Result<void> disarm_breakpoint(Tracee& t);

struct CompletionSite {
  uint64_t sigreturn_fn;  // breakpoint address
  uint64_t syscall_insn;  // the sigreturn function's own syscall instruction
  uint64_t unmap_start;
  uint64_t unmap_len;
};

struct FinalState {
  arch::Regs regs;
  std::span<const uint8_t> xsave;
  uint64_t sigmask;
};

// Explains a stop that is not the completion (the blob reported an error and
// trapped, crashed, or the task died): returns the Error to give the user.
using StrayStopExplainer = std::function<Error(Tracee&, const Stop&)>;

// The task is stopped (armed, if mode is Breakpoint). Releases it, waits for
// the completion point, unmaps the blob and leaves the task stopped at its
// final state. Returns the number of stops from release to the end.
Result<unsigned> complete(Tracee& t, CompletionMode mode, const CompletionSite& site, const FinalState& final_state,
                          const StrayStopExplainer& explain);

}  // namespace ckpt
