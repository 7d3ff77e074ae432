// A restore that reports success means every thread runs its own code: a
// task that dies at its first step after restore (here: its own seccomp
// filter kills it as it re-enters its syscall) is a failed restore, with a
// message naming the task and thread, and nothing left behind. (A rip on a
// page the task can't execute: bad_images_test.cc, FirstStep.*.)
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <string>

#include "harness.h"

namespace e2e {
namespace {

struct Mode {
  bool breakpoints;
  bool whole_process;  // SECCOMP_RET_KILL_PROCESS, else only the main thread dies
};
void PrintTo(const Mode& m, std::ostream* os) {
  *os << fmt::format("{}_{}", m.breakpoints ? "breakpoint" : "syscalltrace", m.whole_process ? "process" : "mainthread");
}
std::string name(const testing::TestParamInfo<Mode>& i) { return testing::PrintToString(i.param); }

class FirstStep : public testing::TestWithParam<Mode> {};

TEST_P(FirstStep, TaskKilledByItsOwnFilterIsAFailedRestore) {
  const Mode m = GetParam();
  Harness h;
  pid_t pid = h.start_workload("seccompkill", m.whole_process ? std::vector<std::string>{}
                                                               : std::vector<std::string>{"thread"});
  ASSERT_GT(pid, 0);
  CkptRun d = h.ckpt({"dump", "-t", std::to_string(pid), "-D", h.images()});
  ASSERT_EQ(d.exit_code(), 0) << d.err;
  h.wait_child(pid);

  std::vector<std::string> args = {"restore", "-d", "-D", h.images(), "--pidfile", h.dir() + "/pid"};
  if (!m.breakpoints) args.push_back("--no-breakpoints");
  CkptRun r = h.ckpt(args);
  EXPECT_NE(r.exit_code(), 0) << r.err;
  const std::string want = fmt::format("restore pid {}: task {} thread {} ", pid, pid, pid);
  EXPECT_NE(r.err.find(want), std::string::npos) << "no '" << want << "' in: " << r.err;
  EXPECT_NE(r.err.find(" right after its restore, before ckpt let go"), std::string::npos) << r.err;
  if (m.whole_process) {
    EXPECT_NE(r.err.find("killed by SIGSYS"), std::string::npos) << r.err;
  }
  EXPECT_FALSE(alive(pid)) << "restore left a process behind";
  EXPECT_EQ(access((h.dir() + "/pid").c_str(), F_OK), -1) << "pidfile written for a failed restore";
}

INSTANTIATE_TEST_SUITE_P(Modes, FirstStep,
                         testing::Values(Mode{true, true}, Mode{false, true}, Mode{true, false}, Mode{false, false}),
                         name);

}  // namespace
}  // namespace e2e
