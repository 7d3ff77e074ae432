// The one act that lets a restored tree go as a whole.
//
// ckpt lets the tasks go one PTRACE_DETACH at a time, and until its detach a
// task dies with ckpt (PTRACE_O_EXITKILL). A ckpt killed inside that loop
// would leave the tasks it had let go running and the others dead: half a
// tree. No order of detaches closes that window, so a watcher does: a child
// of ckpt that holds a pidfd per task and one end of a socket pair. A byte
// from ckpt, sent once every task is detached, is the commit, and the
// watcher exits. End-of-file first (ckpt died, or gave up) and it kills
// every task. So a restore is whole or gone, wherever ckpt is killed.
//
// The watcher shares ckpt's memory (clone with CLONE_VM): no page tables to
// copy, and it reads its pidfds where ckpt keeps them (ckpt frees them only
// once it has reaped the watcher). It runs raw syscalls only, with the
// signals a terminal sends blocked, so that a Ctrl-C that kills ckpt does not
// kill its watcher too.
#pragma once

#include <sys/types.h>

#include <memory>
#include <vector>

#include "base/result.h"

namespace ckpt::restore {

class TreeCommit {
 public:
  // Watches `tasks` (as ckpt sees their PIDs; a --pidns init kills its
  // whole namespace). A task already gone is skipped.
  static Result<TreeCommit> watch(const std::vector<pid_t>& tasks);
  TreeCommit(TreeCommit&&) noexcept;
  TreeCommit& operator=(TreeCommit&&) = delete;
  // Without commit(): the watcher kills every task, and is reaped.
  ~TreeCommit();

  // Every task is let go: the watcher exits without a kill, and is reaped.
  void commit();

  struct Watcher;  // commit.cc's

 private:
  explicit TreeCommit(std::unique_ptr<Watcher> w);
  void end();
  std::unique_ptr<Watcher> w_;
};

}  // namespace ckpt::restore
