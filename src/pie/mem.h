// Memory steps the freestanding blobs share (the restorer, the spawner).
#pragma once

#include <asm/unistd.h>
#include <stdint.h>

#include "arch/x86_64/page.h"
#include "pie/sys.h"

namespace pie {

inline void copy(uint64_t dst, const void* src, uint64_t n) {
  asm volatile("rep movsb" : "+D"(dst), "+S"(src), "+c"(n) : : "memory");
}

// [addr, addr + len) faulted in at once for writing (MADV_POPULATE_WRITE,
// Linux 5.14): one call where a first touch a page is dear. Best effort:
// without it, the writes fault as ever.
inline void populate(uint64_t addr, uint64_t len) {
  constexpr int kMadvPopulateWrite = 23;
  (void)sys(__NR_madvise, addr, ckpt::arch::page_up(len), kMadvPopulateWrite);
}

// Unmaps all of the user address space but the `n` ranges of `keep`
// (sorted by start; they may overlap). Returns 0, or the failed munmap's
// negative errno with its range in *at and *len.
inline long unmap_all_but(const uint64_t (*keep)[2], uint32_t n, uint64_t* at, uint64_t* len) {
  uint64_t cur = 0;
  for (uint32_t i = 0; i <= n; i++) {
    const uint64_t next = i < n ? keep[i][0] : ckpt::arch::kTaskSizeMax;
    if (next > cur)
      if (long r = sys(__NR_munmap, cur, next - cur); is_err(r)) {
        *at = cur;
        *len = next - cur;
        return r;
      }
    if (i < n && keep[i][1] > cur) cur = keep[i][1];
  }
  return 0;
}

}  // namespace pie
