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
};

// Bytes of a sigframe meant to sit at address `at` (16-byte aligned) in the
// task; the rsp to use at rt_sigreturn is at + rt_sigframe_rsp_offset().
Result<std::vector<uint8_t>> build_rt_sigframe(uint64_t at, const Regs& regs, std::span<const uint8_t> xsave,
                                               uint64_t sigmask, const AltStackState& altstack);
uint64_t rt_sigframe_rsp_offset();

}  // namespace ckpt::arch
