#include "dump/inherited.h"

#include <fcntl.h>

#include "base/fs.h"

namespace ckpt::dump {

namespace {

constexpr uint64_t kPage = 4096;
constexpr uint64_t kPresent = 1ULL << 63;
constexpr uint64_t kPfnMask = (1ULL << 55) - 1;
constexpr size_t kBatch = 4096;  // pagemap entries read at once

// Frame numbers of `n` pages from `vaddr` (0 where not present).
Result<void> frames(int pagemap, pid_t pid, uint64_t vaddr, size_t n, std::vector<uint64_t>* out) {
  out->resize(n);
  const size_t bytes = n * sizeof(uint64_t);
  size_t got = TRY_CTX(pread_full(pagemap, out->data(), bytes, static_cast<off_t>(vaddr / kPage * sizeof(uint64_t))),
                       "pagemap of pid {}", pid);
  if (got != bytes) return error(EIO, "pagemap of pid {}: short read at {:#x}", pid, vaddr);
  for (uint64_t& e : *out) e = (e & kPresent) ? (e & kPfnMask) : 0;
  return {};
}

}  // namespace

Result<void> mark_inherited(pid_t pid, const ParentPages& parent, img::PageMap* map, std::vector<bool>* readable) {
  UniqueFd mine = TRY(open_file(fmt::format("/proc/{}/pagemap", pid), O_RDONLY));
  UniqueFd theirs = TRY(open_file(fmt::format("/proc/{}/pagemap", parent.pid), O_RDONLY));
  img::PageMap out;
  std::vector<bool> out_readable;
  int p = 0;  // the parent's first run that may still cover what comes
  const auto& pruns = parent.pagemap->runs();
  int last_from = -1;  // the run of `map` the last one came from: runs never span two VMAs
  auto add = [&](int from, uint64_t vaddr, uint64_t n, bool inherited, bool readable) {
    img::PageRun* last = out.runs_size() ? out.mutable_runs(out.runs_size() - 1) : nullptr;
    if (last && from == last_from && last->inherited() == inherited &&
        last->vaddr() + last->nr_pages() * kPage == vaddr) {
      last->set_nr_pages(last->nr_pages() + n);
      return;
    }
    img::PageRun* r = out.add_runs();
    r->set_vaddr(vaddr);
    r->set_nr_pages(n);
    r->set_inherited(inherited);
    out_readable.push_back(readable);
    last_from = from;
  };
  std::vector<uint64_t> a, b;
  for (int i = 0; i < map->runs_size(); i++) {
    const img::PageRun& r = map->runs(i);
    for (uint64_t done = 0; done < r.nr_pages();) {
      const uint64_t vaddr = r.vaddr() + done * kPage;
      const size_t n = std::min<uint64_t>(kBatch, r.nr_pages() - done);
      TRY(frames(mine.get(), pid, vaddr, n, &a));
      TRY(frames(theirs.get(), parent.pid, vaddr, n, &b));
      for (size_t k = 0; k < n; k++) {
        const uint64_t at = vaddr + k * kPage;
        while (p < pruns.size() && pruns[p].vaddr() + pruns[p].nr_pages() * kPage <= at) p++;
        const bool covered = p < pruns.size() && pruns[p].vaddr() <= at;
        add(i, at, 1, covered && a[k] != 0 && a[k] == b[k], (*readable)[i]);
      }
      done += n;
    }
  }
  uint64_t stored = 0;
  for (const img::PageRun& r : out.runs())
    if (!r.inherited()) stored += r.nr_pages();
  out.set_total_pages(stored);
  *map = std::move(out);
  *readable = std::move(out_readable);
  return {};
}

}  // namespace ckpt::dump
