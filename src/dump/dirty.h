// Pages written since the last round of an iterative dump (pre-dump, then
// dump --track-mem): what a round stores is what the task wrote since the
// previous checkpoint; the rest is "in the parent" (PageRun.in_parent).
// Written pages are told by the async write-protection of a userfaultfd
// (dump/uffd_tracker.h) read with PAGEMAP_SCAN (dump/present_pages.h).
#pragma once

#include <cstdint>
#include <tuple>
#include <utility>
#include <vector>

#include "ckpt.pb.h"

namespace ckpt::dump {

// The addresses the previous checkpoint's page map covers (stored there or
// in its own parent): only there may a page be left to the parent.
class ParentCover {
 public:
  explicit ParentCover(const img::PageMap& prev);
  // [start, end) cut into (start, end, covered) stretches, in order.
  using Split = std::vector<std::tuple<uint64_t, uint64_t, bool>>;
  Split split(uint64_t start, uint64_t end) const;

 private:
  std::vector<std::pair<uint64_t, uint64_t>> ranges_;  // sorted, merged
};

struct DirtyPages {
  // Per VMA of the task's MmImage: registered for write-protection, so that
  // a page of it that is not written is the one the last round saw.
  std::vector<bool> tracked;
  // Write-protect what the scan reports, in the same ioctl, for the next
  // round (a pre-dump); the final dump does not.
  bool protect = false;
  const ParentCover* parent = nullptr;
};

}  // namespace ckpt::dump
