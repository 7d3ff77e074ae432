// Processes with 10,000 fds, many sharing open file descriptions: dumped and
// restored under an RLIMIT_NOFILE only a little above their fd count (restore
// once needed twice the slots: "dup fd 9975: Bad file descriptor"), one of
// them with a soft limit of exactly its fd count; and a process whose hard
// limit is its fd count, refused at dump while it still runs, since no
// restore under that limit could hold its fds and ckpt's temporary ones.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include "harness.h"

namespace e2e {
namespace {

constexpr int kFds = 10000;
// What ckpt needs above the task's own fds: its temporary fds (files/files.h,
// restore_fd_slots) with room to spare, far below another kFds.
constexpr int kSpare = 64;

// The test process's RLIMIT_NOFILE for a while: workloads and ckpt inherit it.
class NofileLimit {
 public:
  explicit NofileLimit(rlim_t n) {
    EXPECT_EQ(getrlimit(RLIMIT_NOFILE, &old_), 0);
    rlimit rl{n, n};
    EXPECT_EQ(setrlimit(RLIMIT_NOFILE, &rl), 0) << "root may raise its hard limit again";
  }
  ~NofileLimit() { setrlimit(RLIMIT_NOFILE, &old_); }

 private:
  rlimit old_{};
};

void dump_and_restore(const std::string& mode) {
  NofileLimit limit(kFds + kSpare);
  Harness h;
  pid_t pid = h.start_workload("manyfds", {std::to_string(kFds), mode});
  ASSERT_GT(pid, 0);
  CkptRun d = h.ckpt({"dump", "-t", std::to_string(pid), "-D", h.images(), "-v4", "-o", "dump.log"});
  ASSERT_EQ(d.exit_code(), 0) << d.err << read_text(h.images() + "/dump.log");
  int st = h.wait_child(pid);
  ASSERT_TRUE(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL) << "dump should kill the process";

  const std::string pidfile = h.dir() + "/restored.pid";
  pid_t r = h.ckpt_background({"restore", "-D", h.images(), "-v4", "-o", "restore.log", "--pidfile", pidfile});
  ASSERT_TRUE(h.wait_restored(pid, pidfile, std::chrono::seconds(60))) << read_text(h.images() + "/restore.log");
  EXPECT_EQ(tracer_of(pid), 0);
  kill(pid, SIGTERM);
  CkptRun rr = h.wait_ckpt(r);
  EXPECT_EQ(rr.exit_code(), 0) << "workload log:\n"
                               << read_text(h.workload_log("manyfds")) << "\nckpt:\n"
                               << rr.err << read_text(h.images() + "/restore.log");
  EXPECT_NE(read_text(h.workload_log("manyfds")).find("PASS"), std::string::npos)
      << read_text(h.workload_log("manyfds"));
}

TEST(ManyFds, TenThousandWithSharedDescriptions) { dump_and_restore("plain"); }

// Its soft limit is its fd count; the restore gets that back.
TEST(ManyFds, SoftLimitIsTheFdCount) { dump_and_restore("soft"); }

TEST(ManyFds, HardLimitTooLowIsRefusedAtDump) {
  NofileLimit limit(kFds + kSpare);
  Harness h;
  constexpr int kSmall = 2000;
  pid_t pid = h.start_workload("manyfds", {std::to_string(kSmall), "hard"});
  ASSERT_GT(pid, 0);
  CkptRun d = h.ckpt({"dump", "-t", std::to_string(pid), "-D", h.images()});
  EXPECT_NE(d.exit_code(), 0) << "a dump no restore could bring back under the task's RLIMIT_NOFILE";
  EXPECT_NE(d.err.find("RLIMIT_NOFILE hard limit is 2000"), std::string::npos) << d.err;
  // Refused before anything was done to it: it runs on, untraced, intact.
  ASSERT_TRUE(alive(pid));
  EXPECT_TRUE(wait_until([&] { return tracer_of(pid) == 0 && proc_state(pid) != 't'; })) << proc_state(pid);
  kill(pid, SIGTERM);
  int st = h.wait_child(pid);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << read_text(h.workload_log("manyfds"));
}

}  // namespace
}  // namespace e2e
