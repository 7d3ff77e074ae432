// A dump that fails at any point loses nothing (CKPT_FAULT makes it fail
// there): non-zero exit with a clear message, the process runs on untraced
// with its state unchanged (it verifies itself), nothing of ckpt left in its
// address space or fd table, and no checkpoint taken from the directory.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <thread>

#include "harness.h"

namespace e2e {
namespace {

class Fault : public ::testing::TestWithParam<std::string> {};

// "fd target" lines of the low fds, to compare the fd table before and after.
std::string fds_of(pid_t pid) {
  std::string out;
  for (int fd = 0; fd < 64; fd++) {
    char buf[256];
    ssize_t n = readlink(fmt::format("/proc/{}/fd/{}", pid, fd).c_str(), buf, sizeof buf);
    if (n > 0) out += fmt::format("{} {}\n", fd, std::string(buf, n));
  }
  return out;
}

TEST_P(Fault, DumpFailsAndLosesNothing) {
  const std::string& point = GetParam();
  Harness h;
  // signals: handlers, a blocked mask and queued signals, all self-checked.
  pid_t pid = h.start_workload("signals");
  ASSERT_GT(pid, 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  const std::string maps = read_text(fmt::format("/proc/{}/maps", pid));
  const std::string fds = fds_of(pid);

  setenv("CKPT_FAULT", point.c_str(), 1);
  CkptRun d = h.ckpt({"dump", "-t", std::to_string(pid), "-D", h.images()});
  unsetenv("CKPT_FAULT");
  EXPECT_NE(d.exit_code(), 0);
  EXPECT_NE(d.err.find(fmt::format("injected fault at {}", point)), std::string::npos) << d.err;
  EXPECT_NE(d.err.find(fmt::format("dump pid {}", pid)), std::string::npos) << d.err;

  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  ASSERT_TRUE(alive(pid));
  EXPECT_EQ(tracer_of(pid), 0);
  EXPECT_EQ(read_text(fmt::format("/proc/{}/maps", pid)), maps) << "ckpt left something in the address space";
  EXPECT_EQ(fds_of(pid), fds);
  EXPECT_NE(access((h.images() + "/inventory.img").c_str(), F_OK), 0) << "a failed dump left a checkpoint";
  CkptRun r = h.ckpt({"restore", "-D", h.images()});
  EXPECT_NE(r.exit_code(), 0);

  kill(pid, SIGTERM);
  int st = h.wait_child(pid);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << read_text(h.workload_log("signals"));
}

INSTANTIATE_TEST_SUITE_P(Points, Fault, ::testing::Values("seize", "remote-syscalls", "memory", "images"),
                         [](const ::testing::TestParamInfo<std::string>& i) {
                           std::string n = i.param;
                           std::erase(n, '-');
                           return n;
                         });

// ckpt killed while it copies memory: the kernel detaches its tracees, and
// the task goes on, untouched (its registers are its own during that step).
TEST(KilledCkpt, DuringMemoryDump) {
  Harness h;
  pid_t pid = h.start_workload("heap", {"64"});
  ASSERT_GT(pid, 0);
  const std::string maps = read_text(fmt::format("/proc/{}/maps", pid));
  setenv("CKPT_FAULT", "hang:memory", 1);
  pid_t ckpt = h.ckpt_background({"dump", "-t", std::to_string(pid), "-D", h.images()});
  unsetenv("CKPT_FAULT");
  // Wait until ckpt hangs in the memory step: the task is traced and stopped.
  for (int i = 0; i < 5000 && !(tracer_of(pid) == ckpt && proc_state(pid) == 't'); i++)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  ASSERT_EQ(tracer_of(pid), ckpt);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  kill(ckpt, SIGKILL);
  h.wait_ckpt(ckpt);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(tracer_of(pid), 0);
  char st = proc_state(pid);
  EXPECT_TRUE(st == 'S' || st == 'R') << "state " << st;
  EXPECT_EQ(read_text(fmt::format("/proc/{}/maps", pid)), maps);
  EXPECT_NE(access((h.images() + "/inventory.img").c_str(), F_OK), 0);
  kill(pid, SIGTERM);
  int status = h.wait_child(pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << read_text(h.workload_log("heap"));
}

// A signal sent while the task is frozen is delivered once it runs again
// after --leave-running, not lost: SIGUSR1, which the heap workload leaves at
// its default action, then ends it.
TEST(FrozenTask, SignalDeliveredAfterLeaveRunning) {
  Harness h;
  pid_t pid = h.start_workload("heap", {"16"});
  ASSERT_GT(pid, 0);
  setenv("CKPT_FAULT", "slow:memory", 1);
  pid_t ckpt = h.ckpt_background({"dump", "-t", std::to_string(pid), "-D", h.images(), "--leave-running"});
  unsetenv("CKPT_FAULT");
  for (int i = 0; i < 5000 && !(tracer_of(pid) == ckpt && proc_state(pid) == 't'); i++)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  ASSERT_EQ(tracer_of(pid), ckpt);
  kill(pid, SIGUSR1);
  CkptRun d = h.wait_ckpt(ckpt);
  EXPECT_EQ(d.exit_code(), 0) << d.err;
  int st = h.wait_child(pid, std::chrono::seconds(10));
  EXPECT_TRUE(WIFSIGNALED(st) && WTERMSIG(st) == SIGUSR1) << "status " << st;
}

}  // namespace
}  // namespace e2e
