// A fanotify group ckpt can't bring back is refused at dump, saying why, and
// the process is left running as it was: one with events not yet read
// (they can't be queued again), one of a permission class. (A notification
// group with its marks comes back: workload fanotify.) An inotify with
// events not yet read is refused the same way (workload inotify has none).
#include <fcntl.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/fanotify.h>
#include <sys/inotify.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <chrono>

#include "harness.h"

namespace e2e {
namespace {


// The helper's setup gets the path of a file in the test's directory.
void expect_refused(const std::function<void(const std::string&)>& setup, const std::string& want) {
  Harness h;
  const std::string file = h.dir() + "/marked";
  expect_dump_refused(h, [&] { setup(file); }, want);
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

TEST(Inotify, UnreadEventsAreRefused) {
  expect_refused(
      [](const std::string& file) {
        const int f = open(file.c_str(), O_RDWR | O_CREAT, 0600);
        const int in = inotify_init1(IN_NONBLOCK);
        if (f < 0 || in < 0 || inotify_add_watch(in, file.c_str(), IN_MODIFY) < 0) _exit(1);
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
