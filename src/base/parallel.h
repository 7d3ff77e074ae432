// Independent items shared between this thread and one helper thread: the
// machine has two cores, and much of a dump is /proc reads and file writes
// that wait on neither ptrace nor each other.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

namespace ckpt {

// The CPUs the calling thread may run on (sched_getaffinity); 1 if it can't
// tell.
size_t usable_cpus();

// Runs work(i) for every i in [0, n), each item once, on this thread and,
// when n is at least `helper_from` (below that a thread costs more than it
// saves), on a helper thread as well, each taking the next item. `first`
// runs on this thread before it joins in, while the helper already works:
// for what must stay on this thread (ptrace requests come from the tracer
// thread). Returns once every item is done.
void share_with_helper(size_t n, size_t helper_from, const std::function<void(size_t)>& work,
                       const std::function<void()>& first = {});

// Items 0..n-1 made in order on a helper thread, ahead of this thread, which
// takes them in the same order: the making of the next items overlaps what
// this thread does with the earlier ones (ptrace work, which must stay on the
// tracer thread). take(i) makes item i here if the helper has not begun it
// yet, and waits for it if it has. make(i) must not depend on what this
// thread does meanwhile. No helper below `helper_from` items. Going out of
// scope stops the helper after the item it is making.
template <class T>
class Ahead {
 public:
  Ahead(size_t n, size_t helper_from, std::function<T(size_t)> make) : make_(std::move(make)), items_(n) {
    if (n < helper_from) return;
    helper_ = std::jthread([this](std::stop_token stop) {
      for (size_t i; !stop.stop_requested() && (i = next_.fetch_add(1)) < items_.size();) put(i, make_(i));
    });
  }

  T take(size_t i) {
    for (size_t j = next_.load(); j <= i; j = next_.load())
      if (next_.compare_exchange_weak(j, j + 1)) {
        if (j == i) return make_(i);
        put(j, make_(j));
      }
    std::unique_lock lock(mu_);
    ready_.wait(lock, [&] { return items_[i].has_value(); });
    return std::move(*items_[i]);
  }

 private:
  void put(size_t i, T&& item) {
    {
      std::lock_guard lock(mu_);
      items_[i].emplace(std::move(item));
    }
    ready_.notify_all();
  }

  std::function<T(size_t)> make_;
  std::vector<std::optional<T>> items_;
  std::atomic<size_t> next_{0};
  std::mutex mu_;
  std::condition_variable ready_;
  std::jthread helper_;  // last: stopped and joined first
};

}  // namespace ckpt
