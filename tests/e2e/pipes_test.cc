// Pipes across a tree: the ends of pipes spread over a parent and two
// children, a socketpair whose one end the parent shares with a child and a
// file description all three share come back as one pipe, one pair and one
// description each, with their data and offset, and the tasks talk through
// them (with --leave-running: the tree that ran on, then its restore); a pipe with an end outside the tree is refused at dump, and
// the tree runs on. (The pipes workload, in workloads_test.cc, has the
// kinds of pipe one task holds.)
#include <fcntl.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <thread>

#include "harness.h"

namespace e2e {
namespace {

using namespace std::chrono_literals;

class PipeTree : public ::testing::TestWithParam<Mode> {};

TEST_P(PipeTree, EndsSpreadOverThreeTasks) {
  const Mode& c = GetParam();
  Harness h;
  h.restore_after_leave_running = true;
  pid_t pid = h.start_workload("pipetree");
  ASSERT_GT(pid, 0);
  ASSERT_EQ(tree_of(pid).size(), 3u);
  std::vector<std::string> dump = {"dump", "-t", std::to_string(pid), "-D", h.images(), "-v4", "-o", "dump.log"};
  if (c.leave_running) dump.push_back("--leave-running");
  const int st = h.dump_restore_tree(pid, dump, c.leave_running, c.breakpoints);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
  const std::string log = read_text(h.workload_log("pipetree"));
  for (const char* name : {"PASS C1\n", "PASS C2\n", "PASS pipetree\n"})
    EXPECT_NE(log.find(name), std::string::npos) << name << " missing in:\n" << log;
  EXPECT_EQ(log.find("FAIL"), std::string::npos) << log;
}

INSTANTIATE_TEST_SUITE_P(Modes, PipeTree,
                         ::testing::Values(Mode{true}, Mode{false}, Mode{true, true}), mode_test_name);

// A producer and a consumer in the tree, both blocked in a syscall when
// dumped: the child in read(2) of the empty pipe, the parent in wait4(2).
// After the restore SIGUSR1 makes the parent write a byte: the child's read,
// restarted, gets it and exits 42; the parent's wait, restarted, sees it and
// exits 0.
void blocked_producer_consumer() {
  int p[2];
  if (pipe(p) < 0) _exit(1);
  static int write_end;
  write_end = p[1];
  pid_t child = fork();
  if (child == 0) {
    close(p[1]);
    char c;
    _exit(read(p[0], &c, 1) == 1 && c == 'x' ? 42 : 1);
  }
  close(p[0]);
  struct sigaction sa {};
  sa.sa_handler = [](int) { (void)!write(write_end, "x", 1); };
  sa.sa_flags = SA_RESTART;
  sigaction(SIGUSR1, &sa, nullptr);
  int st = 0;
  while (waitpid(child, &st, 0) != child) {
  }
  _exit(WIFEXITED(st) && WEXITSTATUS(st) == 42 ? 0 : 1);
}

TEST(PipeBlocked, ReaderAndWaiterRestartTheirSyscalls) {
  Harness h;
  pid_t pid = fork();
  if (pid == 0) {
    isolate_child();
    blocked_producer_consumer();
  }
  std::vector<pid_t> tasks;
  ASSERT_TRUE(wait_until([&] {
    tasks = tree_of(pid);
    return tasks.size() == 2 && read_text(fmt::format("/proc/{}/syscall", tasks[1])).starts_with("0 ") &&
           read_text(fmt::format("/proc/{}/syscall", pid)).starts_with(fmt::format("{} ", SYS_wait4));
  }));
  CkptRun d = h.ckpt({"dump", "-t", std::to_string(pid), "-D", h.images(), "-v4", "-o", "dump.log"});
  ASSERT_EQ(d.exit_code(), 0) << d.err << read_text(h.images() + "/dump.log");
  h.wait_child(pid);
  for (pid_t p : tasks)
    EXPECT_TRUE(wait_until([&] {
      waitpid(p, nullptr, WNOHANG);
      return kill(p, 0) < 0;
    })) << p;
  const std::string pidfile = h.dir() + "/restored.pid";
  pid_t r = h.ckpt_background({"restore", "-D", h.images(), "-v4", "-o", "restore.log", "--pidfile", pidfile});
  ASSERT_TRUE(h.wait_restored(pid, pidfile)) << read_text(h.images() + "/restore.log");
  ASSERT_TRUE(wait_until([&] { return tracer_of(tasks[1]) == 0; }));
  // Back in their syscalls, then woken.
  EXPECT_TRUE(wait_until([&] { return read_text(fmt::format("/proc/{}/syscall", tasks[1])).starts_with("0 "); }));
  kill(pid, SIGUSR1);
  CkptRun rr = h.wait_ckpt(r);
  EXPECT_EQ(rr.exit_code(), 0) << rr.err << read_text(h.images() + "/restore.log");
}

// A process that reads what this test writes (`producer | consumer`, with
// the consumer dumped): refused, naming the fd, the pipe and this test's pid;
// the consumer runs on and still gets what is written.
TEST(PipeOutside, OtherEndOutsideTheTreeIsRefused) {
  Harness h;
  int p[2];
  ASSERT_EQ(pipe(p), 0);
  pid_t pid = fork();
  if (pid == 0) {
    setsid();
    dup2(p[0], 3);
    syscall(SYS_close_range, 4, ~0U, 0);
    int null = open("/dev/null", O_RDWR);
    dup2(null, 0), dup2(null, 1), dup2(null, 2);
    if (null > 3) close(null);
    char c;
    while (read(3, &c, 1) == 1)
      if (c == 'x') _exit(42);
    _exit(1);
  }
  close(p[0]);
  ASSERT_TRUE(wait_until([&] { return read_text(fmt::format("/proc/{}/syscall", pid)).starts_with("0 "); }));
  const std::string fds = fds_of(pid);
  char target[64] = {};
  ASSERT_GT(readlink(fmt::format("/proc/{}/fd/3", pid).c_str(), target, sizeof target - 1), 0);
  CkptRun d = h.ckpt({"dump", "-t", std::to_string(pid), "-D", h.images()});
  EXPECT_NE(d.exit_code(), 0);
  EXPECT_NE(d.err.find(fmt::format("pid {}: fd 3 ({})", pid, target)), std::string::npos) << d.err;
  EXPECT_NE(d.err.find(fmt::format("pid {} outside the tree", getpid())), std::string::npos) << d.err;
  EXPECT_NE(access((h.images() + "/inventory.img").c_str(), F_OK), 0);
  EXPECT_EQ(tracer_of(pid), 0);
  EXPECT_EQ(fds_of(pid), fds);
  ASSERT_EQ(write(p[1], "x", 1), 1);
  int st = h.wait_child(pid);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 42) << st;
  close(p[1]);
}

// The same with a FIFO: the dumped task writes into it, this test reads.
TEST(PipeOutside, FifoReaderOutsideTheTreeIsRefused) {
  Harness h;
  const std::string path = h.dir() + "/fifo";
  ASSERT_EQ(mkfifo(path.c_str(), 0600), 0);
  int r = open(path.c_str(), O_RDONLY | O_NONBLOCK);
  ASSERT_GE(r, 0);
  pid_t pid = fork();
  if (pid == 0) {
    setsid();
    syscall(SYS_close_range, 0, ~0U, 0);
    if (open(path.c_str(), O_WRONLY) != 0) _exit(1);
    for (;;) pause();
  }
  ASSERT_TRUE(wait_until([&] { return fds_of(pid) == fmt::format("0 {}\n", path); })) << fds_of(pid);
  CkptRun d = h.ckpt({"dump", "-t", std::to_string(pid), "-D", h.images()});
  EXPECT_NE(d.exit_code(), 0);
  EXPECT_NE(d.err.find(fmt::format("pid {}: fd 0 ({}): the tree holds no read end of this FIFO, and pid {} outside "
                                   "the tree holds it (fd {})", pid, path, getpid(), r)),
            std::string::npos)
      << d.err;
  EXPECT_EQ(tracer_of(pid), 0);
  EXPECT_TRUE(alive(pid));
  kill(pid, SIGKILL);
  h.wait_child(pid);
  close(r);
}

}  // namespace
}  // namespace e2e
