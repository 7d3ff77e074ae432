// File locks come back held by the right owner: POSIX record locks by the
// task that took them, flock and OFD locks by their open file description.
// Seen from outside, as another process contending for them sees them.
#include <fcntl.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

namespace e2e {
namespace {

// Who holds a conflicting lock on [start, start + len) of `path`, as F_GETLK
// (or F_OFD_GETLK) reports it: its pid (-1 for an OFD lock), or 0 if none.
pid_t holder(const std::string& path, off_t start, off_t len, bool ofd = false) {
  int fd = open(path.c_str(), O_RDWR);
  struct flock fl {};
  fl.l_type = F_WRLCK;
  fl.l_whence = SEEK_SET;
  fl.l_start = start;
  fl.l_len = len;
  int r = fcntl(fd, ofd ? F_OFD_GETLK : F_GETLK, &fl);
  close(fd);
  if (r < 0) return -2;
  return fl.l_type == F_UNLCK ? 0 : fl.l_pid;
}

bool flocked(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY);
  bool busy = flock(fd, LOCK_EX | LOCK_NB) < 0 && errno == EWOULDBLOCK;
  close(fd);
  return busy;
}

bool lock(int fd, int cmd, short type, off_t start, off_t len) {
  struct flock fl {};
  fl.l_type = type;
  fl.l_whence = SEEK_SET;
  fl.l_start = start;
  fl.l_len = len;
  return fcntl(fd, cmd, &fl) == 0;
}

class Locks : public ::testing::TestWithParam<Mode> {};

// With --leave-running the tree left running still holds every lock, and
// a restore of its images (once it is killed) takes them again.
TEST_P(Locks, HeldByTheirOwnersAfterRestore) {
  const Mode& m = GetParam();
  Harness h;
  const std::string f = h.dir() + "/posix", g = h.dir() + "/flock", o = h.dir() + "/ofd";
  for (const std::string& p : {f, g, o}) close(open(p.c_str(), O_CREAT | O_RDWR, 0600));
  pid_t pid = fork();
  if (pid == 0) {
    isolate_child();
    int pf = open(f.c_str(), O_RDWR), gf = open(g.c_str(), O_RDONLY), of = open(o.c_str(), O_RDWR);
    if (!lock(pf, F_SETLK, F_WRLCK, 0, 10) || flock(gf, LOCK_EX) < 0) _exit(1);
    if (fork() == 0) {
      // The child: a read lock of its own through the inherited fd, and an
      // OFD lock through the inherited description.
      if (!lock(pf, F_SETLK, F_RDLCK, 100, 10) || !lock(of, F_OFD_SETLK, F_WRLCK, 5, 0)) _exit(1);
      for (;;) pause();
    }
    for (;;) pause();
  }
  ASSERT_TRUE(wait_in_syscall(pid, SYS_pause));
  std::vector<pid_t> tasks;
  for (int i = 0; i < 1000 && (tasks = tree_of(pid)).size() < 2; i++) usleep(1000);
  ASSERT_EQ(tasks.size(), 2u);
  const pid_t child = tasks[1];
  ASSERT_TRUE(wait_in_syscall(child, SYS_pause));
  ASSERT_EQ(holder(f, 0, 10), pid);
  ASSERT_EQ(holder(f, 100, 10), child);

  std::vector<std::string> dump = {"dump", "-t", std::to_string(pid), "-D", h.images()};
  if (m.leave_running) dump.push_back("--leave-running");
  CkptRun d = h.ckpt(dump);
  ASSERT_EQ(d.exit_code(), 0) << d.err;
  if (m.leave_running) {
    for (pid_t p : tasks) ASSERT_TRUE(wait_until([&] { return tracer_of(p) == 0; }));
    EXPECT_EQ(holder(f, 0, 10), pid) << "left running: the parent's write lock";
    EXPECT_EQ(holder(f, 100, 10), child) << "left running: the child's read lock";
    EXPECT_TRUE(flocked(g)) << "left running: the flock";
    EXPECT_EQ(holder(o, 1000, 1, true), -1) << "left running: the OFD lock";
    kill(child, SIGKILL);
    kill(pid, SIGKILL);
  }
  reap_all(tasks);  // the child too: we are its subreaper once its parent is gone
  EXPECT_EQ(holder(f, 0, 10), 0) << "the dumped tree is gone, its locks too";
  EXPECT_FALSE(flocked(g));

  const std::string pidfile = h.dir() + "/restored.pid";
  std::vector<std::string> rst = {"restore", "-d", "-D", h.images(), "--pidfile", pidfile};
  if (!m.breakpoints) rst.push_back("--no-breakpoints");
  CkptRun r = h.ckpt(rst);
  ASSERT_EQ(r.exit_code(), 0) << r.err;
  ASSERT_TRUE(h.wait_restored(pid, pidfile));
  EXPECT_EQ(holder(f, 0, 10), pid) << "the parent's write lock";
  EXPECT_EQ(holder(f, 100, 10), child) << "the child's read lock";
  EXPECT_EQ(holder(f, 50, 10), 0);
  EXPECT_TRUE(flocked(g)) << "the flock";
  EXPECT_EQ(holder(o, 1000, 1, true), -1) << "the OFD lock, to the end of the file";
  EXPECT_EQ(holder(o, 0, 5, true), 0);
  kill(child, SIGKILL);
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
  waitpid(child, nullptr, 0);
}

INSTANTIATE_TEST_SUITE_P(Modes, Locks, ::testing::Values(Mode{true}, Mode{false}, Mode{true, true}), mode_test_name);

}  // namespace
}  // namespace e2e
