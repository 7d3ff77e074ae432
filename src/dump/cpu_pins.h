// The task a tracer thread dumps, on that tracer's CPU. A dump is a chain of
// round trips between ckpt and the task (ptrace stops, remote syscalls, the
// parasite's replies), each waking a thread that waits for the other: on
// one CPU the wakeup is a context switch (2.7 us a ptrace round trip here),
// across two an IPI, which this hypervisor traps (12-20 us). So each tracer
// is held on a CPU of its own, and the main thread of the task it dumps on
// the same one, from its parasite's injection to its cure; the task's own
// affinity is put back before the task goes on.
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
#include "ptrace/watcher.h"

namespace ckpt::dump {

class CpuPins {
 public:
  // Room for `tasks` pins. None on a machine where ckpt may use one CPU.
  static Result<CpuPins> make(size_t tasks);
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

  // The CPU of tracer `tracer`; -1 where nothing is pinned.
  int cpu_of(size_t tracer) const;

  // A task's thread held on the CPU the calling thread is held on, its own
  // affinity back when this goes. Best effort: where either can't be done,
  // nothing is pinned.
  class Pin {
   public:
    Pin() = default;
    Pin(Pin&& o) noexcept : slot_(std::exchange(o.slot_, nullptr)) {}
    Pin& operator=(Pin&&) = delete;
    ~Pin();

   private:
    friend class CpuPins;
    Slot* slot_ = nullptr;
  };
  Pin pin(pid_t tid);

 private:
  CpuPins() = default;
  std::vector<int> cpus_;  // ckpt's, ascending
  std::unique_ptr<Table> table_;
  std::optional<Watcher> watcher_;  // declared last: ended before the table goes
};

}  // namespace ckpt::dump
