// The code a restored tree's tasks run while they are still forks of ckpt
// lies together (base/task_text.h): each task then faults in one or two
// windows of ckpt's text, where it took about ten pages spread over it.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "arch/x86_64/start.h"
#include "base/fs.h"
#include "files/files.h"
#include "image/crc32c.h"
#include "restore/fd_moves.h"
#include "restore/premap.h"

namespace {

uintptr_t at(auto* fn) { return reinterpret_cast<uintptr_t>(fn); }

TEST(TaskText, LiesWithinOneFaultAroundWindow) {
  const std::vector<uintptr_t> fns = {
      at(&ckpt::restore::run_fd_ops),
      at(&ckpt::restore::fill_premapped),
      at(&ckpt::files::take_late_fds),
      at(&ckpt::files::run_in_task),
      at(&ckpt::pread_full),
      at(static_cast<uint32_t (*)(uint32_t, const void*, size_t)>(&ckpt::crc32c)),
      at(&ckpt::arch::switch_stack_and_jump),
      at(&ckpt::arch::clone3_thread),
  };
  const auto [lo, hi] = std::ranges::minmax(fns);
  // A read fault maps the 64 KiB around it (the kernel's fault_around_bytes).
  EXPECT_LT(hi - lo, 64u << 10) << "the task-side functions span " << (hi - lo) << " bytes of text";
}

}  // namespace
