// ckpt SIGKILLed at uniformly random moments of a dump: the task never pays
// for it. Every state ckpt puts a thread in (hijacked for a remote syscall,
// in the parasite, at the cure's munmap) must be one the thread leaves on its
// own when its tracer vanishes. After each kill the task must be alive,
// untraced and running; after the loop a clean dump takes out what the
// killed ones left, the maps and fd table are as before the first, and the
// task verifies its memory, threads and signal state itself.
//
// CKPT_KILL_ROUNDS sets the kills per case (default 25), CKPT_KILL_STRICT
// adds seccomp strict mode; tests/kill-loop.sh runs 170 per case and
// prints the tally.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <random>
#include <sstream>
#include <thread>

#include "harness.h"

namespace e2e {
namespace {

using Clock = std::chrono::steady_clock;

std::string describe_status(int st) {
  if (WIFSIGNALED(st)) return fmt::format("killed by {}", strsignal(WTERMSIG(st)));
  return fmt::format("exit status {}", WEXITSTATUS(st));
}

struct LoopCase {
  std::string name;
  std::string workload;
  std::vector<std::string> args;
  bool leave_running;  // else the dump kills the task when it completes
};

void PrintTo(const LoopCase& c, std::ostream* os) { *os << c.name; }

class KillLoop : public ::testing::TestWithParam<LoopCase> {};

// A prefix that runs ckpt in a process group (and session) of its own, so
// that kill(-pid) reaches its whole group, as timeout(1) kills.
std::vector<std::string> own_group(bool yes = true) {
  return yes ? std::vector<std::string>{"/usr/bin/setsid"} : std::vector<std::string>{};
}

// A killed ckpt's commit watcher (src/ptrace/tree_commit.h) is orphaned to
// us, the subreaper, and decides the tree's fate as it ends: killed just
// after ckpt let the last task go but before it committed, the tree runs
// for a moment, then goes. True once no child of ours is a ckpt any more
// (those that ended reaped): only then is what the tree is final.
bool watchers_done() {
  bool left = false;
  for (const auto& task : std::filesystem::directory_iterator("/proc/self/task")) {
    std::istringstream kids(read_text(task.path().string() + "/children"));
    for (pid_t k; kids >> k;) {
      if (comm_of(k) != "ckpt") continue;
      if (proc_state(k) == 'Z') waitpid(k, nullptr, 0);
      else left = true;
    }
  }
  return !left;
}

int rounds() {
  const char* v = getenv("CKPT_KILL_ROUNDS");
  return v ? std::max(1, atoi(v)) : 25;
}

TEST_P(KillLoop, TaskSurvivesEveryKill) {
  const LoopCase& c = GetParam();
  Harness h;
  std::mt19937 rng(std::random_device{}());
  pid_t pid = h.start_workload(c.workload, c.args);
  ASSERT_GT(pid, 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  std::string maps = read_text(fmt::format("/proc/{}/maps", pid));
  std::string fds = fds_of(pid);
  const std::string cpus = cpus_of(pid);
  // A tree: every task must come through (its zombies stay zombies).
  const std::vector<pid_t> tasks = tree_of(pid);
  std::vector<char> states;
  std::vector<std::string> task_cpus;
  for (pid_t t : tasks) {
    states.push_back(proc_state(t) == 'Z' ? 'Z' : 'S');
    task_cpus.push_back(cpus_of(t));
  }
  auto dump_args = [&](const std::string& dir, bool leave_running) {
    std::vector<std::string> a = {"dump", "-t", std::to_string(pid), "-D", dir};
    if (leave_running) a.push_back("--leave-running");
    return a;
  };

  // How long a whole dump takes: the kills fall anywhere in it.
  auto t0 = Clock::now();
  CkptRun full = h.ckpt(dump_args(h.images() + "-full", true));
  ASSERT_EQ(full.exit_code(), 0) << full.err;
  const auto span = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t0);

  int kills = 0, finished = 0, lost = 0;  // finished: complete before the kill
  std::string losses;
  for (int i = 0; i < rounds(); i++) {
    const std::string dir = fmt::format("{}-{}", h.images(), i);
    // Every other round ckpt's whole process group, as timeout(1) kills.
    const bool group = i % 2 == 1;
    pid_t ckpt = h.ckpt_background(dump_args(dir, c.leave_running), own_group(group));
    std::this_thread::sleep_for(std::chrono::microseconds(std::uniform_int_distribution<int64_t>(0, span.count())(rng)));
    kill(group ? -ckpt : ckpt, SIGKILL);
    CkptRun r = h.wait_ckpt(ckpt);
    ASSERT_FALSE(WIFEXITED(r.status) && r.exit_code() != 0) << "ckpt failed on its own: " << r.err;
    // Complete once the inventory is in place, whether or not ckpt lived to
    // say so. The dump then kills the task: it must come back from them.
    const bool complete = access((dir + "/inventory.img").c_str(), F_OK) == 0;
    if (complete) finished++;
    else kills++;
    if (complete && !c.leave_running) {
      int st = h.wait_child(pid);
      ASSERT_TRUE(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL) << "status " << st;
      reap_all(tasks);  // a tree's other tasks, ours once their parents died
      CkptRun back = h.ckpt({"restore", "-D", dir, "-d"});
      ASSERT_EQ(back.exit_code(), 0) << back.err;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    const char st = alive(pid) ? proc_state(pid) : 'X';
    if ((st != 'R' && st != 'S') || tracer_of(pid) != 0) {
      lost++;
      losses += fmt::format("round {}: state {} after a {}", i, st, complete ? "complete dump" : "kill");
      if (st == 'X' || st == 'Z') losses += fmt::format(" ({})", describe_status(h.wait_child(pid)));
      break;
    }
    // The rest of a tree: each as it was, or back from the images.
    for (size_t k = 1; k < tasks.size(); k++) {
      const char s = proc_state(tasks[k]);  // '?': gone
      const bool ok = states[k] == 'Z' ? s == 'Z' : (s == 'R' || s == 'S') && tracer_of(tasks[k]) == 0;
      if (!ok) {
        lost++;
        losses += fmt::format("round {}: task {} of the tree: state {} after a {}", i, tasks[k], s,
                              complete ? "complete dump" : "kill");
      }
    }
    // Their affinity back, whoever put it back (ckpt, or its watcher once
    // ckpt was gone).
    for (size_t k = 0; k < tasks.size() && !lost; k++) {
      if (states[k] == 'Z') continue;
      const std::string want = k == 0 ? cpus : task_cpus[k];
      if (!wait_until([&] { return cpus_of(tasks[k]) == want; }, std::chrono::seconds(1))) {
        lost++;
        losses += fmt::format("round {}: task {} left on CPUs {}, not {}", i, tasks[k], cpus_of(tasks[k]), want);
      }
    }
    if (lost) break;
  }
  fmt::print("kill loop {}: {} kills, {} dumps finished first, {} lost\n", c.name, kills, finished, lost);
  EXPECT_EQ(lost, 0) << losses << read_text(h.workload_log(c.workload));
  ASSERT_TRUE(alive(pid));

  // What the killed dumps left, the next one takes out.
  CkptRun clean = h.ckpt({"dump", "-t", std::to_string(pid), "-D", h.images() + "-clean", "--leave-running"});
  EXPECT_EQ(clean.exit_code(), 0) << clean.err;
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(read_text(fmt::format("/proc/{}/maps", pid)), maps);
  EXPECT_EQ(fds_of(pid), fds);
  kill(pid, SIGTERM);
  int status = h.wait_child(pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << read_text(h.workload_log(c.workload));
}

std::vector<LoopCase> cases() {
  // The dump has one completion mode (its cure works from outside, without
  // a breakpoint, see src/dump/dump.cc); the restores after complete dumps
  // use breakpoints.
  // 4 threads and 64 MiB: a dump long enough to be hit everywhere.
  std::vector<LoopCase> out = {{"threads_leaverunning", "threads", {"4", "64"}, true},
                               {"threads_kill", "threads", {"4", "64"}, false},
                               {"seccomp", "seccomp", {}, true},
                               {"tree_leaverunning", "tree", {}, true},
                               // Every task keeps its parasite until the kill (dump.cc's Parked).
                               {"tree_kill", "tree", {}, false}};
  // Strict mode is not here: once ckpt is gone its suspension of seccomp goes
  // too, and the next syscall the parasite or a remote syscall makes kills
  // the task (about 1 kill in 40 lands there). tests/kill-loop.sh reports its
  // tally; docs/state.md says what is left open.
  if (getenv("CKPT_KILL_STRICT")) out.push_back({"strict", "strict", {}, true});
  return out;
}

INSTANTIATE_TEST_SUITE_P(Kills, KillLoop, ::testing::ValuesIn(cases()),
                         [](const ::testing::TestParamInfo<LoopCase>& i) { return i.param.name; });

}  // namespace
}  // namespace e2e

namespace e2e {
namespace {

// A pre-fork tree: the master lays out the memory its workers share before
// it forks them.
class PreforkTree : public ::testing::Test {
 protected:
  void SetUp() override {
    pid = h.start_workload("prefork", {"32", "3"});
    ASSERT_GT(pid, 0);
    tasks = tree_of(pid);
    ASSERT_EQ(tasks.size(), 5u);
  }
  Harness h;
  pid_t pid = -1;
  std::vector<pid_t> tasks;
};

// The tree dumped, and so killed, to restore again and again.
class RestoreKillLoop : public PreforkTree {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(PreforkTree::SetUp());
    comm = read_text(fmt::format("/proc/{}/comm", pid));
    CkptRun d = h.ckpt({"dump", "-t", std::to_string(pid), "-D", h.images()});
    ASSERT_EQ(d.exit_code(), 0) << d.err;
    h.wait_child(pid);
    reap_all(tasks);
    log = h.workload_log("prefork");
    struct stat st;
    ASSERT_EQ(stat(log.c_str(), &st), 0);
    dumped_size = st.st_size;
  }

  // Each restored tree appends to its log (its stderr): put back as it was
  // dumped before every restore, whose check of held files would refuse it.
  void log_as_dumped() { ASSERT_EQ(truncate(log.c_str(), dumped_size), 0) << strerror(errno); }

  // The restored tree checks itself and exits.
  void stop_verified(const std::string& when) {
    kill(pid, SIGTERM);
    const int st = h.wait_child(pid);
    EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << when << ": " << describe_status(st) << "\n" << read_text(log);
    reap_all(tasks);
  }

  // Running: the task runs its own code (not ckpt's, parked), untraced, and
  // was not killed (a watcher's SIGKILL takes effect only once the task is
  // scheduled). Gone: its pid is free.
  std::pair<int, int> running_and_gone() {
    int running = 0, gone = 0;
    for (pid_t p : tasks) {
      waitpid(p, nullptr, WNOHANG | __WALL);
      const char s = proc_state(p);
      if (kill(p, 0) < 0 && errno == ESRCH) gone++;
      else if ((s == 'R' || s == 'S') && tracer_of(p) == 0 && !dying(p) &&
               read_text(fmt::format("/proc/{}/comm", p)) == comm)
        running++;
    }
    return {running, gone};
  }

  // Whole or gone, given the time a killed tree's tasks take to die and be
  // reaped; else says what is left, and kills it.
  enum class After { Whole, Gone, Lost };
  friend void PrintTo(After a, std::ostream* os) {
    *os << (a == After::Whole ? "whole" : a == After::Gone ? "gone" : "half a tree");
  }
  After settle(std::string* losses) {
    const int n = static_cast<int>(tasks.size());
    EXPECT_TRUE(wait_until(watchers_done, std::chrono::seconds(5))) << "a commit watcher never ended";
    wait_until([&] { auto [running, gone] = running_and_gone(); return running == n || gone == n; },
               std::chrono::seconds(5));
    auto [running, gone] = running_and_gone();
    if (running == n) return After::Whole;
    if (gone == n) return After::Gone;
    *losses += fmt::format("{} tasks running, {} gone, states:", running, gone);
    for (pid_t p : tasks)
      *losses += fmt::format(" {}={}{} {}", p, proc_state(p), tracer_of(p) ? "(traced)" : "",
                             read_text(fmt::format("/proc/{}/comm", p)));
    for (pid_t p : tasks) kill(p, SIGKILL);
    reap_all(tasks);
    return After::Lost;
  }

  // A restore stopped for good once it has let the root go, its workers
  // still held: ckpt's pid, or -1 if it never got there.
  pid_t restore_held_while_letting_go(const std::vector<std::string>& prefix) {
    log_as_dumped();
    setenv("CKPT_FAULT", fmt::format("hang:detached@{}", pid).c_str(), 1);
    const pid_t ckpt = h.ckpt_background(restore, prefix);
    unsetenv("CKPT_FAULT");
    if (wait_until([&] { return alive(pid) && tracer_of(pid) == 0 && tracer_of(tasks.back()) != 0; })) return ckpt;
    ADD_FAILURE() << "ckpt never stopped with the root let go and its last worker held";
    return -1;
  }

  std::string comm, log;
  off_t dumped_size = 0;
  const std::vector<std::string> restore = {"restore", "-D", h.images(), "-d"};
};

// ckpt SIGKILLed at random moments of a restore, every other round with its
// whole process group (as timeout(1) kills): the tree comes back whole, or
// not at all. Never some tasks without the others, and never a task left
// traced or stopped.
TEST_F(RestoreKillLoop, TreeWholeOrGone) {
  std::mt19937 rng(std::random_device{}());
  log_as_dumped();
  auto t0 = Clock::now();
  CkptRun full = h.ckpt(restore);
  ASSERT_EQ(full.exit_code(), 0) << full.err;
  const auto span = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t0);
  stop_verified("the first restore");

  int kills = 0, finished = 0, lost = 0;
  std::string losses;
  for (int i = 0; i < rounds() && !lost; i++) {
    log_as_dumped();
    const bool group = i % 2 == 1;
    pid_t ckpt = h.ckpt_background(restore, own_group(group));
    // A little past the whole restore too: kills after it must find the tree whole.
    std::this_thread::sleep_for(
        std::chrono::microseconds(std::uniform_int_distribution<int64_t>(0, span.count() * 5 / 4)(rng)));
    kill(group ? -ckpt : ckpt, SIGKILL);
    CkptRun r = h.wait_ckpt(ckpt);
    ASSERT_FALSE(WIFEXITED(r.status) && r.exit_code() != 0) << "ckpt failed on its own: " << r.err;
    losses += fmt::format("round {}: ", i);
    switch (settle(&losses)) {
      case After::Whole: finished++, stop_verified(fmt::format("round {}", i)); break;
      case After::Gone: kills++; break;
      case After::Lost: lost++; break;
    }
  }
  fmt::print("restore kill loop: {} kills, {} restores finished first, {} lost\n", kills, finished, lost);
  EXPECT_EQ(lost, 0) << losses;
}

// The same for one task of 200 threads, which its restore makes in two
// streams at once (restore/spawn.cc): killed anywhere, the task comes back
// with every thread, untraced, or not at all.
TEST(RestoreKillLoopThreads, TaskWholeOrGone) {
  Harness h;
  const pid_t pid = h.dump_workload("threads", {"200"});
  ASSERT_GT(pid, 0);
  const std::string log = h.workload_log("threads");
  struct stat st;
  ASSERT_EQ(stat(log.c_str(), &st), 0);
  const std::vector<std::string> restore = {"restore", "-D", h.images(), "-d"};
  const auto threads = [&] {
    std::error_code ec;
    std::filesystem::directory_iterator it(fmt::format("/proc/{}/task", pid), ec);
    int n = 0, traced = 0;
    for (; !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
      const pid_t tid = std::atoi(it->path().filename().c_str());
      n++;
      traced += tracer_of(tid) != 0 || dying(tid);
    }
    return n - traced;  // untraced, not killed
  };
  const auto gone = [&] {
    waitpid(pid, nullptr, WNOHANG | __WALL);
    return kill(pid, 0) < 0 && errno == ESRCH;
  };
  // Whole: the main thread and its 200 workers.
  const auto whole = [&] { return threads() == 201 && proc_state(pid) != 'Z'; };
  ASSERT_EQ(truncate(log.c_str(), st.st_size), 0);
  auto t0 = Clock::now();
  CkptRun full = h.ckpt(restore);
  ASSERT_EQ(full.exit_code(), 0) << full.err;
  const auto span = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t0);
  ASSERT_TRUE(wait_until(whole)) << threads() << " threads running after a whole restore";
  kill(pid, SIGKILL);
  ASSERT_TRUE(wait_until(gone));

  std::mt19937 rng(std::random_device{}());
  int kills = 0, finished = 0, lost = 0;
  std::string losses;
  for (int i = 0; i < rounds() && !lost; i++) {
    ASSERT_EQ(truncate(log.c_str(), st.st_size), 0);
    const pid_t ckpt = h.ckpt_background(restore);
    std::this_thread::sleep_for(
        std::chrono::microseconds(std::uniform_int_distribution<int64_t>(0, span.count() * 5 / 4)(rng)));
    kill(ckpt, SIGKILL);
    h.wait_ckpt(ckpt);
    EXPECT_TRUE(wait_until(watchers_done, std::chrono::seconds(5))) << "a commit watcher never ended";
    wait_until([&] { return gone() || whole(); }, std::chrono::seconds(5));
    if (gone()) kills++;
    else if (whole()) finished++;
    else lost++, losses += fmt::format("round {}: {} of 201 threads running, state {}\n", i, threads(), proc_state(pid));
    kill(pid, SIGKILL);
    EXPECT_TRUE(wait_until(gone)) << "round " << i;
  }
  fmt::print("200-thread restore kill loop: {} kills, {} restores finished first, {} lost\n", kills, finished, lost);
  EXPECT_EQ(lost, 0) << losses;
}

// What the loop above judges by: a task that a killed ckpt's watcher has
// just SIGKILLed still looks running until it is scheduled (a CI run took
// such a tree for whole). Here it is kept off its CPU by a real-time
// spinner while it is killed.
TEST(Judging, AKilledTaskNotYetScheduledIsDying) {
  cpu_set_t mine;
  ASSERT_EQ(sched_getaffinity(0, sizeof mine, &mine), 0);
  std::vector<int> cpus;
  for (int c = 0; c < CPU_SETSIZE; c++)
    if (CPU_ISSET(c, &mine)) cpus.push_back(c);
  if (cpus.size() < 2) GTEST_SKIP() << "needs two CPUs: one to starve, one to look from";
  cpu_set_t starved, here;
  CPU_ZERO(&starved);
  CPU_SET(cpus.back(), &starved);
  CPU_ZERO(&here);
  CPU_SET(cpus.front(), &here);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    sched_setaffinity(0, sizeof starved, &starved);
    for (;;) pause();
  }
  ASSERT_TRUE(wait_until([&] { return proc_state(child) == 'S'; }));
  EXPECT_FALSE(dying(child));
  ASSERT_EQ(sched_setaffinity(child, sizeof starved, &starved), 0);
  std::atomic<bool> spinning = false, stop = false;
  std::atomic<int> refused = 0;  // errno
  std::thread spinner([&] {
    sched_param rt{.sched_priority = 1};
    if (sched_setaffinity(0, sizeof starved, &starved) < 0 || sched_setscheduler(0, SCHED_FIFO, &rt) < 0) {
      refused = errno;
      return;
    }
    spinning = true;
    const auto end = Clock::now() + std::chrono::milliseconds(300);  // within the kernel's real-time budget
    while (!stop && Clock::now() < end) {
    }
  });
  ASSERT_EQ(sched_setaffinity(0, sizeof here, &here), 0);
  wait_until([&] { return spinning || refused; }, std::chrono::seconds(2));
  if (!spinning) {
    spinner.join();
    kill(child, SIGKILL);
    waitpid(child, nullptr, 0);
    if (refused == EPERM) GTEST_SKIP() << "no real-time priority here (a cgroup without real-time time?)";
    FAIL() << "no real-time spinner: " << strerror(refused);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(10));  // the spinner holds the CPU
  ASSERT_EQ(kill(child, SIGKILL), 0);
  const char state = proc_state(child);
  const bool seen_dying = dying(child);
  stop = true;
  spinner.join();
  sched_setaffinity(0, sizeof mine, &mine);
  int status;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  EXPECT_TRUE(state == 'R' || state == 'S') << "state " << state;
  EXPECT_TRUE(seen_dying);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
}

// The narrowest window of the loop above, hit every time: ckpt killed once
// it has let the root go and holds the others still. The root must not run
// on without its workers (src/ptrace/tree_commit.h).
TEST_F(RestoreKillLoop, KilledWhileLettingGo) {
  const pid_t ckpt = restore_held_while_letting_go({});
  ASSERT_GT(ckpt, 0);
  kill(ckpt, SIGKILL);
  h.wait_ckpt(ckpt);
  std::string losses;
  EXPECT_EQ(settle(&losses), After::Gone) << losses;
}

// The same window hit by a Ctrl-C: the terminal sends SIGINT to ckpt's
// whole process group, its watcher included, which must outlive ckpt to
// take the tree with it.
TEST_F(RestoreKillLoop, InterruptedWhileLettingGo) {
  const pid_t ckpt = restore_held_while_letting_go(own_group());  // a group of its own, as a shell's job
  ASSERT_GT(ckpt, 0);
  ASSERT_EQ(getpgid(ckpt), ckpt);
  kill(-ckpt, SIGINT);
  const CkptRun r = h.wait_ckpt(ckpt);
  EXPECT_TRUE(WIFSIGNALED(r.status) && WTERMSIG(r.status) == SIGINT) << describe_status(r.status);
  std::string losses;
  EXPECT_EQ(settle(&losses), After::Gone) << losses;
}

// The same window hit by a SIGKILL to ckpt's whole process group, as
// timeout(1) sends it: the watcher is in a group of its own.
TEST_F(RestoreKillLoop, KilledWithItsGroupWhileLettingGo) {
  const pid_t ckpt = restore_held_while_letting_go(own_group());
  ASSERT_GT(ckpt, 0);
  ASSERT_EQ(getpgid(ckpt), ckpt);
  kill(-ckpt, SIGKILL);
  h.wait_ckpt(ckpt);
  std::string losses;
  EXPECT_EQ(settle(&losses), After::Gone) << losses;
}

// A dump that ends in a kill, with ckpt killed once its checkpoint exists
// (its inventory written) and before it kills the tree: every task goes
// (none runs on without the others, its PID taken from the restore), and
// the images bring the tree back. Killed just before the inventory: the
// tree runs on, untraced, as if no dump had begun.
class DumpKill : public PreforkTree {
 protected:
  // ckpt dump, stopped at `point` for good, then SIGKILLed there, alone
  // or with its whole process group.
  void kill_dump_at(const std::string& point, bool group = false) {
    setenv("CKPT_FAULT", ("hang:" + point).c_str(), 1);
    const pid_t ckpt = h.ckpt_background({"dump", "-t", std::to_string(pid), "-D", h.images()}, own_group(group));
    unsetenv("CKPT_FAULT");
    // Its commit watcher (ptrace/tree_commit.h) is its child from before the inventory.
    ASSERT_TRUE(wait_until([&] { return proc_state(ckpt) == 'S' && tree_of(ckpt).size() > 1; }))
        << "ckpt never reached " << point;
    // A hang is a pause(): sleeping, and no ptrace stop of the tree's is left to take.
    ASSERT_TRUE(wait_until([&] { return read_text(fmt::format("/proc/{}/wchan", ckpt)).ends_with("sys_pause"); }))
        << "ckpt never paused at " << point;
    ASSERT_TRUE(!group || getpgid(ckpt) == ckpt);
    kill(group ? -ckpt : ckpt, SIGKILL);
    h.wait_ckpt(ckpt);
  }

  void expect_killed_and_restorable() {
    ASSERT_EQ(access((h.images() + "/inventory.img").c_str(), F_OK), 0);
    const int st = h.wait_child(pid);
    EXPECT_TRUE(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL) << describe_status(st);
    EXPECT_TRUE(wait_until([&] {
      return std::ranges::all_of(tasks, [](pid_t p) { waitpid(p, nullptr, WNOHANG | __WALL); return kill(p, 0) < 0; });
    })) << "a task of the tree runs on without its root";
    reap_all(tasks);

    CkptRun back = h.ckpt({"restore", "-D", h.images(), "-d"});
    ASSERT_EQ(back.exit_code(), 0) << back.err;
    kill(pid, SIGTERM);
    const int end = h.wait_child(pid);
    EXPECT_TRUE(WIFEXITED(end) && WEXITSTATUS(end) == 0) << describe_status(end) << read_text(h.workload_log("prefork"));
    reap_all(tasks);
  }
};

TEST_F(DumpKill, KilledOnceTheCheckpointExists) {
  ASSERT_NO_FATAL_FAILURE(kill_dump_at("kill"));
  expect_killed_and_restorable();
}

// The same, with ckpt's whole process group (timeout(1)'s SIGKILL).
TEST_F(DumpKill, KilledWithItsGroupOnceTheCheckpointExists) {
  ASSERT_NO_FATAL_FAILURE(kill_dump_at("kill", true));
  expect_killed_and_restorable();
}

TEST_F(DumpKill, KilledJustBeforeTheCheckpoint) {
  ASSERT_NO_FATAL_FAILURE(kill_dump_at("images"));
  EXPECT_NE(access((h.images() + "/inventory.img").c_str(), F_OK), 0);
  EXPECT_TRUE(wait_until([&] {
    return std::ranges::all_of(tasks, [](pid_t p) { return alive(p) && tracer_of(p) == 0; });
  })) << "a task of the tree did not run on untraced";
  kill(pid, SIGTERM);
  const int end = h.wait_child(pid);
  EXPECT_TRUE(WIFEXITED(end) && WEXITSTATUS(end) == 0) << describe_status(end) << read_text(h.workload_log("prefork"));
  reap_all(tasks);
}

}  // namespace
}  // namespace e2e
