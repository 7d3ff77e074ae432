#include "base/buffer.h"

#include <sys/mman.h>

#include <cstdint>

namespace ckpt {

namespace {
uintptr_t huge_up(uintptr_t n) { return (n + Buffer::kHugePage - 1) & ~(Buffer::kHugePage - 1); }
}  // namespace

Result<Buffer> Buffer::make(size_t len) {
  Buffer b;
  b.size_ = len;
  if (len < kHugePage) {
    b.small_.resize_and_overwrite(len, [](char*, size_t n) { return n; });
    return b;
  }
  // Mapped with a huge page's worth to spare, then trimmed to whole huge
  // pages on their boundary: the kernel puts huge pages only there.
  const size_t want = huge_up(len);
  void* p = ::mmap(nullptr, want + kHugePage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return sys_error("mmap a buffer of {} bytes", len);
  char* const base = static_cast<char*>(p);
  auto* start = reinterpret_cast<char*>(huge_up(reinterpret_cast<uintptr_t>(base)));
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
