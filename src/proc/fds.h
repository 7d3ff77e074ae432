// /proc/PID/fd and /proc/PID/fdinfo, each opened once: every look at one fd
// then resolves a single name under a directory fd instead of walking
// "/proc/PID/fd/N" from the root (a third of the cost per fd, which counts
// at 10,000 fds).
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <string>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"

namespace ckpt::proc {

class ProcFds {
 public:
  static Result<ProcFds> open(pid_t pid);

  // The open fds, in the order /proc lists them (ascending).
  Result<std::vector<int>> list() const;
  // How many fds are open; 0 from a kernel before 6.2, which does not say.
  Result<size_t> count() const;
  // Where fd leads ("/path", "socket:[N]", "anon_inode:[eventfd]", ...).
  Result<std::string> link(int fd) const;
  // Its /proc/PID/fdinfo/FD text.
  Result<std::string> fdinfo(int fd) const;

  pid_t pid() const { return pid_; }

 private:
  ProcFds(pid_t pid, UniqueFd fd_dir, UniqueFd info_dir)
      : pid_(pid), fd_dir_(std::move(fd_dir)), info_dir_(std::move(info_dir)) {}
  pid_t pid_;
  UniqueFd fd_dir_, info_dir_;
};

// Each open fd of pid and where it leads, from one listing.
struct FdLink {
  int fd;
  std::string link;
};
Result<std::vector<FdLink>> read_fd_links(pid_t pid);

}  // namespace ckpt::proc
