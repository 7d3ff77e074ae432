#include "restore/parent_pages.h"

#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <set>

#include "arch/x86_64/page.h"
#include "base/fs.h"
#include "image/crc32c.h"
#include "image/page_store.h"
#include "image/verify.h"

namespace ckpt::restore {

namespace {

constexpr int kMaxDepth = 64;  // rounds; more is a loop or damage

// Lexically: every directory of a chain is an images directory, which is
// never a symbolic link (image/image_dir.h), so ".." is its parent.
std::string resolve_from(const std::string& from, const std::string& rel) {
  return std::filesystem::path(rel.starts_with('/') ? rel : from + "/" + rel).lexically_normal().string();
}

Result<ParentLevel> load_level(const std::string& path, const std::string& name, pid_t pid, img::Inventory* inv,
                               std::set<std::pair<dev_t, ino_t>>* seen) {
  image::ImageDir dir = TRY_CTX(image::ImageDir::open(path, image::SharedDir::Refuse), "{}", name);
  const struct stat st = TRY_CTX(dir.dir().stat(), "{}", name);
  if (!seen->insert({st.st_dev, st.st_ino}).second)
    return error(ELOOP, "{}: the chain of parent checkpoints comes back to it", name);
  if (!dir.exists(image::kInventoryName))
    return error(ENOENT, "{}: holds no checkpoint ({} is missing)", name, image::kInventoryName);
  TRY_CTX(dir.read(image::kInventoryName, image::ImageKind::Inventory, inv), "{}", name);
  TRY_CTX(image::check_inventory(dir.file(image::kInventoryName), *inv), "{}", name);
  if (std::find(inv->pids().begin(), inv->pids().end(), pid) == inv->pids().end())
    return error(ESRCH, "{}: holds no pages of pid {}", name, pid);
  ParentLevel l;
  l.name = name;
  img::MmImage mm;
  TRY_CTX(dir.read(image::mm_name(pid), image::ImageKind::Mm, &mm), "{}", name);
  TRY_CTX(dir.read(image::pagemap_name(pid), image::ImageKind::PageMap, &l.pagemap), "{}", name);
  TRY_CTX(image::check_mm(dir.file(image::mm_name(pid)), mm), "{}", name);
  const uint64_t pages = TRY_CTX(image::check_pagemap(dir.file(image::pagemap_name(pid)), l.pagemap, mm), "{}", name);
  l.pages_path = dir.file(image::pages_name(pid));
  struct stat pages_st;
  l.pages = TRY_CTX(dir.open_read(image::pages_name(pid), &pages_st), "{}", name);
  const uint64_t bytes = TRY_CTX(image::check_pages_file(l.pages_path, l.pages.get(), &pages_st), "{}", name);
  if (bytes != pages * arch::kPageSize)
    return error(EINVAL, "{}: {} holds {} bytes of pages, the page map needs {}", name, l.pages_path, bytes,
                 pages * arch::kPageSize);
  return l;
}

}  // namespace

Result<std::vector<ParentLevel>> load_parent_chain(const image::ImageDir& dir, const img::Inventory& inv, pid_t pid) {
  std::vector<ParentLevel> chain;
  std::set<std::pair<dev_t, ino_t>> seen;
  if (auto st = dir.dir().stat()) seen.insert({st->st_dev, st->st_ino});
  std::string from = dir.path(), rel = inv.parent_dir();
  while (!rel.empty()) {
    if (chain.size() == kMaxDepth) return error(ELOOP, "{}: more than {} parent checkpoints", dir.path(), kMaxDepth);
    const std::string path = resolve_from(from, rel);
    img::Inventory up;
    chain.push_back(TRY(load_level(path, fmt::format("parent checkpoint {} ({})", rel, path), pid, &up, &seen)));
    from = path;
    rel = up.parent_dir();
  }
  return chain;
}

Result<std::vector<ParentLevel>> load_round_and_parents(const std::string& path, pid_t pid) {
  std::vector<ParentLevel> chain;
  std::set<std::pair<dev_t, ino_t>> seen;
  std::string from, rel = path;
  while (!rel.empty()) {
    if (chain.size() > kMaxDepth) return error(ELOOP, "{}: more than {} parent checkpoints", path, kMaxDepth);
    const std::string at = from.empty() ? rel : resolve_from(from, rel);
    img::Inventory up;
    chain.push_back(TRY(load_level(at, from.empty() ? at : fmt::format("parent checkpoint {} ({})", rel, at), pid,
                                   &up, &seen)));
    from = at;
    rel = up.parent_dir();
  }
  return chain;
}

Result<std::vector<InheritedPages>> resolve_in_parent(std::span<const ParentLevel> chain, const img::PageMap& map,
                                                      pid_t pid) {
  struct Segment {
    uint64_t start, end, off;  // off: in that level's pages file, for stored ones
    const img::PageRun* run;
  };
  std::vector<std::vector<Segment>> levels(chain.size());
  for (size_t l = 0; l < chain.size(); l++) {
    uint64_t off = image::kPagesDataOffset;
    for (const img::PageRun& r : chain[l].pagemap.runs()) {
      const uint64_t len = r.nr_pages() * arch::kPageSize;
      levels[l].push_back({r.vaddr(), r.vaddr() + len, off, &r});
      if (image::stored(r)) off += len;
    }
  }
  std::vector<InheritedPages> out;
  // [a, b) as level `l` has it.
  auto resolve = [&](auto& self, size_t l, uint64_t a, uint64_t b) -> Result<void> {
    if (l >= chain.size())
      return error(EINVAL, "pid {}: pages at {:#x} are in a parent checkpoint, but the chain ends before them", pid, a);
    const ParentLevel& p = chain[l];
    const auto& segs = levels[l];
    auto it = std::upper_bound(segs.begin(), segs.end(), a, [](uint64_t v, const Segment& s) { return v < s.end; });
    for (; a < b; ++it) {
      if (it == segs.end() || it->start > a)
        return error(EINVAL, "pid {}: pages at {:#x} are in the {}, whose page map lacks them", pid, a, p.name);
      const uint64_t hi = std::min(b, it->end);
      if (it->run->in_parent()) TRY(self(self, l + 1, a, hi));
      else if (it->run->inherited()) return error(EINVAL, "pid {}: {}: pages at {:#x} are inherited", pid, p.name, a);
      else out.push_back({p.pages.get(), a, hi - a, it->off + (a - it->start)});
      a = hi;
    }
    return {};
  };
  for (const img::PageRun& r : map.runs())
    if (r.in_parent()) TRY(resolve(resolve, 0, r.vaddr(), r.vaddr() + r.nr_pages() * arch::kPageSize));
  return out;
}

Result<void> verify_parent_pages(const std::vector<ParentLevel>& chain) {
  for (const ParentLevel& p : chain)
    TRY_CTX(image::verify_page_data(p.pages_path, p.pages.get(), image::stored_runs(p.pagemap)), "{}", p.name);
  return {};
}

Result<void> verify_parent_runs(const std::vector<ParentLevel>& chain, std::span<const InheritedPages> pieces) {
  constexpr uint64_t kChunk = 4 << 20;
  std::vector<char> buf;
  for (const ParentLevel& p : chain) {
    std::vector<std::pair<uint64_t, uint64_t>> wanted;  // [off, end) in this level's file
    for (const InheritedPages& ip : pieces)
      if (ip.fd == p.pages.get()) wanted.emplace_back(ip.off, ip.off + ip.len);
    if (wanted.empty()) continue;
    std::sort(wanted.begin(), wanted.end());
    // Runs are consecutive in the file, from its data offset.
    uint64_t off = image::kPagesDataOffset;
    const img::PageMap runs = image::stored_runs(p.pagemap);
    for (int i = 0; i < runs.runs_size(); i++) {
      const img::PageRun& r = runs.runs(i);
      const uint64_t len = r.nr_pages() * arch::kPageSize, start = off;
      off += len;
      // The first piece ending after the run's start: does it begin before its end?
      auto w = std::upper_bound(wanted.begin(), wanted.end(), start,
                                [](uint64_t a, const std::pair<uint64_t, uint64_t>& x) { return a < x.second; });
      if (w == wanted.end() || w->first >= start + len) continue;
      uint32_t crc = 0;
      buf.resize(std::min(len, kChunk));
      for (uint64_t done = 0; done < len;) {
        const size_t n = std::min<uint64_t>(len - done, kChunk);
        TRY_CTX(pread_full(p.pages.get(), buf.data(), n, static_cast<off_t>(start + done)), "{}", p.name);
        crc = crc32c(crc, buf.data(), n);
        done += n;
      }
      if (crc != r.crc32c())
        return error(EINVAL, "{}: checksum mismatch in run {} ({:#x}, {} pages) at offset {}", p.pages_path, i, r.vaddr(),
                     r.nr_pages(), start);
    }
  }
  return {};
}

}  // namespace ckpt::restore
