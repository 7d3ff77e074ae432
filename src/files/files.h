// File descriptors: one file per fd kind (regular.cc, tty.cc), dump and
// restore of that kind side by side; this header is their common front.
#pragma once

#include <sys/types.h>

#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"
#include "ckpt.pb.h"

namespace ckpt::files {

struct DumpFlags {
  bool shell_job = false;  // ttys are left to the restoring terminal
};

// Every fd of `pid`, or an Error naming the first one ckpt cannot handle.
Result<img::Files> dump_fds(pid_t pid, const DumpFlags& flags);

// An fd to install at `target` in the restored task.
struct PreparedFd {
  int target;
  bool cloexec;
  UniqueFd fd;
};

// Opens (as ckpt) what every entry refers to, so that a failure is reported
// before any task exists.
Result<std::vector<PreparedFd>> prepare_fds(const img::Files& files);

// Per kind.
Result<img::FdEntry> dump_regular(pid_t pid, int fd, const std::string& path);
Result<UniqueFd> open_regular(const img::FdEntry& e);
Result<img::FdEntry> dump_tty(pid_t pid, int fd, const std::string& path);
Result<UniqueFd> open_tty(const img::FdEntry& e);

}  // namespace ckpt::files
