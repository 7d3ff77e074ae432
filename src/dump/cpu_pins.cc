#include "dump/cpu_pins.h"

#include <sys/syscall.h>

#include "pie/sys.h"

namespace ckpt::dump {

namespace {

// The watcher's act: every task still pinned gets its own affinity back.
void unpin_all(const void* arg) {
  const auto* t = static_cast<const CpuPins::Table*>(arg);
  for (size_t i = 0; i < t->room; i++)
    if (t->slots[i].pinned.load())
      pie::sys(SYS_sched_setaffinity, t->slots[i].tid, sizeof(cpu_set_t), &t->slots[i].mask);
}

}  // namespace

Result<CpuPins> CpuPins::make(size_t pins) {
  CpuPins p;
  cpu_set_t mine;
  if (sched_getaffinity(0, sizeof mine, &mine) < 0) return p;
  for (int c = 0; c < CPU_SETSIZE; c++)
    if (CPU_ISSET(c, &mine)) p.cpus_.push_back(c);
  if (p.cpus_.size() < 2) {
    p.cpus_.clear();
    return p;
  }
  p.table_ = std::make_unique<Table>(pins);
  p.watcher_.emplace(TRY(Watcher::start(unpin_all, p.table_.get(), {}, "affinity watcher")));
  return p;
}

CpuPins::Pin CpuPins::pin(pid_t tid, size_t tracer) {
  Pin out;
  if (cpus_.empty()) return out;
  const int here = cpus_[tracer % cpus_.size()];
  out.held_ = std::make_unique<OnCpu>();
  out.held_->go(here);
  if (sched_getcpu() != here) return out;
  const size_t i = table_->used.fetch_add(1);
  if (i >= table_->room) return out;
  Slot& s = table_->slots[i];
  if (sched_getaffinity(tid, sizeof s.mask, &s.mask) < 0) return out;
  s.tid = tid;
  s.pinned.store(true);  // before the task is pinned: the watcher undoes it from here on
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(here, &one);
  if (sched_setaffinity(tid, sizeof one, &one) < 0) {
    s.pinned.store(false);
    return out;
  }
  out.slot_ = &s;
  return out;
}

CpuPins::Pin::~Pin() {
  if (!slot_) return;
  // A task that died meanwhile has nothing to get back.
  (void)sched_setaffinity(slot_->tid, sizeof slot_->mask, &slot_->mask);
  slot_->pinned.store(false);
}

}  // namespace ckpt::dump
