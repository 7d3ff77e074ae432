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
//   3. put registers and mask back.
//
// ckpt can be killed at any moment, and the kernel then lets its tracees run
// from whatever registers they hold. So where the task has signal-restorer
// code (SyscallSite::sigreturn), the scope makes every state it leaves the
// thread in one it can leave on its own:
//
//   stack:  | thread's own data |<- rsp
//           | red zone (128)    |
//           | rt_sigframe       |   the thread's own registers, xsave, mask
//           | scratch (4 KiB)   |   syscall arguments (no scratch mapping)
//
//   - at rest between syscalls the thread sits at the restorer code with rsp
//     on that frame: left alone, it runs rt_sigreturn back into itself;
//   - each syscall starts as that rt_sigreturn; at its entry stop ckpt turns
//     it into the syscall it wants (orig_rax and arguments) and points rip
//     back at the restorer code, so the syscall, finished with or without
//     ckpt, returns into rt_sigreturn as well.
//
// Killed mid-way, ckpt leaves at most the effect of the syscalls that ran
// (what the next dump's leftovers step removes), never a lost thread.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <span>
#include <vector>

#include "base/owed.h"
#include "base/result.h"
#include "proc/maps.h"
#include "ptrace/tracee.h"

namespace ckpt {

// Where a tracee can be made to run syscalls.
struct SyscallSite {
  RemoteAddr insn;       // a syscall instruction (in the [vdso])
  RemoteAddr sigreturn;  // signal-restorer code outside ckpt's own mappings; null: none found
};

// ckpt's own file-backed code, for finding signal-restorer code: the task's
// libc is nearly always ckpt's, so the code is searched for in ckpt's copy,
// once per file however many tasks map it, and only checked in the task's.
class OwnCode {
 public:
  static Result<OwnCode> read();
  // Where in the file `m` of the task maps the code lies, if ckpt maps the
  // same file and found it there.
  std::optional<uint64_t> sigreturn_offset(const proc::MapEntry& m);

 private:
  struct Mapped {
    proc::MapEntry map;
    bool searched = false;
    std::optional<uint64_t> file_off;  // of the code, once searched: none if not there
  };
  std::vector<Mapped> mapped_;
};

// Finds both in the task's mappings, `maps` (its /proc/PID/maps, read since
// it stopped; the parasite's own, which ckpt unmaps, are never chosen). One
// OwnCode serves every task of a dump.
Result<SyscallSite> find_syscall_site(Tracee& t, OwnCode& own, std::span<const proc::MapEntry> maps);
Result<SyscallSite> find_syscall_site(Tracee& t);

// Runs one syscall in a tracee that sits in a ptrace-stop, starting from
// `base` registers. Returns the raw kernel result (-errno on failure).
Result<long> run_syscall(Tracee& t, arch::Regs base, RemoteAddr insn, long nr, std::initializer_list<uint64_t> args);

class RemoteSyscalls {
 public:
  static Result<RemoteSyscalls> begin(Tracee& t, const SyscallSite& site);
  RemoteSyscalls(RemoteSyscalls&& o) noexcept = default;
  RemoteSyscalls& operator=(RemoteSyscalls&&) = delete;
  ~RemoteSyscalls();

  // Raw kernel result; an Error only when ptrace itself failed.
  Result<long> call(long nr, std::initializer_list<uint64_t> args);
  // Like call(), but a negative result becomes an Error naming `what`.
  Result<uint64_t> must(std::string_view what, long nr, std::initializer_list<uint64_t> args);
  // A page of the task's memory for syscall arguments: below the frame on
  // its stack, else mapped on first use.
  Result<RemoteAddr> scratch();
  // Would the thread, left alone now, return into its own state?
  bool kill_safe() const { return way_back_.has_value(); }
  // Puts everything back; the destructor does it too, ignoring errors.
  Result<void> end();

  const arch::Regs& saved_regs() const { return saved_; }

 private:
  RemoteSyscalls(Tracee& t, const SyscallSite& site, arch::Regs saved, uint64_t mask)
      : t_(&t), site_(site), saved_(saved), saved_mask_(mask) {}
  Result<void> put_way_back();
  Result<long> call_safely(long nr, std::initializer_list<uint64_t> args);
  Tracee* t_;
  SyscallSite site_;
  arch::Regs saved_;
  uint64_t saved_mask_;
  // The thread at rest: rip on the restorer code, rsp on its frame.
  std::optional<arch::Regs> way_back_;
  bool at_rest_ = false;  // stopped with way_back_ registers, before an entry
  std::optional<RemoteAddr> scratch_;
  bool owns_scratch_ = false;
  Owed active_{true};  // registers and mask to put back
};


}  // namespace ckpt
