// The task a tracer thread dumps, on that tracer's CPU. A dump is a chain of
// round trips between ckpt and the task (ptrace stops, remote syscalls, the
// parasite's replies), each waking a thread that waits for the other: on
// one CPU the wakeup is a context switch (2.7 us a ptrace round trip here),
// across two an IPI, which this hypervisor traps (12-20 us). So while it
// injects the parasite and collects the task's state, and again while it
// cures it, a tracer is held on a CPU of its own and the task's main thread
// on the same one; the task's own affinity is put back before the task goes
// on. Not while the memory is drained, where ckpt and the parasite work side
// by side.
//
// A ckpt killed meanwhile must not leave a task pinned: a watcher
// (ptrace/watcher.h) gives each task still pinned its affinity back once
// ckpt is gone.
#pragma once

#include <sched.h>
#include <sys/types.h>

#include <atomic>
#include <memory>
#include <optional>
#include <vector>

#include "base/result.h"
#include "ptrace/on_cpu.h"
#include "ptrace/watcher.h"

namespace ckpt::dump {

class CpuPins {
 public:
  // Room for `pins` pins. None on a machine where ckpt may use one CPU.
  static Result<CpuPins> make(size_t pins);
  CpuPins(CpuPins&&) noexcept = default;
  CpuPins& operator=(CpuPins&&) = delete;

  struct Slot {
    std::atomic<bool> pinned{false};
    pid_t tid = 0;
    cpu_set_t mask{};  // its own
  };
  // What the watcher reads: where it is until the watcher is reaped.
  struct Table {
    explicit Table(size_t n) : slots(std::make_unique<Slot[]>(n)), room(n) {}
    std::unique_ptr<Slot[]> slots;
    size_t room;
    std::atomic<size_t> used{0};
  };

  // The calling thread, tracer `tracer`, held on its CPU and the task's
  // thread `tid` pinned there; both their own affinity back when this goes.
  // Best effort: where it can't be done, nothing is pinned.
  class Pin {
   public:
    Pin() = default;
    Pin(Pin&& o) noexcept : held_(std::move(o.held_)), slot_(std::exchange(o.slot_, nullptr)) {}
    Pin& operator=(Pin&&) = delete;
    ~Pin();

   private:
    friend class CpuPins;
    std::unique_ptr<OnCpu> held_;
    Slot* slot_ = nullptr;
  };
  Pin pin(pid_t tid, size_t tracer);

 private:
  CpuPins() = default;
  std::vector<int> cpus_;  // ckpt's, ascending
  std::unique_ptr<Table> table_;
  std::optional<Watcher> watcher_;  // declared last: ended before the table goes
};

}  // namespace ckpt::dump
