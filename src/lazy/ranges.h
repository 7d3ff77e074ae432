// The lazy-pages daemon's picture of one task's memory: which page ranges
// still wait for their dumped bytes, and where those bytes are (a pages
// file and an offset). A range leaves the set once it is served, or when
// the task itself drops it (munmap, madvise(MADV_DONTNEED): it reads zeros
// from then on), and moves with an mremap. What is not in the set is never
// served from the images: a fault there gets a zero page.
#pragma once

#include <cstdint>
#include <map>
#include <optional>

namespace ckpt::lazy {

struct Source {
  int fd;        // the pages file
  uint64_t off;  // of the range's first byte in it
};

struct Piece {
  uint64_t addr, len;
  Source src;
};

class PendingRanges {
 public:
  void add(uint64_t addr, uint64_t len, Source src);
  // The piece around `addr`, clipped to [lo, hi).
  std::optional<Piece> find(uint64_t addr, uint64_t lo, uint64_t hi) const;
  // The lowest piece, at most `max_len` bytes of it.
  std::optional<Piece> first(uint64_t max_len) const;
  // [start, end) is no longer waited for.
  void erase(uint64_t start, uint64_t end);
  // mremap moved [from, from + len) to `to`.
  void move(uint64_t from, uint64_t to, uint64_t len);
  bool empty() const { return pieces_.empty(); }
  uint64_t bytes() const;

 private:
  // start -> (length, source of start)
  std::map<uint64_t, std::pair<uint64_t, Source>> pieces_;
  // Splits the piece containing `at` so that one starts there.
  void split_at(uint64_t at);
};

}  // namespace ckpt::lazy
