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
#include <thread>

#include "harness.h"

namespace e2e {
namespace {

using namespace std::chrono_literals;

// Dumps a helper process made by `setup` (which pauses then): the dump must
// fail with `want` in its error, leaving the process alive and untraced.
template <typename F>
void expect_refused(F setup, const std::string& want) {
  Harness h;
  const pid_t pid = spawn_paused(setup);
  ASSERT_TRUE(wait_until([&] { return read_text(fmt::format("/proc/{}/syscall", pid)).starts_with(
                                          fmt::format("{} ", SYS_pause)); }))
      << "the helper never paused";
  const std::string fds = fds_of(pid);
  CkptRun d = h.ckpt({"dump", "-t", std::to_string(pid), "-D", h.images()});
  EXPECT_NE(d.exit_code(), 0) << "the dump took it: " << d.err;
  EXPECT_NE(d.err.find(want), std::string::npos) << d.err;
  std::this_thread::sleep_for(50ms);
  EXPECT_TRUE(alive(pid));
  EXPECT_EQ(proc_state(pid), 'S');
  EXPECT_EQ(tracer_of(pid), 0);
  EXPECT_EQ(fds_of(pid), fds);
  kill(pid, SIGKILL);
  h.wait_child(pid);
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
