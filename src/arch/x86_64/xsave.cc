#include "arch/x86_64/xsave.h"

#include <cpuid.h>

#include <algorithm>
#include <cstring>

namespace ckpt::arch {

size_t xsave_size_for(uint64_t features) {
  size_t end = kXsaveMinSize;
  for (int i = 2; i < 63; i++) {
    if (!(features & (1ULL << i))) continue;
    unsigned size, offset, ecx, edx;
    __cpuid_count(0xd, i, size, offset, ecx, edx);
    end = std::max<size_t>(end, offset + size);
  }
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

size_t xsave_regset_size() {
  unsigned eax, ebx, ecx, edx;
  __cpuid_count(0xd, 0, eax, ebx, ecx, edx);
  return ebx;
}

}  // namespace ckpt::arch
