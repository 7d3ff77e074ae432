#include "lazy/checked_pages.h"

#include <unistd.h>

#include <vector>

#include "image/crc32c.h"

namespace ckpt::lazy {

void CheckedPages::add(int fd, uint64_t off, uint64_t len, uint32_t crc, std::string what) {
  auto r = std::make_unique<Run>();
  r->len = len;
  r->crc = crc;
  r->what = std::move(what);
  runs_[{fd, off}] = std::move(r);
}

Result<void> CheckedPages::check_run(int fd, uint64_t off, Run& r) {
  int s = r.state.load(std::memory_order_acquire);
  if (s == kUnchecked && !r.state.compare_exchange_strong(s, kChecking, std::memory_order_acq_rel)) {
    // The other side claimed it meanwhile: s holds what it is now.
  } else if (s == kUnchecked) {
    constexpr size_t kChunk = 4 << 20;
    std::vector<char> buf(std::min<uint64_t>(kChunk, r.len));
    uint32_t crc = 0;
    Result<void> out;
    if (fetch_) out = fetch_(fd, off, r.len);
    for (uint64_t done = 0; done < r.len && out;) {
      const ssize_t n = pread(fd, buf.data(), std::min<uint64_t>(buf.size(), r.len - done), off + done);
      if (n < 0) out = sys_error("read {}", r.what);
      else if (n == 0) out = error(EIO, "{}: the file ends {} bytes into the run", r.what, done);
      else crc = crc32c(crc, buf.data(), n), done += n;
    }
    if (out && crc != r.crc) out = error(EINVAL, "{}: checksum mismatch", r.what);
    if (!out) r.why = out.error();
    r.state.store(out ? kGood : kBad, std::memory_order_release);
    r.state.notify_all();
    return out;
  }
  while ((s = r.state.load(std::memory_order_acquire)) == kChecking) r.state.wait(kChecking);
  if (s == kBad) return std::unexpected(r.why);
  return {};
}

Result<void> CheckedPages::check(int fd, uint64_t off, uint64_t len) {
  auto it = runs_.upper_bound({fd, off});
  if (it != runs_.begin() && std::prev(it)->first.first == fd) --it;
  uint64_t covered = off;
  for (; it != runs_.end() && it->first.first == fd && it->first.second < off + len; ++it) {
    const uint64_t start = it->first.second;
    if (start + it->second->len <= off) continue;
    if (start > covered) break;
    covered = start + it->second->len;
    TRY(check_run(fd, start, *it->second));
  }
  if (covered < off + len)
    return error(EINVAL, "no page run's checksum covers offset {} of the pages file (fd {})", covered, fd);
  return {};
}

Result<void> CheckedPages::check_all() {
  for (auto& [key, r] : runs_) {
    if (stop_.load(std::memory_order_relaxed)) return {};
    TRY(check_run(key.first, key.second, *r));
  }
  return {};
}

std::map<int, std::vector<std::pair<uint64_t, uint64_t>>> CheckedPages::runs() const {
  std::map<int, std::vector<std::pair<uint64_t, uint64_t>>> out;
  for (const auto& [key, r] : runs_) out[key.first].emplace_back(key.second, r->len);
  return out;
}

}  // namespace ckpt::lazy
