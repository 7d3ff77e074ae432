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
#include <map>
#include <memory>
#include <string>

#include "base/result.h"

namespace ckpt::lazy {

class CheckedPages {
 public:
  // A run of `len` bytes at `off` in the pages file open at `fd`. Only
  // before check() or check_all() are first called.
  void add(int fd, uint64_t off, uint64_t len, uint32_t crc, std::string what);
  // Every run that holds a byte of [off, off + len) of `fd` is checked (once).
  Result<void> check(int fd, uint64_t off, uint64_t len);
  // Every run, in file order; for a thread of its own.
  Result<void> check_all();

 private:
  enum State : int { kUnchecked, kChecking, kGood, kBad };
  struct Run {
    uint64_t len;
    uint32_t crc;
    std::string what;  // "pages-123.img: run 4 (0x7f..., 16 pages) at offset 69632"
    std::atomic<int> state{kUnchecked};
  };
  // Checks `r` at `off` of `fd` unless done or under way (then waits).
  Result<void> check_run(int fd, uint64_t off, Run& r);
  std::map<std::pair<int, uint64_t>, std::unique_ptr<Run>> runs_;
};

}  // namespace ckpt::lazy
