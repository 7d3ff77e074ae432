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
  // The other threads, created with their TIDs right before parking, each
  // waiting in the blob at `thread_entry(arg)` on its own stack.
  struct Thread {
    pid_t tid;
    uint64_t stack_top, stack_size, arg;
  };
  std::vector<Thread> threads;
  uint64_t thread_entry = 0;
  // A counter the threads bump once they run blob code (RestorerArgs).
  uint32_t* threads_ready = nullptr;
};

// A parked child: it has written "R" on the status pipe (or an error text
// and exited) and waits for one byte on the go pipe before jumping; its
// other threads wait in the blob.
Result<pid_t> spawn(const SpawnPlan& plan);

}  // namespace ckpt::restore
