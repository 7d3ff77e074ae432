// Targets that die or stop during a dump (issue 10). A target killed under
// ckpt is an ordinary error, quickly; threads that come and go while ckpt
// seizes are not an error; a stopped target is dumped and restored stopped.
// Each case runs in both completion modes.
#include <dirent.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <random>
#include <thread>

#include "harness.h"

namespace e2e {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

class Dying : public ::testing::TestWithParam<bool> {
 protected:
  // ckpt arguments for this completion mode.
  std::vector<std::string> mode(std::vector<std::string> args) const {
    if (!GetParam()) args.push_back("--no-breakpoints");
    return args;
  }
};

std::string mode_name(const ::testing::TestParamInfo<bool>& i) { return i.param ? "breakpoint" : "syscalltrace"; }

std::vector<pid_t> tids_of(pid_t pid) {
  std::vector<pid_t> out;
  if (DIR* d = opendir(fmt::format("/proc/{}/task", pid).c_str())) {
    while (dirent* e = readdir(d))
      if (e->d_name[0] >= '0' && e->d_name[0] <= '9') out.push_back(std::atoi(e->d_name));
    closedir(d);
  }
  return out;
}

// Files a dump left in `dir`, but its log.
std::vector<std::string> files_in(const std::string& dir) {
  std::vector<std::string> out;
  if (DIR* d = opendir(dir.c_str())) {
    while (dirent* e = readdir(d)) {
      std::string n = e->d_name;
      if (n != "." && n != ".." && n != "dump.log") out.push_back(n);
    }
    closedir(d);
  }
  return out;
}

// SIGKILL at a random moment 0-50 ms into a dump of a 4-thread, 64 MiB
// process (a dump of it takes about 50 ms): ckpt must end within 2 s, with
// an error naming the process unless it had finished; no thread stays traced
// (a zombie held by ckpt), the process is reaped as killed, ckpt leaves no
// child and no image behind.
TEST_P(Dying, KilledDuringDump) {
  Harness h;
  std::mt19937 rng(std::random_device{}());
  for (int round = 0; round < 20; round++) {
    SCOPED_TRACE(fmt::format("round {}", round));
    pid_t pid = h.start_workload("threads", {"4", "64"});
    ASSERT_GT(pid, 0);
    const std::vector<pid_t> tids = tids_of(pid);
    const std::string dir = fmt::format("{}/img{}", h.dir(), round);
    pid_t ckpt = h.ckpt_background(mode({"dump", "-t", std::to_string(pid), "-D", dir, "-v4", "-o", "dump.log"}));
    const int delay_ms = std::uniform_int_distribution<int>(0, 50)(rng);
    std::this_thread::sleep_for(milliseconds(delay_ms));
    kill(pid, SIGKILL);
    const auto killed = Clock::now();
    CkptRun d = h.wait_ckpt(ckpt, std::chrono::seconds(2));
    const auto took = std::chrono::duration_cast<milliseconds>(Clock::now() - killed).count();
    ASSERT_NE(d.status, -1) << "ckpt hung, killed " << delay_ms << " ms into the dump";
    EXPECT_LT(took, 2000) << "killed " << delay_ms << " ms into the dump";
    if (d.exit_code() != 0) {
      EXPECT_NE(d.err.find(std::to_string(pid)), std::string::npos) << d.err;
      EXPECT_TRUE(files_in(dir).empty()) << "a failed dump left " << files_in(dir)[0];
    }
    // ckpt is gone: no thread may still be traced, and none of its children
    // (reparented to this subreaper) may be left.
    for (pid_t tid : tids) {
      if (access(fmt::format("/proc/{}/task/{}", pid, tid).c_str(), F_OK) == 0) {
        EXPECT_EQ(tracer_of(tid), 0) << "thread " << tid << " is still traced";
      }
    }
    int st = h.wait_child(pid, std::chrono::seconds(2));
    EXPECT_TRUE(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL) << "status " << st;
    EXPECT_LE(waitpid(-1, nullptr, WNOHANG | __WALL), 0) << "ckpt left a child behind";
  }
}

// Threads created and joined all the time (churn: 3 threads each creating
// and joining short-lived ones): threads that exit while ckpt seizes them are
// dropped, threads born meanwhile are seized, and every dump restores into a
// process that goes on churning and passes its own checks.
TEST_P(Dying, ThreadChurnDumpRestore) {
  Harness h;
  for (int round = 0; round < 8; round++) {
    SCOPED_TRACE(fmt::format("round {}", round));
    pid_t pid = h.start_workload("churn");
    ASSERT_GT(pid, 0);
    std::this_thread::sleep_for(milliseconds(30));
    const std::string dir = fmt::format("{}/img{}", h.dir(), round);
    CkptRun d = h.ckpt(mode({"dump", "-t", std::to_string(pid), "-D", dir, "-v4", "-o", "dump.log"}));
    if (d.exit_code() != 0) {
      kill(pid, SIGTERM);
      h.wait_child(pid);
    }
    ASSERT_EQ(d.exit_code(), 0) << d.err << read_text(dir + "/dump.log");
    int st = h.wait_child(pid);
    EXPECT_TRUE(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL) << "status " << st;

    const std::string pidfile = dir + "/restored.pid";
    pid_t r = h.ckpt_background(mode({"restore", "-D", dir, "-v4", "-o", "restore.log", "--pidfile", pidfile}));
    ASSERT_TRUE(h.wait_restored(pid, pidfile)) << read_text(dir + "/restore.log");
    std::this_thread::sleep_for(milliseconds(50));
    kill(pid, SIGTERM);
    CkptRun rr = h.wait_ckpt(r);
    const std::string log = read_text(h.workload_log("churn"));
    EXPECT_EQ(rr.exit_code(), 0) << log << rr.err;
    EXPECT_NE(log.find("PASS churn"), std::string::npos) << log;
  }
}

INSTANTIATE_TEST_SUITE_P(Modes, Dying, ::testing::Bool(), mode_name);

}  // namespace
}  // namespace e2e
