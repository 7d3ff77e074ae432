#include "image/crc32c.h"

#include <sys/platform/x86.h>

#include <array>
#include <cstring>


namespace ckpt {

namespace {

constexpr std::array<uint32_t, 256> make_table() {
  std::array<uint32_t, 256> t{};
  for (uint32_t i = 0; i < 256; i++) {
    uint32_t c = i;
    for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    t[i] = c;
  }
  return t;
}
constexpr auto kTable = make_table();

uint32_t crc_table(uint32_t c, const uint8_t* p, size_t n) {
  while (n--) c = kTable[(c ^ *p++) & 0xff] ^ (c >> 8);
  return c;
}

__attribute__((target("sse4.2"))) uint32_t crc_hw(uint32_t c, const uint8_t* p, size_t n) {
  uint64_t c64 = c;
  while (n >= 8) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    c64 = __builtin_ia32_crc32di(c64, v);
    p += 8;
    n -= 8;
  }
  c = static_cast<uint32_t>(c64);
  while (n--) c = __builtin_ia32_crc32qi(c, *p++);
  return c;
}

}  // namespace

uint32_t crc32c(uint32_t crc, const void* data, size_t len) {
  // glibc's record of the CPU, read at load: __builtin_cpu_supports would
  // link libgcc's constructor, a dozen CPUIDs at every start (7.7 us each on
  // this guest, where CPUID traps).
  static const bool hw = CPU_FEATURE_ACTIVE(SSE4_2);
  auto* p = static_cast<const uint8_t*>(data);
  crc = ~crc;
  crc = hw ? crc_hw(crc, p, len) : crc_table(crc, p, len);
  return ~crc;
}

}  // namespace ckpt
