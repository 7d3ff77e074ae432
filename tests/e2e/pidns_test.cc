// restore --pidns (restore/pidns.h): a tree whose PIDs are still taken here
// (dumped with --leave-running) is refused by a plain restore, which names a
// PID and its owner and leaves nothing; --pidns restores it into a new PID
// namespace with every dumped PID inside, under ckpt's init, and the tree
// verifies itself (getpid, getppid, groups, sessions, /proc/self); -d,
// --leave-stopped and --pidfile (the root's PID outside); a restore that
// fails under --pidns leaves no task; --restore-sibling.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <fcntl.h>
#include <set>
#include <sstream>
#include <thread>

#include "harness.h"

namespace e2e {
namespace {

using namespace std::chrono_literals;

// Every descendant of this test: a task a restore left would be one (the
// test is a child subreaper; a namespace's init, ckpt's child, too).
std::set<pid_t> descendants() {
  std::vector<pid_t> all = tree_of(getpid());
  return {all.begin() + 1, all.end()};
}

// The innermost PID of NSpid: the task's PID in its own namespace.
pid_t inner_pid(pid_t pid) {
  std::istringstream in(read_text(fmt::format("/proc/{}/status", pid)));
  for (std::string line; std::getline(in, line);)
    if (line.starts_with("NSpid:")) return std::atoi(line.substr(line.find_last_of('\t') + 1).c_str());
  return -1;
}

// The root's PID outside, once the pidfile has it and ckpt let go of it.
pid_t wait_pidfile(const std::string& pidfile) {
  pid_t root = -1;
  wait_until([&] {
    root = std::atoi(read_text(pidfile).c_str());
    return root > 0 && alive(root) && tracer_of(root) == 0;
  }, 20s);
  return root;
}

// A tree dumped with --leave-running: its PIDs stay taken.
struct LiveTree {
  Harness& h;
  pid_t pid = -1;
  std::vector<pid_t> tasks;
  explicit LiveTree(Harness& h) : h(h) {
    pid = h.start_workload("tree");
    tasks = tree_of(pid);
    CkptRun d = h.ckpt({"dump", "-t", std::to_string(pid), "-D", h.images(), "--leave-running", "-v4", "-o",
                        "dump.log"});
    EXPECT_EQ(d.exit_code(), 0) << d.err << read_text(h.images() + "/dump.log");
  }
  std::set<pid_t> task_set() const { return {tasks.begin(), tasks.end()}; }
  // The original ends as it would have: PASS.
  void finish() {
    kill(pid, SIGTERM);
    int st = h.wait_child(pid);
    EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st << read_text(h.workload_log("tree"));
  }
};

size_t count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) n++;
  return n;
}

// Every task of the restored tree (outside PIDs) has the PID inside that one
// of the dumped tree had, and ckpt traces none.
void expect_same_pids_inside(pid_t root, const std::set<pid_t>& dumped) {
  std::vector<pid_t> restored;
  ASSERT_TRUE(wait_until([&] { return (restored = tree_of(root)).size() == dumped.size(); }))
      << restored.size() << " tasks";
  std::set<pid_t> inside;
  for (pid_t p : restored) {
    inside.insert(inner_pid(p));
    EXPECT_FALSE(dumped.contains(p)) << "pid " << p << " outside is a pid of the dumped tree";
    EXPECT_TRUE(wait_until([&] { return tracer_of(p) == 0; })) << p;
  }
  EXPECT_EQ(inside, dumped);
}

class PidNs : public ::testing::TestWithParam<bool> {};

TEST_P(PidNs, TakenPidsRefusedThenRestoredInANewNamespace) {
  const bool breakpoints = GetParam();
  Harness h;
  LiveTree t(h);
  ASSERT_EQ(t.tasks.size(), 7u) << "R, A, B, C, A1, A2, Z";

  // Without --pidns: refused before any task exists, a PID and its owner named.
  CkptRun plain = h.ckpt({"restore", "-D", h.images()});
  EXPECT_NE(plain.exit_code(), 0);
  EXPECT_NE(plain.err.find(": the pid is taken by another process (wl_tree)"), std::string::npos) << plain.err;
  EXPECT_NE(plain.err.find("restore --pidns"), std::string::npos) << plain.err;
  EXPECT_EQ(descendants(), t.task_set()) << "a restore that failed left a task";

  const std::string pidfile = h.dir() + "/restored.pid";
  std::vector<std::string> args = {"restore", "-D",        h.images(), "--pidns", "--pidfile",
                                   pidfile,   "-v4",       "-o",       "restore.log"};
  if (!breakpoints) args.push_back("--no-breakpoints");
  const pid_t ckpt = h.ckpt_background(args);
  const pid_t root = wait_pidfile(pidfile);
  ASSERT_GT(root, 0) << read_text(h.images() + "/restore.log");
  EXPECT_EQ(inner_pid(root), t.pid);
  // ckpt -> its init, PID 1 inside -> the root.
  const pid_t init = ppid_of(root);
  EXPECT_EQ(comm_of(init), "ckpt-init");
  EXPECT_EQ(inner_pid(init), 1);
  EXPECT_EQ(ppid_of(init), ckpt);
  expect_same_pids_inside(root, t.task_set());
  // The tree's /proc is its namespace's.
  EXPECT_EQ(read_text(fmt::format("/proc/{}/root/proc/1/comm", root)), "ckpt-init\n");

  // The restored root ends, checked, and ckpt with its status; then the original.
  kill(root, SIGTERM);
  CkptRun r = h.wait_ckpt(ckpt);
  const std::string log = read_text(h.workload_log("tree"));
  EXPECT_EQ(r.exit_code(), 0) << r.err << log << read_text(h.images() + "/restore.log");
  EXPECT_EQ(count(log, "PASS tree\n"), 1u) << log;
  for (const char* name : {"PASS A\n", "PASS A1\n", "PASS A2\n", "PASS B\n", "PASS C\n"})
    EXPECT_EQ(count(log, name), 1u) << name << " in:\n" << log;
  EXPECT_EQ(log.find("FAIL"), std::string::npos) << log;
  EXPECT_FALSE(alive(init));
  t.finish();
}

INSTANTIATE_TEST_SUITE_P(Modes, PidNs, ::testing::Bool(),
                         [](const auto& i) { return std::string(i.param ? "breakpoint" : "syscalltrace"); });

// -d --leave-stopped --pidfile: ckpt returns at once; the pidfile holds the
// root's PID outside; every task waits stopped until SIGCONT; the init,
// orphaned, exits with the root's status.
// A pre-fork tree restored into a new namespace while the dumped one runs
// on: its workers share the master's memory again there too.
TEST(PidNsOptions, PreForkSharesItsMemoryAgain) {
  Harness h;
  const pid_t pid = h.start_workload("prefork", {"64", "4"});
  ASSERT_GT(pid, 0);
  CkptRun d = h.ckpt({"dump", "-t", std::to_string(pid), "-D", h.images(), "--leave-running"});
  ASSERT_EQ(d.exit_code(), 0) << d.err;
  const std::string pidfile = h.dir() + "/restored.pid";
  const pid_t ckpt = h.ckpt_background({"restore", "-D", h.images(), "--pidns", "--pidfile", pidfile,
                                        "-o", "restore.log"});
  const pid_t root = wait_pidfile(pidfile);
  ASSERT_GT(root, 0) << read_text(h.images() + "/restore.log");
  ASSERT_TRUE(wait_until([&] { return tree_of(root).size() == 6u; }));
  const uint64_t pss = tree_pss_kib(root);
  EXPECT_LT(pss, 96u << 10) << "the restored tree's Pss is " << (pss >> 10) << " MiB, 6 x 64 without sharing";
  kill(root, SIGTERM);
  CkptRun r = h.wait_ckpt(ckpt);  // exits as the root did: 0 once every task found its memory intact
  EXPECT_EQ(r.exit_code(), 0) << r.err << read_text(h.workload_log("prefork"));
  kill(pid, SIGTERM);
  const int st = h.wait_child(pid);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;  // both checked their memory (the log: one line, same offset)
}

TEST(PidNsOptions, DetachedLeftStoppedWithPidfile) {
  Harness h;
  LiveTree t(h);
  ASSERT_EQ(t.tasks.size(), 7u);
  const std::string pidfile = h.dir() + "/restored.pid";
  CkptRun r = h.ckpt({"restore", "-D", h.images(), "--pidns", "-d", "--leave-stopped", "--pidfile", pidfile, "-v4",
                      "-o", "restore.log"});
  ASSERT_EQ(r.exit_code(), 0) << r.err << read_text(h.images() + "/restore.log");
  const pid_t root = std::atoi(read_text(pidfile).c_str());
  ASSERT_GT(root, 0);
  EXPECT_NE(root, t.pid);
  EXPECT_EQ(inner_pid(root), t.pid);
  const pid_t init = ppid_of(root);
  EXPECT_EQ(comm_of(init), "ckpt-init");
  EXPECT_TRUE(wait_until([&] { return ppid_of(init) == getpid(); })) << "the init is the subreaper's once ckpt is gone";
  std::vector<pid_t> restored = tree_of(root);
  ASSERT_EQ(restored.size(), 7u);
  for (pid_t p : restored) {
    if (proc_state(p) != 'Z') {
      EXPECT_TRUE(wait_state(p, 'T')) << p << " " << proc_state(p);
    }
  }
  for (pid_t p : restored) kill(p, SIGCONT);
  ASSERT_TRUE(wait_until([&] { return proc_state(root) == 'S' || proc_state(root) == 'R'; }));
  kill(root, SIGTERM);
  int st = h.wait_child(init);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st << read_text(h.workload_log("tree"));
  const std::string log = read_text(h.workload_log("tree"));
  EXPECT_EQ(count(log, "PASS tree\n"), 1u) << log;
  EXPECT_EQ(log.find("FAIL"), std::string::npos) << log;
  t.finish();
}

// --restore-sibling: the init is the child of ckpt's parent (this test).
TEST(PidNsOptions, RestoreSibling) {
  Harness h;
  LiveTree t(h);
  ASSERT_EQ(t.tasks.size(), 7u);
  const std::string pidfile = h.dir() + "/restored.pid";
  CkptRun r = h.ckpt({"restore", "-D", h.images(), "--pidns", "--restore-sibling", "--pidfile", pidfile});
  ASSERT_EQ(r.exit_code(), 0) << r.err;
  const pid_t root = std::atoi(read_text(pidfile).c_str());
  ASSERT_GT(root, 0);
  const pid_t init = ppid_of(root);
  EXPECT_EQ(comm_of(init), "ckpt-init");
  EXPECT_EQ(ppid_of(init), getpid());
  expect_same_pids_inside(root, t.task_set());
  kill(root, SIGTERM);
  int st = h.wait_child(init);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st << read_text(h.workload_log("tree"));
  t.finish();
}

// A tree in the test's session (--shell-job) can't join it from a new PID
// namespace: refused before anything is created.
TEST(PidNsOptions, ShellJobRefused) {
  Harness h;
  const pid_t pid = spawn_paused([] {}, false);
  ASSERT_TRUE(tree_paused(pid, 1));
  CkptRun d = h.ckpt({"dump", "-t", std::to_string(pid), "-D", h.images(), "--shell-job", "--leave-running"});
  ASSERT_EQ(d.exit_code(), 0) << d.err;
  CkptRun r = h.ckpt({"restore", "-D", h.images(), "--pidns"});
  EXPECT_NE(r.exit_code(), 0);
  EXPECT_NE(r.err.find("--pidns with --shell-job"), std::string::npos) << r.err;
  EXPECT_EQ(descendants(), std::set<pid_t>{pid});
  kill(pid, SIGKILL);
  h.wait_child(pid);
}

// A restore that fails at its last step, every task seized and completed,
// kills the namespace: no task of it, nor its init, is left.
TEST(PidNsOptions, FailedRestoreLeavesNoTask) {
  for (bool detach : {false, true}) {
    Harness h;
    LiveTree t(h);
    ASSERT_EQ(t.tasks.size(), 7u);
    std::vector<std::string> args = {"restore", "-D", h.images(), "--pidns", "-v4", "-o", "restore.log"};
    if (detach) args.push_back("-d");
    setenv("CKPT_FAULT", "let-go", 1);
    CkptRun r = h.ckpt(args);
    unsetenv("CKPT_FAULT");
    EXPECT_NE(r.exit_code(), 0);
    EXPECT_NE(r.err.find(fmt::format("restore pid {}: injected fault at let-go", t.pid)), std::string::npos) << r.err;
    EXPECT_EQ(descendants(), t.task_set()) << "a restore that failed left a task";
    t.finish();
  }
}

// A damaged page image: the root's restorer finds it, inside the namespace,
// while ckpt traces the tree; the namespace goes, nothing is left.
TEST(PidNsOptions, DamagedPagesLeaveNoTask) {
  Harness h;
  LiveTree t(h);
  ASSERT_EQ(t.tasks.size(), 7u);
  const std::string pages = fmt::format("{}/pages-{}.img", h.images(), t.pid);
  {
    const int fd = open(pages.c_str(), O_RDWR);
    ASSERT_GE(fd, 0) << pages;
    const off_t last = lseek(fd, 0, SEEK_END) - 1;
    uint8_t b = 0;
    ASSERT_EQ(pread(fd, &b, 1, last), 1);
    b ^= 0x80;
    ASSERT_EQ(pwrite(fd, &b, 1, last), 1);
    close(fd);
  }
  CkptRun r = h.ckpt({"restore", "-D", h.images(), "--pidns", "-v4", "-o", "restore.log"});
  EXPECT_NE(r.exit_code(), 0);
  EXPECT_NE(r.err.find(pages + ": checksum mismatch in run"), std::string::npos) << r.err;
  EXPECT_EQ(descendants(), t.task_set()) << "a restore that failed left a task";
  t.finish();
}

// pidfds and /proc files of the tree's own tasks are opened by ckpt by the
// PIDs it sees, so a tree holding them is refused under --pidns before any
// task is created.
TEST(PidNsOptions, PidfdsRefused) {
  Harness h;
  const pid_t pid = h.start_workload("pidfds");
  ASSERT_GT(pid, 0);
  const std::vector<pid_t> tasks = tree_of(pid);
  CkptRun d = h.ckpt({"dump", "-t", std::to_string(pid), "-D", h.images(), "--leave-running"});
  ASSERT_EQ(d.exit_code(), 0) << d.err;
  CkptRun r = h.ckpt({"restore", "-D", h.images(), "--pidns"});
  EXPECT_NE(r.exit_code(), 0);
  EXPECT_NE(r.err.find("which ckpt can't open inside a new PID namespace yet"), std::string::npos) << r.err;
  EXPECT_EQ(descendants(), std::set<pid_t>(tasks.begin(), tasks.end())) << "a refused restore left a task";
  for (pid_t t : tasks) kill(t, SIGKILL);
  // All of them, reparented to this subreaper as they go.
  while (waitpid(-1, nullptr, 0) > 0 || errno == EINTR) {
  }
}

// A PID namespace whose vm.memfd_noexec is 2: memfd_create refuses MFD_EXEC
// there. ckpt maps its parasite's and its restorer's memfds executable but
// never executes them as files, so it makes them MFD_NOEXEC_SEAL, which
// every setting allows; the dump refused the parasite's with EACCES before.
// Dumped and restored inside such a namespace, the counter goes on.
TEST(MemfdNoexec, DumpAndRestoreWhereMemfdsMayNotBeExecutable) {
  if (access("/proc/sys/vm/memfd_noexec", F_OK) != 0) GTEST_SKIP() << "this kernel has no vm.memfd_noexec (Linux < 6.3): no namespace can refuse an executable "
                    "memfd here, so there is nothing to check";
  Harness h;
  const std::string dir = h.dir();
  const std::string script = fmt::format(R"(
echo 2 > /proc/sys/vm/memfd_noexec || exit 90
setsid {wl} {dir}/nx.ready > {dir}/nx.log 2>&1 &
while [ ! -s {dir}/nx.ready ]; do sleep 0.01; done
pid=$(cat {dir}/nx.ready)
{ckpt} dump -t $pid -D {dir}/img > {dir}/dump.out 2>&1 || exit 91
wait $pid
{ckpt} restore -D {dir}/img -d > {dir}/restore.out 2>&1 || exit 92
sleep 0.3
kill -TERM $pid
while kill -0 $pid 2>/dev/null; do sleep 0.01; done
grep -q "PASS counter" {dir}/nx.log || exit 93
)",
                                         fmt::arg("wl", CKPT_WORKLOADS "/wl_counter"), fmt::arg("dir", dir),
                                         fmt::arg("ckpt", ckpt_bin()));
  ASSERT_EQ(mkdir((dir + "/img").c_str(), 0700), 0);
  const int st = std::system(fmt::format("unshare --pid --fork --mount-proc /bin/sh -c '{}'", script).c_str());
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0)
      << "status " << st << "\ndump: " << read_text(dir + "/dump.out") << "\nrestore: " << read_text(dir + "/restore.out")
      << "\nworkload: " << read_text(dir + "/nx.log");
}

}  // namespace
}  // namespace e2e
