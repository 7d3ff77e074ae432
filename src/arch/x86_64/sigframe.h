// The x86_64 rt_sigframe that rt_sigreturn consumes, built from dumped state.
//
//   frame ->  +--------------------+
//             | pretcode (8)       |   rt_sigreturn reads the frame at rsp-8,
//   rsp   ->  | ucontext           |   so rsp must point at the ucontext
//             |   uc_mcontext      |--+ fpstate pointer
//             |   uc_sigmask       |  |
//             | siginfo (128)      |  |
//             +--------------------+  |
//             | xsave area, 64-byte|<-+ sw_reserved bytes filled, and
//             | aligned, + magic2  |    FP_XSTATE_MAGIC2 after xstate_size
//             +--------------------+    (pitfall 1: else AVX state is lost)
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "arch/x86_64/regs.h"
#include "base/result.h"

namespace ckpt::arch {

struct AltStackState {
  uint64_t sp = 0;
  int32_t flags = 2;  // SS_DISABLE
  uint64_t size = 0;
  // For a frame built without knowing the thread's sigaltstack: rt_sigreturn
  // passes uc_stack to do_sigaltstack(), which refuses SS_ONSTACK|SS_DISABLE
  // with EINVAL and leaves the thread's own sigaltstack as it is.
  static AltStackState unchanged() { return {0, 3, 0}; }
};

// Code that runs rt_sigreturn on the frame at rsp: the signal restorers of
// glibc and musl (`mov $15, %rax; syscall`) and Go's (`mov $15, %eax;
// syscall`). Any process that handles signals has one mapped.
inline constexpr uint8_t kSigreturnCodeRax[] = {0x48, 0xc7, 0xc0, 0x0f, 0x00, 0x00, 0x00, 0x0f, 0x05};
inline constexpr uint8_t kSigreturnCodeEax[] = {0xb8, 0x0f, 0x00, 0x00, 0x00, 0x0f, 0x05};

// Bytes of a sigframe meant to sit at address `at` (16-byte aligned) in the
// task; the rsp to use at rt_sigreturn is at + rt_sigframe_rsp_offset().
Result<std::vector<uint8_t>> build_rt_sigframe(uint64_t at, const Regs& regs, std::span<const uint8_t> xsave,
                                               uint64_t sigmask, const AltStackState& altstack);
uint64_t rt_sigframe_rsp_offset();

}  // namespace ckpt::arch
