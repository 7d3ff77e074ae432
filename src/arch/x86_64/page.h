// Pages and the user address space of x86_64: facts generic code asks for
// instead of writing 4096 (aarch64 would answer 4, 16 or 64 KiB here).
#pragma once

#include <cstdint>

namespace ckpt::arch {

// The base page: the unit of mappings, of pagemap entries and of the pages image.
inline constexpr uint64_t kPageSize = 4096;
// The user address space with 4-level page tables is [0, kTaskSize); nothing
// ckpt dumps lies above it.
inline constexpr uint64_t kTaskSize = uint64_t{1} << 47;
// The kernel's TASK_SIZE_MAX: the page below kTaskSize is never mapped
// (arch/x86/include/asm/page_64_types.h).
inline constexpr uint64_t kTaskSizeMax = kTaskSize - kPageSize;

constexpr uint64_t page_up(uint64_t n) { return (n + kPageSize - 1) & ~(kPageSize - 1); }
constexpr uint64_t page_down(uint64_t n) { return n & ~(kPageSize - 1); }

}  // namespace ckpt::arch
