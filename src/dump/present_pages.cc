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

bool is_private_file(const img::Vma& v) { return v.kind() == img::Vma::FILE_PRIVATE; }

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
      const uint64_t c = regions[i].categories;
      if (c & uapi::kPageIsPfnZero) continue;
      // In a private file mapping a present file page is the file's own.
      if (is_private_file(v) && (c & uapi::kPageIsFile) && !(c & uapi::kPageIsSwapped)) continue;
      emit(regions[i].start, regions[i].end);
    }
    if (arg.walk_end <= at) return error(EIO, "PAGEMAP_SCAN of task {} made no progress at {:#x}", pid_, at);
    at = arg.walk_end;
  }
  return {};
}

Result<void> PresentPages::scan_pagemap(const img::Vma& v, const std::function<void(uint64_t, uint64_t)>& emit) {
  std::vector<uint64_t> pm(kWindowPages);
  for (uint64_t at = v.start(); at < v.end();) {
    const uint64_t n = std::min<uint64_t>(kWindowPages, (v.end() - at) / arch::kPageSize);
    size_t got = TRY_CTX(pread_full(fd_.get(), pm.data(), n * 8, at / arch::kPageSize * 8), "pagemap of task {}", pid_);
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
