#include "restore/boot_region.h"

#include <sys/mman.h>

#include <algorithm>
#include <bit>
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

Result<BootDataPool> BootDataPool::reserve() {
  // Less where an RLIMIT_AS leaves less room.
  for (uint64_t len = kRange;; len /= 2) {
    auto r = Mapping::map(len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE);
    if (r || r.error().err != ENOMEM || len <= kChunk)
      return BootDataPool(TRY_CTX(std::move(r), "reserve the boot regions' staging"));
  }
}

Result<std::span<uint8_t>> BootDataPool::take(uint64_t len) {
  const uint64_t range = range_.size();
  if (len > range - used_)
    return error(ENOMEM, "boot regions: {} bytes of restorer data, more than ckpt could reserve to stage them ({})",
                 used_ + len, range);
  if (used_ + len > mapped_) {
    const uint64_t grow = std::max(kChunk, arch::page_up(used_ + len - mapped_));
    const uint64_t end = std::min(range, mapped_ + grow);
    if (mmap(range_.data() + mapped_, end - mapped_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED,
             -1, 0) == MAP_FAILED)
      return sys_error("boot regions: map {} bytes to stage restorer data", end - mapped_);
    mapped_ = end;
  }
  std::span<uint8_t> s(reinterpret_cast<uint8_t*>(range_.data()) + used_, len);
  // In memory at once, in one call: ckpt writes all of it next, and a fault
  // a page costs more (a 50-task restore: 150 faults).
  const uint64_t from = arch::page_down(reinterpret_cast<uint64_t>(s.data()));
  prefault(reinterpret_cast<void*>(from), arch::page_up(reinterpret_cast<uint64_t>(s.data()) + len) - from);
  used_ += len;
  return s;
}

uint64_t BootRegion::size_for(uint64_t blob_size, uint64_t data_size, uint64_t threads) {
  return arch::page_up(blob_size) + data_part(data_size) + abi::kBounceSize + kStackSize +
         (threads - 1) * kThreadStackSize;
}

BootRegion::BootRegion(uint64_t start, uint64_t blob_size, uint64_t threads, std::span<uint8_t> data)
    : start_(start), args_off_(arch::page_up(blob_size)), threads_(threads), data_(data) {
  CHECK(start % arch::kPageSize == 0, "boot region at {:#x} is not page-aligned", start);
  used_ = sizeof(abi::RestorerArgs);
}

BootRegion::BootRegion(uint64_t start, uint64_t blob_size, uint64_t data_size, uint64_t threads)
    : BootRegion(start, blob_size, threads, std::span<uint8_t>{}) {
  own_.resize(data_part(data_size));
  data_ = own_;
}

Result<BootRegion> BootRegion::in_pool(BootDataPool& pool, uint64_t start, uint64_t blob_size, uint64_t data_size,
                                       uint64_t threads) {
  return BootRegion(start, blob_size, threads, TRY(pool.take(data_part(data_size))));
}

BootRegion BootRegion::counting(uint64_t blob_size, uint64_t threads) {
  // Any page-aligned address does: pass 1's addresses are thrown away.
  BootRegion b(0, blob_size, sizeof(abi::RestorerArgs), threads);
  b.counting_ = true;
  return b;
}

Result<uint64_t> BootRegion::alloc(uint64_t len, uint64_t align, uint8_t** out) {
  CHECK(std::has_single_bit(align) && align <= arch::kPageSize, "boot region alignment {}", align);
  const uint64_t off = (used_ + align - 1) & ~(align - 1);
  if (len > UINT64_MAX - off) return error(ENOMEM, "boot region: {} bytes do not fit in the address space", len);
  const uint64_t end = off + len;
  if (counting_) {
    if (end > arch::kTaskSizeMax) return error(ENOMEM, "boot region: {} bytes of restorer data", end);
    if (scratch_.size() < len) scratch_.resize(len);
    *out = scratch_.data();
  } else {
    if (end > data_.size())
      return error(ENOMEM, "boot region data overflows: {} bytes needed, {} laid out in the first pass", end,
                   data_.size());
    *out = data_.data() + off;
  }
  used_ = end;
  return start_ + args_off_ + off;
}

void BootRegion::write(uint64_t addr, const void* p, size_t n) {
  if (!counting_) std::memcpy(staged(addr), p, n);
}

uint8_t* BootRegion::staged(uint64_t addr) {
  CHECK(!counting_ && addr >= args_addr() && addr - args_addr() <= data_.size(), "staged {:#x}", addr);
  return data_.data() + (addr - args_addr());
}

}  // namespace ckpt::restore
