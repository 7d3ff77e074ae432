// Which pages of a VMA hold content a checkpoint must store: present or
// swapped anonymous pages (the shared zero page excluded: it reads as zero
// after restore anyway), and in private file mappings only the pages written
// in memory. PAGEMAP_SCAN (Linux 6.7) answers in ranges, so a sparse 32 TiB
// reservation costs nothing; older kernels read /proc/PID/pagemap, 8 bytes a
// page, in bounded windows.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "arch/x86_64/uapi.h"

#include "base/result.h"
#include "base/unique_fd.h"
#include "ckpt.pb.h"

namespace ckpt::dump {

class PresentPages {
 public:
  // `use_scan_ioctl` false: read /proc/PID/pagemap even where the ioctl works.
  static Result<PresentPages> open(pid_t pid, bool use_scan_ioctl = true);

  // Calls `emit(start, end)` for each stretch to store, in address order;
  // stretches may touch (the caller merges them).
  Result<void> scan(const img::Vma& v, const std::function<void(uint64_t, uint64_t)>& emit);

  // The same for every VMA of `mm` that `wanted` (mm's VMAs are sorted and
  // apart): `emit(index in mm, start, end)`, in address order. With
  // PAGEMAP_SCAN, wanted VMAs with no other VMA between them are scanned in
  // one range (holes between them cost the walk nothing): one ioctl for
  // thousands of VMAs instead of one each.
  Result<void> scan_all(const img::MmImage& mm, const std::function<bool(const img::Vma&)>& wanted,
                        const std::function<void(int, uint64_t, uint64_t)>& emit);

  // Like scan_all(), also telling which stretches were written since they
  // were last write-protected: for VMAs `tracked` (per VMA of mm; registered
  // with an async write-protecting userfaultfd, dump/uffd_tracker.h) from
  // the PAGE_IS_WRITTEN category; every page of another VMA counts as
  // written. With `protect`, the same walk write-protects every page it
  // reports (PM_SCAN_WP_MATCHING), arming the next round.
  Result<void> scan_tracked(const img::MmImage& mm, const std::function<bool(const img::Vma&)>& wanted,
                            const std::vector<bool>& tracked, bool protect,
                            const std::function<void(int, uint64_t, uint64_t, bool)>& emit);

  // Whether scan() asks PAGEMAP_SCAN (else it reads pagemap).
  bool uses_scan_ioctl() const { return scan_ioctl_; }

 private:
  PresentPages(pid_t pid, UniqueFd fd, bool scan_ioctl) : pid_(pid), fd_(std::move(fd)), scan_ioctl_(scan_ioctl) {}
  Result<void> scan_ioctl(const img::Vma& v, const std::function<void(uint64_t, uint64_t)>& emit);
  Result<void> scan_range(const img::MmImage& mm, int first, int last, uint64_t flags,
                          const std::function<void(int, uint64_t, uint64_t, uint64_t)>& emit);
  Result<void> scan_pagemap(const img::Vma& v, const std::function<void(uint64_t, uint64_t)>& emit);
  pid_t pid_;
  UniqueFd fd_;
  bool scan_ioctl_;
  std::unique_ptr<uapi::page_region[]> regions_;  // kRegions answers of an ioctl
};

}  // namespace ckpt::dump
