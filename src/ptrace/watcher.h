// A child of ckpt that acts when ckpt is gone: what ckpt leaves half done
// when it is killed (a tree half let go, tasks it pinned to a CPU) is
// finished or undone by it.
//
// It holds one end of a socket pair and the fds it was given, and no other
// file. A byte from ckpt (commit()) ends it without its act; end-of-file
// first (ckpt ended it, gave up, or died) and it runs its act, then exits.
//
// It shares ckpt's memory (clone with CLONE_VM): no page tables to copy, and
// its act reads what ckpt keeps where ckpt keeps it (ckpt frees nothing it
// reads before it has reaped the watcher). It runs raw syscalls only, with
// the signals a terminal sends blocked and in a process group of its own,
// so that a Ctrl-C, or a SIGKILL to ckpt's whole group, that kills ckpt does
// not kill its watcher too. It is made on the CPU ckpt is on and stays
// there: ckpt's waits for it are switches on one CPU, not wakeups of
// another.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "base/mapping.h"
#include "base/result.h"
#include "base/unique_fd.h"

namespace ckpt {

class Watcher {
 public:
  // What it does at end-of-file, on its own stack with ckpt's TLS: raw
  // syscalls (pie/sys.h) only, not even libc's syscall(), whose errno is
  // ckpt's thread's.
  using Act = void (*)(const void* arg);

  // Returns once the watcher holds no file of ckpt's but `keep`. `what`
  // names it in errors.
  static Result<Watcher> start(Act act, const void* arg, std::vector<int> keep, std::string what);
  Watcher(Watcher&&) noexcept;
  Watcher& operator=(Watcher&&) = delete;
  // end() unless committed.
  ~Watcher();

  // Ends it without its act, and reaps it.
  void commit();
  // End-of-file: it acts, and is reaped.
  void end();

  struct State;  // watcher.cc's

 private:
  explicit Watcher(std::unique_ptr<State> s);
  std::unique_ptr<State> s_;
};

}  // namespace ckpt
