#include "proc/sched.h"

#include <sys/syscall.h>
#include <unistd.h>

#include <cstdint>

namespace ckpt::proc {

namespace {

// The kernel's struct sched_attr, first version (glibc 2.36 has no wrapper).
struct SchedAttr {
  uint32_t size;
  uint32_t policy;
  uint64_t flags;
  int32_t nice;
  uint32_t priority;
  uint64_t runtime, deadline, period;
};

constexpr int kIoprioWhoProcess = 1;  // IOPRIO_WHO_PROCESS: one thread

}  // namespace

Result<img::Sched> read_sched(pid_t tid) {
  SchedAttr a{};
  if (syscall(SYS_sched_getattr, tid, &a, sizeof a, 0) < 0) return sys_error("sched_getattr of thread {}", tid);
  img::Sched s;
  s.set_policy(a.policy);
  s.set_flags(a.flags);
  s.set_nice(a.nice);
  s.set_priority(a.priority);
  s.set_runtime_ns(a.runtime);
  s.set_deadline_ns(a.deadline);
  s.set_period_ns(a.period);
  return s;
}

Result<void> write_sched(pid_t tid, const img::Sched& s) {
  SchedAttr a{sizeof(SchedAttr), s.policy(), s.flags(), s.nice(), s.priority(), s.runtime_ns(), s.deadline_ns(),
              s.period_ns()};
  if (syscall(SYS_sched_setattr, tid, &a, 0) < 0)
    return sys_error("sched_setattr of thread {} (policy {}, priority {}, nice {})", tid, s.policy(), s.priority(),
                     s.nice());
  return {};
}

Result<int> read_ioprio(pid_t tid) {
  long r = syscall(SYS_ioprio_get, kIoprioWhoProcess, tid);
  if (r < 0) return sys_error("ioprio_get of thread {}", tid);
  return static_cast<int>(r);
}

Result<void> write_ioprio(pid_t tid, int ioprio) {
  if (syscall(SYS_ioprio_set, kIoprioWhoProcess, tid, ioprio) < 0)
    return sys_error("ioprio_set of thread {} to {:#x}", tid, ioprio);
  return {};
}

Result<ThreadSched> read_thread_sched(pid_t tid) {
  // Both read before the braces (TRY, base/result.h).
  img::Sched sched = TRY(read_sched(tid));
  const int ioprio = TRY(read_ioprio(tid));
  return ThreadSched{std::move(sched), ioprio};
}

Result<void> write_thread_sched(pid_t tid, const img::ThreadCore& dumped, const ThreadSched& has) {
  if (dumped.has_sched()) {
    const img::Sched& d = dumped.sched();
    const img::Sched& h = has.sched;
    if (d.policy() != h.policy() || d.flags() != h.flags() || d.nice() != h.nice() || d.priority() != h.priority() ||
        d.runtime_ns() != h.runtime_ns() || d.deadline_ns() != h.deadline_ns() || d.period_ns() != h.period_ns())
      TRY(write_sched(tid, d));
  }
  if (dumped.has_ioprio() && dumped.ioprio() != has.ioprio) TRY(write_ioprio(tid, dumped.ioprio()));
  return {};
}

}  // namespace ckpt::proc
