#include "dump/present_pages.h"

#include <fcntl.h>
#include <sys/ioctl.h>

#include <vector>

#include "arch/x86_64/page.h"
#include "arch/x86_64/uapi.h"
#include "base/fs.h"

namespace ckpt::dump {

namespace {

constexpr size_t kWindowPages = 64 * 1024;  // 512 KiB of pagemap a read

constexpr size_t kRegions = 4096;            // 96 KiB of answers an ioctl

bool is_private_file(const img::Vma& v) { return v.kind() == img::Vma::FILE_PRIVATE; }

// Whether a range PAGEMAP_SCAN reports with categories `c` in VMA `v` holds
// content to store.
bool wanted_region(const img::Vma& v, uint64_t c) {
  if (c & uapi::kPageIsPfnZero) return false;
  // In a private file mapping a present file page is the file's own.
  return !(is_private_file(v) && (c & uapi::kPageIsFile) && !(c & uapi::kPageIsSwapped));
}

}  // namespace

Result<PresentPages> PresentPages::open(pid_t pid, bool use_scan_ioctl) {
  UniqueFd fd = TRY(open_file(fmt::format("/proc/{}/pagemap", pid), O_RDONLY));
  // Probe the ioctl on an empty range: ENOTTY on kernels before 6.7.
  uapi::pm_scan_arg arg{};
  arg.size = sizeof arg;
  bool ioctl_ok = use_scan_ioctl && ioctl(fd.get(), uapi::kPagemapScan, &arg) >= 0;
  return PresentPages(pid, std::move(fd), ioctl_ok);
}

Result<void> PresentPages::scan(const img::Vma& v, const std::function<void(uint64_t, uint64_t)>& emit) {
  return scan_ioctl_ ? scan_ioctl(v, emit) : scan_pagemap(v, emit);
}

Result<void> PresentPages::scan_ioctl(const img::Vma& v, const std::function<void(uint64_t, uint64_t)>& emit) {
  uapi::page_region regions[512];
  for (uint64_t at = v.start(); at < v.end();) {
    uapi::pm_scan_arg arg{};
    arg.size = sizeof arg;
    arg.start = at;
    arg.end = v.end();
    arg.vec = reinterpret_cast<uint64_t>(regions);
    arg.vec_len = std::size(regions);
    arg.category_anyof_mask = uapi::kPageIsPresent | uapi::kPageIsSwapped;
    arg.return_mask = uapi::kPageIsPresent | uapi::kPageIsSwapped | uapi::kPageIsFile | uapi::kPageIsPfnZero;
    int n = ioctl(fd_.get(), uapi::kPagemapScan, &arg);
    if (n < 0) return sys_error("PAGEMAP_SCAN of task {} at {:#x}", pid_, at);
    for (int i = 0; i < n; i++) {
      if (wanted_region(v, regions[i].categories)) emit(regions[i].start, regions[i].end);
    }
    if (arg.walk_end <= at) return error(EIO, "PAGEMAP_SCAN of task {} made no progress at {:#x}", pid_, at);
    at = arg.walk_end;
  }
  return {};
}

Result<void> PresentPages::scan_all(const img::MmImage& mm, const std::function<bool(const img::Vma&)>& wanted,
                                    const std::function<void(int, uint64_t, uint64_t)>& emit) {
  const int n = mm.vmas_size();
  for (int i = 0; i < n;) {
    if (!wanted(mm.vmas(i))) {
      i++;
      continue;
    }
    int j = i + 1;
    while (j < n && wanted(mm.vmas(j))) j++;
    if (scan_ioctl_) {
      // A VMA we don't store (a shared mapping, [vvar]) ends the range: its
      // pages are not walked for nothing.
      TRY(scan_range(mm, i, j, 0, [&](int k, uint64_t a, uint64_t b, uint64_t) { emit(k, a, b); }));
    } else {
      for (int k = i; k < j; k++)
        TRY(scan_pagemap(mm.vmas(k), [&](uint64_t s, uint64_t e) { emit(k, s, e); }));
    }
    i = j;
  }
  return {};
}

Result<void> PresentPages::scan_tracked(const img::MmImage& mm, const std::function<bool(const img::Vma&)>& wanted,
                                        const std::vector<bool>& tracked, bool protect,
                                        const std::function<void(int, uint64_t, uint64_t, bool)>& emit) {
  if (!scan_ioctl_) return error(EOPNOTSUPP, "task {}: PAGEMAP_SCAN is needed to tell written pages", pid_);
  // CHECK_WPASYNC: a VMA that lost its registration since (mremap'ed) fails
  // the scan instead of passing for unwritten.
  const uint64_t flags = uapi::kPmScanCheckWpAsync | (protect ? uapi::kPmScanWpMatching : 0);
  const int n = mm.vmas_size();
  for (int i = 0; i < n;) {
    if (!wanted(mm.vmas(i))) {
      i++;
      continue;
    }
    // A tracked range never spans a hole: a mapping made since mm was read
    // (the parasite's) may lie there, unregistered, and CHECK_WPASYNC would
    // fail the walk on it.
    const bool t = tracked[i];
    int j = i + 1;
    while (j < n && wanted(mm.vmas(j)) && tracked[j] == t && (!t || mm.vmas(j).start() == mm.vmas(j - 1).end())) j++;
    if (t) {
      TRY(scan_range(mm, i, j, flags, [&](int k, uint64_t a, uint64_t b, uint64_t c) {
        emit(k, a, b, (c & uapi::kPageIsWritten) != 0);
      }));
    } else {
      TRY(scan_range(mm, i, j, 0, [&](int k, uint64_t a, uint64_t b, uint64_t) { emit(k, a, b, true); }));
    }
    i = j;
  }
  return {};
}

// VMAs [first, last) of mm, in one walk: the kernel merges neighbouring
// pages of equal categories into one region even across VMAs, so each
// region is cut at the VMAs' bounds. `flags`: PM_SCAN_* (write-protect).
Result<void> PresentPages::scan_range(const img::MmImage& mm, int first, int last, uint64_t flags,
                                      const std::function<void(int, uint64_t, uint64_t, uint64_t)>& emit) {
  // Not zeroed: the kernel writes the answers, and a page of the buffer no
  // answer reaches is never faulted in.
  if (!regions_) regions_ = std::make_unique_for_overwrite<uapi::page_region[]>(kRegions);
  const uint64_t end = mm.vmas(last - 1).end();
  int k = first;
  // A walk that resumes may report again what the last one did (it resumed
  // within a huge page, from where the full buffer stopped it): nothing is
  // emitted twice, or the runs would overlap.
  uint64_t done = mm.vmas(first).start();
  for (uint64_t at = mm.vmas(first).start(); at < end;) {
    uapi::pm_scan_arg arg{};
    arg.size = sizeof arg;
    arg.start = at;
    arg.end = end;
    arg.vec = reinterpret_cast<uint64_t>(regions_.get());
    arg.vec_len = kRegions;
    arg.flags = flags;
    arg.category_anyof_mask = uapi::kPageIsPresent | uapi::kPageIsSwapped;
    arg.return_mask = uapi::kPageIsPresent | uapi::kPageIsSwapped | uapi::kPageIsFile | uapi::kPageIsPfnZero |
                      (flags ? uapi::kPageIsWritten : 0);
    int got = ioctl(fd_.get(), uapi::kPagemapScan, &arg);
    if (got < 0) return sys_error("PAGEMAP_SCAN of task {} at {:#x}-{:#x}", pid_, at, end);
    for (int r = 0; r < got; r++) {
      uapi::page_region g = regions_[r];
      g.start = std::max<uint64_t>(g.start, done);
      if (g.start >= g.end) continue;
      while (k < last && mm.vmas(k).end() <= g.start) k++;
      for (; k < last && mm.vmas(k).start() < g.end; k++) {
        const img::Vma& v = mm.vmas(k);
        if (wanted_region(v, g.categories))
          emit(k, std::max<uint64_t>(g.start, v.start()), std::min<uint64_t>(g.end, v.end()), g.categories);
        if (v.end() > g.end) break;  // the next region may still fall in it
      }
      done = g.end;
    }
    if (arg.walk_end <= at) return error(EIO, "PAGEMAP_SCAN of task {} made no progress at {:#x}", pid_, at);
    at = arg.walk_end;
  }
  return {};
}

Result<void> PresentPages::scan_pagemap(const img::Vma& v, const std::function<void(uint64_t, uint64_t)>& emit) {
  auto pm = std::make_unique_for_overwrite<uint64_t[]>(kWindowPages);  // filled by each pread
  for (uint64_t at = v.start(); at < v.end();) {
    const uint64_t n = std::min<uint64_t>(kWindowPages, (v.end() - at) / arch::kPageSize);
    size_t got = TRY_CTX(pread_full(fd_.get(), pm.get(), n * 8, at / arch::kPageSize * 8), "pagemap of task {}", pid_);
    if (got != n * 8) return error(EIO, "pagemap of task {}: short read at {:#x}", pid_, at);
    for (uint64_t i = 0; i < n; i++) {
      const uint64_t e = pm[i];
      bool want = is_private_file(v) ? (e & uapi::kPmSwapped) || ((e & uapi::kPmPresent) && !(e & uapi::kPmFileOrSharedAnon))
                                     : (e & (uapi::kPmPresent | uapi::kPmSwapped)) != 0;
      if (want) emit(at + i * arch::kPageSize, at + (i + 1) * arch::kPageSize);
    }
    at += n * arch::kPageSize;
  }
  return {};
}

}  // namespace ckpt::dump
