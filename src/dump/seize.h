// Stopping every thread of a process. Threads can clone while we seize, so
// /proc/PID/task is read again until a pass finds nothing new; a thread
// created by one we have not stopped yet shows up in a later pass, and once
// all are stopped nobody can create more. Threads can exit too, at any point
// of their seizing: those are dropped, not an error.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <span>
#include <vector>

#include "base/result.h"
#include "ptrace/tracee.h"
#include "ptrace/tracer_pool.h"
#include "tree/tree.h"

namespace ckpt::dump {

// Passes over /proc/PID/task before seize_process gives up on a process whose
// threads keep changing.
inline constexpr int kMaxSeizePasses = 100;

// threads[0] is the main thread. Gives up at `deadline` (--timeout).
Result<std::vector<Tracee>> seize_process(pid_t pid, Tracee::Clock::time_point deadline);
// Many processes, as seize_process each, by one tracer: every one's threads
// are asked to stop before any stop is waited for, so that their ways to
// their stops (a wakeup each, of a sleeping task, often on another CPU)
// overlap instead of adding up.
std::vector<Result<std::vector<Tracee>>> seize_processes(std::span<const pid_t> pids,
                                                        Tracee::Clock::time_point deadline);

// A tree, frozen: every thread of every live task stopped, zombies recorded.
struct SeizedTree {
  SeizedTree(tree::ProcessTree t, std::vector<TaskTracees> seized) : tree(std::move(t)), tasks(std::move(seized)) {}
  SeizedTree(SeizedTree&&) = default;
  SeizedTree& operator=(SeizedTree&&) = default;
  ~SeizedTree() { TaskTracees::release(tasks); }

  tree::ProcessTree tree;
  std::vector<TaskTracees> tasks;  // per task of tree.tasks(); no threads for a zombie
};

// Seizes `root` and its descendants. Tasks fork and exit while they are
// seized, so children are listed again, once their parents are stopped,
// until a pass finds no new one: a stopped task forks no more. A child that
// exits meanwhile stays a zombie (its parent is stopped), and is dumped as
// one. Gives up at `deadline` (--timeout), or after kMaxSeizePasses passes.
// The tasks go to the tracers in turn, the root to tracer 0; the tasks of
// one pass are seized on their tracers at once.
Result<SeizedTree> seize_tree(pid_t root, Tracee::Clock::time_point deadline, TracerPool& tracers);

}  // namespace ckpt::dump
