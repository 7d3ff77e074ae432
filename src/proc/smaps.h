// /proc/PID/smaps: only the VmFlags line of each VMA, for the flags that
// madvise and mmap set and that /proc/PID/maps does not show.
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

Result<VmFlags> parse_smaps_vmflags(std::string_view text);
Result<VmFlags> read_smaps_vmflags(pid_t pid);

// VMA start -> its KernelPageSize in KiB (4 for normal memory, 2048 or
// 1048576 for hugetlb memory).
using PageSizes = std::map<uint64_t, uint64_t>;

Result<PageSizes> parse_smaps_page_sizes(std::string_view text);
Result<PageSizes> read_smaps_page_sizes(pid_t pid);

}  // namespace ckpt::proc
