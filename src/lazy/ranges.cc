#include "lazy/ranges.h"

#include <algorithm>
#include <vector>

namespace ckpt::lazy {

void PendingRanges::add(uint64_t addr, uint64_t len, Source src) {
  if (len == 0) return;
  erase(addr, addr + len);
  pieces_[addr] = {len, src};
}

void PendingRanges::split_at(uint64_t at) {
  auto it = pieces_.upper_bound(at);
  if (it == pieces_.begin()) return;
  --it;
  const uint64_t start = it->first;
  auto [len, src] = it->second;
  if (at <= start || at >= start + len) return;
  it->second.first = at - start;
  pieces_[at] = {start + len - at, {src.fd, src.off + (at - start)}};
}

std::optional<Piece> PendingRanges::find(uint64_t addr, uint64_t lo, uint64_t hi) const {
  auto it = pieces_.upper_bound(addr);
  if (it == pieces_.begin()) return std::nullopt;
  --it;
  const uint64_t start = it->first, len = it->second.first;
  if (addr >= start + len) return std::nullopt;
  const uint64_t from = std::max(start, lo), to = std::min(start + len, hi);
  if (from >= to) return std::nullopt;
  const Source& s = it->second.second;
  return Piece{from, to - from, {s.fd, s.off + (from - start)}};
}

std::optional<Piece> PendingRanges::first(uint64_t max_len) const {
  if (pieces_.empty()) return std::nullopt;
  const auto& [start, v] = *pieces_.begin();
  return Piece{start, std::min(v.first, max_len), v.second};
}

void PendingRanges::erase(uint64_t start, uint64_t end) {
  if (start >= end) return;
  split_at(start);
  split_at(end);
  pieces_.erase(pieces_.lower_bound(start), pieces_.lower_bound(end));
}

void PendingRanges::move(uint64_t from, uint64_t to, uint64_t len) {
  split_at(from);
  split_at(from + len);
  std::vector<Piece> moved;
  for (auto it = pieces_.lower_bound(from); it != pieces_.end() && it->first < from + len;) {
    moved.push_back({it->first - from + to, it->second.first, it->second.second});
    it = pieces_.erase(it);
  }
  // Whatever was mapped at the destination is gone.
  erase(to, to + len);
  for (const Piece& p : moved) pieces_[p.addr] = {p.len, p.src};
}

uint64_t PendingRanges::bytes() const {
  uint64_t n = 0;
  for (const auto& [start, v] : pieces_) n += v.first;
  return n;
}

}  // namespace ckpt::lazy
