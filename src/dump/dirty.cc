#include "dump/dirty.h"

#include <algorithm>

#include "arch/x86_64/page.h"

namespace ckpt::dump {

ParentCover::ParentCover(const img::PageMap& prev) {
  for (const img::PageRun& r : prev.runs()) {
    const uint64_t a = r.vaddr(), b = r.vaddr() + r.nr_pages() * arch::kPageSize;
    if (!ranges_.empty() && ranges_.back().second == a) ranges_.back().second = b;
    else ranges_.emplace_back(a, b);
  }
  // Page maps are sorted (image/verify.cc checks it); a damaged one just
  // covers less.
  std::sort(ranges_.begin(), ranges_.end());
}

ParentCover::Split ParentCover::split(uint64_t start, uint64_t end) const {
  Split out;
  auto it = std::upper_bound(ranges_.begin(), ranges_.end(), start,
                             [](uint64_t v, const std::pair<uint64_t, uint64_t>& r) { return v < r.second; });
  while (start < end) {
    if (it == ranges_.end() || it->first >= end) {
      out.emplace_back(start, end, false);
      break;
    }
    if (it->first > start) {
      out.emplace_back(start, it->first, false);
      start = it->first;
    }
    const uint64_t hi = std::min(end, it->second);
    out.emplace_back(start, hi, true);
    start = hi;
    ++it;
  }
  return out;
}

}  // namespace ckpt::dump
