// /proc/PID/smaps, one entry per VMA: its header line (what /proc/PID/maps
// shows), its VmFlags (the flags that madvise and mmap set and that maps does
// not show) and its KernelPageSize. smaps has all maps has: one read serves
// both.
#pragma once

#include <sys/types.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "proc/maps.h"

namespace ckpt::proc {

// The two-letter VmFlags of a VMA ("rd", "wr", "nh", ...), a bit each: 30,000
// VMAs with a dozen flags each are no 360,000 strings. A name that is not two
// lowercase letters ("??", a bit the kernel has no name for) is kept as text.
class VmFlags {
 public:
  VmFlags() = default;
  VmFlags(std::initializer_list<std::string_view> names) {
    for (std::string_view n : names) add(n);
  }

  void add(std::string_view name);
  void remove(std::string_view name);
  bool has(std::string_view name) const;
  bool empty() const { return odd_.empty() && std::ranges::all_of(bits_, [](uint64_t w) { return w == 0; }); }
  // Every flag of this set that `allowed` lacks.
  VmFlags without(const VmFlags& allowed) const;
  // Each name: the two-letter ones in alphabetical order, then the others.
  template <typename F>
  void for_each(F&& f) const {
    for (size_t w = 0; w < bits_.size(); w++)
      for (uint64_t word = bits_[w]; word != 0; word &= word - 1) {
        const size_t i = w * 64 + static_cast<size_t>(std::countr_zero(word));
        const char name[2] = {static_cast<char>('a' + i / 26), static_cast<char>('a' + i % 26)};
        f(std::string_view(name, 2));
      }
    for (const std::string& n : odd_) f(std::string_view(n));
  }
  bool operator==(const VmFlags&) const = default;

 private:
  static constexpr size_t kNames = 26 * 26;
  std::array<uint64_t, (kNames + 63) / 64> bits_{};
  std::vector<std::string> odd_;
};

struct SmapsVma {
  MapEntry map;
  VmFlags flags;
  uint64_t page_kib = 0;  // KernelPageSize: 4, or 2048 or 1048576 for hugetlb memory
  bool operator==(const SmapsVma&) const = default;
};

Result<std::vector<SmapsVma>> parse_smaps(std::string_view text);
// Read a chunk at a time: 30,000 VMAs' smaps are 25 MB of text.
Result<std::vector<SmapsVma>> read_smaps(pid_t pid);

}  // namespace ckpt::proc
