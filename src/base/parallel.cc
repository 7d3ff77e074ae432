#include "base/parallel.h"

#include <sched.h>

#include <algorithm>
#include <atomic>
#include <thread>

namespace ckpt {

size_t usable_cpus() {
  cpu_set_t cpus;
  if (sched_getaffinity(0, sizeof cpus, &cpus) < 0) return 1;
  return std::max(CPU_COUNT(&cpus), 1);
}

void share_with_helper(size_t n, size_t helper_from, const std::function<void(size_t)>& work,
                       const std::function<void()>& first) {
  std::atomic<size_t> next{0};
  auto take = [&] {
    for (size_t i; (i = next.fetch_add(1)) < n;) work(i);
  };
  std::jthread helper;
  if (n >= helper_from) helper = std::jthread(take);
  if (first) first();
  take();
}

}  // namespace ckpt
