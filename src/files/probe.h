// What ckpt learns of one fd of a frozen task before a kind claims it
// (kind.h: FdProbe): what the file is (stat), where it leads, its status
// flags and offset, and for the kinds that need them, its fdinfo lines.
//
// They come from ckpt's own copy of the fd (pidfd_getfd): statx, F_GETFL,
// lseek and the copy's link under /proc/self/fd. Under /proc/PID each fd
// cost three lookups with a permission check each (link, stat, fdinfo),
// most of a 10,000-fd dump. The fdinfo file is still read where its lines
// are needed: every fd that is not a regular file, a pipe or a socket
// (eventfd counts, epoll targets, a pty's index, ...), an O_PATH fd, and
// for the lock lines any other, unless the task has thousands of fds and
// /proc/locks lists no lock on its file. FD_CLOEXEC, the fd's own flag, is
// not in the copy: it comes from fdinfo where that was read, else from the
// parasite (dump.cc).
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <cstdint>
#include <unordered_set>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"
#include "files/kind.h"

namespace ckpt::files {

// The inodes /proc/locks lists a lock on (POSIX, flock, OFD, lease), by
// number: which files' fdinfo must be read for their lock lines.
class LockedInodes {
 public:
  // `locks`: /proc/locks' text; `pid_ns`: readlink of /proc/self/ns/pid.
  static Result<LockedInodes> parse(std::string_view locks, std::string_view pid_ns);
  static Result<LockedInodes> read();

  // Whether the file of `p` may hold a lock its fdinfo would show.
  Result<bool> may_hold(const FdProbe& p) const;

 private:
  // /proc/locks leaves out a lock whose owner has no pid in the namespace
  // of /proc (a flock of an exited task, seen from a container): outside
  // the initial one, it can't say a file has none.
  bool unknown_ = false;
  // By number only: /proc/locks gives the superblock's device, which a
  // btrfs subvolume's stat does not.
  std::unordered_set<uint64_t> inodes_;
};

// Every open fd of the task `pid` (`pidfd`), probed, in fd order.
Result<std::vector<FdProbe>> probe_fds(pid_t pid, int pidfd);

}  // namespace ckpt::files
