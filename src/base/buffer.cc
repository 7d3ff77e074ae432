#include "base/buffer.h"

#include <sys/mman.h>

#include <cstdint>

namespace ckpt {

Result<Buffer> Buffer::make(size_t len) {
  Buffer b;
  b.size_ = len;
  if (len < kHugeFrom) {
    b.small_.resize_and_overwrite(len, [](char*, size_t n) { return n; });
    return b;
  }
  // Mapped with a huge page's worth to spare, then trimmed to whole huge
  // pages on their boundary: the kernel puts huge pages only there.
  const size_t want = (len + kHugePage - 1) & ~(kHugePage - 1);
  void* p = ::mmap(nullptr, want + kHugePage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return sys_error("mmap a buffer of {} bytes", len);
  char* const base = static_cast<char*>(p);
  auto* start = reinterpret_cast<char*>((reinterpret_cast<uintptr_t>(base) + kHugePage - 1) & ~(kHugePage - 1));
  char* const end = start + want;
  if (start > base) ::munmap(base, static_cast<size_t>(start - base));
  if (end < base + want + kHugePage) ::munmap(end, static_cast<size_t>(base + want + kHugePage - end));
  b.big_ = Mapping::adopt(start, want);
  (void)::madvise(start, want, MADV_HUGEPAGE);
  prefault(start, want);
  return b;
}

void Buffer::shrink(size_t n) {
  if (n >= size_) return;
  size_ = n;
  if (!big_.data()) small_.resize(n);
}

}  // namespace ckpt
