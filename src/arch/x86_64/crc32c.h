// CRC-32C (Castagnoli), the checksum of every image and page run, for ckpt
// and the freestanding blobs alike (header only, no libc): initial value 0,
// bits inverted on the way in and out.
//
// With SSE4.2 (`hw`, which the caller learned from the CPU: ckpt from
// glibc's record of it, a blob from its arguments, as CPUID traps on some
// hypervisors) the crc32 instruction does 8 bytes a step. It takes 3 cycles
// and can start one per cycle, so one chain of it runs at a third of what
// the core can do: blocks of 3 x kStream bytes are summed as three chains
// at once and joined by the linearity of the CRC register: for data A|B,
//   crc(A|B) = crc(A) * x^(8|B|) mod P  ^  crc_from_0(B),
// where the product is carry-less, mod the (bit-reflected) polynomial.
// Without it, a table a byte a step (~10x slower).
#pragma once

#include <stdint.h>

namespace ckpt::arch {

inline constexpr uint32_t kCrc32cPoly = 0x82f63b78;  // reflected; bit 31 is x^0

// a * b mod P, both reflected.
constexpr uint32_t crc32c_mulmod(uint32_t a, uint32_t b) {
  uint32_t p = 0;
  for (uint32_t m = 1u << 31; m; m >>= 1) {
    if (a & m) p ^= b;
    b = (b & 1) ? (b >> 1) ^ kCrc32cPoly : b >> 1;
  }
  return p;
}

// x^(8 n) mod P: what shifting a CRC register over n zero bytes multiplies it by.
constexpr uint32_t crc32c_shift(uint64_t n) {
  uint32_t r = 1u << 31, sq = 1u << 23;  // x^0, x^8
  for (; n; n >>= 1) {
    if (n & 1) r = crc32c_mulmod(r, sq);
    sq = crc32c_mulmod(sq, sq);
  }
  return r;
}

struct Crc32cTable {
  uint32_t t[256];
};
constexpr Crc32cTable crc32c_make_table() {
  Crc32cTable t{};
  for (uint32_t i = 0; i < 256; i++) t.t[i] = crc32c_mulmod(i, 1u << 23);  // a byte times x^8
  return t;
}
inline constexpr Crc32cTable kCrc32cTable = crc32c_make_table();

// The register `c` (inverted) over n bytes, one table step a byte.
inline uint32_t crc32c_table(uint32_t c, const uint8_t* p, uint64_t n) {
  for (; n > 0; p++, n--) c = kCrc32cTable.t[(c ^ *p) & 0xff] ^ (c >> 8);
  return c;
}

// The same with the crc32 instruction, one chain.
inline uint64_t crc32c_chain(uint64_t c, const uint8_t* p, uint64_t n) {
  for (; n >= 8; p += 8, n -= 8) asm("crc32q %1, %0" : "+r"(c) : "m"(*reinterpret_cast<const uint64_t*>(p)));
  for (; n > 0; p++, n--) asm("crc32b %1, %k0" : "+r"(c) : "m"(*p));
  return c;
}

// The same, three chains at once over each block.
inline uint32_t crc32c_sse42(uint32_t c32, const uint8_t* p, uint64_t n) {
  constexpr uint64_t kStream = 2048;
  constexpr uint32_t kShift = crc32c_shift(kStream);
  uint64_t c = c32;
  for (; n >= 3 * kStream; p += 3 * kStream, n -= 3 * kStream) {
    uint64_t c0 = c, c1 = 0, c2 = 0;
    const uint8_t* q = p;
    for (uint64_t i = 0; i < kStream; i += 8, q += 8) {
      asm("crc32q %1, %0" : "+r"(c0) : "m"(*reinterpret_cast<const uint64_t*>(q)));
      asm("crc32q %1, %0" : "+r"(c1) : "m"(*reinterpret_cast<const uint64_t*>(q + kStream)));
      asm("crc32q %1, %0" : "+r"(c2) : "m"(*reinterpret_cast<const uint64_t*>(q + 2 * kStream)));
    }
    c = crc32c_mulmod(crc32c_mulmod(static_cast<uint32_t>(c0), kShift) ^ static_cast<uint32_t>(c1), kShift) ^
        static_cast<uint32_t>(c2);
  }
  return static_cast<uint32_t>(crc32c_chain(c, p, n));
}

inline uint32_t crc32c(uint32_t crc, const uint8_t* p, uint64_t n, bool hw) {
  return ~(hw ? crc32c_sse42(~crc, p, n) : crc32c_table(~crc, p, n));
}

}  // namespace ckpt::arch
