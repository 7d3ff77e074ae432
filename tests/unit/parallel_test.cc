#include "base/parallel.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

namespace {

using ckpt::share_with_helper;

// Every item once; `first` on the calling thread, before it takes items.
TEST(ShareWithHelper, EveryItemOnceFirstOnTheCaller) {
  for (size_t n : {0u, 1u, 3u, 4u, 1000u}) {
    std::vector<std::atomic<int>> runs(n);
    std::thread::id first_on;
    share_with_helper(n, 4, [&](size_t i) { runs[i]++; }, [&] { first_on = std::this_thread::get_id(); });
    EXPECT_EQ(first_on, std::this_thread::get_id()) << n << " items";
    for (size_t i = 0; i < n; i++) EXPECT_EQ(runs[i].load(), 1) << "item " << i << " of " << n;
  }
}

// From `helper_from` items on, a second thread works while `first` still
// runs; below it, only the caller.
TEST(ShareWithHelper, HelperOnlyFromThreshold) {
  auto threads_used = [](size_t n, size_t helper_from) {
    std::mutex m;
    std::set<std::thread::id> ids;
    std::atomic<size_t> done{0};
    share_with_helper(
        n, helper_from,
        [&](size_t) {
          std::lock_guard held(m);
          ids.insert(std::this_thread::get_id());
          done++;
        },
        [&] {
          // The helper takes every item while the caller is held here.
          const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
          while (helper_from <= n && done < n && std::chrono::steady_clock::now() < until)
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        });
    return ids;
  };
  const auto many = threads_used(8, 4);
  EXPECT_EQ(many.size(), 1u);
  EXPECT_FALSE(many.contains(std::this_thread::get_id())) << "the helper took none while the caller was held";
  const auto few = threads_used(3, 4);
  EXPECT_EQ(few, std::set{std::this_thread::get_id()});
}

}  // namespace
