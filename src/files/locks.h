// File locks: flock(2) and OFD locks belong to an open file description,
// POSIX record locks to a process. /proc/PID/fdinfo/N lists the locks held
// through fd N ("lock:\t1: POSIX  ADVISORY  WRITE 1234 fe:00:5678 5 14");
// dump records each where it belongs (FileDesc.locks, FdEntry.locks) and
// restore takes them again: ckpt takes a description's before any task
// exists (the description carries them into the task), each task its own
// POSIX locks once its fds are in place (InTaskStep).
#pragma once

#include <fcntl.h>

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "ckpt.pb.h"
#include "files/kind.h"

namespace ckpt::files {

// The locks held through the fd whose fdinfo is `fdinfo`. Leases and
// delegations are refused; a request still waiting ("->") is not a lock.
Result<std::vector<img::FileLock>> parse_locks(std::string_view fdinfo);

// The struct flock F_SETLK and F_OFD_SETLK take for a lock over
// [start, start + len) (len 0: to the end of the file).
struct flock flock_of(bool write, uint64_t start, uint64_t len);

// Takes `l` (FLOCK or OFD) through ckpt's `fd`, without waiting.
Result<void> take_lock(int fd, const img::FileLock& l);

// Refuses POSIX locks the restore would drop: the restorer opens and closes
// the files a task maps (and its executable), and closing any fd on a file
// drops the task's POSIX locks on it.
Result<void> check_locks_survive(std::span<const FdProbe> probes, const img::Files& table, const img::MmImage& mm);

}  // namespace ckpt::files
