// Processes that share with another what restore would give each of its own.
#pragma once

#include <sys/types.h>

#include <span>

#include "base/result.h"

namespace ckpt::dump {

// Refuses processes (not threads: `pids` are thread-group leaders) that share
// their address space (clone with CLONE_VM but not CLONE_THREAD: a vfork
// still waiting, posix_spawn, a clone-based runtime), their fd table
// (CLONE_FILES) or their working directory, root and umask (CLONE_FS) with
// another process of the tree: each would come back with a copy of its own,
// which neither expects.
Result<void> check_nothing_shared(std::span<const pid_t> pids);

}  // namespace ckpt::dump
