// A thread's scheduling policy and I/O priority: read from outside at dump,
// written back from outside at restore (root may set any policy, CAP_SYS_NICE).
#pragma once

#include <sys/types.h>

#include "base/result.h"
#include "ckpt.pb.h"

namespace ckpt::proc {

Result<img::Sched> read_sched(pid_t tid);
Result<void> write_sched(pid_t tid, const img::Sched& s);

Result<int> read_ioprio(pid_t tid);
Result<void> write_ioprio(pid_t tid, int ioprio);

// Both at once, and a thread's own write of them only where they differ
// from what it has: a restored thread starts with ckpt's, inherited, which
// is what most threads were dumped with.
struct ThreadSched {
  img::Sched sched;
  int ioprio = 0;
};
Result<ThreadSched> read_thread_sched(pid_t tid);
Result<void> write_thread_sched(pid_t tid, const img::ThreadCore& dumped, const ThreadSched& has);

}  // namespace ckpt::proc
