// The parasite's commands, driven through ckpt's own API against a live
// workload, each answer checked against what /proc and kcmp say from
// outside; then the cure, after which the workload verifies itself.
#include <fcntl.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <linux/kcmp.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <sstream>

#include "dump/seize.h"
#include "harness.h"
#include "parasite/parasite.h"
#include "ptrace/remote_syscall.h"
#include "proc/maps.h"
#include "proc/status.h"

namespace ckpt {
// A parameter as gtest prints it (else "4-byte object <...>").
void PrintTo(CompletionMode m, std::ostream* os) {
  *os << (m == CompletionMode::Breakpoint ? "breakpoint" : "syscalltrace");
}
}  // namespace ckpt

namespace e2e {
namespace {

using ckpt::CompletionMode;
using ckpt::Parasite;

// The soft limit column of a /proc/PID/limits line.
std::string soft_limit(pid_t pid, const std::string& name) {
  std::istringstream in(read_text(fmt::format("/proc/{}/limits", pid)));
  for (std::string line; std::getline(in, line);)
    if (line.starts_with(name)) {
      std::istringstream fields(line.substr(26));
      std::string soft;
      fields >> soft;
      return soft;
    }
  return "";
}

class ParasiteCommands : public ::testing::TestWithParam<CompletionMode> {};

TEST_P(ParasiteCommands, AnswerWhatTheKernelSays) {
  // ckpt itself falls back to syscall tracing where breakpoints don't fire
  // (probe_breakpoints); this test drives the parasite without it.
  if (GetParam() == CompletionMode::Breakpoint && !ckpt::probe_breakpoints().usable)
    GTEST_SKIP() << "hardware breakpoints don't fire on this machine";
  Harness h;
  pid_t pid = h.start_workload("files");
  ASSERT_GT(pid, 0);
  const std::string maps = read_text(fmt::format("/proc/{}/maps", pid));
  ckpt::Log log(1);
  {
    auto threads = ckpt::dump::seize_process(pid, ckpt::Tracee::Clock::now() + std::chrono::seconds(5));
    ASSERT_TRUE(threads) << threads.error().str();
    ckpt::Faults no_faults;
    auto site = ckpt::find_syscall_site((*threads)[0]);
    ASSERT_TRUE(site) << site.error().str();
    EXPECT_TRUE(site->sigreturn) << "no signal-restorer code found in a glibc process";
    auto p = Parasite::inject((*threads)[0], *site, GetParam(), log, no_faults);
    ASSERT_TRUE(p) << p.error().str();
    EXPECT_NE(read_text(fmt::format("/proc/{}/maps", pid)).find("ckpt-parasite"), std::string::npos);

    // Sigactions: the workload handles SIGTERM only.
    auto ps = p->process_state();
    ASSERT_TRUE(ps) << ps.error().str();
    EXPECT_NE((*ps)->sigactions[SIGTERM - 1].handler, 0u);
    EXPECT_EQ((*ps)->sigactions[SIGUSR1 - 1].handler, 0u);
    EXPECT_EQ(fmt::format("{}", (*ps)->rlimits[RLIMIT_NOFILE].cur), soft_limit(pid, "Max open files"));

    // The main thread's own state, as /proc has what it shows of it: its
    // timer slack, and the clear_child_tid glibc set at start.
    auto ts = p->main_thread_state();
    ASSERT_TRUE(ts) << ts.error().str();
    EXPECT_EQ(read_text(fmt::format("/proc/{}/timerslack_ns", pid)), fmt::format("{}\n", (*ts)->timerslack_ns));
    EXPECT_NE((*ts)->clear_child_tid, 0u);

    // Fds over SCM_RIGHTS: the very same open files (kcmp), fd 10 included.
    std::vector<int32_t> task_fds;
    for (const auto& e : std::filesystem::directory_iterator(fmt::format("/proc/{}/fd", pid)))
      task_fds.push_back(std::stoi(e.path().filename()));
    auto got = p->fds(task_fds);
    ASSERT_TRUE(got) << got.error().str();
    ASSERT_EQ(got->size(), task_fds.size());
    for (size_t i = 0; i < task_fds.size(); i++)
      EXPECT_EQ(syscall(SYS_kcmp, getpid(), pid, KCMP_FILE, (*got)[i].get(), task_fds[i]), 0) << "fd " << task_fds[i];
    // A bad fd is an error, and the daemon serves on.
    int32_t bad = 999;
    EXPECT_FALSE(p->fds({&bad, 1}));

    // Memory of an unmapped range: an error naming vmsplice, not a crash.
    ckpt::abi::DrainIov piece{0x1000, 4096, 0, 0};
    char tmpl[] = "/tmp/ckpt-parasite-test-XXXXXX";
    int out = mkstemp(tmpl);
    ASSERT_GE(out, 0);
    unlink(tmpl);
    auto dr = p->drain({&piece, 1}, out);
    ASSERT_FALSE(dr);
    EXPECT_NE(dr.error().str().find("vmsplice"), std::string::npos) << dr.error().str();
    close(out);

    auto stops = p->cure();
    ASSERT_TRUE(stops) << stops.error().str();
    // Breakpoint: the breakpoint, rt_sigreturn's entry and exit (a thread
    // held at the breakpoint would die of its SIGTRAP with ckpt), munmap's
    // entry and exit. Without (cure_from_outside): the interrupt of the
    // daemon's wait, then a remote close and munmap, two stops each.
    EXPECT_EQ(*stops, 5u);
  }
  EXPECT_TRUE(wait_back_in_loop(pid)) << "state " << proc_state(pid) << ", tracer " << tracer_of(pid);
  EXPECT_EQ(read_text(fmt::format("/proc/{}/maps", pid)), maps);
  kill(pid, SIGTERM);
  int st = h.wait_child(pid);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << read_text(h.workload_log("files"));
}

INSTANTIATE_TEST_SUITE_P(Modes, ParasiteCommands,
                         ::testing::Values(CompletionMode::Breakpoint, CompletionMode::SyscallTrace),
                         [](const ::testing::TestParamInfo<CompletionMode>& i) {
                           return ::testing::PrintToString(i.param);
                         });

}  // namespace
}  // namespace e2e
