#include "restore/premap.h"

#include <sys/mman.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>

#include "arch/x86_64/page.h"
#include "base/fs.h"
#include "image/crc32c.h"
#include "image/page_store.h"
#include "restore/plan.h"

namespace ckpt::restore {

namespace {

constexpr uint64_t kHugePage = 2 << 20;  // slots keep the VMA's offset in it: THP stay whole when moved

// A private anonymous VMA as plain as mmap makes it: the kind a slot can be.
bool shareable(const img::Vma& v) {
  return v.kind() == img::Vma::ANON_PRIVATE && !v.droppable() && v.hugetlb_page_size() == 0 && !v.growsdown();
}

bool same_vma(const img::Vma& a, const img::Vma& b) {
  return a.start() == b.start() && a.end() == b.end() && a.noreserve() == b.noreserve();
}

bool inside(uint64_t a, uint64_t len, const img::Vma& v) { return a >= v.start() && a + len <= v.end(); }

// Whether `child` has an inherited run inside `v`, in a VMA that is `v`.
bool inherits_from(const TaskImages& child, const img::Vma& v) {
  if (std::none_of(child.mm.vmas().begin(), child.mm.vmas().end(),
                   [&](const img::Vma& w) { return shareable(w) && same_vma(v, w); }))
    return false;
  return std::any_of(child.pagemap.runs().begin(), child.pagemap.runs().end(), [&](const img::PageRun& r) {
    return r.inherited() && inside(r.vaddr(), r.nr_pages() * arch::kPageSize, v);
  });
}

// A slot of the window, at `off` from its start until the window is placed.
struct Slot {
  uint64_t off, start, end;
  bool noreserve;
};

class Planner {
 public:
  Planner(const TreeImages& t, const std::vector<std::vector<InheritedPages>>& inherited, const std::set<int>& adopted)
      : t_(t), inherited_(inherited), adopted_(adopted), out_(t.tasks.size()) {
    for (size_t i = 0; i < t.tasks.size(); i++) {
      live_[t.tasks[i].pid] = i;
      files_[t.tasks[i].pages.get()] = &t.tasks[i].pages_path;
    }
    for (const ParentLevel& l : t.parents) files_[l.pages.get()] = &l.pages_path;
  }

  // Task `k` of the tree, whose forker holds `held` (slot ids).
  Result<void> plan(int k, const std::vector<size_t>& held) {
    const tree::Task& task = t_.tree.tasks()[k];
    std::vector<size_t> mine;
    auto it = live_.find(task.pid);
    if (!task.zombie && it != live_.end()) mine = TRY(plan_task(it->second, held));
    for (int c : task.children) TRY(plan(c, adopted_.contains(c) ? std::vector<size_t>{} : mine));
    return {};
  }

  std::vector<TaskPremap> take(uint64_t window) {
    for (size_t i = 0; i < out_.size(); i++) {
      if (out_[i].slots.empty()) continue;
      out_[i].window = {window, window + size()};
      for (PremapSlot& s : out_[i].slots) s.at += window;
    }
    return std::move(out_);
  }
  uint64_t size() const { return arch::page_up(cursor_); }

 private:
  // The slots task `i` holds: continued from its parent, or its own.
  Result<std::vector<size_t>> plan_task(size_t i, const std::vector<size_t>& held) {
    const TaskImages& ti = t_.tasks[i];
    const tree::Task* k = t_.tree.find(ti.pid);
    std::vector<size_t> mine;
    for (const img::Vma& v : ti.mm.vmas()) {
      if (!shareable(v)) continue;
      auto from_parent = std::find_if(held.begin(), held.end(), [&](size_t s) {
        return slots_[s].start == v.start() && slots_[s].end == v.end() && slots_[s].noreserve == v.noreserve();
      });
      const bool create = from_parent == held.end();
      if (create && !children_inherit(*k, v)) continue;
      // Runs that cross the VMA's bounds are not the dump's: left to the restorer.
      std::vector<PremapRead> reads;
      bool whole = true;
      uint64_t off = image::kPagesDataOffset;
      for (const img::PageRun& r : ti.pagemap.runs()) {
        const uint64_t len = r.nr_pages() * arch::kPageSize;
        const bool in = inside(r.vaddr(), len, v);
        if (!in && r.vaddr() < v.end() && r.vaddr() + len > v.start()) whole = false;
        // A parent checkpoint's pages in a slot the task continues would be its parent task's.
        if (in && r.in_parent() && !create) whole = false;
        if (in && image::stored(r))
          reads.push_back({ti.pages.get(), &ti.pages_path, r.vaddr(), len, off, true, r.crc32c()});
        if (image::stored(r)) off += len;
      }
      if (!whole) continue;
      PremapSlot slot{0, v.start(), v.end(), create, v.noreserve() ? static_cast<uint32_t>(MAP_NORESERVE) : 0u,
                      std::move(reads), {}};
      if (create) {
        for (const InheritedPages& ip : inherited_[i])
          if (inside(ip.vaddr, ip.len, v))
            slot.reads.push_back({ip.fd, files_.at(ip.fd), ip.vaddr, ip.len, ip.off, false, 0});
        slot.at = new_slot(v);
        mine.push_back(slots_.size() - 1);
      } else {
        slot.at = slots_[*from_parent].off;
        slot.drop = absent(ti, v);
        mine.push_back(*from_parent);
      }
      out_[i].slots.push_back(std::move(slot));
    }
    return mine;
  }

  bool children_inherit(const tree::Task& k, const img::Vma& v) const {
    for (int c : k.children) {
      auto it = live_.find(t_.tree.tasks()[c].pid);
      if (!adopted_.contains(c) && it != live_.end() && inherits_from(t_.tasks[it->second], v)) return true;
    }
    return false;
  }

  uint64_t new_slot(const img::Vma& v) {
    const uint64_t off = (cursor_ + kHugePage - 1) / kHugePage * kHugePage + v.start() % kHugePage;
    cursor_ = off + (v.end() - v.start());
    slots_.push_back({off, v.start(), v.end(), v.noreserve()});
    return off;
  }

  // The parts of `v` none of the task's runs covers: zero in the task.
  static std::vector<Range> absent(const TaskImages& ti, const img::Vma& v) {
    std::vector<Range> out;
    uint64_t cur = v.start();
    for (const img::PageRun& r : ti.pagemap.runs()) {
      const uint64_t a = r.vaddr(), b = a + r.nr_pages() * arch::kPageSize;
      if (b <= v.start() || a >= v.end()) continue;
      if (a > cur) out.push_back({cur, a});
      cur = std::max(cur, b);
    }
    if (cur < v.end()) out.push_back({cur, v.end()});
    return out;
  }

  const TreeImages& t_;
  const std::vector<std::vector<InheritedPages>>& inherited_;
  const std::set<int>& adopted_;
  std::map<pid_t, size_t> live_;
  std::map<int, const std::string*> files_;  // every pages file an InheritedPages can name, by fd
  std::vector<TaskPremap> out_;
  std::vector<Slot> slots_;
  uint64_t cursor_ = 0;
};

}  // namespace

bool TaskPremap::covers(uint64_t vaddr, uint64_t len) const {
  return std::any_of(slots.begin(), slots.end(),
                     [&](const PremapSlot& s) { return vaddr >= s.start && vaddr + len <= s.end; });
}

Result<Premaps> plan_premaps(const TreeImages& t, const std::vector<std::vector<InheritedPages>>& inherited,
                             const std::set<int>& adopted, const std::vector<proc::MapEntry>& own) {
  Planner planner(t, inherited, adopted);
  TRY(planner.plan(0, {}));
  Premaps p;
  if (planner.size() == 0) {
    p.tasks.resize(t.tasks.size());
    return p;
  }
  // Outside every VMA of every task (and the whole of every System V attach), and of ckpt's mappings.
  std::vector<Range> busy;
  for (const proc::MapEntry& m : own) busy.push_back({m.start, m.end});
  for (const TaskImages& ti : t.tasks)
    for (const img::Vma& v : ti.mm.vmas()) {
      busy.push_back({v.start(), v.end()});
      if (attaches_sysv(v, t.shmem) && v.pgoff() <= v.start()) busy.push_back(sysv_attach(v, t.shmem));
    }
  const uint64_t hole = TRY(find_hole(busy, planner.size() + kHugePage));
  const uint64_t window = (hole + kHugePage - 1) / kHugePage * kHugePage;
  void* w = mmap(reinterpret_cast<void*>(window), planner.size(), PROT_NONE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0);
  if (w == MAP_FAILED) return sys_error("reserve {} bytes at {:#x} for memory the tasks share", planner.size(), window);
  p.window = Mapping::adopt(static_cast<char*>(w), planner.size());
  p.tasks = planner.take(window);
  return p;
}

}  // namespace ckpt::restore
