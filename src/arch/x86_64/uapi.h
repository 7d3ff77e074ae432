// Kernel user-space ABI that ckpt uses but Debian 12's headers (linux-libc-dev
// 6.1) and glibc 2.36 do not declare. Each entry names the kernel release that
// introduced it; whether the running kernel has it is decided at run time
// (`ckpt check`), never by these declarations.
//
// The names are ours (kPagemapScan, not PAGEMAP_SCAN): newer system headers
// define the kernel's spellings as macros, which would expand inside any
// declaration that reused them. When those headers are present, the values
// below are checked against them (for <linux/fs.h>, only when it was included
// first: this header does not include it, since with glibc 2.36 it clashes
// with <sys/mount.h>).
#pragma once

#include <linux/userfaultfd.h>
#include <sys/ioctl.h>

#include <cstdint>

namespace ckpt::uapi {

// --- PAGEMAP_SCAN: ioctl on /proc/PID/pagemap (Linux 6.7) -------------------
// include/uapi/linux/fs.h; Documentation/admin-guide/mm/pagemap.rst.

// One run of pages [start, end) sharing `categories` (PAGE_IS_* bits, masked by
// pm_scan_arg::return_mask).
struct page_region {
  uint64_t start;
  uint64_t end;  // exclusive
  uint64_t categories;
};

struct pm_scan_arg {
  uint64_t size;                 // sizeof(pm_scan_arg)
  uint64_t flags;                // PM_SCAN_* operations
  uint64_t start;                // range to walk, page aligned
  uint64_t end;
  uint64_t walk_end;             // out: where the walk stopped (== end when done)
  uint64_t vec;                  // address of a page_region array
  uint64_t vec_len;              // its length in entries
  uint64_t max_pages;            // stop after this many pages (0: no limit)
  uint64_t category_inverted;    // categories that match when 0 instead of 1
  uint64_t category_mask;        // skip pages where any of these does not match
  uint64_t category_anyof_mask;  // skip pages where none of these matches
  uint64_t return_mask;          // categories reported in page_region
};
static_assert(sizeof(page_region) == 24);
static_assert(sizeof(pm_scan_arg) == 96);

// _IOWR('f', 16, struct pm_scan_arg); returns the number of regions filled.
// An older kernel answers ENOTTY.
inline constexpr unsigned long kPagemapScan = _IOWR('f', 16, pm_scan_arg);

// Page categories (pm_scan_arg masks, page_region::categories).
inline constexpr uint64_t kPageIsWpAllowed = 1u << 0;  // 6.7: async uffd-wp armed
inline constexpr uint64_t kPageIsWritten = 1u << 1;    // 6.7: written since write-protected
inline constexpr uint64_t kPageIsFile = 1u << 2;       // 6.7
inline constexpr uint64_t kPageIsPresent = 1u << 3;    // 6.7
inline constexpr uint64_t kPageIsSwapped = 1u << 4;    // 6.7
inline constexpr uint64_t kPageIsPfnZero = 1u << 5;    // 6.7: the shared zero page
inline constexpr uint64_t kPageIsHuge = 1u << 6;       // 6.7: THP or hugetlb
inline constexpr uint64_t kPageIsSoftDirty = 1u << 7;  // 6.7
inline constexpr uint64_t kPageIsGuard = 1u << 8;      // 6.14: MADV_GUARD_INSTALL region

// pm_scan_arg::flags.
inline constexpr uint64_t kPmScanWpMatching = 1u << 0;    // 6.7: write-protect what matched
inline constexpr uint64_t kPmScanCheckWpAsync = 1u << 1;  // 6.7: fail on pages without async wp

// --- userfaultfd (struct uffdio_api::features) --------------------------------
inline constexpr uint64_t kUffdFeatureWpUnpopulated = 1u << 13;  // 6.4
inline constexpr uint64_t kUffdFeatureWpAsync = 1u << 15;        // 6.7: faults resolved by the kernel,
                                                                 // PAGE_IS_WRITTEN records them

// --- /proc/PID/pagemap entries (64 bits per page) ------------------------------
// Not in any header: documented in Documentation/admin-guide/mm/pagemap.rst.
inline constexpr uint64_t kPmPfnMask = (uint64_t{1} << 55) - 1;   // PFN (0 without CAP_SYS_ADMIN)
inline constexpr uint64_t kPmSoftDirty = uint64_t{1} << 55;       // 3.11, CONFIG_MEM_SOFT_DIRTY
inline constexpr uint64_t kPmMmapExclusive = uint64_t{1} << 56;   // 4.2
inline constexpr uint64_t kPmUffdWp = uint64_t{1} << 57;          // 5.13
inline constexpr uint64_t kPmGuard = uint64_t{1} << 58;           // 6.14
inline constexpr uint64_t kPmFileOrSharedAnon = uint64_t{1} << 61;  // 3.5
inline constexpr uint64_t kPmSwapped = uint64_t{1} << 62;
inline constexpr uint64_t kPmPresent = uint64_t{1} << 63;

// --- Syscall user dispatch through ptrace (Linux 6.4) --------------------------
// include/uapi/linux/ptrace.h. An older kernel answers EIO: it has no such
// request (and, before 5.11, no syscall user dispatch at all).
struct ptrace_sud_config {
  uint64_t mode;      // PR_SYS_DISPATCH_OFF or _ON
  uint64_t selector;  // address of the byte that allows or blocks (0: none, every syscall is dispatched)
  uint64_t offset;    // [offset, offset + len): code whose syscalls are never dispatched
  uint64_t len;
};
static_assert(sizeof(ptrace_sud_config) == 32);
inline constexpr long kPtraceSetSyscallUserDispatchConfig = 0x4210;
inline constexpr long kPtraceGetSyscallUserDispatchConfig = 0x4211;
// The selector's values (SYSCALL_DISPATCH_FILTER_*); any other kills the task at its next syscall.
inline constexpr uint8_t kSyscallDispatchAllow = 0;
inline constexpr uint8_t kSyscallDispatchBlock = 1;

// --- si_code of a SIGSYS a seccomp filter raised ------------------------------
// include/uapi/asm-generic/siginfo.h (SYS_SECCOMP), a header that can't be
// included next to glibc's <signal.h>.
inline constexpr int kSysSeccomp = 1;

// --- memfd_create flags (Linux 6.3) -------------------------------------------
// include/uapi/linux/memfd.h. A memfd that can never be made executable
// (execve, chmod +x), which every vm.memfd_noexec setting allows: 2 refuses
// MFD_EXEC. It may still be mapped PROT_EXEC, all ckpt does with its
// parasite's and its restorer's. An older kernel refuses the flag (EINVAL).
inline constexpr unsigned kMfdNoexecSeal = 0x8;

// --- Agreement with newer system headers, when they are present --------------
#ifdef PAGEMAP_SCAN
static_assert(kPagemapScan == PAGEMAP_SCAN);
static_assert(sizeof(pm_scan_arg) == sizeof(::pm_scan_arg));
static_assert(sizeof(page_region) == sizeof(::page_region));
static_assert(kPageIsPresent == PAGE_IS_PRESENT && kPageIsWritten == PAGE_IS_WRITTEN);
static_assert(kPmScanWpMatching == PM_SCAN_WP_MATCHING && kPmScanCheckWpAsync == PM_SCAN_CHECK_WPASYNC);
#endif
#ifdef PAGE_IS_GUARD
static_assert(kPageIsGuard == PAGE_IS_GUARD);
#endif
#ifdef UFFD_FEATURE_WP_ASYNC
static_assert(kUffdFeatureWpAsync == UFFD_FEATURE_WP_ASYNC);
#endif
#ifdef PTRACE_GET_SYSCALL_USER_DISPATCH_CONFIG
static_assert(kPtraceGetSyscallUserDispatchConfig == PTRACE_GET_SYSCALL_USER_DISPATCH_CONFIG);
static_assert(kPtraceSetSyscallUserDispatchConfig == PTRACE_SET_SYSCALL_USER_DISPATCH_CONFIG);
#endif
#ifdef MFD_NOEXEC_SEAL
static_assert(kMfdNoexecSeal == MFD_NOEXEC_SEAL);
#endif
#ifdef UFFD_FEATURE_WP_UNPOPULATED
static_assert(kUffdFeatureWpUnpopulated == UFFD_FEATURE_WP_UNPOPULATED);
#endif

}  // namespace ckpt::uapi
