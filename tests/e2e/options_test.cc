// What the dump and restore options promise: --leave-stopped, -d,
// --pidfile, --restore-sibling, and the stats image.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <thread>

#include "harness.h"

namespace e2e {
namespace {

using namespace std::chrono_literals;

bool wait_state(pid_t pid, char want, std::chrono::milliseconds timeout = 5000ms) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (proc_state(pid) == want) return true;
    std::this_thread::sleep_for(2ms);
  }
  return false;
}

// The task waits stopped and untraced; SIGCONT lets it go on, and on SIGTERM
// it verifies itself.
void expect_stopped_then_continues(Harness& h, pid_t pid) {
  EXPECT_TRUE(wait_state(pid, 'T')) << "state " << proc_state(pid);
  EXPECT_EQ(tracer_of(pid), 0);
  kill(pid, SIGCONT);
  EXPECT_TRUE(wait_state(pid, 'S'));
  kill(pid, SIGTERM);
  int st = h.wait_child(pid);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << read_text(h.workload_log("counter"));
}

TEST(DumpOptions, LeaveStopped) {
  Harness h;
  pid_t pid = h.start_workload("counter");
  CkptRun d = h.ckpt({"dump", "-t", std::to_string(pid), "-D", h.images(), "--leave-stopped"});
  ASSERT_EQ(d.exit_code(), 0) << d.err;
  expect_stopped_then_continues(h, pid);
}

TEST(DumpOptions, StatsImageAndShow) {
  Harness h;
  pid_t pid = h.start_workload("counter");
  CkptRun d = h.ckpt({"dump", "-t", std::to_string(pid), "-D", h.images(), "--stats"});
  ASSERT_EQ(d.exit_code(), 0) << d.err;
  EXPECT_NE(d.err.find("frozen time"), std::string::npos) << d.err;
  h.wait_child(pid);
  CkptRun s = h.ckpt({"show", h.images(), "--json"});
  ASSERT_EQ(s.exit_code(), 0) << s.err;
  for (const char* key : {"\"inventory.img\"", "\"stats-dump.img\"", "\"frozen_ns\"", "\"rip\"", "\"vmas\""})
    EXPECT_NE(s.out.find(key), std::string::npos) << key;
}

TEST(RestoreOptions, DetachedWithPidfileAndLeaveStopped) {
  Harness h;
  pid_t pid = h.dump_workload("counter");
  std::string pidfile = h.dir() + "/pid";
  CkptRun r = h.ckpt({"restore", "-D", h.images(), "-d", "--leave-stopped", "--pidfile", pidfile});
  ASSERT_EQ(r.exit_code(), 0) << r.err;
  EXPECT_EQ(read_text(pidfile), fmt::format("{}\n", pid));
  // ckpt has returned; the task, reparented to us (the subreaper), waits.
  expect_stopped_then_continues(h, pid);
}

TEST(RestoreOptions, Sibling) {
  Harness h;
  pid_t pid = h.dump_workload("counter");
  CkptRun r = h.ckpt({"restore", "-D", h.images(), "--restore-sibling"});
  ASSERT_EQ(r.exit_code(), 0) << r.err;
  // A child of ckpt's parent (us), so we can wait for it.
  EXPECT_EQ(ppid_of(pid), getpid());
  kill(pid, SIGTERM);
  int st;
  ASSERT_EQ(waitpid(pid, &st, 0), pid);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

}  // namespace
}  // namespace e2e
