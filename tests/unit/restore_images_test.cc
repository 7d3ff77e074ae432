// ckpt's copy of a checkpoint's images stays out of the tasks it forks.
#include <gtest/gtest.h>
#include <sys/mman.h>

#include <cstdint>

#include "children.h"
#include "restore/images.h"

namespace ckpt::restore {
namespace {

// Whether the page holding `p` is mapped in this process.
bool mapped(const void* p) {
  unsigned char in;
  return mincore(reinterpret_cast<void*>(reinterpret_cast<uintptr_t>(p) & ~uintptr_t{4095}), 1, &in) == 0;
}

TEST(RestoreImages, ArenaIsNotInheritedByAFork) {
  auto arena = not_inherited_arena();
  TaskImages ti(1, *arena);
  for (int i = 0; i < 2000; i++) ti.mm.add_vmas()->set_start(static_cast<uint64_t>(i) << 12);  // past the first block
  const img::Vma* first = &ti.mm.vmas(0);
  const img::Vma* last = &ti.mm.vmas(ti.mm.vmas_size() - 1);
  ASSERT_TRUE(mapped(&ti.core) && mapped(first) && mapped(last));
  EXPECT_EQ(tests::in_child([&] { return long{mapped(&ti.core)} + mapped(first) + mapped(last); }), 0)
      << "a forked child holds pages of the images' arena";
}

}  // namespace
}  // namespace ckpt::restore
