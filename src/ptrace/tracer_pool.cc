#include "ptrace/tracer_pool.h"

#include <unistd.h>

namespace ckpt {

struct TracerPool::Worker {
  std::mutex mu;
  std::condition_variable wake;
  std::deque<std::move_only_function<void()>> jobs;
  bool stop = false;
  std::thread thread;  // last: started once the rest exists
};

TracerPool::TracerPool(size_t tracers) : tids_(new std::atomic<pid_t>[std::max<size_t>(tracers, 1)]) {
  CHECK(tracers >= 1, "a tracer pool of {} tracers", tracers);
  workers_.resize(tracers - 1);
  tids_[0].store(gettid(), std::memory_order_release);
  for (size_t i = 1; i < tracers; i++) tids_[i].store(0, std::memory_order_relaxed);
  if (tracers > 1) ChildEvents::set_peers({tids_.get(), tracers});
}

TracerPool::~TracerPool() {
  for (auto& w : workers_) {
    if (!w) continue;
    {
      std::lock_guard lock(w->mu);
      w->stop = true;
    }
    w->wake.notify_one();
    w->thread.join();
  }
  if (size() > 1) ChildEvents::set_peers({});
}

bool TracerPool::on(size_t i) const { return tids_[i].load(std::memory_order_acquire) == gettid(); }

TracerPool::Worker& TracerPool::worker(size_t i) {
  CHECK(i >= 1 && i < size(), "tracer {} of a pool of {}", i, size());
  std::unique_ptr<Worker>& w = workers_[i - 1];
  if (w) return *w;
  w = std::make_unique<Worker>();
  // It inherits this thread's signal mask: SIGCHLD blocked, as ChildEvents wants.
  w->thread = std::thread([this, i, &self = *w] {
    tids_[i].store(gettid(), std::memory_order_release);
    ChildEvents::set_peers({tids_.get(), size()});
    std::unique_lock lock(self.mu);
    for (;;) {
      self.wake.wait(lock, [&] { return self.stop || !self.jobs.empty(); });
      if (self.jobs.empty()) return;  // stopped, with nothing left to run
      auto job = std::move(self.jobs.front());
      self.jobs.pop_front();
      lock.unlock();
      job();
      lock.lock();
    }
  });
  return *w;
}

void TracerPool::enqueue(size_t i, std::move_only_function<void()> job) {
  Worker& w = worker(i);
  {
    std::lock_guard lock(w.mu);
    w.jobs.push_back(std::move(job));
  }
  w.wake.notify_one();
}

Result<void> TracerPool::on_each(const std::function<Result<void>(size_t)>& f) {
  std::vector<std::future<Result<void>>> others;
  for (size_t i = 1; i < size(); i++)
    if (workers_[i - 1]) others.push_back(post(i, [&f, i] { return f(i); }));
  Result<void> first = f(0);
  for (auto& o : others)
    if (Result<void> r = o.get(); first && !r) first = std::move(r);
  return first;
}

void TaskTracees::release() {
  if (threads_.empty()) return;
  if (!pool_) {
    threads_.clear();
    return;
  }
  pool_->run(tracer_, [this] { threads_.clear(); });
}

void TaskTracees::release(std::span<TaskTracees> tasks) {
  TracerPool* pool = nullptr;
  for (const TaskTracees& t : tasks)
    if (t.pool_ && !t.threads_.empty()) pool = t.pool_;
  if (pool)
    (void)pool->on_each([&](size_t tracer) -> Result<void> {
      for (TaskTracees& t : tasks)
        if (t.pool_ == pool && t.tracer_ == tracer) t.threads_.clear();
      return {};
    });
  for (TaskTracees& t : tasks) t.release();  // any of another pool, or of none
}

}  // namespace ckpt
