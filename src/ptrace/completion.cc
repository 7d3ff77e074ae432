#include "ptrace/completion.h"

#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "arch/x86_64/debugreg.h"
#include "ptrace/remote_syscall.h"

namespace ckpt {

namespace {

// Munmap the blob from its own syscall instruction, starting at `regs`.
Result<void> unmap_blob(Tracee& t, const arch::Regs& regs, const CompletionSite& site) {
  long r = TRY(run_syscall(t, regs, site.syscall_insn, SYS_munmap, {site.unmap_start, site.unmap_len}));
  if (r < 0) return error(static_cast<int>(-r), "task {}: munmap {:#x}-{:#x}", t.tid(), site.unmap_start,
                          site.unmap_start + site.unmap_len);
  return {};
}

// Resumes until the next stop that is not a plain syscall stop elsewhere.
Result<Stop> next_stop(Tracee& t, CompletionMode mode) {
  TRY(mode == CompletionMode::Breakpoint ? t.cont() : t.resume_syscall());
  return t.wait();
}

Result<void> complete_at_breakpoint(Tracee& t, const CompletionSite& site, const FinalState& fin,
                                    const StrayStopExplainer& explain) {
  Stop s = TRY(next_stop(t, CompletionMode::Breakpoint));
  if (s.sig() != SIGTRAP) return std::unexpected(explain(t, s));
  siginfo_t si = TRY(t.siginfo());
  arch::Regs regs = TRY(t.regs());
  if (si.si_code != arch::kTrapHwBkpt || regs.rip != site.sigreturn_fn) return std::unexpected(explain(t, s));
  // Clear it now: a leftover breakpoint would hang the next dump (pitfall 6).
  TRY(disarm_breakpoint(t));
  TRY(unmap_blob(t, regs, site));
  TRY(t.set_xstate(fin.xsave));
  arch::Regs r = fin.regs;
  r.orig_rax = static_cast<uint64_t>(-1);  // as after rt_sigreturn: no restart
  TRY(t.set_regs(r));
  TRY(t.set_blocked(fin.sigmask));
  return {};
}

Result<void> complete_by_tracing(Tracee& t, const CompletionSite& site, const StrayStopExplainer& explain) {
  const uint64_t after_sigreturn = site.syscall_insn + arch::kSyscallInsnLen;
  for (;;) {
    Stop s = TRY(next_stop(t, CompletionMode::SyscallTrace));
    if (!s.syscall_stop()) return std::unexpected(explain(t, s));
    arch::Regs regs = TRY(t.regs());
    if (arch::syscall_nr(regs) != arch::kNrRtSigreturn || regs.rip != after_sigreturn) continue;
    // The entry stop of our rt_sigreturn: one more step and the kernel has
    // loaded the frame.
    TRY(t.resume_syscall());
    s = TRY(t.wait());
    if (!s.syscall_stop()) return std::unexpected(explain(t, s));
    arch::Regs fin = TRY(t.regs());
    TRY(unmap_blob(t, fin, site));
    return t.set_regs(fin);
  }
}

}  // namespace

BreakpointSupport probe_breakpoints() {
  pid_t child = fork();
  if (child < 0) return {false, fmt::format("fork for the probe: {}", strerror(errno))};
  if (child == 0) {
    for (;;) pause();
  }
  BreakpointSupport out;
  auto probe = [&]() -> Result<void> {
    Tracee t = TRY(Tracee::seize(child));
    TRY(t.interrupt());
    TRY(t.wait());
    Armed a = TRY(arm_breakpoint(t, reinterpret_cast<uint64_t>(&probe_breakpoints)));
    if (a == Armed::Unsupported) return fail("the kernel refused or dropped the debug register values");
    return disarm_breakpoint(t);
  };
  auto r = probe();
  kill(child, SIGKILL);
  waitpid(child, nullptr, 0);
  if (r) out.usable = true;
  else out.why_not = r.error().str();
  return out;
}

Result<Armed> arm_breakpoint(Tracee& t, uint64_t addr) {
  // EINVAL/EIO from the kernel (no debug registers for us, a hypervisor that
  // refuses them) means unsupported; anything else is a real error.
  auto unsupported = [](const Error& e) { return e.err == EINVAL || e.err == EIO || e.err == EPERM; };
  if (auto r = t.poke_user(arch::debugreg_offset(0), addr); !r) {
    if (unsupported(r.error())) return Armed::Unsupported;
    return std::unexpected(r.error());
  }
  if (auto r = t.poke_user(arch::debugreg_offset(7), arch::kDr7EnableDr0Exec); !r) {
    (void)t.poke_user(arch::debugreg_offset(0), 0);
    if (unsupported(r.error())) return Armed::Unsupported;
    return std::unexpected(r.error());
  }
  uint64_t dr7 = TRY(t.peek_user(arch::debugreg_offset(7)));
  if (!(dr7 & arch::kDr7EnableDr0Exec)) return Armed::Unsupported;
  return Armed::Yes;
}

Result<void> disarm_breakpoint(Tracee& t) {
  TRY(t.poke_user(arch::debugreg_offset(7), 0));
  return t.poke_user(arch::debugreg_offset(0), 0);
}

Result<unsigned> complete(Tracee& t, CompletionMode mode, const CompletionSite& site, const FinalState& fin,
                          const StrayStopExplainer& explain) {
  unsigned before = t.stops();
  if (mode == CompletionMode::Breakpoint) TRY(complete_at_breakpoint(t, site, fin, explain));
  else TRY(complete_by_tracing(t, site, explain));
  return t.stops() - before;
}

}  // namespace ckpt
