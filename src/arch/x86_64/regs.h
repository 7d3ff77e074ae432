// x86_64 register facts: the syscall ABI as data, restart rules, conversion
// of user_regs_struct to and from the image.
#pragma once

#include <sys/user.h>

#include <cstdint>
#include <span>
#include <string>

namespace ckpt::img {
class GpRegs;
}

namespace ckpt::arch {

using Regs = user_regs_struct;

inline constexpr unsigned kSyscallInsnLen = 2;  // 0f 05
inline constexpr uint8_t kSyscallInsn[kSyscallInsnLen] = {0x0f, 0x05};
inline constexpr unsigned kInt3Len = 1;  // cc: a trap stops with rip past it
inline constexpr long kNrRtSigreturn = 15;
inline constexpr long kNrRestartSyscall = 219;
inline constexpr uint64_t kUserCs64 = 0x33;  // __USER_CS: the task runs 64-bit code
inline constexpr uint64_t kUserSs = 0x2b;    // __USER_DS: the only stack selector of a 64-bit task
// The x86_64 user half with 4-level page tables: a rip at or above it is
// either non-canonical or a kernel address, and faults at the first fetch.
inline constexpr uint64_t kUserAddressEnd = 1ULL << 47;

// EFLAGS bits a user task can hold: the arithmetic flags, bit 1 (always set),
// IF (always set in user mode), DF, RF, AC and ID (both settable by popf).
// Everything else is either reserved or privileged (IOPL, NT, VM, VIF, VIP),
// or TF, which would trap the task at its first instruction: never in a
// dumped task, whose trace flag the kernel hides from ptrace.
inline constexpr uint64_t kEflagsUserBits = 0x1 | 0x2 | 0x4 | 0x10 | 0x40 | 0x80 | 0x200 | 0x400 | 0x800 |
                                            0x10000 | 0x40000 | 0x200000;
// "TF|IOPL|reserved" for the bits of `bits` outside kEflagsUserBits.
std::string eflags_names(uint64_t bits);

// Point regs at a syscall instruction so that resuming runs `nr(args...)`.
// orig_rax = -1 keeps the kernel's restart logic away from these registers.
void setup_syscall(Regs& regs, uint64_t insn, long nr, std::span<const uint64_t> args);
inline long syscall_result(const Regs& regs) { return static_cast<long>(regs.rax); }
inline long syscall_nr(const Regs& regs) { return static_cast<long>(regs.orig_rax); }

// A task stopped inside an interruptible syscall holds -ERESTART* in rax. Rewind
// it as the kernel would when no handler runs, so that the dumped registers
// re-enter the syscall wherever and however they are resumed (pitfall 8).
//
// -ERESTART_RESTARTBLOCK (nanosleep, clock_nanosleep, poll, futex waits with
// a timeout) continues through restart_syscall and the task's kernel-side
// restart block. That block survives only in the same task (InPlace); a
// restored task has none, so there the original syscall runs again with its
// original arguments (Reexecute): a relative timeout starts over, an absolute
// one is exact, and nothing returns a spurious EINTR.
enum class Restart { InPlace, Reexecute };
// Returns true when the registers were changed.
bool rewind_restartable_syscall(Regs& regs, Restart how);

void to_image(const Regs& regs, img::GpRegs* out);
Regs from_image(const img::GpRegs& in);

}  // namespace ckpt::arch
