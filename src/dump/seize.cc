#include "dump/seize.h"

#include <sys/ptrace.h>

#include <algorithm>
#include <set>

#include "proc/status.h"

namespace ckpt::dump {

namespace {

// Waits for the interrupt stop; a signal-delivery stop that raced with our
// interrupt is let through (the signal is not ours to eat). False if the
// thread exited first: the wait reaped it.
Result<bool> wait_for_interrupt(Tracee& t, Tracee::Clock::time_point deadline) {
  for (;;) {
    auto s = t.wait(deadline);
    if (!s && s.error().err == ESRCH) return false;
    if (!s) return std::unexpected(s.error());
    if (s->gone()) return false;
    if (s->event() == PTRACE_EVENT_STOP) return true;
    TRY(t.cont(s->sig()));
  }
}

// PTRACE_SEIZE of a thread that is on its way out fails with ESRCH, or with
// EPERM once it has an exit state (ptrace_attach() refuses those).
bool exited(const Error& e, pid_t tid) {
  if (e.err == ESRCH) return true;
  if (e.err != EPERM) return false;
  auto st = proc::read_stat(tid);
  return !st || st->state == 'Z' || st->state == 'X';
}

}  // namespace

Result<std::vector<Tracee>> seize_process(pid_t pid, Tracee::Clock::time_point deadline) {
  std::vector<Tracee> threads;
  std::set<pid_t> seized;
  for (int pass = 1;; pass++) {
    std::vector<int> tids = TRY(proc::list_numeric_dir(fmt::format("/proc/{}/task", pid)));
    const size_t first_new = threads.size();
    // The main thread first, so that it ends up at index 0.
    std::stable_partition(tids.begin(), tids.end(), [&](int t) { return t == pid; });
    for (int tid : tids) {
      if (seized.contains(tid)) continue;
      auto t = Tracee::seize(tid);
      if (!t && exited(t.error(), tid)) continue;
      if (!t) return std::unexpected(t.error());
      // One that exits before it stops reports its death to the wait below.
      if (auto r = t->interrupt(); !r && r.error().err != ESRCH) return std::unexpected(r.error());
      seized.insert(tid);
      threads.push_back(std::move(*t));
    }
    // Every thread seized so far is stopped, and none was found new: no
    // thread can appear any more.
    if (threads.size() == first_new) break;
    if (pass == kMaxSeizePasses)
      return error(EAGAIN, "the threads of pid {} kept changing: {} passes over /proc/{}/task found new ones every time",
                   pid, pass, pid);
    std::vector<bool> gone(threads.size(), false);
    for (size_t i = first_new; i < threads.size(); i++) gone[i] = !TRY(wait_for_interrupt(threads[i], deadline));
    // Exited while being seized: not ours to dump. Its TID may come back as a new thread.
    std::vector<Tracee> kept;
    kept.reserve(threads.size());
    for (size_t i = 0; i < threads.size(); i++) {
      if (gone[i]) seized.erase(threads[i].tid());
      else kept.push_back(std::move(threads[i]));
    }
    threads.swap(kept);
  }
  if (threads.empty() || threads[0].tid() != pid) return error(ESRCH, "the main thread of {} is gone", pid);
  return threads;
}

}  // namespace ckpt::dump
