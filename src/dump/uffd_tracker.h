// Dirty-page tracking without soft-dirty: a userfaultfd of the task's mm
// with asynchronous write-protection (UFFD_FEATURE_WP_ASYNC, Linux 6.7). A
// write to a protected page is resolved by the kernel on the spot (the task
// never waits, no one reads the fd) and only clears the page's uffd-wp bit,
// which PAGEMAP_SCAN reports as PAGE_IS_WRITTEN and re-arms with
// PM_SCAN_WP_MATCHING (dump/present_pages.h).
//
// The fd is created inside the task (userfaultfd(2) binds it to the
// caller's mm) by a remote syscall, taken out with pidfd_getfd and closed
// there at once: the task's fd table never shows it. ckpt's copy is then the
// only one; while it is open the marks stay. Closing the last copy ends the
// tracking completely: the kernel's release unregisters every VMA and, for
// a write-protecting registration, clears the uffd-wp bits of its pages, so
// the task is left as it was (docs/migration.md). Between rounds the fd
// lives in a keeper process (dump/uffd_keeper.h).
#pragma once

#include <sys/types.h>

#include <functional>
#include <vector>

#include "base/log.h"
#include "base/result.h"
#include "base/unique_fd.h"
#include "ckpt.pb.h"
#include "ptrace/remote_syscall.h"
#include "ptrace/tracee.h"

namespace ckpt::dump {

class UffdTracker {
 public:
  // Whether this kernel offers async write-protection (a userfaultfd of
  // ckpt's own is asked for its features): else no round can tell written
  // pages, and each stores every page.
  static Result<void> supported();
  // A new tracker for the stopped task `leader` (remote syscalls at `site`).
  static Result<UffdTracker> create(Tracee& leader, const SyscallSite& site);
  // The fd a keeper held for `pid` since the last round.
  static UffdTracker adopt(pid_t pid, UniqueFd fd) { return UffdTracker(pid, std::move(fd)); }

  // Registers every VMA of mm that `wanted` for write-protection (those of
  // an earlier round stay as they are: their marks too). Returns, per VMA
  // of mm, whether it is tracked; one the kernel will not register is not,
  // and its pages count as written every round.
  Result<std::vector<bool>> track(const img::MmImage& mm, const std::function<bool(const img::Vma&)>& wanted,
                                  Log& log);

  pid_t pid() const { return pid_; }
  int fd() const { return fd_.get(); }
  // For the keeper: the tracking goes on wherever the fd goes.
  UniqueFd release() && { return std::move(fd_); }

 private:
  UffdTracker(pid_t pid, UniqueFd fd) : pid_(pid), fd_(std::move(fd)) {}
  pid_t pid_;
  UniqueFd fd_;
};

// Whether `pid` holds a userfaultfd of its own (an fd of anon_inode
// [userfaultfd]): its registrations would clash with ckpt's, so an
// iterative dump refuses it (returns the first such fd, or -1).
Result<int> own_userfaultfd(pid_t pid);

}  // namespace ckpt::dump
