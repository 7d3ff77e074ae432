// Buffer: bytes that are written whole once and then read (an image file's
// contents on their way in or out), in memory of their own where they are
// large.
//
// Why: where the first touch of a page is dear (a guest with shadow page
// tables, filled per page and per mode) a large buffer costs more in first
// touches than in the work done on it. Reading a 27 MB core image (10,000
// threads) and summing it took 110 + 47 ms here through 4 KiB pages, even
// populated at once, and 3.5 + 3.2 ms through transparent huge pages. So a
// buffer of at least kHugePage bytes is a mapping aligned to 2 MiB, advised
// MADV_HUGEPAGE and populated; a smaller one is a string. Best effort: where
// the kernel gives no huge pages the mapping is faulted in as ever.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "base/mapping.h"
#include "base/result.h"

namespace ckpt {

class Buffer {
 public:
  static constexpr size_t kHugePage = 2 << 20;  // and the size from which a buffer is a mapping

  // `len` bytes, their contents undefined.
  static Result<Buffer> make(size_t len);
  Buffer() = default;

  char* data() { return big_.data() ? big_.data() : small_.data(); }
  const char* data() const { return big_.data() ? big_.data() : small_.data(); }
  size_t size() const { return size_; }
  std::string_view view() const { return {data(), size_}; }
  // The first `n` bytes only (n <= size()).
  void shrink(size_t n);

 private:
  std::string small_;
  Mapping big_;
  size_t size_ = 0;
};

}  // namespace ckpt
