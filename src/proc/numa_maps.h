// /proc/PID/numa_maps: the memory policy each VMA of a process runs under,
// its own (mbind) or, where it has none, that of the task the file was
// opened for. Read to learn, without the parasite, that a process has none
// to keep; the exact policies come from the parasite (get_mempolicy).
#pragma once

#include <sys/types.h>

#include <optional>
#include <string_view>

#include "base/result.h"

namespace ckpt::proc {

// Whether every VMA the text lists shows the default policy.
Result<bool> parse_numa_maps_all_default(std::string_view text);
// The same of process `pid`; nullopt where the kernel has no NUMA (no file).
// Reading it walks the page tables, as smaps does.
Result<std::optional<bool>> all_default_policies(pid_t pid);

}  // namespace ckpt::proc
