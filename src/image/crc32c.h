// CRC-32C (Castagnoli), the checksum of every image. Uses the SSE4.2 crc32
// instruction when the CPU has it (about 8 bytes a cycle), a table otherwise.
#pragma once

#include <cstddef>
#include <cstdint>

namespace ckpt {

uint32_t crc32c(uint32_t crc, const void* data, size_t len);
inline uint32_t crc32c(const void* data, size_t len) { return crc32c(0, data, len); }

}  // namespace ckpt
