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

// One process being seized, pass after pass over /proc/PID/task.
struct Seizing {
  pid_t pid;
  std::vector<Tracee> threads;
  std::set<pid_t> seized;
  int passes = 0;

  // Seizes and asks to stop each thread listed that is not seized yet;
  // returns how many. One that exits before it stops reports its death to
  // wait_new().
  Result<size_t> seize_listed() {
    auto listed = proc::list_numeric_dir(fmt::format("/proc/{}/task", pid));
    // Gone and reaped (a parent that ignores SIGCHLD): as gone as ESRCH says.
    if (!listed && listed.error().err == ENOENT) return error(ESRCH, "pid {} is gone", pid);
    std::vector<int> tids = TRY(std::move(listed));
    passes++;
    const size_t before = threads.size();
    // The main thread first, so that it ends up at index 0.
    std::stable_partition(tids.begin(), tids.end(), [&](int t) { return t == pid; });
    for (int tid : tids) {
      if (seized.contains(tid)) continue;
      auto t = Tracee::seize(tid);
      if (!t && exited(t.error(), tid)) continue;
      if (!t) return std::unexpected(t.error());
      if (auto r = t->interrupt(); !r && r.error().err != ESRCH) return std::unexpected(r.error());
      seized.insert(tid);
      threads.push_back(std::move(*t));
    }
    return threads.size() - before;
  }

  // Waits for the stops of the `n` seized last. Those that exited while
  // being seized are not ours to dump; a TID may come back as a new thread.
  Result<void> wait_new(size_t n, Tracee::Clock::time_point deadline) {
    std::vector<bool> gone(threads.size(), false);
    for (size_t i = threads.size() - n; i < threads.size(); i++) gone[i] = !TRY(wait_for_interrupt(threads[i], deadline));
    std::vector<Tracee> kept;
    kept.reserve(threads.size());
    for (size_t i = 0; i < threads.size(); i++) {
      if (gone[i]) seized.erase(threads[i].tid());
      else kept.push_back(std::move(threads[i]));
    }
    threads.swap(kept);
    return {};
  }

  // From a first pass that found `n`: every thread seized so far is
  // stopped and a pass found none new, so no thread can appear any more.
  Result<std::vector<Tracee>> finish(size_t n, Tracee::Clock::time_point deadline) {
    for (; n > 0; n = TRY(seize_listed())) {
      if (passes == kMaxSeizePasses)
        return error(EAGAIN, "the threads of pid {} kept changing: {} passes over /proc/{}/task found new ones every "
                     "time", pid, passes, pid);
      TRY(wait_new(n, deadline));
    }
    if (threads.empty() || threads[0].tid() != pid) return error(ESRCH, "the main thread of {} is gone", pid);
    return std::move(threads);
  }
};

}  // namespace

Result<std::vector<Tracee>> seize_process(pid_t pid, Tracee::Clock::time_point deadline) {
  Seizing s{pid};
  const size_t n = TRY(s.seize_listed());
  return s.finish(n, deadline);
}

std::vector<Result<std::vector<Tracee>>> seize_processes(std::span<const pid_t> pids,
                                                        Tracee::Clock::time_point deadline) {
  std::vector<Seizing> all;
  std::vector<Result<size_t>> first;
  all.reserve(pids.size());
  for (pid_t pid : pids) {
    all.push_back({pid});
    first.push_back(all.back().seize_listed());
  }
  std::vector<Result<std::vector<Tracee>>> out;
  for (size_t i = 0; i < all.size(); i++)
    out.push_back(first[i] ? all[i].finish(*first[i], deadline) : std::unexpected(first[i].error()));
  return out;
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
  std::map<pid_t, std::vector<pid_t>> children;  // of each live task
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
    // Each on its tracer, the other tracers' at once while this one seizes
    // its own, all of a tracer's asked to stop before it waits for any.
    const size_t first = live.size() + zombies.size();
    auto tracer_of = [&](size_t k) { return (first + k) % tracers.size(); };
    std::vector<std::optional<Result<TaskTracees>>> got(seize.size());
    auto on_tracer = [&](size_t tracer) {
      std::vector<size_t> mine;
      std::vector<pid_t> pids;
      for (size_t k = 0; k < seize.size(); k++)
        if (tracer_of(k) == tracer) mine.push_back(k), pids.push_back(seize[k]);
      auto seized = seize_processes(pids, deadline);
      for (size_t j = 0; j < mine.size(); j++) {
        if (seized[j]) got[mine[j]].emplace(TaskTracees(tracers, tracer, std::move(*seized[j])));
        else got[mine[j]].emplace(std::unexpected(seized[j].error()));
      }
    };
    // The tracers take turns: the first tasks of the pass name every one
    // that has any (a tracer with none is not started for nothing).
    std::vector<std::future<void>> elsewhere;
    for (size_t k = 0; k < std::min(seize.size(), tracers.size()); k++)
      if (const size_t tracer = tracer_of(k); tracer != 0)
        elsewhere.push_back(tracers.post(tracer, [&on_tracer, tracer] { on_tracer(tracer); }));
    on_tracer(0);
    for (auto& e : elsewhere) e.get();
    std::optional<Error> failed;
    for (size_t k = 0; k < seize.size(); k++) {
      const pid_t pid = seize[k];
      Result<TaskTracees>& threads = *got[k];
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
    // listed now (once, after its stop), or exit and stay zombies.
    todo.clear();
    for (const auto& [pid, threads] : live)
      if (!children.contains(pid))
        children.emplace(pid, TRY_CTX(proc::children(pid), "list the children of pid {}", pid));
    for (const auto& [pid, kids] : children)
      for (pid_t kid : kids)
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
      for (pid_t kid : children.at(pid))
        if (live.contains(kid) || zombies.contains(kid)) order.push_back(kid);
    }
    tasks.push_back(std::move(k));
  }
  SeizedTree out{TRY_CTX(tree::ProcessTree::make(std::move(tasks)), "the tree of pid {}", root), std::move(tracees)};
  return out;
}

}  // namespace ckpt::dump
