// pages-PID.img: a 4096-byte header page, then raw page data, page-aligned so
// that restore can preadv it straight into place. Which page is where is in
// pagemap-PID.img (runs in file order, each with its crc32c).
//
//   0     magic "CKPTPAGE", version, data bytes, crc32c of the header
//   4096  data of run 0, run 1, ...
#pragma once

#include <sys/stat.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "base/result.h"
#include "base/unique_fd.h"
#include "ckpt.pb.h"

namespace ckpt::image {

inline constexpr uint64_t kPagesDataOffset = 4096;

struct PagesHeader {
  char magic[8];
  uint32_t version;
  uint32_t page_size;
  uint64_t data_bytes;
  uint32_t pad;
  uint32_t crc;  // of the 28 bytes before it
};
static_assert(sizeof(PagesHeader) == 32 && offsetof(PagesHeader, crc) == 28, "on-disk layout (docs/images.md)");

// Whether a run's data is in this checkpoint's pages file: not inherited
// from a parent task, not in the parent checkpoint.
inline bool stored(const img::PageRun& r) { return !r.inherited() && !r.in_parent(); }

// Header bytes for a pages file that holds `data_bytes` of page data.
PagesHeader make_pages_header(uint64_t data_bytes);
// Checks the header of an open pages file; returns its data size and checks
// the file is long enough to hold it. `st`: its stat, if the open took one.
Result<uint64_t> check_pages_file(const std::string& name, int fd, const struct stat* st = nullptr);

}  // namespace ckpt::image
