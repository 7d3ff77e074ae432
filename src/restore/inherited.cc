#include "restore/inherited.h"

#include <algorithm>
#include <map>

#include "arch/x86_64/page.h"
#include "image/page_store.h"

namespace ckpt::restore {

namespace {

struct Segment {
  uint64_t start, end;
  bool inherited;
  uint64_t off;  // stored ones: in the task's pages file
};

class Resolver {
 public:
  explicit Resolver(const TreeImages& t) : t_(t), segments_(t.tasks.size()), parent_(t.tasks.size(), -1) {
    std::map<pid_t, int> live;
    for (size_t i = 0; i < t.tasks.size(); i++) live[t.tasks[i].pid] = static_cast<int>(i);
    for (size_t i = 0; i < t.tasks.size(); i++) {
      const tree::Task* k = t.tree.find(t.tasks[i].pid);
      if (k && k->parent >= 0) parent_[i] = live.at(t.tree.tasks()[k->parent].pid);
      uint64_t off = image::kPagesDataOffset;
      for (const img::PageRun& r : t.tasks[i].pagemap.runs()) {
        const uint64_t len = r.nr_pages() * arch::kPageSize;
        segments_[i].push_back({r.vaddr(), r.vaddr() + len, r.inherited(), off});
        if (image::stored(r)) off += len;
      }
    }
  }

  // [a, b) of task j, as stored somewhere up its ancestry.
  Result<void> resolve(size_t j, uint64_t a, uint64_t b, std::vector<InheritedPages>* out, int depth = 0) const {
    const pid_t pid = t_.tasks[j].pid;
    if (parent_[j] < 0 || depth > 64)
      return error(EINVAL, "pid {}: pages at {:#x} are inherited, but from no task of the checkpoint", pid, a);
    const size_t p = parent_[j];
    const auto& segs = segments_[p];
    auto it = std::upper_bound(segs.begin(), segs.end(), a, [](uint64_t v, const Segment& s) { return v < s.end; });
    for (; a < b; ++it) {
      if (it == segs.end() || it->start > a)
        return error(EINVAL, "pid {}: pages at {:#x} are inherited from pid {}, whose images lack them", pid, a,
                     t_.tasks[p].pid);
      const uint64_t hi = std::min(b, it->end);
      if (it->inherited) TRY(resolve(p, a, hi, out, depth + 1));
      else out->push_back({t_.tasks[p].pages.get(), a, hi - a, it->off + (a - it->start)});
      a = hi;
    }
    return {};
  }

 private:
  const TreeImages& t_;
  std::vector<std::vector<Segment>> segments_;
  std::vector<int> parent_;
};

}  // namespace

Result<std::vector<std::vector<InheritedPages>>> resolve_inherited(const TreeImages& t) {
  Resolver r(t);
  std::vector<std::vector<InheritedPages>> out(t.tasks.size());
  for (size_t i = 0; i < t.tasks.size(); i++)
    for (const img::PageRun& run : t.tasks[i].pagemap.runs())
      if (run.inherited()) TRY(r.resolve(i, run.vaddr(), run.vaddr() + run.nr_pages() * arch::kPageSize, &out[i]));
  return out;
}

}  // namespace ckpt::restore
