// restore --pidns: the tree in a new PID namespace, every task with its
// dumped PID inside it (clone3 set_tid sets the innermost one; the PIDs
// outside are the kernel's choice), so that PIDs taken here don't matter.
//
// PID 1 of the namespace is a small init of ckpt's (a copy of ckpt, named
// "ckpt-init"): the kernel lets no other PID be set before a PID 1 exists,
// and the namespace needs a reaper for the tree's orphans. It is the root's
// parent, reaps whatever the namespace orphans, and exits with the root's
// status when the root exits (128+N for a signal N); its exit kills what is
// left of the namespace, as a container's init does. It also has a mount
// namespace of its own with a /proc of the new PID namespace on /proc (as
// `unshare --pid --fork --mount-proc`), so that /proc/self and every PID
// read there are the tree's own.
#pragma once

#include <sys/types.h>

#include <map>

#include "base/result.h"
#include "restore/spawn.h"

namespace ckpt::restore {

// A PID of the tree, as dumped (inside its namespace) -> the same task's PID
// in ckpt's namespace, where ckpt traces, signals and waits for it. Empty
// (no --pidns): the same numbers.
class PidMap {
 public:
  // Every task and thread under `init`, from NSpid of /proc/PID/status.
  static Result<PidMap> read(pid_t init);
  // `pid` as ckpt sees it; itself if not in the map.
  pid_t outside(pid_t pid) const;
  // Whether ckpt knows `pid` here (always, without --pidns).
  bool has(pid_t pid) const { return map_.empty() || map_.contains(pid); }

 private:
  std::map<pid_t, pid_t> map_;
};

// Clones the namespace's init (CLONE_NEWPID | CLONE_NEWNS; CLONE_PARENT if
// `sibling`), which mounts its /proc and spawn()s the tree's root. A failure
// there is written on the root's status pipe. Returns the init's PID here.
Result<pid_t> spawn_in_new_pidns(const SpawnTree& tree, bool sibling);

}  // namespace ckpt::restore
