// The boot region: the one range of the restored task's address space that
// ckpt owns while the restorer runs. It lies where no dumped VMA and none of
// ckpt's own mappings are, so it survives the restorer's unmapping and is in
// nobody's way; ckpt unmaps it at completion.
//
//   start ->  +------------------------+
//             | restorer blob (r-x)    |  pie::restorer::image()
//   args  ->  +------------------------+
//             | RestorerArgs (rw-)     |  abi.h
//             | VmaArg[], PageRunArg[],|
//             | ThreadArg[], auxv,     |
//             | SigInfoArg[]           |
//             +------------------------+
//             | bounce buffer          |  1 MiB: the pages are read through it
//             | thread stacks (N-1)    |  16 KiB each, for the other threads
//             | main stack             |
//   end   ->  +------------------------+
#pragma once

#include <algorithm>
#include <cstdint>
#include <span>
#include <vector>

#include "arch/x86_64/page.h"
#include "base/mapping.h"
#include "base/result.h"
#include "pie/abi.h"

namespace ckpt::restore {

struct Range {
  uint64_t start = 0, end = 0;
  uint64_t len() const { return end - start; }
  bool overlaps(const Range& o) const { return start < o.end && o.start < end; }
};

// A hole of `len` bytes (page multiple) overlapping none of `busy`.
Result<uint64_t> find_hole(std::vector<Range> busy, uint64_t len);

// Kernel special mappings: where they are in ckpt now, where they must go.
struct SpecialMove {
  Range from;
  uint64_t to;
};

// mremap steps that bring every special mapping to its target while keeping
// their relative layout; through a scratch hole when targets overlap sources.
Result<std::vector<SpecialMove>> plan_special_moves(const std::vector<SpecialMove>& wanted, std::vector<Range> busy);

// Where ckpt stages the data parts of a tree's boot regions until each task
// copies its own: shared memory, which the root keeps when it unmaps the
// rest of ckpt (restore/spawn.h), with the spawner's plan. A fork copies no
// page table of a shared mapping, and each task faults in its own part
// only.
class BootDataPool {
 public:
  // Reserves the pool's address range (no memory: PROT_NONE), before ckpt's
  // maps are read to lay out the boot regions, so that none lands on it.
  static Result<BootDataPool> reserve();
  // `len` bytes, zeroed, until the pool goes.
  Result<std::span<uint8_t>> take(uint64_t len);
  // Its whole reserved range.
  Range range() const {
    const auto at = reinterpret_cast<uint64_t>(range_.data());
    return {at, at + range_.size()};
  }

 private:
  static constexpr uint64_t kRange = 64ULL << 30, kChunk = 4 << 20;  // at most; a step of growth
  explicit BootDataPool(Mapping range) : range_(std::move(range)) {}
  Mapping range_;            // shared chunks mapped over its start as it fills
  uint64_t mapped_ = 0, used_ = 0;
};

class BootRegion {
 public:
  static constexpr uint64_t kStackSize = 64 << 10;
  static constexpr uint64_t kThreadStackSize = 16 << 10;

  // Sized in two passes, so no estimate can be short:
  //   1. `counting()`: a region at a nominal address whose data part grows to
  //      whatever is allocated; lay everything out in it, then read
  //      `data_used()`.
  //   2. `BootRegion(start, ..., data_used(), ...)`: the real region, laid out
  //      by the same steps. Its data part starts page-aligned like the
  //      counting one's, so every alignment (up to a page) pads the same and
  //      the second layout ends at the same byte.
  // Lays out a region for `blob_size` bytes of code, `data_size` of args and
  // stacks for `threads` threads (the main one included). The data part is
  // staged in `pool`, or in the region itself without one.
  BootRegion(uint64_t start, uint64_t blob_size, uint64_t data_size, uint64_t threads);
  static Result<BootRegion> in_pool(BootDataPool& pool, uint64_t start, uint64_t blob_size, uint64_t data_size,
                                    uint64_t threads);
  // The data part in its own staging, or the pool's: moved, never copied.
  BootRegion(BootRegion&&) = default;
  BootRegion& operator=(BootRegion&&) = default;
  BootRegion(const BootRegion&) = delete;
  BootRegion& operator=(const BootRegion&) = delete;
  static BootRegion counting(uint64_t blob_size, uint64_t threads);
  static uint64_t size_for(uint64_t blob_size, uint64_t data_size, uint64_t threads);

  uint64_t start() const { return start_; }
  uint64_t end() const { return start_ + size(); }
  uint64_t size() const {
    return args_off_ + data_size() + abi::kBounceSize + kStackSize + (threads_ - 1) * kThreadStackSize;
  }
  uint64_t bounce() const { return start_ + args_off_ + data_size(); }
  uint64_t args_addr() const { return start_ + args_off_; }
  uint64_t stack_top() const { return end(); }
  // Stack of thread i >= 1.
  uint64_t thread_stack_top(uint64_t i) const { return end() - kStackSize - (i - 1) * kThreadStackSize; }

  // Bump-allocates `len` bytes (aligned, align at most a page) in the data
  // part; returns the address the bytes will have in the task, and a pointer
  // to write them (valid until the next alloc). A counting region keeps
  // nothing: its pointers all lead to one scratch buffer, as large as the
  // largest allocation (10,000 threads' frames are 35 MB, which a real
  // region then holds once). Running past the data part of a real region
  // is an error.
  Result<uint64_t> alloc(uint64_t len, uint64_t align, uint8_t** out);
  // Writes `n` bytes at task address `addr`, allocated before (a counting
  // region drops them).
  void write(uint64_t addr, const void* p, size_t n);
  // Bytes of the data part allocated so far, RestorerArgs included.
  uint64_t data_used() const { return used_; }
  abi::RestorerArgs* args() { return reinterpret_cast<abi::RestorerArgs*>(data_.data()); }
  const abi::RestorerArgs* args() const { return reinterpret_cast<const abi::RestorerArgs*>(data_.data()); }
  std::span<const uint8_t> data() const { return data_; }
  // Where the bytes at task address `addr` (in the data part) are staged; a
  // real region's only.
  uint8_t* staged(uint64_t addr);
  uint64_t data_offset() const { return args_off_; }

 private:
  // The data part, page-aligned: what a counting region has allocated.
  uint64_t data_size() const {
    return counting_ ? arch::page_up(std::max<uint64_t>(used_, sizeof(abi::RestorerArgs))) : data_.size();
  }
  BootRegion(uint64_t start, uint64_t blob_size, uint64_t threads, std::span<uint8_t> data);
  static uint64_t data_part(uint64_t data_size) {
    return arch::page_up(std::max<uint64_t>(data_size, sizeof(abi::RestorerArgs)));
  }

  uint64_t start_, args_off_, threads_;
  std::vector<uint8_t> own_;      // the staging of a region without a pool
  std::span<uint8_t> data_;       // own_ or the pool's; a counting region's: RestorerArgs only
  std::vector<uint8_t> scratch_;  // a counting region's allocations
  uint64_t used_ = 0;
  bool counting_ = false;
};

}  // namespace ckpt::restore
