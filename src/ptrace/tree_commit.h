// The one act that lets a tree go as a whole, or kills it as a whole.
//
// ckpt acts on a tree one task at a time: restore lets each go with a
// PTRACE_DETACH, and until then the task dies with ckpt (PTRACE_O_EXITKILL);
// a dump that ends in a kill sends one SIGKILL per task, and the tasks not
// yet killed run on once their tracer is gone. A ckpt killed inside either
// loop would leave half a tree running: no order of the acts closes that
// window, so a watcher does (ptrace/watcher.h), holding a pidfd per task.
// ckpt commits once every task is let go, and the watcher exits.
// End-of-file first (ckpt gave up, or died) and it kills every task: a
// restore is whole or gone, wherever ckpt is killed.
//
// A dump's kill is committed by a file instead: its inventory, the last
// image, whose rename makes the checkpoint. Made before the inventory, a
// watcher told so kills at end-of-file only if the file exists by then. A
// ckpt killed before the rename leaves the tree running and no checkpoint;
// killed after it, at any moment, the tree goes and the checkpoint holds it.
#pragma once

#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/result.h"
#include "ptrace/watcher.h"

namespace ckpt {

class TreeCommit {
 public:
  // The file whose existence decides a kill at end-of-file.
  struct KillIf {
    int dir_fd;  // stays open in the watcher (its own fd table)
    std::string name;
  };
  // Watches `tasks` (as ckpt sees their PIDs; a --pidns init kills its
  // whole namespace). A task already gone is skipped.
  static Result<TreeCommit> watch(const std::vector<pid_t>& tasks, std::optional<KillIf> kill_if = {});
  TreeCommit(TreeCommit&&) noexcept;
  TreeCommit& operator=(TreeCommit&&) = delete;
  // kill() unless committed.
  ~TreeCommit();

  // Every task is let go: the watcher exits without a kill, and is reaped.
  void commit();
  // The watcher kills every task (with KillIf: if the file exists), and is
  // reaped (their deaths are the caller's to collect).
  void kill();

  struct Tasks;  // tree_commit.cc's

 private:
  TreeCommit(std::unique_ptr<Tasks> t, Watcher w);
  std::unique_ptr<Tasks> tasks_;
  std::optional<Watcher> watcher_;
};

}  // namespace ckpt
