// Process trees: dumped whole and restored with their PIDs, parents,
// sessions, groups and zombies, in both completion modes; what restore could
// not recreate refused at dump, the tree left running; a dump that fails in
// any task leaves every task as it was.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <fcntl.h>
#include <linux/io_uring.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <set>
#include <sstream>
#include <iterator>
#include <thread>

#include "harness.h"
#include "image/page_store.h"
#include "ptrace/completion.h"

namespace e2e {
namespace {

using namespace std::chrono_literals;

// "ppid pgid sid" and whether a zombie, of each task, from /proc/PID/stat;
// not the root's parent, which is outside the tree.
std::map<pid_t, std::string> links_of(const std::vector<pid_t>& tasks) {
  std::map<pid_t, std::string> out;
  for (pid_t p : tasks) {
    const std::string st = read_text(fmt::format("/proc/{}/stat", p));
    std::istringstream f(st.substr(st.rfind(')') + 2));
    std::string state, ppid, pgid, sid;
    f >> state >> ppid >> pgid >> sid;
    out[p] = fmt::format("ppid {} pgid {} sid {}{}", p == tasks[0] ? "-" : ppid, pgid, sid,
                         state == "Z" ? " zombie" : "");
  }
  return out;
}

void expect_running_untraced(const std::vector<pid_t>& tasks, const std::map<pid_t, std::string>& links) {
  for (pid_t p : tasks) {
    EXPECT_TRUE(alive(p) || proc_state(p) == 'Z') << p;
    EXPECT_EQ(tracer_of(p), 0) << p;
  }
  EXPECT_EQ(links_of(tasks), links);
}

// The "tree" workload's every task checked itself after the restore.
void expect_every_task_passed(Harness& h) {
  const std::string log = read_text(h.workload_log("tree"));
  for (const char* name : {"PASS tree\n", "PASS A\n", "PASS A1\n", "PASS A2\n", "PASS B\n", "PASS C\n"})
    EXPECT_NE(log.find(name), std::string::npos) << name << " missing in:\n" << log;
}

// The restore's completion stops (harness.h's expect_completion_stops),
// caught by breakpoints where they fire: `threads` threads completed in
// each live task, none in a zombie.
void expect_tree_stops(const Harness& h, const std::vector<pid_t>& tasks, const std::map<pid_t, std::string>& links,
                       bool breakpoints, size_t threads) {
  std::map<pid_t, size_t> per_task =
      expect_completion_stops(h.images(), breakpoints && ckpt::probe_breakpoints().usable);
  const auto live = std::ranges::count_if(tasks, [&](pid_t p) { return !links.at(p).ends_with("zombie"); });
  EXPECT_EQ(per_task.size(), static_cast<size_t>(live)) << "completions of tasks not in the tree, or none of one";
  for (pid_t p : tasks) EXPECT_EQ(per_task[p], links.at(p).ends_with("zombie") ? 0 : threads) << "pid " << p;
}

struct TreeCase {
  bool breakpoints;
  bool leave_running;
  std::string arg;
};
void PrintTo(const TreeCase& c, std::ostream* os) {
  *os << (c.breakpoints ? "breakpoint" : "syscalltrace") << (c.leave_running ? ", leave running" : "")
      << (c.arg.empty() ? "" : ", " + c.arg);
}

class Tree : public ::testing::TestWithParam<TreeCase> {};

TEST_P(Tree, DumpRestoreVerify) {
  const TreeCase& c = GetParam();
  Harness h;
  pid_t pid = h.start_workload("tree", c.arg.empty() ? std::vector<std::string>{} : std::vector<std::string>{c.arg});
  ASSERT_GT(pid, 0);
  const std::vector<pid_t> tasks = tree_of(pid);
  ASSERT_EQ(tasks.size(), 7u) << "R, A, B, C, A1, A2, Z";
  const auto links = links_of(tasks);
  std::map<pid_t, std::string> maps;
  for (pid_t p : tasks) maps[p] = read_text(fmt::format("/proc/{}/maps", p));

  std::vector<std::string> dump = {"dump", "-t", std::to_string(pid), "-D", h.images(), "-v4", "-o", "dump.log"};
  if (c.leave_running) dump.push_back("--leave-running");
  CkptRun d = h.ckpt(dump);
  ASSERT_EQ(d.exit_code(), 0) << d.err << read_text(h.images() + "/dump.log");

  if (c.leave_running) {
    std::this_thread::sleep_for(100ms);
    expect_running_untraced(tasks, links);
    for (pid_t p : tasks) EXPECT_EQ(read_text(fmt::format("/proc/{}/maps", p)), maps[p]) << p;
  } else {
    int st = h.wait_child(pid);
    EXPECT_TRUE(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL) << "dump should kill the tree";
    reap_all(tasks);
    CkptRun v = h.ckpt({"verify", h.images()});
    EXPECT_EQ(v.exit_code(), 0) << v.err;
    CkptRun s = h.ckpt({"show", h.images()});
    for (pid_t p : tasks) EXPECT_NE(s.out.find(fmt::format("pid {} ", p)), std::string::npos) << s.out;

    const std::string pidfile = h.dir() + "/restored.pid";
    std::vector<std::string> rst = {"restore", "-D", h.images(), "-v4", "-o", "restore.log", "--stats", "--pidfile",
                                    pidfile};
    if (!c.breakpoints) rst.push_back("--no-breakpoints");
    pid_t r = h.ckpt_background(rst);
    ASSERT_TRUE(h.wait_restored(pid, pidfile)) << read_text(h.images() + "/restore.log");
    // ckpt lets go of the tasks one after the other, the root first.
    for (pid_t p : tasks) {
      for (auto until = std::chrono::steady_clock::now() + 10s;
           tracer_of(p) != 0 && std::chrono::steady_clock::now() < until;)
        std::this_thread::sleep_for(1ms);
      if (!links.at(p).ends_with("zombie")) {
        EXPECT_EQ(tracer_of(p), 0) << p;
      }
      EXPECT_EQ(read_text(fmt::format("/proc/{}/maps", p)), maps[p]) << p;
    }
    EXPECT_EQ(links_of(tasks), links) << "parents, groups, sessions or states differ";
    kill(pid, SIGTERM);
    CkptRun rr = h.wait_ckpt(r);
    EXPECT_EQ(rr.exit_code(), 0) << read_text(h.workload_log("tree")) << rr.err
                                 << read_text(h.images() + "/restore.log");
    expect_tree_stops(h, tasks, links, c.breakpoints, c.arg == "threads" ? 3 : 1);
    // --stats sums each process of several threads: 3 + 1 + 1.
    if (c.arg == "threads")
      for (pid_t p : tasks)
        if (!links.at(p).ends_with("zombie")) {
          EXPECT_NE(rr.err.find(fmt::format("5  (pid {}: 3 threads)", p)), std::string::npos) << rr.err;
        }
    expect_every_task_passed(h);
    const std::string log = read_text(h.workload_log("tree"));
    EXPECT_EQ(log.find("FAIL"), std::string::npos) << log;
    return;
  }
  kill(pid, SIGTERM);
  int st = h.wait_child(pid);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << read_text(h.workload_log("tree"));
}

std::string tree_name(const ::testing::TestParamInfo<TreeCase>& i) {
  return fmt::format("{}{}{}", i.param.breakpoints ? "breakpoint" : "syscalltrace",
                     i.param.leave_running ? "_leaverunning" : "", i.param.arg.empty() ? "" : "_" + i.param.arg);
}

INSTANTIATE_TEST_SUITE_P(Modes, Tree,
                         ::testing::Values(TreeCase{true, false, ""}, TreeCase{false, false, ""},
                                           TreeCase{true, false, "spin"}, TreeCase{false, false, "spin"},
                                           TreeCase{true, false, "threads"}, TreeCase{false, false, "threads"},
                                           TreeCase{true, true, ""}),
                         tree_name);

// The tree workload (7 tasks), started, with what each task's links are.
struct SevenTasks {
  pid_t root = -1;
  std::vector<pid_t> tasks;
  std::map<pid_t, std::string> links;
};

SevenTasks start_tree(Harness& h) {
  SevenTasks t;
  t.root = h.start_workload("tree");
  if (t.root <= 0) return t;
  t.tasks = tree_of(t.root);
  t.links = links_of(t.tasks);
  return t;
}

// The breakpoint probe answers once the tree is parked, its restorers told
// at the spawn to end on a breakpoint. Where it says no (CKPT_FAULT=
// breakpoint-probe: as a hypervisor that keeps the debug registers to
// itself), or the kernel still keeps it waiting to turn its perf hooks on
// (breakpoint-probe-waits), each is told to stop at its barrier instead,
// and every task completes by syscall tracing.
struct ProbeCase {
  const char* fault;
  const char* logged;
};
// What ctest lists with the test's name, instead of the struct's bytes.
void PrintTo(const ProbeCase& c, std::ostream* os) { *os << c.fault; }

class TreeProbe : public ::testing::TestWithParam<ProbeCase> {};

TEST_P(TreeProbe, TasksToldAfterTheSpawnCompleteByTracing) {
  Harness h;
  const SevenTasks t = start_tree(h);
  ASSERT_GT(t.root, 0);
  ASSERT_EQ(t.tasks.size(), 7u);
  const pid_t pid = t.root;
  CkptRun d = h.ckpt({"dump", "-t", std::to_string(pid), "-D", h.images()});
  ASSERT_EQ(d.exit_code(), 0) << d.err;
  h.wait_child(pid);
  reap_all(t.tasks);
  setenv("CKPT_FAULT", GetParam().fault, 1);
  const pid_t r = h.restore_background(pid, true);
  unsetenv("CKPT_FAULT");
  ASSERT_GT(r, 0);
  EXPECT_EQ(links_of(t.tasks), t.links) << "parents, groups, sessions or states differ";
  kill(pid, SIGTERM);
  CkptRun rr = h.wait_ckpt(r);
  const std::string log = read_text(h.images() + "/restore.log");
  EXPECT_EQ(rr.exit_code(), 0) << read_text(h.workload_log("tree")) << rr.err << log;
  EXPECT_NE(log.find(GetParam().logged), std::string::npos) << log;
  auto stats = read_stats(h.images(), "stats-restore.img");
  ASSERT_TRUE(stats) << stats.error().str();
  EXPECT_EQ(stats->completion_size(), 6) << "a completion for each live task";
  for (const ckpt::img::TaskStops& ts : stats->completion()) {
    EXPECT_FALSE(ts.breakpoint()) << "task " << ts.pid();
    // Its stop at the barrier, where ckpt loads its final state, and munmap's.
    EXPECT_EQ(ts.stops(), 3u) << "task " << ts.pid();
  }
  expect_every_task_passed(h);
}

INSTANTIATE_TEST_SUITE_P(
    Answers, TreeProbe,
    ::testing::Values(ProbeCase{"breakpoint-probe", "hardware breakpoints unavailable (injected fault at breakpoint-probe"},
                      ProbeCase{"breakpoint-probe-waits", "the kernel is turning its perf hooks on"}),
    [](const ::testing::TestParamInfo<ProbeCase>& i) { return i.index == 0 ? std::string("says_no") : std::string("waits"); });

// The tasks are forked by the spawner from a root that has unmapped ckpt:
// parked, each maps nothing of ckpt's (its executable, libc, heap, stack),
// only what the spawner and its restorer use. A killed ckpt then takes
// every task with it.
TEST(TreeSpawner, ParkedTasksHoldNothingOfCkpt) {
  Harness h;
  const SevenTasks t = start_tree(h);
  ASSERT_GT(t.root, 0);
  ASSERT_EQ(t.tasks.size(), 7u);
  std::vector<pid_t> live;
  for (pid_t p : t.tasks)
    if (proc_state(p) != 'Z') live.push_back(p);
  CkptRun d = h.ckpt({"dump", "-t", std::to_string(t.root), "-D", h.images()});
  ASSERT_EQ(d.exit_code(), 0) << d.err;
  h.wait_child(t.root);
  reap_all(t.tasks);
  char exe[PATH_MAX];
  ASSERT_NE(realpath(ckpt_bin(), exe), nullptr);
  setenv("CKPT_FAULT", "hang:release", 1);
  const pid_t r = h.ckpt_background({"restore", "-D", h.images(), "-d"});
  unsetenv("CKPT_FAULT");
  ASSERT_TRUE(wait_in_syscall(r, SYS_pause)) << "ckpt never reached its hang before the release";
  for (pid_t p : live) {
    const std::string maps = read_text(fmt::format("/proc/{}/maps", p));
    EXPECT_FALSE(maps.empty()) << "pid " << p;
    for (const std::string& ckpts : {std::string(exe), std::string("libc.so"), std::string("[heap]"),
                                      std::string("[stack]")})
      EXPECT_EQ(maps.find(ckpts), std::string::npos) << "pid " << p << " maps " << ckpts << ":\n" << maps;
  }
  kill(r, SIGKILL);
  h.wait_ckpt(r);
  reap_all(t.tasks);
  for (pid_t p : t.tasks) EXPECT_FALSE(alive(p)) << "pid " << p;
}

// Every task as it was, untraced; then the tree checks itself and passes.
void expect_tree_as_it_was(Harness& h, const SevenTasks& t) {
  std::this_thread::sleep_for(50ms);
  expect_running_untraced(t.tasks, t.links);
  kill(t.root, SIGTERM);
  int st = h.wait_child(t.root);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << read_text(h.workload_log("tree"));
}

// A fault in a task in the middle of the tree, or once every task is dumped
// (each then holds its parasite, kept for the kill: dump.cc's Parked): every
// task runs on as before, its parasite taken out, nothing of it left.
TEST(TreeFault, TaskInTheMiddleFailsAndNothingIsLost) {
  for (const char* point : {"inject", "parasite", "memory", "cure", "images"}) {
    Harness h;
    const SevenTasks t = start_tree(h);
    ASSERT_GT(t.root, 0);
    ASSERT_EQ(t.tasks.size(), 7u);
    std::map<pid_t, std::string> maps, fds;
    for (pid_t p : t.tasks) maps[p] = read_text(fmt::format("/proc/{}/maps", p)), fds[p] = fds_of(p);
    const pid_t middle = t.tasks[1];  // A: after R, before its children
    const bool in_task = std::string(point) != "images";
    setenv("CKPT_FAULT", in_task ? fmt::format("{}@{}", point, middle).c_str() : point, 1);
    CkptRun d = h.ckpt({"dump", "-t", std::to_string(t.root), "-D", h.images()});
    unsetenv("CKPT_FAULT");
    EXPECT_NE(d.exit_code(), 0);
    if (in_task) {
      EXPECT_NE(d.err.find(fmt::format("dump pid {}: ", middle)), std::string::npos) << d.err;
    }
    EXPECT_NE(d.err.find(fmt::format("injected fault at {}", point)), std::string::npos) << d.err;
    EXPECT_NE(access((h.images() + "/inventory.img").c_str(), F_OK), 0);
    for (pid_t p : t.tasks) {
      EXPECT_EQ(read_text(fmt::format("/proc/{}/maps", p)), maps[p]) << point << ": pid " << p;
      EXPECT_EQ(fds_of(p), fds[p]) << point << ": pid " << p;
    }
    expect_tree_as_it_was(h, t);
  }
}

// A dump that ends in a kill keeps every task's parasite until the kill.
// A ckpt killed then, before the checkpoint exists (here while it writes
// the images), loses no task: each daemon sees its socket close and returns
// into its task's own state; the next dump takes out what is left.
TEST(TreeKilledCkpt, WhileEveryTaskHoldsItsParasite) {
  Harness h;
  const SevenTasks t = start_tree(h);
  ASSERT_GT(t.root, 0);
  ASSERT_EQ(t.tasks.size(), 7u);
  std::map<pid_t, std::string> maps;
  for (pid_t p : t.tasks) maps[p] = read_text(fmt::format("/proc/{}/maps", p));
  setenv("CKPT_FAULT", "hang:images", 1);
  pid_t ckpt = h.ckpt_background({"dump", "-t", std::to_string(t.root), "-D", h.images()});
  unsetenv("CKPT_FAULT");
  ASSERT_TRUE(wait_in_syscall(ckpt, SYS_pause)) << "ckpt never reached its hang in the images";
  for (pid_t p : t.tasks) EXPECT_TRUE(proc_state(p) == 'Z' || maps_but_parasite(p).second) << "pid " << p;
  kill(ckpt, SIGKILL);
  h.wait_ckpt(ckpt);
  std::this_thread::sleep_for(50ms);
  expect_running_untraced(t.tasks, t.links);
  for (pid_t p : t.tasks) EXPECT_EQ(maps_but_parasite(p).first, maps[p]) << "pid " << p;
  EXPECT_NE(access((h.images() + "/inventory.img").c_str(), F_OK), 0);
  // Into another directory: the killed one committed images but the inventory.
  const std::string again_dir = h.images() + "/again";
  ASSERT_EQ(mkdir(again_dir.c_str(), 0700), 0);
  CkptRun again = h.ckpt({"dump", "-t", std::to_string(t.root), "-D", again_dir, "--leave-running"});
  EXPECT_EQ(again.exit_code(), 0) << again.err;
  for (pid_t p : t.tasks) EXPECT_EQ(read_text(fmt::format("/proc/{}/maps", p)), maps[p]) << "pid " << p;
  expect_tree_as_it_was(h, t);
}

// The tasks of a tree are dumped side by side, each by one tracer thread
// from its seize on, one tracer per CPU ckpt may use: with two CPUs or more
// the 7 tasks of this tree have two tracers or more, ckpt's main thread one
// of them; with one, the main thread alone. A ckpt killed then (each tracer
// thread dies with it) loses no task: the kernel lets each go as it was.
TEST(TreeTracers, TasksSplitBetweenTracersAndAKilledCkptLosesNone) {
  cpu_set_t cpus;
  ASSERT_EQ(sched_getaffinity(0, sizeof cpus, &cpus), 0);
  Harness h;
  const SevenTasks t = start_tree(h);
  ASSERT_GT(t.root, 0);
  ASSERT_EQ(t.tasks.size(), 7u);
  setenv("CKPT_FAULT", "hang:seize", 1);
  pid_t ckpt = h.ckpt_background({"dump", "-t", std::to_string(t.root), "-D", h.images()});
  unsetenv("CKPT_FAULT");
  ASSERT_TRUE(wait_in_syscall(ckpt, SYS_pause)) << "ckpt never reached its hang after the seize";
  std::set<pid_t> tracers;
  for (pid_t p : t.tasks)
    if (proc_state(p) != 'Z') tracers.insert(tracer_of(p));
  if (CPU_COUNT(&cpus) < 2) EXPECT_EQ(tracers.size(), 1u);
  else EXPECT_GE(tracers.size(), 2u);
  EXPECT_TRUE(tracers.contains(ckpt)) << "ckpt's main thread traces none of the tasks";
  kill(ckpt, SIGKILL);
  h.wait_ckpt(ckpt);
  expect_tree_as_it_was(h, t);
}

// A forked helper tree of `tasks` tasks: `setup` runs in the root; returns
// once every task is in pause().
template <typename F>
pid_t spawn_root(bool own_session, size_t tasks, F setup) {
  pid_t pid = spawn_paused(setup, own_session);
  EXPECT_TRUE(tree_paused(pid, tasks)) << "helper tree " << pid << " never got ready";
  return pid;
}

void kill_tree(const std::vector<pid_t>& tasks) {
  for (pid_t p : tasks) kill(p, SIGKILL);
  reap_all(tasks);
}

TEST(BadTree, SessionLedFromOutsideNeedsShellJob) {
  Harness h;
  pid_t pid = spawn_root(false, 2, [] {
    if (fork() == 0)
      for (;;) pause();
  });
  const auto tasks = tree_of(pid);
  const auto links = links_of(tasks);
  CkptRun r = h.ckpt({"dump", "-t", std::to_string(pid), "-D", h.images()});
  EXPECT_NE(r.exit_code(), 0);
  EXPECT_NE(r.err.find("does not lead its session"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("--shell-job"), std::string::npos) << r.err;
  expect_running_untraced(tasks, links);
  kill_tree(tasks);
}

// R's child M is in the group of L, R's other child, which has exited.
void group_of_an_exited_leader() {
  pid_t l = fork();
  if (l == 0) {
    setpgid(0, 0);
    for (;;) pause();
  }
  setpgid(l, l);
  pid_t m = fork();
  if (m == 0)
    for (;;) pause();
  setpgid(m, l);
  kill(l, SIGKILL);
  waitpid(l, nullptr, 0);
}

// M's group was led by L, which has exited: restore recreates it with a
// helper that takes L's PID, leads the group until M has joined it, and is
// gone (reaped by its parent, R) when the tree runs again.
TEST(Leaders, GroupWhoseLeaderExited) {
  for (bool breakpoints : {true, false}) {
    SCOPED_TRACE(breakpoints ? "breakpoints" : "--no-breakpoints");
    Harness h;
    pid_t pid = spawn_root(true, 2, group_of_an_exited_leader);
    const auto tasks = tree_of(pid);
    ASSERT_EQ(tasks.size(), 2u);
    const auto links = links_of(tasks);
    const pid_t l = getpgid(tasks[1]);
    ASSERT_NE(l, pid);
    CkptRun d = h.ckpt({"dump", "-t", std::to_string(pid), "-D", h.images()});
    if (d.exit_code() != 0) {
      kill_tree(tasks);
      FAIL() << d.err;
    }
    h.wait_child(pid);
    reap_all(tasks);
    std::vector<std::string> rst = {"restore", "-D", h.images(), "-d", "-v4", "-o", "restore.log"};
    if (!breakpoints) rst.push_back("--no-breakpoints");
    CkptRun r = h.ckpt(rst);
    ASSERT_EQ(r.exit_code(), 0) << r.err << read_text(h.images() + "/restore.log");
    EXPECT_EQ(links_of(tasks), links) << "parents, groups or sessions differ";
    EXPECT_EQ(tree_of(pid), tasks) << "a task restore added is left";
    EXPECT_NE(kill(l, 0), 0) << "helper " << l << " still holds its PID";
    EXPECT_EQ(waitpid(-1, nullptr, WNOHANG | __WALL), 0) << "only the restored root is ours to wait for";
    kill_tree(tasks);
  }
}

bool set_last_pid(pid_t last) {
  FILE* f = fopen("/proc/sys/kernel/ns_last_pid", "w");
  if (!f) return false;
  fmt::print(f, "{}", last);
  return fclose(f) == 0;
}

// A place for the next PIDs clear of the tree's `tasks`: past them, or from
// the bottom of the range when the tree sits near pid_max (the kernel refuses
// an ns_last_pid at or over pid_max, and the next PIDs would be the tree's).
pid_t clear_of(const std::vector<pid_t>& tasks) {
  const pid_t lo = *std::min_element(tasks.begin(), tasks.end());
  const pid_t hi = *std::max_element(tasks.begin(), tasks.end());
  const pid_t pid_max = std::stoi(read_text("/proc/sys/kernel/pid_max"));
  if (hi + 2000 < pid_max) return hi + 1000;
  return lo > 2400 ? 1000 : -1;
}

// A process of ours with PID `want` (through ns_last_pid), or -1. The next
// PIDs go clear of the tree's `tasks`: the restoring ckpt, forked next,
// would otherwise take the PID after `want`, another task's.
pid_t take_pid(pid_t want, const std::vector<pid_t>& tasks) {
  const pid_t next = clear_of(tasks);
  if (next < 0) return -1;
  for (int i = 0; i < 5; i++) {
    if (!set_last_pid(want - 1)) return -1;
    pid_t p = fork();
    if (p == 0) {
      pause();
      _exit(0);
    }
    if (p == want && set_last_pid(next)) return p;
    kill(p, SIGKILL);
    waitpid(p, nullptr, 0);
  }
  return -1;
}

// The exited leader's PID is taken when restore comes: refused before any
// task exists, naming it; nothing left behind.
TEST(Leaders, HelpersPidTaken) {
  Harness h;
  pid_t pid = spawn_root(true, 2, group_of_an_exited_leader);
  const auto tasks = tree_of(pid);
  ASSERT_EQ(tasks.size(), 2u);
  const pid_t l = getpgid(tasks[1]);
  CkptRun d = h.ckpt({"dump", "-t", std::to_string(pid), "-D", h.images()});
  ASSERT_EQ(d.exit_code(), 0) << d.err;
  h.wait_child(pid);
  reap_all(tasks);
  const pid_t squatter = take_pid(l, tasks);
  ASSERT_EQ(squatter, l);
  CkptRun r = h.ckpt({"restore", "-D", h.images()});
  EXPECT_NE(r.exit_code(), 0);
  EXPECT_NE(r.err.find(fmt::format("pid {}: the pid is taken", l)), std::string::npos) << r.err;
  for (pid_t p : tasks) EXPECT_NE(kill(p, 0), 0) << "pid " << p << " left behind";
  kill(squatter, SIGKILL);
  waitpid(squatter, nullptr, 0);
}

// Self-verifying: a session and groups whose leaders exited, orphans a
// subreaper took in, a zombie among them (wl_leaders); every task checks
// its pid, parent, group and session, the root that no helper is left
// among its children or in its wait().
struct LeadersCase {
  bool breakpoints;
  std::string arg;
};
void PrintTo(const LeadersCase& c, std::ostream* os) {
  *os << (c.breakpoints ? "breakpoint" : "syscalltrace") << (c.arg.empty() ? "" : ", " + c.arg);
}

class Leaders : public ::testing::TestWithParam<LeadersCase> {};

TEST_P(Leaders, SessionAndGroupsWhoseLeadersExited) {
  const LeadersCase& c = GetParam();
  Harness h;
  pid_t pid = h.start_workload("leaders", c.arg.empty() ? std::vector<std::string>{} : std::vector<std::string>{c.arg});
  ASSERT_GT(pid, 0) << read_text(h.workload_log("leaders"));
  const std::vector<pid_t> tasks = tree_of(pid);
  ASSERT_EQ(tasks.size(), 7u) << "R, Y, S1, S2, S3, Z, S2a";
  const auto links = links_of(tasks);
  // The exited leaders: every group and session id that is no task's pid.
  std::set<pid_t> leaders;
  for (pid_t p : tasks)
    for (pid_t id : {getpgid(p), getsid(p)})
      if (std::find(tasks.begin(), tasks.end(), id) == tasks.end()) leaders.insert(id);
  ASSERT_EQ(leaders.size(), 3u) << "X, L and K";

  CkptRun d = h.ckpt({"dump", "-t", std::to_string(pid), "-D", h.images(), "-v4", "-o", "dump.log"});
  if (d.exit_code() != 0) {
    kill_tree(tasks);
    FAIL() << d.err << read_text(h.images() + "/dump.log");
  }
  h.wait_child(pid);
  reap_all(tasks);
  CkptRun v = h.ckpt({"verify", h.images()});
  EXPECT_EQ(v.exit_code(), 0) << v.err;

  const std::string pidfile = h.dir() + "/restored.pid";
  std::vector<std::string> rst = {"restore", "-D", h.images(), "-v4", "-o", "restore.log", "--pidfile", pidfile};
  if (!c.breakpoints) rst.push_back("--no-breakpoints");
  pid_t r = h.ckpt_background(rst);
  ASSERT_TRUE(h.wait_restored(pid, pidfile)) << read_text(h.images() + "/restore.log");
  for (pid_t p : tasks)
    for (auto until = std::chrono::steady_clock::now() + 10s;
         tracer_of(p) != 0 && std::chrono::steady_clock::now() < until;)
      std::this_thread::sleep_for(1ms);
  EXPECT_EQ(links_of(tasks), links) << "parents, groups, sessions or states differ";
  EXPECT_EQ(tree_of(pid), tasks) << "a task restore added is left";
  for (pid_t id : leaders) EXPECT_NE(kill(id, 0), 0) << "helper " << id << " still holds its PID";
  kill(pid, SIGTERM);
  CkptRun rr = h.wait_ckpt(r);
  const std::string log = read_text(h.workload_log("leaders"));
  EXPECT_EQ(rr.exit_code(), 0) << log << rr.err << read_text(h.images() + "/restore.log");
  for (const char* name : {"PASS leaders\n", "PASS Y\n", "PASS S1\n", "PASS S2\n", "PASS S2a\n", "PASS S3\n"})
    EXPECT_NE(log.find(name), std::string::npos) << name << " missing in:\n" << log;
  EXPECT_EQ(log.find("FAIL"), std::string::npos) << log;
}

INSTANTIATE_TEST_SUITE_P(Modes, Leaders,
                         ::testing::Values(LeadersCase{true, ""}, LeadersCase{false, ""}, LeadersCase{true, "spin"},
                                           LeadersCase{false, "spin"}),
                         [](const ::testing::TestParamInfo<LeadersCase>& i) {
                           return fmt::format("{}{}", i.param.breakpoints ? "breakpoint" : "syscalltrace",
                                              i.param.arg.empty() ? "" : "_" + i.param.arg);
                         });

// C's parent P forked it and then called setsid(): C is in R's session,
// neither its own nor its parent's. Restore forks a task into its parent's
// session only: refused at dump, the tree left running.
TEST(BadTree, ChildBornBeforeItsParentsSetsid) {
  Harness h;
  pid_t pid = spawn_root(true, 3, [] {
    if (fork() == 0) {
      if (fork() == 0)
        for (;;) pause();
      setsid();
      for (;;) pause();
    }
  });
  const auto tasks = tree_of(pid);
  ASSERT_EQ(tasks.size(), 3u);
  const auto links = links_of(tasks);
  CkptRun r = h.ckpt({"dump", "-t", std::to_string(pid), "-D", h.images()});
  EXPECT_NE(r.exit_code(), 0);
  EXPECT_NE(r.err.find(fmt::format("pid {} ", tasks[2])), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("neither its own nor its parent's"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(fmt::format("its leader {} ", pid)), std::string::npos) << r.err;
  expect_running_untraced(tasks, links);
  kill_tree(tasks);
}

// Tasks of session L (its leader exited) under two parents: R, a subreaper,
// took in A when L exited; Q, another subreaper that left session L with
// setsid(), took in B when W, which it forked before, exited. One helper
// with L's PID can't be the parent of both: refused at dump.
TEST(BadTree, SessionWhoseLeaderExitedUnderTwoParents) {
  Harness h;
  pid_t pid = spawn_root(true, 4, [] {
    prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    pid_t l = fork();
    if (l == 0) {
      setsid();
      if (fork() == 0)
        for (;;) pause();  // A
      pid_t q = fork();
      if (q == 0) {
        prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
        pid_t w = fork();
        if (w == 0) {
          if (fork() == 0)
            for (;;) pause();  // B
          _exit(0);
        }
        waitpid(w, nullptr, 0);
        setsid();
        for (;;) pause();
      }
      std::this_thread::sleep_for(100ms);
      _exit(0);
    }
    waitpid(l, nullptr, 0);
  });
  const auto tasks = tree_of(pid);
  ASSERT_EQ(tasks.size(), 4u) << "R, A, Q, B";
  const auto links = links_of(tasks);
  CkptRun r = h.ckpt({"dump", "-t", std::to_string(pid), "-D", h.images()});
  EXPECT_NE(r.exit_code(), 0);
  EXPECT_NE(r.err.find("whose leader has exited, under different parents"), std::string::npos) << r.err;
  expect_running_untraced(tasks, links);
  kill_tree(tasks);
}

// A task deep in the tree holds what ckpt can't dump: the whole tree runs on.
TEST(BadTree, UnsupportedFdInAGrandchild) {
  Harness h;
  pid_t pid = spawn_root(true, 3, [] {
    if (fork() == 0) {
      if (fork() == 0) {
        io_uring_params p{};  // a kind ckpt has no model of
        if (syscall(SYS_io_uring_setup, 4, &p) < 0) _exit(1);
        for (;;) pause();
      }
      for (;;) pause();
    }
  });
  const auto tasks = tree_of(pid);
  ASSERT_EQ(tasks.size(), 3u);
  const auto links = links_of(tasks);
  CkptRun r = h.ckpt({"dump", "-t", std::to_string(pid), "-D", h.images()});
  EXPECT_NE(r.exit_code(), 0);
  EXPECT_NE(r.err.find(fmt::format("dump pid {}: fd", tasks[2])), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("anon_inode:[io_uring]"), std::string::npos) << r.err;
  expect_running_untraced(tasks, links);
  EXPECT_NE(access((h.images() + "/inventory.img").c_str(), F_OK), 0);
  kill_tree(tasks);
}

// A child that shares its parent's address space or fd table (clone without
// CLONE_THREAD), or its working directory, would come back with a copy of its
// own: refused, by what the two share, while both run on.
TEST(BadTree, SharedAddressSpaceOrFdTable) {
  Harness h;
  const std::map<int, std::string> shared = {
      {CLONE_VM, "address space"}, {CLONE_FILES, "fd table"}, {CLONE_FS, "working directory, root and umask"}};
  for (const auto& [flag, what] : shared) {
    SCOPED_TRACE(what);
    pid_t pid = spawn_root(true, 2, [flag] {
      static char stack[64 << 10];
      auto child = [](void*) -> int {
        for (;;) syscall(SYS_pause);
      };
      if (clone(child, stack + sizeof stack, flag | SIGCHLD, nullptr) < 0) _exit(1);
    });
    const auto tasks = tree_of(pid);
    ASSERT_EQ(tasks.size(), 2u);
    const auto links = links_of(tasks);
    CkptRun r = h.ckpt({"dump", "-t", std::to_string(pid), "-D", h.images()});
    EXPECT_NE(r.exit_code(), 0);
    EXPECT_NE(r.err.find(fmt::format("pid {} and pid {} share one {}", pid, tasks[1], what)), std::string::npos)
        << r.err;
    expect_running_untraced(tasks, links);
    EXPECT_NE(access((h.images() + "/inventory.img").c_str(), F_OK), 0);
    kill_tree(tasks);
  }
}

// A restore whose PIDs are taken halfway (a grandchild's): refused before any
// task exists, naming the PID; nothing left behind.
TEST(BadTree, RestoreWithAPidTaken) {
  Harness h;
  pid_t pid = h.start_workload("tree");
  ASSERT_GT(pid, 0);
  const auto tasks = tree_of(pid);
  CkptRun d = h.ckpt({"dump", "-t", std::to_string(pid), "-D", h.images()});
  ASSERT_EQ(d.exit_code(), 0) << d.err;
  h.wait_child(pid);
  reap_all(tasks);
  // Take A1's PID with a process of our own.
  const pid_t taken = tasks[4];
  const pid_t squatter = take_pid(taken, tasks);
  ASSERT_EQ(squatter, taken);
  CkptRun r = h.ckpt({"restore", "-D", h.images()});
  EXPECT_NE(r.exit_code(), 0);
  EXPECT_NE(r.err.find(fmt::format("pid {}: the pid is taken", taken)), std::string::npos) << r.err;
  for (pid_t p : tasks)
    if (p != taken) {
      EXPECT_NE(kill(p, 0), 0) << "pid " << p << " left behind";
    }
  kill(squatter, SIGKILL);
  waitpid(squatter, nullptr, 0);
}

}  // namespace
}  // namespace e2e

namespace e2e {
namespace {

// --shell-job: a tree in the shell's session (its root in the shell's group,
// a child leading a job of its own) is restored into the restoring ckpt's
// session and group, the child leading its group again.
TEST(ShellJob, TreeJoinsTheRestoringSession) {
  Harness h;
  pid_t pid = spawn_root(false, 2, [] {
    pid_t c = fork();
    if (c == 0) {
      setpgid(0, 0);
      for (;;) pause();
    }
    setpgid(c, c);
  });
  const auto tasks = tree_of(pid);
  ASSERT_EQ(tasks.size(), 2u);
  const auto links = links_of(tasks);
  CkptRun d = h.ckpt({"dump", "-t", std::to_string(pid), "-D", h.images(), "--shell-job"});
  ASSERT_EQ(d.exit_code(), 0) << d.err;
  h.wait_child(pid);
  reap_all(tasks);
  CkptRun r = h.ckpt({"restore", "-D", h.images(), "-d"});
  ASSERT_EQ(r.exit_code(), 0) << r.err;
  // ckpt ran in this test's session and group, as the dumped root did.
  EXPECT_EQ(links_of(tasks), links);
  EXPECT_EQ(getsid(tasks[1]), getsid(0));
  EXPECT_EQ(getpgid(tasks[1]), tasks[1]);
  kill_tree(tasks);
}

}  // namespace
}  // namespace e2e

namespace e2e {
namespace {

// /proc/PID/stat's state and exit_code (the status a wait() would get)
// fields of a zombie: "Z 2" for a task killed by SIGINT.
std::string zombie_status(pid_t pid) {
  const std::string stat = read_text(fmt::format("/proc/{}/stat", pid));
  const size_t comm_end = stat.rfind(')');
  if (comm_end == std::string::npos) return "gone";
  std::istringstream f(stat.substr(comm_end + 2));
  std::vector<std::string> fields{std::istream_iterator<std::string>(f), {}};
  return fields.size() < 50 ? "short stat" : fields[0] + " " + fields.back();  // fields 3 and 52
}

// Zombies come back with the status their parent's wait() gets: an exit
// code, or the signal that killed them (one a task may catch, one it can't).
TEST(Zombies, ExitCodesAndSignalsKeptExactly) {
  Harness h;
  const pid_t pid = spawn_paused([] {
    for (int code : {3, -SIGUSR2, -SIGKILL}) {
      if (fork() != 0) continue;
      if (code >= 0) _exit(code);
      signal(-code, SIG_DFL);
      raise(-code);
      _exit(99);
    }
  });
  std::vector<pid_t> tasks;
  ASSERT_TRUE(wait_until([&] {
    tasks = tree_of(pid);
    return tasks.size() == 4 && std::all_of(tasks.begin() + 1, tasks.end(), [](pid_t z) { return proc_state(z) == 'Z'; });
  })) << "3 zombies never showed";
  std::map<pid_t, std::string> before;
  for (size_t i = 1; i < tasks.size(); i++) before[tasks[i]] = zombie_status(tasks[i]);
  std::set<std::string> codes;
  for (const auto& [z, st] : before) codes.insert(st);
  EXPECT_EQ(codes, (std::set<std::string>{"Z 768", fmt::format("Z {}", SIGUSR2), fmt::format("Z {}", SIGKILL)}));
  CkptRun d = h.ckpt({"dump", "-t", std::to_string(pid), "-D", h.images()});
  ASSERT_EQ(d.exit_code(), 0) << d.err;
  h.wait_child(pid);
  reap_all(tasks);
  CkptRun r = h.ckpt({"restore", "-D", h.images(), "-d"});
  ASSERT_EQ(r.exit_code(), 0) << r.err;
  for (const auto& [z, st] : before) {
    EXPECT_EQ(zombie_status(z), st) << "zombie " << z;
    EXPECT_EQ(ppid_of(z), pid) << "zombie " << z;
  }
  kill_tree(tasks);
}

// Dumps and restores wl_fleet with `args`; the restored root is SIGTERMed
// and must pass, every worker with it.
void dump_restore_fleet(const std::vector<std::string>& args, size_t at_least, bool breakpoints) {
  Harness h;
  pid_t pid = h.start_workload("fleet", args);
  ASSERT_GT(pid, 0);
  std::this_thread::sleep_for(100ms);
  CkptRun d = h.ckpt({"dump", "-t", std::to_string(pid), "-D", h.images(), "-v4", "-o", "dump.log"});
  ASSERT_EQ(d.exit_code(), 0) << d.err << read_text(h.images() + "/dump.log");
  // The tree as dumped: the tasks whose PIDs must be free again.
  CkptRun s = h.ckpt({"show", "--json", h.images()});
  h.wait_child(pid);
  std::vector<pid_t> tasks;
  for (size_t at = s.out.find("\"ppid\""); at != std::string::npos; at = s.out.find("\"ppid\"", at + 1)) {
    const size_t p = s.out.rfind("\"pid\":", at);
    tasks.push_back(std::stoi(s.out.substr(p + 6)));
  }
  EXPECT_GE(tasks.size(), at_least);
  reap_all(tasks);
  const std::string pidfile = h.dir() + "/restored.pid";
  std::vector<std::string> rst = {"restore", "-D", h.images(), "--pidfile", pidfile, "-v4", "-o", "restore.log"};
  if (!breakpoints) rst.push_back("--no-breakpoints");
  pid_t r = h.ckpt_background(rst);
  ASSERT_TRUE(h.wait_restored(pid, pidfile, 60s)) << read_text(h.images() + "/restore.log");
  std::this_thread::sleep_for(100ms);
  kill(pid, SIGTERM);
  CkptRun rr = h.wait_ckpt(r);
  EXPECT_EQ(rr.exit_code(), 0) << read_text(h.workload_log("fleet")) << rr.err;
  EXPECT_NE(read_text(h.workload_log("fleet")).find("PASS fleet"), std::string::npos);
}

class Fleet : public ::testing::TestWithParam<Mode> {};

TEST_P(Fleet, TwoHundredTasks) { dump_restore_fleet({"199"}, 200, GetParam().breakpoints); }

// The root and a worker fork (and reap) children all the time: seizing
// finds a tree that changes under it, at two levels; children that exit
// become zombies, or are gone before ckpt gets to them.
TEST_P(Fleet, ForksDuringTheDump) {
  Harness h;
  pid_t pid = h.start_workload("fleet", {"5", "churn"});
  ASSERT_GT(pid, 0);
  for (int i = 0; i < 5; i++) {
    const std::string dir = fmt::format("{}/img{}", h.dir(), i);
    CkptRun d = h.ckpt({"dump", "-t", std::to_string(pid), "-D", dir, "--leave-running"});
    EXPECT_EQ(d.exit_code(), 0) << d.err;
    EXPECT_TRUE(alive(pid));
  }
  kill(pid, SIGTERM);
  int st = h.wait_child(pid);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << read_text(h.workload_log("fleet"));
  dump_restore_fleet({"5", "churn"}, 6, GetParam().breakpoints);
}

INSTANTIATE_TEST_SUITE_P(Modes, Fleet, ::testing::Values(Mode{true}, Mode{false}), mode_test_name);

}  // namespace
}  // namespace e2e

namespace e2e {
namespace {

// A restore that fails once the tree exists (a grandchild's pages are
// damaged: found while the restorers run) kills every task it created,
// zombies included, and reaps them: no PID stays held.
TEST(BadTree, RestoreFailingLateLeavesNoTask) {
  Harness h;
  pid_t pid = h.start_workload("tree");
  ASSERT_GT(pid, 0);
  const auto tasks = tree_of(pid);
  ASSERT_EQ(tasks.size(), 7u);
  CkptRun d = h.ckpt({"dump", "-t", std::to_string(pid), "-D", h.images()});
  ASSERT_EQ(d.exit_code(), 0) << d.err;
  h.wait_child(pid);
  reap_all(tasks);
  const pid_t victim = tasks[4];  // A1
  const std::string pages = fmt::format("{}/pages-{}.img", h.images(), victim);
  struct stat st;
  ASSERT_EQ(stat(pages.c_str(), &st), 0);
  ASSERT_TRUE(flip_byte(pages, st.st_size - 1));
  CkptRun r = h.ckpt({"restore", "-D", h.images()});
  EXPECT_NE(r.exit_code(), 0);
  EXPECT_NE(r.err.find("checksum mismatch"), std::string::npos) << r.err;
  for (pid_t p : tasks) EXPECT_NE(kill(p, 0), 0) << "pid " << p << " left behind";
}

}  // namespace
}  // namespace e2e

namespace e2e {
namespace {

// /proc/PID/maps with the inode of shared memory objects blanked: restore
// creates them anew (the content, flags and names are the dumped ones).
std::string maps_but_shmem_inodes(pid_t pid) {
  std::istringstream in(read_text(fmt::format("/proc/{}/maps", pid)));
  std::string out;
  for (std::string line; std::getline(in, line);) {
    if (line.find("/dev/zero (deleted)") != std::string::npos || line.find("/memfd:") != std::string::npos) {
      std::istringstream f(line);
      std::string range, perms, off, dev, inode;
      f >> range >> perms >> off >> dev >> inode;
      line = fmt::format("{} {} {} {} - {}", range, perms, off, dev, line.substr(line.find('/')));
    }
    out += line + "\n";
  }
  return out;
}

class SharedMemory : public ::testing::TestWithParam<bool> {};

// Anonymous shared memory and a memfd, shared by a parent and its child:
// the same objects after restore, with every page (one only the child wrote,
// none the parent touched), and a private mapping of the memfd with its own
// changed page.
// Pages of memory the tasks share are stored once: in the pages image of
// their object (pages-shmem-N.img, at most the object's size), and in no
// task's own pages image (no run of a task lies in a shared mapping of one).
void expect_shared_pages_stored_once(const std::string& dir, const std::vector<pid_t>& tasks) {
  using ckpt::image::ImageKind;
  std::map<uint32_t, uint64_t> objects;  // shmem id -> the largest extent a VMA maps of it
  for (pid_t p : tasks) {
    auto mm = read_image<ckpt::img::MmImage>(dir, fmt::format("mm-{}.img", p), ImageKind::Mm);
    auto pm = read_image<ckpt::img::PageMap>(dir, fmt::format("pagemap-{}.img", p), ImageKind::PageMap);
    ASSERT_TRUE(mm && pm) << p;
    for (const ckpt::img::Vma& v : mm->vmas()) {
      if (v.shmem_id() == 0) continue;
      objects[v.shmem_id()] = std::max(objects[v.shmem_id()], v.pgoff() + v.end() - v.start());
      if (v.kind() != ckpt::img::Vma::FILE_SHARED) continue;  // a private mapping's changed pages are its own
      for (const ckpt::img::PageRun& r : pm->runs())
        EXPECT_FALSE(r.vaddr() < v.end() && r.vaddr() + r.nr_pages() * 4096 > v.start())
            << "pid " << p << " stored its own copy of pages at " << std::hex << r.vaddr() << " of shared object "
            << std::dec << v.shmem_id();
    }
  }
  EXPECT_EQ(objects.size(), 2u) << "the anonymous shared memory and the memfd";
  for (const auto& [id, size] : objects) {
    struct stat st;
    const std::string pages = fmt::format("{}/pages-shmem-{}.img", dir, id);
    ASSERT_EQ(stat(pages.c_str(), &st), 0) << pages;
    EXPECT_LE(static_cast<uint64_t>(st.st_size), ckpt::image::kPagesDataOffset + size) << pages;
  }
}

TEST_P(SharedMemory, SharedBetweenParentAndChild) {
  Harness h;
  pid_t pid = h.start_workload("shmem");
  ASSERT_GT(pid, 0);
  const auto tasks = tree_of(pid);
  ASSERT_EQ(tasks.size(), 2u);
  std::map<pid_t, std::string> maps;
  for (pid_t p : tasks) maps[p] = maps_but_shmem_inodes(p);
  CkptRun d = h.ckpt({"dump", "-t", std::to_string(pid), "-D", h.images(), "-v4", "-o", "dump.log"});
  ASSERT_EQ(d.exit_code(), 0) << d.err << read_text(h.images() + "/dump.log");
  h.wait_child(pid);
  reap_all(tasks);
  CkptRun v = h.ckpt({"verify", h.images()});
  EXPECT_EQ(v.exit_code(), 0) << v.err;
  expect_shared_pages_stored_once(h.images(), tasks);

  const std::string pidfile = h.dir() + "/restored.pid";
  std::vector<std::string> rst = {"restore", "-D", h.images(), "--pidfile", pidfile, "-v4", "-o", "restore.log"};
  if (!GetParam()) rst.push_back("--no-breakpoints");
  pid_t r = h.ckpt_background(rst);
  ASSERT_TRUE(h.wait_restored(pid, pidfile)) << read_text(h.images() + "/restore.log");
  for (pid_t p : tasks) {
    for (auto until = std::chrono::steady_clock::now() + 10s;
         tracer_of(p) != 0 && std::chrono::steady_clock::now() < until;)
      std::this_thread::sleep_for(1ms);
    EXPECT_EQ(maps_but_shmem_inodes(p), maps[p]) << p;
  }
  kill(pid, SIGTERM);
  CkptRun rr = h.wait_ckpt(r);
  EXPECT_EQ(rr.exit_code(), 0) << read_text(h.workload_log("shmem")) << rr.err;
  EXPECT_NE(read_text(h.workload_log("shmem")).find("PASS shmem"), std::string::npos);
}

INSTANTIATE_TEST_SUITE_P(Modes, SharedMemory, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& i) { return i.param ? "breakpoint" : "syscalltrace"; });

}  // namespace
}  // namespace e2e

namespace e2e {
namespace {

class PreFork : public ::testing::TestWithParam<bool> {};

// Dumps the prefork tree of `pid` (kill mode, `n` tasks, in `tasks`) and frees every pid.
void dump_prefork(Harness& h, pid_t pid, size_t n, std::vector<pid_t>* tasks) {
  ASSERT_GT(pid, 0);
  *tasks = tree_of(pid);
  ASSERT_EQ(tasks->size(), n);
  CkptRun d = h.ckpt({"dump", "-t", std::to_string(pid), "-D", h.images()});
  ASSERT_EQ(d.exit_code(), 0) << d.err;
  h.wait_child(pid);
  reap_all(*tasks);
}

// A master's `mib` MiB, inherited by `workers` + 1 workers (one changed 16
// pages, one dropped 16, one has a child of its own), are stored once,
// shared again after restore as they were before the dump, and every task
// has every byte back.
void prefork_cycle(size_t mib, size_t workers, bool breakpoints) {
  Harness h;
  const pid_t pid = h.start_workload("prefork", {std::to_string(mib), std::to_string(workers)});
  std::vector<pid_t> tasks;
  ASSERT_NO_FATAL_FAILURE(dump_prefork(h, pid, workers + 2, &tasks));
  uint64_t bytes = 0;
  for (pid_t p : tasks) {
    struct stat st;
    if (stat(fmt::format("{}/pages-{}.img", h.images(), p).c_str(), &st) == 0) bytes += st.st_size;
  }
  // The master's memory once, the changed pages, and each task's own stack
  // and such: workers + 2 copies before.
  EXPECT_LT(bytes, (mib + 16) << 20) << "pages images hold " << (bytes >> 20) << " MiB";
  CkptRun v = h.ckpt({"verify", h.images()});
  EXPECT_EQ(v.exit_code(), 0) << v.err;

  const std::string pidfile = h.dir() + "/restored.pid";
  std::vector<std::string> rst = {"restore", "-D", h.images(), "--pidfile", pidfile};
  if (!breakpoints) rst.push_back("--no-breakpoints");
  pid_t r = h.ckpt_background(rst);
  ASSERT_TRUE(h.wait_restored(pid, pidfile, 60s)) << read_text(h.images() + "/restore.log");
  // Each task's own copy would be workers + 2 times the master's.
  const uint64_t pss = tree_pss_kib(pid);
  EXPECT_LT(pss, (mib + mib / 2) << 10) << "the restored tree's Pss is " << (pss >> 10) << " MiB";
  kill(pid, SIGTERM);
  CkptRun rr = h.wait_ckpt(r, 120s);
  EXPECT_EQ(rr.exit_code(), 0) << read_text(h.workload_log("prefork")) << rr.err;
  EXPECT_NE(read_text(h.workload_log("prefork")).find("PASS prefork"), std::string::npos);
}

TEST_P(PreFork, InheritedMemoryIsStoredOnceAndSharedAgain) { prefork_cycle(64, 4, GetParam()); }

// The size issue 12 names: a master of 256 MiB and 20 workers (one with a
// child of its own).
TEST(PreForkLarge, TwentyWorkersShare256MiB) { prefork_cycle(256, 20, true); }

// The master's shared pages are read and checked before it forks: a
// damaged byte among them fails the restore there, and no task is left.
TEST(PreForkBad, DamagedSharedPagesLeaveNoTask) {
  Harness h;
  const pid_t pid = h.start_workload("prefork", {"16", "3"});
  std::vector<pid_t> tasks;
  ASSERT_NO_FATAL_FAILURE(dump_prefork(h, pid, 5, &tasks));
  // The master's 16 MiB are most of its pages file: its middle is in them.
  const std::string pages = fmt::format("pages-{}.img", pid);
  ASSERT_TRUE(flip_byte(h.images() + "/" + pages));
  CkptRun r = h.ckpt({"restore", "-D", h.images()});
  EXPECT_NE(r.exit_code(), 0);
  EXPECT_NE(r.err.find("checksum mismatch"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(pages), std::string::npos) << "the damaged file is not named: " << r.err;
  for (pid_t p : tasks) EXPECT_NE(kill(p, 0), 0) << "pid " << p << " left behind";
}

INSTANTIATE_TEST_SUITE_P(Modes, PreFork, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& i) { return i.param ? "breakpoint" : "syscalltrace"; });

}  // namespace
}  // namespace e2e

namespace e2e {
namespace {

// --restore-sibling -d: the restored root is a child of ckpt's parent (this
// test), as container runtimes expect; the whole tree under it as dumped.
TEST(Tree, RestoreSibling) {
  Harness h;
  pid_t pid = h.start_workload("tree");
  ASSERT_GT(pid, 0);
  const auto tasks = tree_of(pid);
  const auto links = links_of(tasks);
  CkptRun d = h.ckpt({"dump", "-t", std::to_string(pid), "-D", h.images()});
  ASSERT_EQ(d.exit_code(), 0) << d.err;
  h.wait_child(pid);
  reap_all(tasks);
  CkptRun r = h.ckpt({"restore", "-D", h.images(), "-d", "--restore-sibling"});
  ASSERT_EQ(r.exit_code(), 0) << r.err;
  EXPECT_EQ(ppid_of(pid), getpid());
  EXPECT_EQ(links_of(tasks), links);
  kill(pid, SIGTERM);
  int st = h.wait_child(pid);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << read_text(h.workload_log("tree"));
}

}  // namespace
}  // namespace e2e

namespace e2e {
namespace {

// A task killed mid-dump (after its own images were taken): the dump fails
// saying so, and every other task runs on, untraced.
TEST(TreeFault, TaskKilledMidDump) {
  Harness h;
  pid_t pid = h.start_workload("tree");
  ASSERT_GT(pid, 0);
  const std::vector<pid_t> tasks = tree_of(pid);
  ASSERT_EQ(tasks.size(), 7u);
  const pid_t last = tasks[5], victim = tasks[2];  // A2 is dumped last but for nothing; B long before
  ASSERT_NE(proc_state(last), 'Z');
  setenv("CKPT_FAULT", fmt::format("slow:cure@{}", last).c_str(), 1);
  pid_t ckpt = h.ckpt_background({"dump", "-t", std::to_string(pid), "-D", h.images()});
  unsetenv("CKPT_FAULT");
  // Once ckpt works on the last task (traced, its parasite mapped), B is done.
  ASSERT_TRUE(wait_for_parasite(last, ckpt));
  kill(victim, SIGKILL);
  CkptRun d = h.wait_ckpt(ckpt);
  EXPECT_NE(d.exit_code(), 0);
  EXPECT_NE(d.err.find(fmt::format("pid {} died during the dump", victim)), std::string::npos) << d.err;
  EXPECT_NE(access((h.images() + "/inventory.img").c_str(), F_OK), 0);
  std::this_thread::sleep_for(50ms);
  for (pid_t p : tasks) {
    if (p == victim) continue;
    EXPECT_TRUE(alive(p) || proc_state(p) == 'Z') << p;
    EXPECT_EQ(tracer_of(p), 0) << p;
  }
  for (pid_t p : tasks) kill(p, SIGKILL);
  h.wait_child(pid);
  reap_all(tasks);
}

}  // namespace
}  // namespace e2e
