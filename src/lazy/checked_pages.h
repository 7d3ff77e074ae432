// Page data the lazy-pages daemon serves is checked against the images'
// checksums first: a run's crc32c covers the whole run, so the first time
// any of its bytes is needed the whole run is read and summed (streaming,
// a chunk at a time), and only then served. A mismatch is an error naming
// the file, the run and the offset, as `ckpt verify` says it.
//
// A run can be large (1 GiB of one buffer is one run), so a thread checks
// every run from the start (check_all) while the daemon serves: a fault in
// a run nobody checked yet checks it on the spot (a small one, a stack, is
// then served at once), and one in the run the thread is summing waits for
// it rather than reading it a second time.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "base/result.h"

namespace ckpt::lazy {

class CheckedPages {
 public:
  // A run of `len` bytes at `off` in the pages file open at `fd`. Only
  // before check() or check_all() are first called.
  void add(int fd, uint64_t off, uint64_t len, uint32_t crc, std::string what);
  // Every run that holds a byte of [off, off + len) of `fd` is checked (once).
  Result<void> check(int fd, uint64_t off, uint64_t len);
  // Every run, in file order; for a thread of its own. Returns early,
  // with nothing wrong, once stop() was called.
  Result<void> check_all();
  void stop() { stop_.store(true, std::memory_order_relaxed); }
  // Called with a run's place before the run is first read: the run is
  // brought there (lazy/remote_pages.h). Only before checks start.
  void set_fetch(std::function<Result<void>(int fd, uint64_t off, uint64_t len)> fetch) { fetch_ = std::move(fetch); }
  // The runs of each file: fd -> (offset, length), in offset order.
  std::map<int, std::vector<std::pair<uint64_t, uint64_t>>> runs() const;

 private:
  enum State : int { kUnchecked, kChecking, kGood, kBad };
  struct Run {
    uint64_t len;
    uint32_t crc;
    std::string what;  // "pages-123.img: run 4 (0x7f..., 16 pages) at offset 69632"
    std::atomic<int> state{kUnchecked};
    Error why;  // kBad: what went wrong, for whoever waited (set before the state)
  };
  // Checks `r` at `off` of `fd` unless done or under way (then waits).
  Result<void> check_run(int fd, uint64_t off, Run& r);
  std::map<std::pair<int, uint64_t>, std::unique_ptr<Run>> runs_;
  std::function<Result<void>(int, uint64_t, uint64_t)> fetch_;
  std::atomic<bool> stop_{false};
};

}  // namespace ckpt::lazy
