// /proc/PID/maps, one entry per VMA.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace ckpt::proc {

struct MapEntry {
  uint64_t start = 0;
  uint64_t end = 0;
  bool read = false, write = false, exec = false;
  bool shared = false;  // 's' rather than 'p'
  uint64_t offset = 0;
  uint32_t dev_major = 0, dev_minor = 0;
  uint64_t inode = 0;
  std::string path;  // may be empty, "[heap]", "/x (deleted)", contain spaces
  bool operator==(const MapEntry&) const = default;
};

// One line, as maps and smaps print it.
Result<MapEntry> parse_map_line(std::string_view line);
Result<std::vector<MapEntry>> parse_maps(std::string_view text);
Result<std::vector<MapEntry>> read_maps(pid_t pid);

}  // namespace ckpt::proc
