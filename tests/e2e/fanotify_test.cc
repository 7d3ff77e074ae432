// A fanotify group ckpt can't bring back is refused at dump, saying why, and
// the process is left running as it was: one with events not yet read
// (they can't be queued again), one of a permission class. (A notification
// group with its marks comes back: workload fanotify.)
#include <fcntl.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/fanotify.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "harness.h"

namespace e2e {
namespace {

using namespace std::chrono_literals;

template <typename F>
void expect_refused(F setup, const std::string& want) {
  Harness h;
  const std::string file = h.dir() + "/marked";
  const pid_t pid = spawn_paused([&] { setup(file); });
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

TEST(Fanotify, UnreadEventsAreRefused) {
  expect_refused(
      [](const std::string& file) {
        const int f = open(file.c_str(), O_RDWR | O_CREAT, 0600);
        const int g = fanotify_init(FAN_CLASS_NOTIF, O_RDONLY);
        if (f < 0 || g < 0 || fanotify_mark(g, FAN_MARK_ADD, FAN_MODIFY, AT_FDCWD, file.c_str()) != 0) _exit(1);
        if (write(f, "x", 1) != 1) _exit(1);  // one event, queued
      },
      "bytes of events not yet read, which restore could not queue again");
}

TEST(Fanotify, PermissionClassIsRefused) {
  expect_refused(
      [](const std::string&) {
        if (fanotify_init(FAN_CLASS_CONTENT, O_RDONLY) < 0) _exit(1);
      },
      "a group of a permission class (fanotify_init flags 0x4)");
}

}  // namespace
}  // namespace e2e
