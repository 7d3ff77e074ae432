// Stopping every thread of a process. Threads can clone while we seize, so
// /proc/PID/task is read again until a pass finds nothing new; a thread
// created by one we have not stopped yet shows up in a later pass, and once
// all are stopped nobody can create more. Threads can exit too, at any point
// of their seizing: those are dropped, not an error.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <vector>

#include "base/result.h"
#include "ptrace/tracee.h"

namespace ckpt::dump {

// Passes over /proc/PID/task before seize_process gives up on a process whose
// threads keep changing.
inline constexpr int kMaxSeizePasses = 100;

// threads[0] is the main thread. Gives up at `deadline` (--timeout).
Result<std::vector<Tracee>> seize_process(pid_t pid, Tracee::Clock::time_point deadline);

}  // namespace ckpt::dump
