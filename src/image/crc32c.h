// CRC-32C (Castagnoli), the checksum of every image: arch/x86_64/crc32c.h,
// with the SSE4.2 crc32 instruction where the CPU has it.
#pragma once

#include <cstddef>
#include <cstdint>

namespace ckpt {

// Does this CPU have the crc32 instruction? What ckpt tells the blobs.
bool crc32c_hw();

uint32_t crc32c(uint32_t crc, const void* data, size_t len);
inline uint32_t crc32c(const void* data, size_t len) { return crc32c(0, data, len); }

}  // namespace ckpt
