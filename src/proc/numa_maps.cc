#include "proc/numa_maps.h"

#include "base/fs.h"
#include "proc/text.h"

namespace ckpt::proc {

// A line per VMA (mm/mempolicy.c, show_numa_map):
//   7f2a4c000000 default anon=3 dirty=3 N0=3 kernelpagesize_kB=4
//   7f2a4c400000 bind:0 file=/usr/lib/libc.so.6 mapped=20 N0=20
Result<bool> parse_numa_maps_all_default(std::string_view text) {
  std::string_view line;
  for (size_t lineno = 1; next_line(text, line); lineno++) {
    std::string_view rest = line;
    uint64_t start = 0;
    if (!parse_num(next_field(rest), 16, start))
      return error(EINVAL, "/proc numa_maps line {}: cannot parse '{:.64}'", lineno, line);
    const std::string_view policy = next_field(rest);
    if (policy.empty()) return error(EINVAL, "/proc numa_maps line {}: no policy in '{:.64}'", lineno, line);
    if (policy != "default") return false;
  }
  return true;
}

Result<std::optional<bool>> all_default_policies(pid_t pid) {
  auto text = read_file(fmt::format("/proc/{}/numa_maps", pid));
  if (!text && text.error().err == ENOENT) return std::nullopt;
  if (!text) return std::unexpected(text.error());
  return TRY_CTX(parse_numa_maps_all_default(*text), "pid {}", pid);
}

}  // namespace ckpt::proc
