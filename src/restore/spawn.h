// Creating the task that becomes the restored one: clone3 with the dumped PID,
// its fds put in place, then parked until ckpt, its tracer, releases it into
// the restorer blob.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"
#include "files/files.h"

namespace ckpt::restore {

struct SpawnPlan {
  pid_t pid = 0;
  bool sibling = false;  // CLONE_PARENT
  // fds >= temp_fd_base belong to ckpt and are closed by the restorer.
  int temp_fd_base = 0;
  // Moved to temp_fd_base + i, in this order. [0] must be the status pipe's
  // write end and [1] the go pipe's read end.
  std::vector<int> temp_fds;
  std::vector<files::PreparedFd>* fds = nullptr;
  std::string cwd;
  uint64_t stack_top = 0, entry = 0, args = 0;
};

// A parked child: it has written "R" on the status pipe (or an error text
// and exited) and waits for one byte on the go pipe before jumping.
Result<pid_t> spawn(const SpawnPlan& plan);

}  // namespace ckpt::restore
