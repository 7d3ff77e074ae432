// Descriptions that name a task by its PID (a pidfd, a file of /proc/PID):
// one of a task outside the tree, or of one already reaped, is refused at
// dump, naming it, and the process is left running as it was. (Those of the
// tree's own tasks come back: workloads pidfds and procfiles.)
#include <fcntl.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>

#include "harness.h"

namespace e2e {
namespace {


void expect_refused(const std::function<void()>& setup, const std::string& want) {
  Harness h;
  expect_dump_refused(h, setup, want);
}

TEST(LateFiles, PidfdOfAProcessOutsideTheTreeIsRefused) {
  // Its parent, the test: outside the tree.
  expect_refused([] { (void)syscall(SYS_pidfd_open, getppid(), 0); },
                 fmt::format("a pidfd of pid {} (", getpid()));
}

TEST(LateFiles, PidfdOfAReapedProcessIsRefused) {
  expect_refused(
      [] {
        const pid_t c = fork();
        if (c == 0) _exit(0);
        (void)syscall(SYS_pidfd_open, c, 0);
        waitpid(c, nullptr, 0);
      },
      "a pidfd of a process that has exited and was reaped (Pid: -1)");
}

TEST(LateFiles, ProcFileOfAProcessOutsideTheTreeIsRefused) {
  const pid_t test = getpid();
  expect_refused([test] { (void)open(fmt::format("/proc/{}/stat", test).c_str(), O_RDONLY); },
                 fmt::format("a file of /proc of pid {} (", test));
}

}  // namespace
}  // namespace e2e
