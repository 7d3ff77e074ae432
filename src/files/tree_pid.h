// A PID a description names (a pidfd's task, the PID of /proc/PID/...):
// restore recreates the tree's tasks with their PIDs, so such a description
// can be opened again only on a task of the tree.
#pragma once

#include <sys/types.h>

#include <string_view>

#include "base/result.h"
#include "files/kind.h"
#include "tree/tree.h"

namespace ckpt::files {

// The task of the tree with PID `pid`, or an Error naming the process that
// has it (its comm) as outside the tree: "{what} pid 4121 (sleep), which is
// not in the tree".
Result<const tree::Task*> tree_task(pid_t pid, const CollectContext& ctx, std::string_view what);

}  // namespace ckpt::files
