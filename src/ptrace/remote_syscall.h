// Remote syscalls: make a stopped tracee execute syscalls of our choosing.
//
// run_syscall() is the primitive: registers pointed at a syscall instruction,
// PTRACE_SYSCALL to the entry stop and again to the exit stop, result in rax.
// It leaves the registers as the exit stop has them; callers that care put
// their own back. RemoteSyscalls is the RAII scope that does that for them
// (rr's AutoRemoteSyscalls):
//
//   1. save registers and signal mask; block every signal, so that a signal
//      queued while we work stays pending instead of hijacking our syscall;
//   2. run any number of syscalls;
//   3. unmap the scratch page if one was made, put registers and mask back.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <optional>

#include "base/owed.h"
#include "base/result.h"
#include "ptrace/tracee.h"

namespace ckpt {

// Runs one syscall in a tracee that sits in a ptrace-stop, starting from
// `base` registers. Returns the raw kernel result (-errno on failure).
Result<long> run_syscall(Tracee& t, arch::Regs base, uint64_t insn, long nr, std::initializer_list<uint64_t> args);

class RemoteSyscalls {
 public:
  // `insn`: address of a syscall instruction mapped executable in the task.
  // `shared_scratch`: another thread's scratch page in the same address space,
  // used (not owned) instead of mapping one.
  static Result<RemoteSyscalls> begin(Tracee& t, uint64_t insn, std::optional<uint64_t> shared_scratch = {});
  RemoteSyscalls(RemoteSyscalls&& o) noexcept = default;
  RemoteSyscalls& operator=(RemoteSyscalls&&) = delete;
  ~RemoteSyscalls();

  // Raw kernel result; an Error only when ptrace itself failed.
  Result<long> call(long nr, std::initializer_list<uint64_t> args);
  // Like call(), but a negative result becomes an Error naming `what`.
  Result<uint64_t> must(std::string_view what, long nr, std::initializer_list<uint64_t> args);
  // A page of the task's memory for syscall arguments (mapped on first use).
  Result<uint64_t> scratch();
  // Puts everything back; the destructor does it too, ignoring errors.
  Result<void> end();

  const arch::Regs& saved_regs() const { return saved_; }

 private:
  RemoteSyscalls(Tracee& t, uint64_t insn, arch::Regs saved, uint64_t mask)
      : t_(&t), insn_(insn), saved_(saved), saved_mask_(mask) {}
  Tracee* t_;
  uint64_t insn_;
  arch::Regs saved_;
  uint64_t saved_mask_;
  std::optional<uint64_t> scratch_;
  bool owns_scratch_ = true;
  Owed active_{true};  // registers and mask to put back
};

// Address of a syscall instruction in the task's [vdso]: the vDSO is the
// same kernel image in ckpt and in the task, so ckpt finds the bytes in its
// own copy and adds the task's vDSO base.
Result<uint64_t> find_vdso_syscall(uint64_t task_vdso_start);

}  // namespace ckpt
