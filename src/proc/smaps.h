// /proc/PID/smaps: of each VMA, the VmFlags line (the flags that madvise and
// mmap set and that /proc/PID/maps does not show) and its KernelPageSize.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace ckpt::proc {

// VMA start -> its two-letter VmFlags ("rd", "wr", "nh", ...).
using VmFlags = std::map<uint64_t, std::vector<std::string>>;
// VMA start -> its KernelPageSize in KiB (4 for normal memory, 2048 or
// 1048576 for hugetlb memory).
using PageSizes = std::map<uint64_t, uint64_t>;

struct Smaps {
  VmFlags flags;
  PageSizes page_kib;
};

Result<Smaps> parse_smaps(std::string_view text);
// Read a chunk at a time: 30,000 VMAs' smaps are 25 MB of text.
Result<Smaps> read_smaps(pid_t pid);

}  // namespace ckpt::proc
