// base/buffer.h: a small buffer is a string; a large one a mapping of its own
// on huge-page boundaries, advised for huge pages.
#include "base/buffer.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "proc/smaps.h"

namespace ckpt {
namespace {

// The VMA of ours that holds `p`.
proc::SmapsVma vma_of(const void* p) {
  auto vmas = proc::read_smaps(getpid());
  EXPECT_TRUE(vmas) << vmas.error().str();
  const auto at = reinterpret_cast<uint64_t>(p);
  for (const proc::SmapsVma& v : *vmas)
    if (v.map.start <= at && at < v.map.end) return v;
  ADD_FAILURE() << "no VMA holds " << p;
  return {};
}

TEST(Buffer, SmallOneHoldsWhatIsWritten) {
  auto b = Buffer::make(100);
  ASSERT_TRUE(b) << b.error().str();
  std::memset(b->data(), 'x', 100);
  b->shrink(40);
  EXPECT_EQ(b->view(), std::string(40, 'x'));
  b->shrink(80);  // never grows
  EXPECT_EQ(b->size(), 40u);
}

TEST(Buffer, LargeOneIsAlignedAndAdvisedForHugePages) {
  const size_t len = 3 * Buffer::kHugePage + 123;
  auto b = Buffer::make(len);
  ASSERT_TRUE(b) << b.error().str();
  ASSERT_EQ(b->size(), len);
  EXPECT_EQ(reinterpret_cast<uint64_t>(b->data()) % Buffer::kHugePage, 0u);
  for (size_t i = 0; i < len; i += 4096) b->data()[i] = static_cast<char>(i >> 12);
  b->data()[len - 1] = 'z';
  const proc::SmapsVma v = vma_of(b->data());
  // Whole huge pages, and nothing of the room it was cut from around them.
  EXPECT_EQ(v.map.start, reinterpret_cast<uint64_t>(b->data()));
  EXPECT_EQ(v.map.end - v.map.start, 4 * Buffer::kHugePage);
  if (access("/sys/kernel/mm/transparent_hugepage", F_OK) == 0)
    EXPECT_TRUE(v.flags.has("hg")) << "MADV_HUGEPAGE not in the VMA's flags";
  else
    GTEST_LOG_(INFO) << "a kernel without transparent huge pages: no advice to check";
  for (size_t i = 0; i < len; i += 4096) ASSERT_EQ(b->data()[i], static_cast<char>(i >> 12)) << i;
  b->shrink(Buffer::kHugePage);
  EXPECT_EQ(b->view().size(), Buffer::kHugePage);
  EXPECT_EQ(b->view()[4096], 1);
}

}  // namespace
}  // namespace ckpt
