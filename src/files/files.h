// File descriptors: one file per fd kind (regular.cc, tty.cc), dump and
// restore of that kind side by side; this header is their common front.
#pragma once

#include <sys/stat.h>
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
// O(N log N) kcmp calls for N fds in all (kcmp orders files).
Result<void> link_shared_across(std::span<const std::pair<pid_t, img::Files*>> tasks);

// fd slots a restore of this task needs (restore/fd_moves.h): its highest fd
// and the temporary fds above it (pipes, pages image, executable and one per
// mapped file), plus room for ckpt's own fds. ckpt restore raises its soft
// RLIMIT_NOFILE to its hard limit to get them.
int restore_fd_slots(const img::Files& files, const img::MmImage& mm);
// RLIMIT_NOFILE of a task, from /proc/PID/limits (which anyone may read;
// prlimit(2) needs the task's credentials or CAP_SYS_RESOURCE).
// RLIM_INFINITY for "unlimited".
struct NofileLimit {
  uint64_t soft, hard;
};
Result<NofileLimit> read_nofile_limit(pid_t pid);
// Refuses, while the task still lives, a task whose RLIMIT_NOFILE hard limit
// (/proc/PID/limits) could not hold what its restore needs.
Result<void> check_restore_fits(pid_t pid, const img::Files& files, const img::MmImage& mm);

// An fd to install at `target` in the restored task: ckpt's fd `fd`, owned by
// PreparedFds::open.
struct PreparedFd {
  int target;
  bool cloexec;
  int fd;
};

struct PreparedFds {
  std::vector<UniqueFd> open;                  // one per open file description of the tree
  std::vector<std::vector<PreparedFd>> tasks;  // per task
};

// Opens (as ckpt) what every entry of every task refers to, so that a
// failure is reported before any task exists. A description shared by fds of
// one task or of several is opened once: ckpt holds one fd per description,
// and each task dups it to its numbers (restore/fd_moves.h).
Result<PreparedFds> prepare_fds(std::span<const std::pair<pid_t, const img::Files*>> tasks);

// Per kind.
Result<img::FdEntry> dump_regular(pid_t pid, int fd, const std::string& path, const struct stat& st);
Result<UniqueFd> open_regular(const img::FdEntry& e);
Result<img::FdEntry> dump_tty(pid_t pid, int fd, const std::string& path);
Result<UniqueFd> open_tty(const img::FdEntry& e);

}  // namespace ckpt::files
