#include "restore/boot_region.h"

#include <algorithm>
#include <cstring>

#include "arch/x86_64/page.h"
#include "base/check.h"

namespace ckpt::restore {

namespace {
constexpr uint64_t kLowest = 1ULL << 32;          // keep clear of low, legacy addresses
}  // namespace

Result<uint64_t> find_hole(std::vector<Range> busy, uint64_t len) {
  std::sort(busy.begin(), busy.end(), [](const Range& a, const Range& b) { return a.start < b.start; });
  uint64_t cur = kLowest;
  for (const Range& r : busy) {
    if (r.end <= cur) continue;
    if (r.start >= cur + len) break;
    cur = arch::page_up(r.end);
  }
  if (cur + len > arch::kTaskSizeMax) return error(ENOMEM, "no free {} bytes in the address space for the restorer", len);
  return cur;
}

Result<std::vector<SpecialMove>> plan_special_moves(const std::vector<SpecialMove>& wanted, std::vector<Range> busy) {
  bool clash = false;
  for (const SpecialMove& a : wanted)
    for (const SpecialMove& b : wanted)
      if (Range{a.to, a.to + a.from.len()}.overlaps(b.from) && !(a.from.start == b.from.start && a.to == a.from.start))
        clash = true;
  if (!clash || wanted.empty()) return wanted;
  // Move the whole group to a scratch hole first, keeping its layout.
  uint64_t lo = UINT64_MAX, hi = 0;
  for (const SpecialMove& m : wanted) lo = std::min(lo, m.from.start), hi = std::max(hi, m.from.end);
  for (const SpecialMove& m : wanted) busy.push_back({m.to, m.to + m.from.len()});
  uint64_t scratch = TRY(find_hole(busy, hi - lo));
  std::vector<SpecialMove> out;
  for (const SpecialMove& m : wanted) out.push_back({m.from, scratch + (m.from.start - lo)});
  for (const SpecialMove& m : wanted) {
    uint64_t s = scratch + (m.from.start - lo);
    out.push_back({{s, s + m.from.len()}, m.to});
  }
  return out;
}

uint64_t BootRegion::size_for(uint64_t blob_size, uint64_t data_size, uint64_t threads) {
  return arch::page_up(blob_size) + arch::page_up(data_size) + kStackSize + (threads - 1) * kThreadStackSize;
}

BootRegion::BootRegion(uint64_t start, uint64_t blob_size, uint64_t data_size, uint64_t threads)
    : start_(start),
      size_(size_for(blob_size, data_size, threads)),
      args_off_(arch::page_up(blob_size)),
      data_(arch::page_up(data_size)) {
  used_ = sizeof(abi::RestorerArgs);
}

uint64_t BootRegion::alloc(uint64_t len, uint64_t align, uint8_t** out) {
  used_ = (used_ + align - 1) & ~(align - 1);
  uint64_t off = used_;
  used_ += len;
  CHECK(used_ <= data_.size(), "boot region data overflows: {} > {}", used_, data_.size());
  *out = data_.data() + off;
  return start_ + args_off_ + off;
}

}  // namespace ckpt::restore
