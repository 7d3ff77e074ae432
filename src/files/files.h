// File descriptors: one file per fd kind (regular.cc, tty.cc), dump and
// restore of that kind side by side; this header is their common front.
#pragma once

#include <sys/types.h>

#include <span>
#include <utility>
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

// Marks the fds of later tasks that share an open file description with an
// fd of an earlier task (inherited through fork): restore then opens it once
// and hands it to each. `tasks`: (pid, its fds), parents before children.
void link_shared_across(std::span<const std::pair<pid_t, img::Files*>> tasks);

// An fd to install at `target` in the restored task.
struct PreparedFd {
  int target;
  bool cloexec;
  UniqueFd fd;
};

// Opens (as ckpt) what every entry of every task refers to, so that a
// failure is reported before any task exists; one per task of `tasks`. A
// description shared with an earlier task is that task's, dup'ed.
Result<std::vector<std::vector<PreparedFd>>> prepare_fds(std::span<const std::pair<pid_t, const img::Files*>> tasks);

// Per kind.
Result<img::FdEntry> dump_regular(pid_t pid, int fd, const std::string& path);
Result<UniqueFd> open_regular(const img::FdEntry& e);
Result<img::FdEntry> dump_tty(pid_t pid, int fd, const std::string& path);
Result<UniqueFd> open_tty(const img::FdEntry& e);

}  // namespace ckpt::files
