#include "lazy/checked_pages.h"

#include <unistd.h>

#include "image/crc32c.h"

namespace ckpt::lazy {

void CheckedPages::add(int fd, uint64_t off, uint64_t len, uint32_t crc, std::string what) {
  runs_[{fd, off}] = {len, crc, false, std::move(what)};
}

Result<void> CheckedPages::check(int fd, uint64_t off, uint64_t len) {
  constexpr size_t kChunk = 4 << 20;
  auto it = runs_.upper_bound({fd, off});
  if (it != runs_.begin() && std::prev(it)->first.first == fd) --it;
  uint64_t covered = off;
  for (; it != runs_.end() && it->first.first == fd && it->first.second < off + len; ++it) {
    const uint64_t start = it->first.second;
    Run& r = it->second;
    if (start + r.len <= off) continue;
    if (start > covered) break;
    covered = start + r.len;
    if (r.ok) continue;
    buf_.resize(kChunk);
    uint32_t crc = 0;
    for (uint64_t done = 0; done < r.len;) {
      const ssize_t n = pread(fd, buf_.data(), std::min<uint64_t>(kChunk, r.len - done), start + done);
      if (n < 0) return sys_error("read {}", r.what);
      if (n == 0) return error(EIO, "{}: the file ends {} bytes into the run", r.what, done);
      crc = crc32c(crc, buf_.data(), n);
      done += n;
    }
    if (crc != r.crc) return error(EINVAL, "{}: checksum mismatch", r.what);
    r.ok = true;
    checked_ += r.len;
  }
  if (covered < off + len)
    return error(EINVAL, "no page run's checksum covers offset {} of the pages file (fd {})", covered, fd);
  return {};
}

}  // namespace ckpt::lazy
