#include "dump/seize.h"

#include <sys/ptrace.h>

#include <algorithm>
#include <set>

#include "proc/status.h"

namespace ckpt::dump {

namespace {

// Waits for the interrupt stop; a signal-delivery stop that raced with our
// interrupt is let through (the signal is not ours to eat).
Result<void> wait_for_interrupt(Tracee& t, Tracee::Clock::time_point deadline) {
  for (;;) {
    Stop s = TRY(t.wait(deadline));
    if (s.gone()) return error(ESRCH, "thread {} {} while being seized", t.tid(), s.describe());
    if (s.event() == PTRACE_EVENT_STOP) return {};
    TRY(t.cont(s.sig()));
  }
}

}  // namespace

Result<std::vector<Tracee>> seize_process(pid_t pid, Tracee::Clock::time_point deadline) {
  std::vector<Tracee> threads;
  std::set<pid_t> seen;
  for (;;) {
    std::vector<int> tids = TRY(proc::list_numeric_dir(fmt::format("/proc/{}/task", pid)));
    size_t first_new = threads.size();
    // The main thread first, so that it ends up at index 0.
    std::stable_partition(tids.begin(), tids.end(), [&](int t) { return t == pid; });
    for (int tid : tids) {
      if (!seen.insert(tid).second) continue;
      auto t = Tracee::seize(tid);
      if (!t && t.error().err == ESRCH) continue;  // exited meanwhile
      if (!t) return std::unexpected(t.error());
      TRY(t->interrupt());
      threads.push_back(std::move(*t));
    }
    if (threads.size() == first_new) break;
    for (size_t i = first_new; i < threads.size(); i++) TRY(wait_for_interrupt(threads[i], deadline));
  }
  if (threads.empty() || threads[0].tid() != pid) return error(ESRCH, "the main thread of {} is gone", pid);
  return threads;
}

}  // namespace ckpt::dump
