// Page data the lazy-pages daemon serves is checked against the images'
// checksums first: a run's crc32c covers the whole run, so the first time
// any of its bytes is needed the whole run is read and summed (streaming,
// a chunk at a time), and only then served. A mismatch is an error naming
// the file, the run and the offset, as `ckpt verify` says it.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "base/result.h"

namespace ckpt::lazy {

class CheckedPages {
 public:
  // A run of `len` bytes at `off` in the pages file open at `fd`.
  void add(int fd, uint64_t off, uint64_t len, uint32_t crc, std::string what);
  // Every run that holds a byte of [off, off + len) of `fd` is checked (once).
  Result<void> check(int fd, uint64_t off, uint64_t len);
  uint64_t bytes_checked() const { return checked_; }

 private:
  struct Run {
    uint64_t len;
    uint32_t crc;
    bool ok;
    std::string what;  // "pages-123.img run 4 (0x7f..., 16 pages) at offset 69632"
  };
  std::map<std::pair<int, uint64_t>, Run> runs_;
  std::vector<char> buf_;
  uint64_t checked_ = 0;
};

}  // namespace ckpt::lazy
