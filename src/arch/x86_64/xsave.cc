#include "arch/x86_64/xsave.h"

#include <cpuid.h>
#include <sys/platform/x86.h>

#include <algorithm>
#include <array>
#include <cstring>

#include "arch/x86_64/cpu_features.h"

namespace ckpt::arch {

namespace {

// CPUID leaf 0xD, read once and never changed: in a VM every CPUID traps to
// the hypervisor (3.7 us each on the Firecracker guest here), and dump and
// restore ask for every thread. Only the components the kernel enabled
// (XCR0) are asked for: no task can hold any other, and a checkpoint that
// uses one this machine lacks is refused before its xsave is loaded
// (image/cpu.h). 6 CPUIDs on this guest instead of 62 (OSXSAVE is glibc's
// record: cpu_features.cc).
struct XsaveLayout {
  std::array<uint32_t, 63> end{};  // of component i (0 where the kernel enabled none)
  uint32_t regset = 0;             // EBX of sub-leaf 0
};

const XsaveLayout& layout() {
  static const XsaveLayout l = [] {
    XsaveLayout out;
    unsigned eax, ebx, ecx, edx;
    if (!CPU_FEATURE_PRESENT(OSXSAVE)) return out;  // no XGETBV; the legacy area only
    __cpuid_count(0xd, 0, eax, ebx, ecx, edx);
    out.regset = ebx;
    const uint64_t xcr0 = read_xcr0();
    for (int i = 2; i < 63; i++) {
      if (!(xcr0 >> i & 1)) continue;
      __cpuid_count(0xd, i, eax, ebx, ecx, edx);
      out.end[i] = ebx + eax;  // offset + size
    }
    return out;
  }();
  return l;
}

}  // namespace

size_t xsave_size_for(uint64_t features) {
  size_t end = kXsaveMinSize;
  for (int i = 2; i < 63; i++)
    if (features & (1ULL << i)) end = std::max<size_t>(end, layout().end[i]);
  return end;
}

uint64_t xsave_state_bv(std::span<const uint8_t> xsave) {
  uint64_t bv = 0;
  if (xsave.size() >= kXsaveHeaderOffset + sizeof bv) std::memcpy(&bv, xsave.data() + kXsaveHeaderOffset, sizeof bv);
  return bv;
}

size_t xsave_used_size(std::span<const uint8_t> xsave) {
  return std::min(xsave.size(), xsave_size_for(xsave_state_bv(xsave)));
}

size_t xsave_regset_size() { return layout().regset; }

}  // namespace ckpt::arch
