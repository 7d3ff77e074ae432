// Children for tests that trace or watch processes: each sleeps in pause()
// until killed; the test kills and reaps it. And a child that runs one
// function, for what only a fresh process can tell.
#pragma once

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <functional>

namespace ckpt::tests {

inline pid_t paused_child() {
  const pid_t c = fork();
  if (c == 0)
    for (;;) pause();
  return c;
}

// Under ASan every allocation writes its shadow memory: page faults then
// count the sanitizer's pages, not the code's.
#ifdef __SANITIZE_ADDRESS__
inline constexpr bool kFaultsCount = false;
#else
inline constexpr bool kFaultsCount = true;
#endif
inline constexpr const char* kFaultsDontCount = "under ASan, faults count the shadow memory of each allocation";

// The page faults this process has taken so far.
inline long minor_faults() {
  rusage r{};
  getrusage(RUSAGE_SELF, &r);
  return r.ru_minflt;
}

// What `fn` returns when run in a child forked for it, or -1 if the child
// could not tell: a process of one thread, whose counts (getrusage) are its
// own, and which exits through _exit, the test's own state untouched. A
// child faults in each page of code it runs the first time (fork copies no
// page table entries of a file's mapping): count faults only around a path
// the child has already run.
inline long in_child(const std::function<long()>& fn) {
  int p[2];
  if (pipe(p) < 0) return -1;
  const pid_t c = fork();
  if (c == 0) {
    close(p[0]);
    const long got = fn();
    _exit(write(p[1], &got, sizeof got) == sizeof got ? 0 : 1);
  }
  close(p[1]);
  long got = -1;
  if (c < 0 || read(p[0], &got, sizeof got) != sizeof got) got = -1;
  close(p[0]);
  if (c > 0) waitpid(c, nullptr, 0);
  return got;
}

}  // namespace ckpt::tests
