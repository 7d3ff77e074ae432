// Creating the tasks that become the restored tree. ckpt clone3()s the root
// with its dumped PID; the root leaves ckpt's code for the spawner
// (src/pie/spawner.cc, in the restorer blob, which ckpt maps for it) and
// unmaps the rest of ckpt, so that every other task is a fork of a few
// pages. Each task, in the spawner, takes its session and group, lays out
// the memory its children share with it (restore/premap.h), forks its own
// children with theirs (so that every parent is the dumped one), waits until
// the whole tree exists to join the groups led by others, and then either
// exits as the zombie it was or maps its boot region, puts its fds in place,
// creates its threads and parks until ckpt, its tracer by then, releases it
// into the restorer. ckpt plans all of it here and writes it down for the
// spawner (pie/spawn_abi.h).
#pragma once

#include <sys/types.h>

#include <functional>
#include <string>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"
#include "files/files.h"
#include "pie/spawn_abi.h"
#include "restore/boot_region.h"
#include "restore/fd_moves.h"
#include "restore/premap.h"
#include "tree/tree.h"

namespace ckpt::restore {

struct SpawnTask {
  pid_t pid = 0;
  tree::Joins joins;
  std::vector<int> children;  // indices in SpawnTree::tasks: the tasks it forks
  bool zombie = false;
  int exit_status = 0;
  std::string comm;  // a zombie's: it dies with it (a live task's restorer sets its own)
  // A tree::Helper: leads its session or group (joins), forks its children
  // (tree::Helper::adopted), exits once every task has joined its group, and
  // is reaped by its parent. A task that forks a helper with children is a
  // child subreaper until it has reaped it, so that they become its own.
  bool helper = false;
  // A session leader's controlling terminal (files/pty.h): ckpt's fd of its
  // pty master, TIOCSCTTY right after setsid() (children forked later
  // inherit it), and the foreground group set once every group exists.
  int ctty_fd = -1;
  pid_t foreground = 0;

  // A live task. temp_fds (ckpt's numbers) move to temp_fd_base + i, in
  // this order: [0] must be the status pipe's write end and [1] the go
  // pipe's read end; the restorer closes them (fds >= temp_fd_base). fds:
  // ckpt's fd of each description, to dup to each target; every other fd of
  // ckpt is closed. fd_ops: those moves, planned (plan_task_fds).
  std::vector<int> temp_fds;
  const files::TaskFdPlan* fds = nullptr;
  std::vector<FdOp> fd_ops;
  std::string cwd;
  // The boot region, mapped by the task itself: the blob's code, then its
  // data at data_offset.
  uint64_t boot_start = 0, boot_size = 0, data_offset = 0;
  std::span<const uint8_t> data;  // staged in the pool
  uint64_t stack_top = 0, entry = 0, args = 0;
  // The other threads, created with their TIDs right before parking, each
  // waiting in the blob at `thread_entry(arg)` on its own stack.
  struct Thread {
    pid_t tid;
    uint64_t stack_top, stack_size, arg;
  };
  std::vector<Thread> threads;
  uint64_t thread_entry = 0;
  // Memory laid out before it forks its children, who share it.
  const TaskPremap* premap = nullptr;
  // A counter the threads bump once they run blob code (RestorerArgs).
  uint32_t* threads_ready = nullptr;
};

using SpawnBarrier = abi::SpawnBarrier;

// Where the spawner runs: the restorer blob, in a memfd of its own, and a
// stack. Mapped by ckpt before the boot regions are laid out (none lands on
// it); every task inherits it (the stack copy on write) and its restorer
// unmaps it. Each task maps its boot region's code from the same memfd:
// pages of the page cache every task shares, neither copied nor
// write-protected (an mprotect that takes write access from pages in
// memory flushes the TLB, which costs ~0.1 ms on a guest with shadow page
// tables).
class SpawnRegion {
 public:
  static Result<SpawnRegion> map();
  Range range() const;
  uint64_t blob() const { return reinterpret_cast<uint64_t>(m_.data()); }
  uint64_t stack_top() const { return blob() + m_.size(); }
  int blob_fd() const { return fd_.get(); }

 private:
  SpawnRegion(UniqueFd fd, Mapping m) : fd_(std::move(fd)), m_(std::move(m)) {}
  UniqueFd fd_;
  Mapping m_;
};

struct SpawnTree {
  std::vector<SpawnTask> tasks;  // [0] the root; the tree's tasks, then helpers
  bool sibling = false;          // CLONE_PARENT for the root
  int temp_fd_base = 0;          // above every fd of every task of the tree (not ckpt's)
  pid_t restorer_pgid = 0;       // for Joins::join_restorer_group
  SpawnBarrier* barrier = nullptr;
  // ckpt's pidfd of itself when some descriptions are opened once the tasks
  // exist (files.h: open_late): every task of the tree waits for
  // late_opened after the barrier (a zombie too, whose pidfd may be one of
  // them) and takes them from ckpt. -1: none.
  int ckpt_pidfd = -1;
  // The spawner: where it runs, and what the root keeps of ckpt's memory
  // (the region, the staging pool, the premap window, the barrier, the
  // kernel's special mappings; whole pages of them).
  const SpawnRegion* region = nullptr;
  std::vector<Range> keep;
  const abi::SpawnPlan* plan = nullptr;  // write_spawn_plan's
};

// Plans a live task's fd moves, once its temp_fds and fds are set.
Result<void> plan_task_fds(SpawnTask& t, int temp_fd_base);

// ckpt's side of that: once every task has arrived, `open` (the late
// descriptions), then late_opened; or the tasks are told to give up.
// Returns false if a task failed before all arrived (its status pipe says why).
Result<bool> open_when_arrived(const SpawnTree& tree, const std::function<Result<void>()>& open);

// The spawner's plan of `tree`, staged in `pool` (memory every task
// inherits): tree.plan.
Result<void> write_spawn_plan(SpawnTree& tree, BootDataPool& pool);

// What a task's status pipe said instead of its "R": an abi::SpawnFailure,
// or the text of a PID namespace's init.
std::string failure_text(std::string_view said);

// Forks the root, which forks the rest (helpers included). Each live task then writes "R" on
// its status pipe (or an abi::SpawnFailure, and exits) and waits for one byte on
// its go pipe; its other threads wait in the blob.
Result<pid_t> spawn(const SpawnTree& tree);

}  // namespace ckpt::restore
