// Tracer threads: a tracee answers ptrace requests only from the thread that
// seized it, so a dump that works on several tasks at once gives each task
// to one tracer for its whole time under ckpt, from its seize to its detach
// (or the death it is killed with). Tracer 0 is the thread that made the
// pool; the others are threads of their own, started on first use, so that
// a dump of one task starts none.
//
// Why: a task's dump is a chain of round trips (remote syscalls, the
// parasite's replies) in which ckpt and the task mostly wait for each other.
// Two such chains side by side keep both cores of this machine busy where
// one left them idle most of the time.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <span>
#include <thread>
#include <type_traits>
#include <vector>

#include "base/check.h"
#include "base/result.h"
#include "ptrace/tracee.h"

namespace ckpt {

class TracerPool {
 public:
  explicit TracerPool(size_t tracers);  // at least 1: the calling thread
  TracerPool(const TracerPool&) = delete;
  TracerPool& operator=(const TracerPool&) = delete;
  ~TracerPool();  // runs what was posted, then joins

  size_t size() const { return workers_.size() + 1; }

  // Runs `f` on tracer `i` and waits for its result: here if this thread is
  // tracer `i`. Tracer 0 takes no queued work: its work is run on it only.
  template <class F>
  std::invoke_result_t<F> run(size_t i, F&& f) {
    CHECK(i != 0 || on(0), "tracer 0's work run on another thread");
    if (on(i)) return f();
    return post(i, std::forward<F>(f)).get();
  }

  // Queues `f` on tracer `i` (not 0); the future holds its result.
  template <class F>
  std::future<std::invoke_result_t<F>> post(size_t i, F&& f) {
    std::packaged_task<std::invoke_result_t<F>()> task(std::forward<F>(f));
    auto done = task.get_future();
    enqueue(i, std::move(task));
    return done;
  }

  // Runs f(i) on every tracer at once (0 here, the others only if started)
  // and returns the first error by tracer order, once all are through.
  Result<void> on_each(const std::function<Result<void>(size_t)>& f);

 private:
  struct Worker;
  bool on(size_t i) const;
  void enqueue(size_t i, std::move_only_function<void()> job);
  Worker& worker(size_t i);  // started on first use

  std::vector<std::unique_ptr<Worker>> workers_;  // tracer i is workers_[i - 1]
  // Every tracer's thread id (0: not started), for SIGCHLD forwarding
  // (ChildEvents): fixed in size, written once per slot.
  std::unique_ptr<std::atomic<pid_t>[]> tids_;
};

// The threads of one task and the tracer they belong to, where they are
// detached when this goes (a PTRACE_DETACH from any other thread fails).
class TaskTracees {
 public:
  TaskTracees() = default;
  TaskTracees(TracerPool& pool, size_t tracer, std::vector<Tracee> threads)
      : pool_(&pool), tracer_(tracer), threads_(std::move(threads)) {}
  TaskTracees(TaskTracees&& o) noexcept
      : pool_(std::exchange(o.pool_, nullptr)), tracer_(o.tracer_), threads_(std::move(o.threads_)) {}
  TaskTracees& operator=(TaskTracees&&) = delete;
  ~TaskTracees() { release(); }
  // Many tasks' at once: one trip to each tracer for all of them, where
  // each task's own destructor costs a trip (a wakeup of its tracer's
  // thread, ~60 us here: 1.6 ms a 50-task dump).
  static void release(std::span<TaskTracees> tasks);

  size_t tracer() const { return tracer_; }
  std::vector<Tracee>& threads() { return threads_; }
  const std::vector<Tracee>& threads() const { return threads_; }
  bool empty() const { return threads_.empty(); }

 private:
  void release();
  TracerPool* pool_ = nullptr;
  size_t tracer_ = 0;
  std::vector<Tracee> threads_;
};

}  // namespace ckpt
