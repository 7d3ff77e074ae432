// The instruction-set features a process can rely on: what CPUID tells it
// (it runs CPUID itself, no kernel in between), and the xsave components
// the kernel enabled (XCR0). A checkpoint records the dumping machine's; a
// restore on a machine that lacks one of them would end in SIGILL or a
// corrupt register state later, so it is refused up front.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace ckpt::arch {

// The CPUID registers that carry user-visible instruction-set bits, in the
// order `kCpuidWords` lists them.
inline constexpr size_t kCpuidWordCount = 9;

struct CpuFeatures {
  std::array<uint32_t, kCpuidWordCount> cpuid{};
  uint64_t xcr0 = 0;  // xsave components the kernel enabled
};

CpuFeatures host_cpu_features();

// XCR0, the xsave components the kernel enabled. Only where CPUID.1:ECX
// has OSXSAVE: XGETBV is undefined elsewhere.
inline uint64_t read_xcr0() {
  uint32_t lo, hi;
  asm volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (uint64_t{hi} << 32) | lo;
}

// The names of what `want` has and `have` lacks: instruction-set features
// (only the named ones: bits such as "hypervisor" or the APIC id differ
// between machines without a process noticing) and the xsave components of
// `xfeatures_in_use` that `have.xcr0` lacks.
std::vector<std::string> missing_cpu_features(const CpuFeatures& want, uint64_t xfeatures_in_use,
                                              const CpuFeatures& have);

}  // namespace ckpt::arch
