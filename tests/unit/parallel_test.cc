#include "base/parallel.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

namespace {

using ckpt::Ahead;
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

// Each item made once, on one thread or the other, and taken in order with
// its own value; the caller makes the ones the helper has not begun.
TEST(Ahead, EveryItemOnceInOrder) {
  for (size_t n : {0u, 1u, 2u, 100u}) {
    std::vector<std::atomic<int>> made(n);
    std::mutex m;
    std::set<std::thread::id> ids;
    Ahead<size_t> ahead(n, 2, [&](size_t i) {
      made[i]++;
      std::lock_guard held(m);
      ids.insert(std::this_thread::get_id());
      return i * 7;
    });
    for (size_t i = 0; i < n; i++) EXPECT_EQ(ahead.take(i), i * 7) << "item " << i << " of " << n;
    for (size_t i = 0; i < n; i++) EXPECT_EQ(made[i].load(), 1) << "item " << i << " of " << n;
    if (n < 2) {
      EXPECT_TRUE(ids.empty() || ids == std::set{std::this_thread::get_id()}) << "a helper for " << n;
    }
  }
}

// The helper works while the caller is busy elsewhere: items are ready
// before they are taken, and one taken out of order is still its own.
TEST(Ahead, HelperMakesAheadOfTheCaller) {
  std::atomic<size_t> done{0};
  Ahead<std::thread::id> ahead(8, 2, [&](size_t) {
    done++;
    return std::this_thread::get_id();
  });
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (done < 8 && std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  EXPECT_NE(ahead.take(7), std::this_thread::get_id());
  EXPECT_NE(ahead.take(2), std::this_thread::get_id());
}

// Leaving early (an error on the caller's side) stops the helper: no item is
// made after the one under way, and nothing is left running.
TEST(Ahead, LeavingEarlyStopsTheHelper) {
  std::atomic<size_t> made{0};
  {
    Ahead<int> ahead(1000, 2, [&](size_t) {
      made++;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
      return 0;
    });
    EXPECT_EQ(ahead.take(0), 0);
  }
  const size_t at_exit = made.load();
  EXPECT_LT(at_exit, 1000u);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(made.load(), at_exit);
}

}  // namespace
