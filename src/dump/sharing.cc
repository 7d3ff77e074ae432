#include "dump/sharing.h"

#include <linux/kcmp.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <optional>
#include <vector>

namespace ckpt::dump {

namespace {

// 0: the same object; 1 or 2: a before or after b; -1 with errno.
long kcmp(pid_t a, pid_t b, int type) { return syscall(SYS_kcmp, a, b, type, 0, 0); }

}  // namespace

Result<void> check_nothing_shared(std::span<const pid_t> pids) {
  static constexpr struct {
    int type;
    const char* what;
  } kShared[] = {
      {KCMP_VM, "address space (a vfork that has not returned, or clone with CLONE_VM)"},
      {KCMP_FILES, "fd table (clone with CLONE_FILES)"},
      {KCMP_FS, "working directory, root and umask (clone with CLONE_FS)"},
  };
  for (const auto& k : kShared) {
    // kcmp orders what it compares: sorted, processes that share it are
    // neighbours, found with N log N comparisons rather than N².
    std::optional<Error> failed;
    auto compare = [&](pid_t a, pid_t b) {
      const long r = kcmp(a, b, k.type);
      if (r < 0 && !failed) failed = Error{errno, fmt::format("compare the {} of pid {} and pid {} (kcmp)", k.what, a, b)};
      return r;
    };
    std::vector<pid_t> sorted(pids.begin(), pids.end());
    // stable_sort: bounded even if the order were not.
    std::stable_sort(sorted.begin(), sorted.end(), [&](pid_t a, pid_t b) { return compare(a, b) == 1; });
    for (size_t i = 1; i < sorted.size() && !failed; i++)
      if (compare(sorted[i - 1], sorted[i]) == 0)
        return error(EOPNOTSUPP, "pid {} and pid {} share one {}: restore would give each its own, so this is not "
                     "supported yet", std::min(sorted[i - 1], sorted[i]), std::max(sorted[i - 1], sorted[i]), k.what);
    if (failed) return std::unexpected(*failed);
  }
  return {};
}

}  // namespace ckpt::dump
