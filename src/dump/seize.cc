#include "dump/seize.h"

#include <sys/ptrace.h>

#include <algorithm>
#include <future>
#include <map>
#include <optional>
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
  auto st = proc::read_thread_stat(tid);
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

namespace ckpt::dump {

namespace {

bool zombie_state(char s) { return s == 'Z' || s == 'X'; }

// A task that can be seized at all: not traced by someone else, not a
// process whose main thread has exited while others live on.
Result<void> check_seizable(pid_t pid, const proc::Stat& st) {
  auto status = TRY_CTX(proc::read_status(pid), "pid {}", pid);
  if (status.tracer_pid != 0)
    return error(EBUSY, "pid {} ({}) is already traced by pid {}", pid, st.comm, status.tracer_pid);
  if (zombie_state(st.state))
    return error(EOPNOTSUPP, "pid {} ({}): its main thread has exited while {} threads live on; such processes are "
                 "not supported yet", pid, st.comm, status.threads - 1);
  return {};
}

}  // namespace

Result<SeizedTree> seize_tree(pid_t root, Tracee::Clock::time_point deadline, TracerPool& tracers) {
  std::map<pid_t, TaskTracees> live;
  std::map<pid_t, proc::Stat> zombies;
  std::vector<pid_t> todo = {root};
  for (int pass = 1;; pass++) {
    // Seizable, or a zombie, as /proc shows it.
    std::vector<pid_t> seize;
    for (pid_t pid : todo) {
      auto st = proc::read_stat(pid);
      if (!st && pid == root) return error(ESRCH, "no process with pid {}", pid);
      if (!st) continue;  // exited and reaped (its parent ignores SIGCHLD) before it was stopped
      if (zombie_state(st->state) && pid != root) {
        auto tids = proc::list_numeric_dir(fmt::format("/proc/{}/task", pid));
        if (!tids || tids->size() <= 1) {
          zombies.emplace(pid, *st);
          continue;
        }
      }
      TRY(check_seizable(pid, *st));
      seize.push_back(pid);
    }
    // Each on its tracer, the other tracers' at once while this one seizes its own.
    const size_t first = live.size() + zombies.size();
    auto tracer_of = [&](size_t k) { return (first + k) % tracers.size(); };
    auto on_tracer = [&](size_t k) -> Result<TaskTracees> {
      return TaskTracees(tracers, tracer_of(k), TRY(seize_process(seize[k], deadline)));
    };
    std::vector<std::future<Result<TaskTracees>>> elsewhere(seize.size());
    for (size_t k = 0; k < seize.size(); k++)
      if (tracer_of(k) != 0) elsewhere[k] = tracers.post(tracer_of(k), [&on_tracer, k] { return on_tracer(k); });
    std::optional<Error> failed;
    for (size_t k = 0; k < seize.size(); k++) {
      const pid_t pid = seize[k];
      auto threads = elsewhere[k].valid() ? elsewhere[k].get() : on_tracer(k);
      if (!threads && threads.error().err == ESRCH && pid != root) {
        // Exited while being seized: a zombie now, unless already reaped.
        if (auto again = proc::read_stat(pid); again && zombie_state(again->state)) zombies.emplace(pid, *again);
        continue;
      }
      if (!threads && !failed) failed = threads.error().context(fmt::format("pid {}", pid));
      if (threads) live.emplace(pid, std::move(*threads));
    }
    if (failed) return std::unexpected(*failed);
    // Every live task known is stopped: its children can only be those
    // listed now, or exit and stay zombies.
    todo.clear();
    for (const auto& [pid, threads] : live)
      for (pid_t kid : TRY_CTX(proc::children(pid), "list the children of pid {}", pid))
        if (!live.contains(kid) && !zombies.contains(kid)) todo.push_back(kid);
    if (todo.empty()) break;
    if (pass == kMaxSeizePasses)
      return error(EAGAIN, "the tree of pid {} kept changing: {} passes found new tasks every time", root, pass);
  }

  // The model, parents before children (breadth first from the root).
  std::vector<tree::Task> tasks;
  std::vector<TaskTracees> tracees;
  std::vector<pid_t> order = {root};
  for (size_t i = 0; i < order.size(); i++) {
    const pid_t pid = order[i];
    tree::Task k;
    k.pid = pid;
    if (auto z = zombies.find(pid); z != zombies.end()) {
      const proc::Stat& st = z->second;
      k = {.pid = pid, .ppid = st.ppid, .pgid = st.pgrp, .sid = st.session, .zombie = true,
           .exit_status = st.exit_code, .comm = st.comm};
      tracees.emplace_back();
    } else {
      const proc::Stat st = TRY_CTX(proc::read_stat(pid), "pid {}", pid);
      k = {.pid = pid, .ppid = st.ppid, .pgid = st.pgrp, .sid = st.session, .comm = st.comm};
      tracees.push_back(std::move(live.at(pid)));
      for (pid_t kid : TRY_CTX(proc::children(pid), "list the children of pid {}", pid))
        if (live.contains(kid) || zombies.contains(kid)) order.push_back(kid);
    }
    tasks.push_back(std::move(k));
  }
  SeizedTree out{TRY_CTX(tree::ProcessTree::make(std::move(tasks)), "the tree of pid {}", root), std::move(tracees)};
  return out;
}

}  // namespace ckpt::dump
