// x86_64 debug registers as ptrace sees them (struct user.u_debugreg).
// DR0 holds the address; DR7 enables it: L0 (bit 0), R/W0 = 00 (instruction
// execution) and LEN0 = 00 (1 byte), as the SDM requires for execute breakpoints.
#pragma once

#include <sys/user.h>

#include <cstddef>
#include <cstdint>

namespace ckpt::arch {

inline constexpr size_t debugreg_offset(int n) { return offsetof(struct user, u_debugreg) + n * sizeof(long); }
inline constexpr uint64_t kDr7EnableDr0Exec = 0x1;
inline constexpr int kTrapHwBkpt = 4;  // si_code of a hardware breakpoint SIGTRAP (TRAP_HWBKPT)

}  // namespace ckpt::arch
