// Iterative dumps: pre-dump rounds while the process keeps writing, a last
// dump --prev-images-dir --track-mem, restore through the chain of parents
// (docs/migration.md). The workload (wl_dirtier) checks every page itself.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <tuple>
#include <vector>

#include "fmt/format.h"
#include "harness.h"

using namespace e2e;

namespace {

const std::string kWorkload = "dirtier";

// The VMAs of `pid` registered with userfaultfd write-protection.
int uffd_wp_vmas(pid_t pid) {
  std::ifstream in(fmt::format("/proc/{}/smaps", pid));
  int n = 0;
  for (std::string line; std::getline(in, line);)
    if (line.starts_with("VmFlags:") && line.find(" uw") != std::string::npos) n++;
  return n;
}

uint64_t pages_written(const std::string& dir) {
  auto s = read_stats(dir, "stats-dump.img");
  return s ? s->pages_written() : 0;
}

struct Chain {
  Harness h;
  pid_t pid = -1;
  bool page_server = false;  // each round's pages go through a ckpt page-server into its directory
  std::string dir(const std::string& name) const { return h.dir() + "/" + name; }

  // Runs `args` of round `name`, through a page server if asked.
  CkptRun round(const std::string& name, std::vector<std::string> args) {
    if (!page_server) return h.ckpt(args);
    mkdir(dir(name).c_str(), 0700);
    PageServerRun srv(h, dir(name));
    for (const std::string& f : srv.flags()) args.push_back(f);
    CkptRun r = h.ckpt(args);
    CkptRun s = h.wait_ckpt(srv.pid);
    EXPECT_EQ(s.exit_code(), 0) << "page server of " << name << ": " << s.err;
    return r;
  }

  ::testing::AssertionResult pre_dump(const std::string& name, const std::string& prev = "") {
    std::vector<std::string> args = {"pre-dump", "-t", std::to_string(pid), "-D", dir(name), "-v4", "-o", "pre.log",
                                     "--stats"};
    if (!prev.empty()) args.insert(args.end(), {"--prev-images-dir", "../" + prev});
    CkptRun r = round(name, args);
    if (r.exit_code() != 0)
      return ::testing::AssertionFailure() << "pre-dump " << name << ": " << r.err << read_text(dir(name) + "/pre.log");
    // The process goes on, untraced, between rounds.
    if (tracer_of(pid) != 0) return ::testing::AssertionFailure() << "traced after pre-dump " << name;
    if (!wait_ran_on(pid)) return ::testing::AssertionFailure() << "does not run after pre-dump " << name;
    return ::testing::AssertionSuccess();
  }

  CkptRun dump(const std::string& name, const std::string& prev, std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"dump", "-t", std::to_string(pid), "-D", dir(name), "-v4", "-o", "dump.log",
                                     "--stats", "--prev-images-dir", "../" + prev, "--track-mem"};
    args.insert(args.end(), extra.begin(), extra.end());
    return round(name, args);
  }
};

class PreDump : public ::testing::TestWithParam<bool> {};
// Completion mode, and whether the pages go through a page server.
class PreDumpRounds : public ::testing::TestWithParam<std::tuple<bool, bool>> {};

// Three rounds while it writes ~16 MiB/s into 256 MiB, the dump, the
// restore from the chain: every page is the one the process wrote last.
// (At 64 MiB/s a round that takes 3 s on a loaded machine sees half the
// pages written since the one before, and "less than half" fails.)
TEST_P(PreDumpRounds, ThreeRoundsThenDumpThenRestore) {
  const auto [breakpoints, page_server] = GetParam();
  Chain c;
  c.page_server = page_server;
  c.pid = c.h.start_workload(kWorkload, {"256", "4"});
  ASSERT_GT(c.pid, 0);
  ASSERT_TRUE(c.pre_dump("r1"));
  ASSERT_TRUE(c.pre_dump("r2", "r1"));
  ASSERT_TRUE(c.pre_dump("r3", "r2"));
  // Later rounds store what was written since: less than the whole.
  const uint64_t all = 256 << 8;
  EXPECT_GE(pages_written(c.dir("r1")), all);
  EXPECT_LT(pages_written(c.dir("r2")), all / 2);
  EXPECT_LT(pages_written(c.dir("r3")), all / 2);
  EXPECT_GT(uffd_wp_vmas(c.pid), 0) << "tracking armed between rounds";
  CkptRun vr = c.h.ckpt({"verify", c.dir("r3")});
  EXPECT_EQ(vr.exit_code(), 0) << vr.err;
  EXPECT_NE(vr.out.find("pre-dump"), std::string::npos) << vr.out;

  CkptRun d = c.dump("d", "r3");
  ASSERT_EQ(d.exit_code(), 0) << d.err << read_text(c.dir("d") + "/dump.log");
  EXPECT_LT(pages_written(c.dir("d")), all / 2);
  int st = c.h.wait_child(c.pid);
  EXPECT_TRUE(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL) << "dump should kill the process";
  // The keeper went with the tracking: no socket left.
  EXPECT_FALSE(access((c.dir("r3") + "/uffd-keeper.sock").c_str(), F_OK) == 0);

  CkptRun v = c.h.ckpt({"verify", c.dir("d")});
  EXPECT_EQ(v.exit_code(), 0) << v.err << v.out;

  const std::string pidfile = c.h.dir() + "/restored.pid";
  std::vector<std::string> rst = {"restore", "-D", c.dir("d"), "-v4", "-o", "restore.log", "--pidfile", pidfile};
  if (!breakpoints) rst.push_back("--no-breakpoints");
  pid_t r = c.h.ckpt_background(rst);
  ASSERT_TRUE(c.h.wait_restored(c.pid, pidfile)) << read_text(c.dir("d") + "/restore.log");
  ASSERT_TRUE(wait_ran_on(c.pid)) << "after restore";
  EXPECT_EQ(uffd_wp_vmas(c.pid), 0) << "the restored process carries no registration";
  EXPECT_EQ(fds_of(c.pid).find("userfaultfd"), std::string::npos) << fds_of(c.pid);
  kill(c.pid, SIGTERM);
  CkptRun rr = c.h.wait_ckpt(r);
  EXPECT_EQ(rr.exit_code(), 0) << "workload log:\n" << read_text(c.h.workload_log(kWorkload)) << "\nckpt:\n" << rr.err
                               << read_text(c.dir("d") + "/restore.log");
  EXPECT_NE(read_text(c.h.workload_log(kWorkload)).find("PASS"), std::string::npos)
      << read_text(c.h.workload_log(kWorkload));
}

// A dump --leave-running ends the tracking: the process goes on with no
// write-protection left, and verifies itself.
TEST_P(PreDump, DumpLeaveRunningEndsTheTracking) {
  Chain c;
  c.pid = c.h.start_workload(kWorkload, {"64", "16"});
  ASSERT_GT(c.pid, 0);
  ASSERT_TRUE(c.pre_dump("r1"));
  ASSERT_GT(uffd_wp_vmas(c.pid), 0);
  CkptRun d = c.dump("d", "r1", {"--leave-running"});
  ASSERT_EQ(d.exit_code(), 0) << d.err << read_text(c.dir("d") + "/dump.log");
  ASSERT_TRUE(wait_ran_on(c.pid));
  EXPECT_EQ(uffd_wp_vmas(c.pid), 0);
  kill(c.pid, SIGTERM);
  int st = c.h.wait_child(c.pid);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << read_text(c.h.workload_log(kWorkload));
}

INSTANTIATE_TEST_SUITE_P(Modes, PreDumpRounds, ::testing::Combine(::testing::Bool(), ::testing::Bool()),
                         [](const auto& i) {
                           return std::string(std::get<0>(i.param) ? "breakpoint" : "syscalltrace") +
                                  (std::get<1>(i.param) ? "_pageserver" : "_local");
                         });
INSTANTIATE_TEST_SUITE_P(Modes, PreDump, ::testing::Bool(),
                         [](const auto& i) { return i.param ? "breakpoint" : "syscalltrace"; });

// A chain whose parent is missing or damaged is refused before anything
// runs, naming the parent; the dump's own process is gone (killed by the
// dump), so its pid must stay free.
class BrokenChain : public ::testing::Test {
 protected:
  void SetUp() override {
    c.pid = c.h.start_workload(kWorkload, {"32", "16"});
    ASSERT_GT(c.pid, 0);
    ASSERT_TRUE(c.pre_dump("r1"));
    ASSERT_TRUE(c.pre_dump("r2", "r1"));
    CkptRun d = c.dump("d", "r2");
    ASSERT_EQ(d.exit_code(), 0) << d.err << read_text(c.dir("d") + "/dump.log");
    c.h.wait_child(c.pid);
  }
  CkptRun restore() { return c.h.ckpt({"restore", "-D", c.dir("d")}); }
  Chain c;
};

TEST_F(BrokenChain, ParentMissing) {
  ASSERT_EQ(rename(c.dir("r1").c_str(), c.dir("gone").c_str()), 0);
  CkptRun r = restore();
  EXPECT_NE(r.exit_code(), 0);
  EXPECT_NE(r.err.find("parent checkpoint ../r1"), std::string::npos) << r.err;
  EXPECT_FALSE(alive(c.pid));
}

TEST_F(BrokenChain, ParentDamaged) {
  // A byte of the first round's page data: its checksum no longer matches.
  const std::string pages = c.dir("r1") + "/pages-" + std::to_string(c.pid) + ".img";
  ASSERT_TRUE(flip_byte(pages, 4096 + 100));
  CkptRun r = restore();
  EXPECT_NE(r.exit_code(), 0);
  EXPECT_NE(r.err.find("checksum"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(pages), std::string::npos) << r.err;
  CkptRun v = c.h.ckpt({"verify", c.dir("d")});
  EXPECT_NE(v.exit_code(), 0);
  EXPECT_NE(v.err.find(pages), std::string::npos) << v.err;
  EXPECT_FALSE(alive(c.pid));
}

TEST_F(BrokenChain, PreDumpIsNotRestored) {
  CkptRun r = c.h.ckpt({"restore", "-D", c.dir("r2")});
  EXPECT_NE(r.exit_code(), 0);
  EXPECT_NE(r.err.find("is a pre-dump"), std::string::npos) << r.err;
}

// The process killed between rounds: the keeper lets go of the tracking,
// and the next round says the process is gone.
TEST(PreDumpKilled, BetweenRounds) {
  Chain c;
  c.pid = c.h.start_workload(kWorkload, {"32", "16"});
  ASSERT_GT(c.pid, 0);
  ASSERT_TRUE(c.pre_dump("r1"));
  const std::string sock = c.dir("r1") + "/uffd-keeper.sock";
  ASSERT_EQ(access(sock.c_str(), F_OK), 0);
  kill(c.pid, SIGKILL);
  c.h.wait_child(c.pid);
  EXPECT_TRUE(wait_until([&] { return access(sock.c_str(), F_OK) != 0; })) << "the keeper should go with the process";
  CkptRun r = c.h.ckpt({"pre-dump", "-t", std::to_string(c.pid), "-D", c.dir("r2"), "--prev-images-dir", "../r1"});
  EXPECT_NE(r.exit_code(), 0);
  EXPECT_NE(r.err.find(fmt::format("no process with pid {}", c.pid)), std::string::npos) << r.err;
}

// A failed round leaves the process as it was: no tracking, no parasite.
TEST(PreDumpFails, LeavesNoTracking) {
  Chain c;
  c.pid = c.h.start_workload(kWorkload, {"32", "16"});
  ASSERT_GT(c.pid, 0);
  ASSERT_TRUE(c.pre_dump("r1"));
  setenv("CKPT_FAULT", "memory", 1);
  CkptRun r = c.h.ckpt({"pre-dump", "-t", std::to_string(c.pid), "-D", c.dir("r2"), "--prev-images-dir", "../r1"});
  unsetenv("CKPT_FAULT");
  EXPECT_NE(r.exit_code(), 0);
  EXPECT_NE(r.err.find("injected fault"), std::string::npos) << r.err;
  ASSERT_TRUE(wait_ran_on(c.pid));
  EXPECT_EQ(tracer_of(c.pid), 0);
  EXPECT_EQ(uffd_wp_vmas(c.pid), 0) << "the failed round's tracking is gone";
  EXPECT_FALSE(maps_but_parasite(c.pid).second);
  kill(c.pid, SIGTERM);
  int st = c.h.wait_child(c.pid);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << read_text(c.h.workload_log(kWorkload));
}

}  // namespace

namespace {

// A process with a userfaultfd of its own is refused, its registration and
// memory left as they were.
TEST(PreDumpRefuses, ProcessUsingUserfaultfd) {
  Harness h;
  pid_t pid = h.start_workload("uffduser");
  ASSERT_GT(pid, 0);
  CkptRun r = h.ckpt({"pre-dump", "-t", std::to_string(pid), "-D", h.dir() + "/r1"});
  EXPECT_NE(r.exit_code(), 0);
  EXPECT_NE(r.err.find("uses userfaultfd itself"), std::string::npos) << r.err;
  EXPECT_FALSE(access((h.dir() + "/r1/inventory.img").c_str(), F_OK) == 0);
  ASSERT_TRUE(wait_ran_on(pid));
  EXPECT_EQ(tracer_of(pid), 0);
  kill(pid, SIGTERM);
  int st = h.wait_child(pid);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << read_text(h.workload_log("uffduser"));
}

}  // namespace
