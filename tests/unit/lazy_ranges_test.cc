// The lazy-pages daemon's pending ranges: what a fault, a munmap, a
// madvise(MADV_DONTNEED) and an mremap do to them.
#include <gtest/gtest.h>

#include "lazy/ranges.h"

using ckpt::lazy::PendingRanges;

namespace {

constexpr uint64_t P = 4096;

TEST(LazyRanges, FindClipsToTheWindowAndKeepsTheOffset) {
  PendingRanges r;
  r.add(10 * P, 8 * P, {3, 100 * P});
  auto p = r.find(12 * P, 11 * P, 13 * P);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->addr, 11 * P);
  EXPECT_EQ(p->len, 2 * P);
  EXPECT_EQ(p->src.fd, 3);
  EXPECT_EQ(p->src.off, 101 * P);
  EXPECT_FALSE(r.find(9 * P, 0, ~0ULL));
  EXPECT_FALSE(r.find(18 * P, 0, ~0ULL));
}

TEST(LazyRanges, EraseSplitsAndDropsOnlyTheMiddle) {
  PendingRanges r;
  r.add(10 * P, 8 * P, {3, 0});
  r.erase(12 * P, 14 * P);  // served, or dropped by the task
  EXPECT_EQ(r.bytes(), 6 * P);
  EXPECT_FALSE(r.find(13 * P, 0, ~0ULL));
  auto after = r.find(14 * P, 0, ~0ULL);
  ASSERT_TRUE(after);
  EXPECT_EQ(after->addr, 14 * P);
  EXPECT_EQ(after->src.off, 4 * P);
  auto first = r.first(1 * P);
  ASSERT_TRUE(first);
  EXPECT_EQ(first->addr, 10 * P);
  EXPECT_EQ(first->len, 1 * P);
  r.erase(0, 100 * P);
  EXPECT_TRUE(r.empty());
}

TEST(LazyRanges, MoveCarriesTheSourceAndReplacesTheDestination) {
  PendingRanges r;
  r.add(10 * P, 4 * P, {3, 0});
  r.add(40 * P, 4 * P, {4, 0});
  r.move(11 * P, 41 * P, 2 * P);  // mremap(MREMAP_FIXED) of two pages over the other range
  EXPECT_FALSE(r.find(12 * P, 0, ~0ULL));
  auto moved = r.find(42 * P, 0, ~0ULL);
  ASSERT_TRUE(moved);
  EXPECT_EQ(moved->addr, 41 * P);
  EXPECT_EQ(moved->len, 2 * P);
  EXPECT_EQ(moved->src.fd, 3);
  EXPECT_EQ(moved->src.off, 1 * P);
  auto kept = r.find(40 * P, 0, ~0ULL);
  ASSERT_TRUE(kept);
  EXPECT_EQ(kept->len, 1 * P);
  EXPECT_EQ(r.bytes(), 2 * P + 2 * P + 1 * P + 1 * P);
}

}  // namespace
