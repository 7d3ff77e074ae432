#include "image/crc32c.h"

#include <sys/platform/x86.h>

#include "arch/x86_64/crc32c.h"

namespace ckpt {

bool crc32c_hw() {
  // glibc's record of the CPU, read at load: __builtin_cpu_supports would
  // link libgcc's constructor, a dozen CPUIDs at every start (7.7 us each on
  // this guest, where CPUID traps). GLIBC_TUNABLES=glibc.cpu.hwcaps=-SSE4_2
  // turns it off (the tests' way to the table).
  return CPU_FEATURE_ACTIVE(SSE4_2);
}

uint32_t crc32c(uint32_t crc, const void* data, size_t len) {
  static const bool hw = crc32c_hw();
  return arch::crc32c(crc, static_cast<const uint8_t*>(data), len, hw);
}

}  // namespace ckpt
