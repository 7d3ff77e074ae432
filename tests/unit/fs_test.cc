// base/fs.h: the fd ranges a helper closes to keep only its own fds.
#include <gtest/gtest.h>

#include <utility>
#include <vector>

#include "base/fs.h"

namespace ckpt {
namespace {

using Ranges = std::vector<std::pair<unsigned, unsigned>>;

TEST(FdRangesBut, GapsBetweenKeptFdsAndTheRest) {
  EXPECT_EQ(fd_ranges_but({}), (Ranges{{0, ~0U}}));
  EXPECT_EQ(fd_ranges_but({0}), (Ranges{{1, ~0U}}));
  EXPECT_EQ(fd_ranges_but({7, 3, 4}), (Ranges{{0, 2}, {5, 6}, {8, ~0U}}));
  // Twice the same fd, and what is no fd at all (AT_FDCWD, -1), keep nothing more.
  EXPECT_EQ(fd_ranges_but({5, 5, -1, -100}), (Ranges{{0, 4}, {6, ~0U}}));
}

}  // namespace
}  // namespace ckpt
