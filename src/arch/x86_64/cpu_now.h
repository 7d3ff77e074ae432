// The CPU a thread runs on, read in user space without a syscall: Linux
// keeps (node << 12 | cpu) in the limit of a per-CPU GDT entry, which its
// vDSO's getcpu reads the same way. Freestanding (the blobs use it). The
// thread may move right after: a hint, never a fact to rely on.
#pragma once

#include <cstdint>

namespace ckpt::arch {

inline constexpr uint32_t kNoCpu = ~0u;

inline uint32_t cpu_now() {
  constexpr uint32_t kCpuNodeSelector = 15 * 8 + 3;  // GDT entry 15 (GDT_ENTRY_CPUNODE), user privilege
  uint32_t limit = kNoCpu;                           // left as is if the selector is not valid
  asm volatile("lsl %1, %0" : "+r"(limit) : "r"(kCpuNodeSelector) : "cc");
  return limit == kNoCpu ? kNoCpu : limit & 0xfff;
}

}  // namespace ckpt::arch
