// Which SIGTRAP stops are the completion's breakpoint (ptrace/completion.h,
// at_our_breakpoint): a trap the kernel raised exactly at the breakpoint's
// address, whatever DR6 said; never a signal someone sent, nor a trap
// anywhere else.
#include <signal.h>

#include <gtest/gtest.h>

#include "ptrace/completion.h"

namespace ckpt {
namespace {

siginfo_t trap(int code) {
  siginfo_t si{};
  si.si_signo = SIGTRAP;
  si.si_code = code;
  return si;
}

constexpr uint64_t kAt = 0x100000016;

TEST(BreakpointTrap, KernelTrapAtTheAddressIsOurs) {
  EXPECT_TRUE(at_our_breakpoint(trap(TRAP_HWBKPT), kAt, RemoteAddr(kAt)));
  EXPECT_TRUE(at_our_breakpoint(trap(TRAP_BRKPT), kAt, RemoteAddr(kAt)));  // DR6 lost
  EXPECT_TRUE(at_our_breakpoint(trap(SI_KERNEL), kAt, RemoteAddr(kAt)));
}

TEST(BreakpointTrap, SentSignalOrOtherAddressIsNot) {
  EXPECT_FALSE(at_our_breakpoint(trap(SI_USER), kAt, RemoteAddr(kAt)));   // kill()
  EXPECT_FALSE(at_our_breakpoint(trap(SI_TKILL), kAt, RemoteAddr(kAt)));  // tgkill()
  EXPECT_FALSE(at_our_breakpoint(trap(SI_QUEUE), kAt, RemoteAddr(kAt)));
  EXPECT_FALSE(at_our_breakpoint(trap(TRAP_HWBKPT), kAt + 1, RemoteAddr(kAt)));
  EXPECT_FALSE(at_our_breakpoint(trap(TRAP_BRKPT), kAt + 1, RemoteAddr(kAt)));  // an int3 just before
}

}  // namespace
}  // namespace ckpt
