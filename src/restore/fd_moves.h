// Putting a restored task's fds at their numbers in its copy of ckpt's fd
// table, without ever needing more fd slots than the highest number in use
// (ckpt's fds or the task's targets) plus one.
//
// A task holds ckpt's whole fd table (inherited through the root, a fork of ckpt): ckpt's own fds, the
// open file descriptions it prepared for every task of the tree, and the
// temporary fds this task needs until its restorer has mapped its memory.
// What this task needs is a set of moves, fd `from` (ckpt's number) to fd
// `to` (the task's): several moves may share a `from` (fds of the task, or
// of tasks of the tree, that share one description, prepared once by ckpt),
// and no two share a `to`. The `from`s and `to`s overlap: ckpt's fd 7 may
// be the task's fd 12 while the task's fd 7 is ckpt's 40. Doing them in any
// order would clobber an fd still needed (dup2 closes what it replaces), and
// moving everything above the highest number first, as ckpt once did, needs
// twice the slots: a process with 10,000 fds under an RLIMIT_NOFILE of
// 20,000 could not be restored.
//
// So (a parallel move, as a compiler's register allocator does them):
//   1. every fd that is no `from` is closed (close_range over the gaps);
//   2. a move whose `to` holds nothing still needed is done (dup3), and a
//      `from` whose moves are all done and which is no `to` itself is closed,
//      which may free the `to` of another move;
//   3. when no move can be done, the rest are cycles (a `to` held by another
//      pending `from`, round): that `from` moves to the lowest free fd
//      (F_DUPFD from 0: no pending `to` is free then, so it is none of
//      them, and it is below the number of open fds), which frees the `to`.
// Each fd is dup'ed once per move, plus once per cycle.
//
// ckpt plans the moves before the fork (after step 1 the task's fd table is
// exactly the `from`s, so ckpt knows every number F_DUPFD will give); the
// task's spawner only runs the plan's syscalls (pie/fd_ops.h).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "base/result.h"
#include "pie/spawn_abi.h"

namespace ckpt::restore {

struct FdMove {
  int from;
  int to;
  bool cloexec;
};

// One syscall of the plan: run by the spawner (pie/fd_ops.h).
using FdOp = abi::FdOp;

// The plan for `moves`. `watch`: an fd among the `from`s whose number the
// task uses meanwhile (its status pipe), or -1.
Result<std::vector<FdOp>> plan_fd_moves(std::span<const FdMove> moves, int watch);

}  // namespace ckpt::restore
