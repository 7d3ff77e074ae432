#include "arch/x86_64/xsave.h"

#include <cpuid.h>
#include <sys/platform/x86.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstring>

#include "arch/x86_64/cpu_features.h"

namespace ckpt::arch {

namespace {

// CPUID leaf 0xD, each sub-leaf read once, and only when asked: in a VM
// every CPUID traps to the hypervisor (6.4 us each on the Firecracker guest
// here), and dump and restore ask for every thread. Sub-leaf 0 gives the size
// for every component the kernel enabled (XCR0), which is all a restore and
// most dumps need; a component's own end is asked for only for a set of
// components short of XCR0. No task can hold a component XCR0 lacks, and a
// checkpoint that uses one this machine lacks is refused before its xsave is
// loaded (image/cpu.h). OSXSAVE is glibc's record (cpu_features.cc).
struct XcrLayout {
  uint64_t xcr0 = 0x3;   // x87 and SSE only without OSXSAVE (no XGETBV)
  uint32_t regset = 0;   // EBX of sub-leaf 0: the size for all of XCR0
};

const XcrLayout& xcr_layout() {
  static const XcrLayout l = [] {
    XcrLayout out;
    if (!CPU_FEATURE_PRESENT(OSXSAVE)) return out;  // the legacy area only
    unsigned eax, ebx, ecx, edx;
    __cpuid_count(0xd, 0, eax, ebx, ecx, edx);
    out.regset = ebx;
    out.xcr0 = read_xcr0();
    return out;
  }();
  return l;
}

// The end (offset + size) of component i, 2 <= i < 63, enabled in XCR0.
// Racing threads both ask the CPU and store the same answer.
uint32_t component_end(int i) {
  static std::array<std::atomic<uint32_t>, 63> ends{};  // 0: not asked yet
  uint32_t end = ends[i].load(std::memory_order_relaxed);
  if (end == 0) {
    unsigned eax, ebx, ecx, edx;
    __cpuid_count(0xd, i, eax, ebx, ecx, edx);
    end = ebx + eax;
    ends[i].store(end, std::memory_order_relaxed);
  }
  return end;
}

}  // namespace

size_t xsave_size_for(uint64_t features) {
  const XcrLayout& l = xcr_layout();
  features &= l.xcr0;
  if (features == l.xcr0 && l.xcr0 >> 2) return std::max<size_t>(kXsaveMinSize, l.regset);
  size_t end = kXsaveMinSize;
  for (int i = 2; i < 63; i++)
    if (features & (1ULL << i)) end = std::max<size_t>(end, component_end(i));
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

size_t xsave_regset_size() { return xcr_layout().regset; }

}  // namespace ckpt::arch
