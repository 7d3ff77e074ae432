// ckpt's own thread moved between CPUs for a while: where the arming of
// breakpoints (completion.h, ArmByCpu) and the pins of a dump
// (dump/cpu_pins.h) want it, and where a watcher (watcher.h) is made.
#pragma once

#include <sched.h>

#include <vector>

namespace ckpt {

// ckpt's thread on one CPU after another (of those it may use), its own
// affinity back at the end. Best effort: where it can't move, it stays.
class OnCpu {
 public:
  OnCpu();
  OnCpu(const OnCpu&) = delete;
  OnCpu& operator=(const OnCpu&) = delete;
  ~OnCpu();

  // The CPUs ckpt may use, the one it is on first; empty if unknown.
  const std::vector<int>& cpus() const { return cpus_; }
  // Onto `cpu` and kept there, unless there already.
  void go(int cpu);

 private:
  cpu_set_t mask_;
  std::vector<int> cpus_;
  int held_on_ = -1;  // pinned there by go()
};

}  // namespace ckpt
