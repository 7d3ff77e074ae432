// Every workload dumped and restored, in both completion modes; with
// --leave-running the original must go on correctly too. A workload verifies
// itself on SIGTERM and exits 0 ("PASS") only if its state survived; ckpt
// restore, its parent, exits with that status.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <set>
#include <sstream>

#include "harness.h"
#include "ptrace/completion.h"

namespace e2e {
namespace {

struct Case {
  std::string workload;
  std::vector<std::string> args;
  bool breakpoints;
  bool leave_running;
  std::string status_line = "";  // a line /proc/PID/status must hold after restore
  int hugepages = 0;             // free 2 MiB huge pages it needs (nr_hugepages raised, put back after)
  bool ignores_sigtrap = false;  // completed by syscall tracing even when breakpoints are asked for
  // With leave_running: once the original has passed, its images are
  // restored and verify again (the files it changed put back as dumped).
  bool restore_after = false;
};

// The test's name, and the parameter as gtest prints it (else "96-byte object <...>").
void PrintTo(const Case& c, std::ostream* os) {
  *os << fmt::format("{}{}_{}{}", c.workload, c.args.empty() ? "" : c.args[0],
                     c.breakpoints ? "breakpoint" : "syscalltrace", c.leave_running ? "_leaverunning" : "");
}
std::string name_of(const ::testing::TestParamInfo<Case>& i) { return ::testing::PrintToString(i.param); }

class Workload : public ::testing::TestWithParam<Case> {};

// Its own work goes on: its loop went round (harness.h: wait_ran_on).
::testing::AssertionResult runs_on(pid_t pid) {
  if (wait_ran_on(pid)) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "the workload did not run on: state " << proc_state(pid) << ", tracer "
                                       << tracer_of(pid);
}

// Each VMA's range and its VmFlags from /proc/PID/smaps, one line each:
// the flags maps does not show (mlock, madvise, MAP_DROPPABLE, mseal...).
std::string vmflags_of(pid_t pid) {
  const std::string smaps = read_text(fmt::format("/proc/{}/smaps", pid));
  std::string out, range;
  for (size_t at = 0, end; at < smaps.size(); at = end + 1) {
    end = smaps.find('\n', at);
    if (end == std::string::npos) end = smaps.size();
    const std::string line = smaps.substr(at, end - at);
    if (line.starts_with("VmFlags:")) out += range + line.substr(8) + "\n";
    else if (!line.empty() && std::isxdigit(static_cast<unsigned char>(line[0])) && line.find('-') != std::string::npos &&
             !std::isupper(static_cast<unsigned char>(line[0])))
      range = line.substr(0, line.find(' '));
  }
  return out;
}

// /proc/PID/maps, but for the inode of the objects restore creates anew,
// whose number it can't choose: anonymous hugetlb memory (each MAP_HUGETLB
// mmap gets a new unlinked file of the kernel's hugetlbfs), anonymous shared
// memory and memfds.
std::string maps_of(pid_t pid) {
  std::string out;
  std::istringstream in(read_text(fmt::format("/proc/{}/maps", pid)));
  for (std::string line; std::getline(in, line);) {
    std::istringstream f(line);
    std::string range, perms, off, dev, inode, name;
    f >> range >> perms >> off >> dev >> inode >> std::ws;
    std::getline(f, name);
    if (name.ends_with(" (deleted)") &&
        (name.starts_with("/anon_hugepage ") || name.starts_with("/memfd:") || name.starts_with("/dev/zero ")))
      line = fmt::format("{} {} {} {} (inode) {}", range, perms, off, dev, name);
    out += line + "\n";
  }
  return out;
}

// Raises /proc/sys/vm/nr_hugepages by n 2 MiB pages, and puts it back.
class HugePages {
 public:
  explicit HugePages(int n) : before_(n ? std::stol(read_text(kKnob)) : -1) {
    if (n) std::ofstream(kKnob) << before_ + n;
  }
  ~HugePages() {
    if (before_ >= 0) std::ofstream(kKnob) << before_;
  }
  static long free_pages() {
    const std::string f = read_text("/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages");
    return f.empty() ? 0 : std::stol(f);
  }

 private:
  static constexpr const char* kKnob = "/proc/sys/vm/nr_hugepages";
  long before_;
};

TEST_P(Workload, DumpRestoreVerify) {
  const Case& c = GetParam();
  HugePages huge(c.hugepages);
  if (c.hugepages && HugePages::free_pages() < c.hugepages)
    GTEST_SKIP() << "the kernel could not allocate " << c.hugepages << " 2 MiB huge pages";
  Harness h;
  pid_t pid = h.start_workload(c.workload, c.args);
  ASSERT_GT(pid, 0);
  ASSERT_TRUE(runs_on(pid)) << "once ready";
  const std::string maps_before = maps_of(pid);
  const std::string vmflags_before = vmflags_of(pid);
  const std::vector<pid_t> tasks = tree_of(pid);  // a tree workload's (ptypair)

  std::vector<std::string> dump = {"dump", "-t", std::to_string(pid), "-D", h.images(), "-v4", "-o", "dump.log"};
  if (c.leave_running) dump.push_back("--leave-running");
  CkptRun d = h.ckpt(dump);
  ASSERT_EQ(d.exit_code(), 0) << d.err << read_text(h.images() + "/dump.log");

  if (c.leave_running) {
    // The original runs on, unharmed, and verifies itself.
    ASSERT_TRUE(runs_on(pid)) << "after dump --leave-running";
    EXPECT_EQ(tracer_of(pid), 0);
    EXPECT_EQ(maps_of(pid), maps_before);
    EXPECT_EQ(vmflags_of(pid), vmflags_before);
    const FilesAsDumped files(h.dir());
    kill(pid, SIGTERM);
    int st = h.wait_child(pid);
    ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << read_text(h.workload_log(c.workload));
    // Its verification changed files the image refers to: put back for a
    // restore of kinds of files (a dump that leaves the task running must
    // not take from the images what it leaves in the task); the other
    // variants restore the rest.
    if (!c.restore_after) return;
    files.put_back();
  } else {
    int st = h.wait_child(pid);
    EXPECT_TRUE(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL) << "dump should kill the process";
    // Its descendants are this subreaper's to reap: their PIDs must be free.
    for (pid_t k : tasks)
      wait_until([&] { return waitpid(k, nullptr, WNOHANG) == k || (kill(k, 0) < 0 && errno == ESRCH); });
  }

  const std::string pidfile = h.dir() + "/restored.pid";
  std::vector<std::string> rst = {"restore", "-D", h.images(), "-v4", "-o", "restore.log", "--stats", "--pidfile",
                                  pidfile};
  if (!c.breakpoints) rst.push_back("--no-breakpoints");
  pid_t r = h.ckpt_background(rst);
  ASSERT_TRUE(h.wait_restored(pid, pidfile))
      << read_text(h.images() + "/restore.log");
  ASSERT_TRUE(runs_on(pid)) << "after restore";
  EXPECT_EQ(maps_of(pid), maps_before) << "maps differ after restore";
  EXPECT_EQ(vmflags_of(pid), vmflags_before) << "smaps VmFlags differ after restore";
  if (!c.status_line.empty()) {
    EXPECT_NE(read_text(fmt::format("/proc/{}/status", pid)).find(c.status_line), std::string::npos) << c.status_line;
  }
  kill(pid, SIGTERM);
  CkptRun rr = h.wait_ckpt(r);
  EXPECT_EQ(rr.exit_code(), 0) << "workload log:\n"
                               << read_text(h.workload_log(c.workload)) << "\nckpt:\n"
                               << rr.err << read_text(h.images() + "/restore.log");
  EXPECT_NE(read_text(h.workload_log(c.workload)).find("PASS"), std::string::npos);
  // Ptrace stops of the completion (harness.h); where breakpoints don't
  // fire (ckpt check says so) ckpt traces syscalls, with the same stops.
  const bool bp = c.breakpoints && !c.ignores_sigtrap && ckpt::probe_breakpoints().usable;
  const std::map<pid_t, size_t> threads = expect_completion_stops(h.images(), bp);
  EXPECT_TRUE(threads.contains(pid)) << "no completion stops recorded for pid " << pid;
}

// Hugetlb memory restored where the machine has too few huge pages: the
// restore fails before any task exists and names the pool that ran out.
TEST(Hugetlb, RestoreWithoutHugePagesNamesThePool) {
  Harness h;
  pid_t pid = 0;
  {
    HugePages huge(11);
    if (HugePages::free_pages() < 11) GTEST_SKIP() << "the kernel could not allocate 11 2 MiB huge pages";
    pid = h.start_workload("hugetlb");
    ASSERT_GT(pid, 0);
    CkptRun d = h.ckpt({"dump", "-t", std::to_string(pid), "-D", h.images()});
    ASSERT_EQ(d.exit_code(), 0) << d.err;
    h.wait_child(pid);
  }  // the pool shrinks back
  if (HugePages::free_pages() >= 2) GTEST_SKIP() << "this machine has huge pages of its own to spare";
  CkptRun r = h.ckpt({"restore", "-D", h.images()});
  EXPECT_NE(r.exit_code(), 0);
  EXPECT_NE(r.err.find("hugetlb memory of 2048 kB pages: /sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages "
                       "must have 2 free"),
            std::string::npos) << r.err;
  EXPECT_NE(kill(pid, 0), 0) << "a task of the failed restore is left";
}

std::vector<Case> cases() {
  std::vector<Case> out;
  const std::vector<std::pair<std::string, std::vector<std::string>>> wl = {
      {"counter", {}}, {"heap", {"256"}}, {"regs", {}}, {"vmas", {}},
      {"signals", {}}, {"files", {}},     {"vdso", {}}, {"rseq", {}},
      {"threads", {"8"}}, {"blocked", {}}, {"procstate", {}}, {"timers", {}},
      {"seccomp", {}}, {"creds", {}}, {"sigstate", {}}, {"rseqcs", {}}, {"trap", {}}, {"sharedmap", {}}, {"sched", {}},
      {"vmaflags", {}}, {"membarrier", {}}, {"prctlstate", {}},
      {"ghosts", {}}, {"inotify", {}}, {"unixsk", {}}, {"eventfds", {}}, {"pipes", {}}, {"epoll", {}},
      {"ptypair", {}}, {"inetsk", {}}, {"netlinksk", {}}, {"sysvshm", {}}, {"sysvshm", {"rmid"}}, {"pidfds", {}},
      {"procfiles", {}}, {"memdevs", {}}, {"fanotify", {}}, {"threadmodes", {}}, {"numa", {}}};
  for (const auto& [name, args] : wl)
    for (bool bp : {true, false}) out.push_back({name, args, bp, false});
  // The kinds of files (docs/state.md): restored after --leave-running too.
  const std::set<std::string> files = {"files", "ghosts", "inotify", "unixsk", "eventfds", "pipes",
                                       "epoll", "pidfds", "procfiles", "memdevs", "fanotify"};
  for (const auto& [name, args] : wl) {
    out.push_back({name, args, true, true});
    out.back().restore_after = files.contains(name);
  }
  for (bool bp : {true, false}) out.push_back({"threads", {"200"}, bp, false});
  // It can't look at itself in strict mode: the test does.
  for (bool bp : {true, false}) out.push_back({"strict", {}, bp, false, "\nSeccomp:\t1\n"});
  for (bool bp : {true, false}) out.push_back({"hugetlb", {}, bp, false, "", 11});
  out.push_back({"hugetlb", {}, true, true, "", 11});
  // SIGTRAP ignored: syscall tracing from a SIGSTOP barrier in both modes.
  for (bool bp : {true, false}) out.push_back({"trap", {"ignore"}, bp, false, "\nSigIgn:\t0000000000000010\n", 0, true});
  return out;
}

INSTANTIATE_TEST_SUITE_P(All, Workload, ::testing::ValuesIn(cases()), name_of);

}  // namespace
}  // namespace e2e
