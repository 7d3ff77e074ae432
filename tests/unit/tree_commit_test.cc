// The commit watcher (ptrace/tree_commit.h) on plain child processes: it
// kills them at end-of-file, leaves them at a commit, asks its file first
// with KillIf, and outlives its maker (a ckpt SIGKILLed or interrupted).
#include "ptrace/tree_commit.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "base/unique_fd.h"

namespace {

using ckpt::TreeCommit;

// Children that sleep until killed; killed and reaped at the end.
struct Sleepers {
  std::vector<pid_t> pids;
  explicit Sleepers(int n) {
    for (int i = 0; i < n; i++) {
      const pid_t p = fork();
      if (p == 0)
        for (;;) pause();
      pids.push_back(p);
    }
  }
  ~Sleepers() {
    for (pid_t p : pids) {
      kill(p, SIGKILL);
      waitpid(p, nullptr, 0);
    }
  }
  // Every one dies of SIGKILL (reaped here).
  void expect_killed() {
    for (pid_t& p : pids) {
      int st = 0;
      ASSERT_EQ(waitpid(p, &st, 0), p);
      EXPECT_TRUE(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL) << "pid " << p << " status " << st;
      p = -1;
    }
    pids.clear();
  }
  // None dies within a while (a SIGKILL sent takes effect in microseconds).
  void expect_alive() {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    for (pid_t p : pids) EXPECT_EQ(waitpid(p, nullptr, WNOHANG), 0) << "pid " << p << " died";
  }
};

TEST(TreeCommit, CommitLeavesEveryTask) {
  Sleepers s(3);
  auto w = TreeCommit::watch(s.pids);
  ASSERT_TRUE(w) << w.error().str();
  w->commit();
  s.expect_alive();
}

TEST(TreeCommit, KillOrDestructionKillsEveryTask) {
  {
    Sleepers s(3);
    auto w = TreeCommit::watch(s.pids);
    ASSERT_TRUE(w) << w.error().str();
    w->kill();
    s.expect_killed();
  }
  Sleepers s(2);
  { ASSERT_TRUE(TreeCommit::watch(s.pids)); }
  s.expect_killed();
}

TEST(TreeCommit, TaskAlreadyGoneIsSkipped) {
  const pid_t gone = fork();
  if (gone == 0) _exit(0);
  waitpid(gone, nullptr, 0);
  Sleepers s(1);
  auto w = TreeCommit::watch({gone, s.pids[0]});
  ASSERT_TRUE(w) << w.error().str();
  w->kill();
  s.expect_killed();
}

TEST(TreeCommit, KillIfAsksForTheFileAtEndOfFile) {
  // A directory of this test process's own (its pid in the name).
  const std::string dir = testing::TempDir() + "tree-commit-" + std::to_string(getpid());
  ASSERT_EQ(mkdir(dir.c_str(), 0700), 0) << dir << ": " << strerror(errno);
  const ckpt::UniqueFd dir_fd(open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  ASSERT_TRUE(dir_fd.valid()) << dir << ": " << strerror(errno);
  const int dfd = dir_fd.get();
  {
    Sleepers s(2);
    auto w = TreeCommit::watch(s.pids, TreeCommit::KillIf{dfd, "inventory.img"});
    ASSERT_TRUE(w) << w.error().str();
    w->kill();  // no file: nothing committed to a kill
    s.expect_alive();
  }
  {
    Sleepers s(2);
    auto w = TreeCommit::watch(s.pids, TreeCommit::KillIf{dfd, "inventory.img"});
    ASSERT_TRUE(w) << w.error().str();
    // Made after the watcher: it looks when end-of-file comes, not before.
    const int f = openat(dfd, "inventory.img", O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
    ASSERT_GE(f, 0);
    close(f);
    w->kill();
    s.expect_killed();
  }
  unlinkat(dfd, "inventory.img", 0);
  rmdir(dir.c_str());
}

// The watcher holds none of ckpt's files: a pipe ckpt had open when the
// watcher was made reads end-of-file once ckpt closes its write end, while
// the watcher still runs. A copy of ckpt's table would hold the pipe open
// (and, at restore, a stand-in socket bound at a restored socket's port).
TEST(TreeCommit, WatcherHoldsNoFileOfCkpts) {
  Sleepers s(1);  // forked before the pipe exists
  int p[2];
  ASSERT_EQ(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
  ckpt::UniqueFd rd(p[0]), wr(p[1]);
  auto w = TreeCommit::watch(s.pids);
  ASSERT_TRUE(w) << w.error().str();
  wr.reset();
  char c;
  EXPECT_EQ(read(rd.get(), &c, 1), 0) << "the pipe's write end is still open somewhere: " << strerror(errno);
  w->commit();
  s.expect_alive();
}

// The maker dies with its watcher armed: of SIGKILL, alone or with its
// whole process group (as timeout(1) sends it), or of the SIGINT a terminal
// sends to the group: the watcher kills every task.
TEST(TreeCommit, MakerDeathKillsEveryTask) {
  // The orphaned watcher comes to us, to be reaped (PID 1 here may not).
  prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
  for (auto [sig, group] : {std::pair{SIGKILL, false}, {SIGKILL, true}, {SIGINT, true}}) {
    SCOPED_TRACE(fmt::format("{} to the {}", strsignal(sig), group ? "group" : "maker"));
    Sleepers s(3);
    const pid_t maker = fork();
    if (maker == 0) {
      setpgid(0, 0);
      auto w = TreeCommit::watch(s.pids);
      if (!w) _exit(2);
      kill(group ? 0 : getpid(), sig);
      pause();
      _exit(3);
    }
    int st = 0;
    ASSERT_EQ(waitpid(maker, &st, 0), maker);
    ASSERT_TRUE(WIFSIGNALED(st) && WTERMSIG(st) == sig) << "maker status " << st;
    s.expect_killed();
    waitpid(-1, nullptr, __WALL);  // the watcher, our only child left
  }
  prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0);
}

}  // namespace
