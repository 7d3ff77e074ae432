// What the dump and restore options promise: --leave-stopped, -d,
// --pidfile, --restore-sibling, and the stats image.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>

#include "harness.h"

namespace e2e {
namespace {

// The task waits stopped and untraced; SIGCONT lets it go on, and on SIGTERM
// it verifies itself.
void expect_stopped_then_continues(Harness& h, pid_t pid) {
  EXPECT_TRUE(wait_state(pid, 'T')) << "state " << proc_state(pid);
  EXPECT_EQ(tracer_of(pid), 0);
  kill(pid, SIGCONT);
  EXPECT_TRUE(wait_state(pid, 'S'));
  kill(pid, SIGTERM);
  int st = h.wait_child(pid);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << read_text(h.workload_log("counter"));
}

TEST(DumpOptions, LeaveStopped) {
  Harness h;
  pid_t pid = h.start_workload("counter");
  CkptRun d = h.ckpt({"dump", "-t", std::to_string(pid), "-D", h.images(), "--leave-stopped"});
  ASSERT_EQ(d.exit_code(), 0) << d.err;
  expect_stopped_then_continues(h, pid);
}

TEST(DumpOptions, StatsImageAndShow) {
  Harness h;
  pid_t pid = h.start_workload("counter");
  CkptRun d = h.ckpt({"dump", "-t", std::to_string(pid), "-D", h.images(), "--stats"});
  ASSERT_EQ(d.exit_code(), 0) << d.err;
  EXPECT_NE(d.err.find("frozen time"), std::string::npos) << d.err;
  h.wait_child(pid);
  // Every phase of a dump is timed, and --stats prints each one. A dump
  // that kills takes no parasite out (the task dies with it): no cure.
  auto stats = read_stats(h.images(), "stats-dump.img");
  ASSERT_TRUE(stats) << stats.error().str();
  for (auto [name, ns] : {std::pair{"start-up", stats->startup_ns()}, {"proc", stats->proc_ns()},
                          {"parasite", stats->parasite_ns()}, {"files", stats->files_ns()},
                          {"images", stats->images_ns()}}) {
    EXPECT_GT(ns, 0u) << name;
    EXPECT_NE(d.err.find(fmt::format("phase {:<10}", name)), std::string::npos) << name << " in " << d.err;
  }
  EXPECT_EQ(stats->cure_ns(), 0u);
  EXPECT_EQ(d.err.find("phase cure"), std::string::npos) << d.err;
  EXPECT_EQ(stats->completion_size(), 0);
  CkptRun s = h.ckpt({"show", h.images(), "--json"});
  ASSERT_EQ(s.exit_code(), 0) << s.err;
  for (const char* key : {"\"inventory.img\"", "\"stats-dump.img\"", "\"frozen_ns\"", "\"rip\"", "\"vmas\""})
    EXPECT_NE(s.out.find(key), std::string::npos) << key;
}

// A task that runs on after its dump is cured, and the stats say how: the
// cure's phase and its ptrace stops (5, from outside: parasite.h).
TEST(DumpOptions, LeaveRunningTimesItsCure) {
  Harness h;
  pid_t pid = h.start_workload("counter");
  CkptRun d = h.ckpt({"dump", "-t", std::to_string(pid), "-D", h.images(), "--stats", "--leave-running"});
  ASSERT_EQ(d.exit_code(), 0) << d.err;
  EXPECT_NE(d.err.find("phase cure"), std::string::npos) << d.err;
  auto stats = read_stats(h.images(), "stats-dump.img");
  ASSERT_TRUE(stats) << stats.error().str();
  EXPECT_GT(stats->cure_ns(), 0u);
  ASSERT_EQ(stats->completion_size(), 1);
  EXPECT_EQ(stats->completion(0).tid(), pid);
  EXPECT_EQ(stats->completion(0).stops(), 5u);
  EXPECT_EQ(tracer_of(pid), 0);
  kill(pid, SIGTERM);
  int st = h.wait_child(pid);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << read_text(h.workload_log("counter"));
}

// Names with a quote and a backslash, in an image's content (the mapped
// executable's path) and as an image file's name (a copy of the inventory):
// the output is one valid JSON document that gives both back unchanged.
TEST(Show, JsonEscapesNames) {
  Harness h;
  const std::string weird = "we\"ird\\name";
  const std::string binary = fmt::format("{}/{}", h.dir(), weird);
  ASSERT_EQ(std::system(fmt::format("cp {}/wl_counter '{}'", CKPT_WORKLOADS, binary).c_str()), 0);
  pid_t pid = h.start_workload_at(binary, "counter");
  ASSERT_GT(pid, 0);
  CkptRun d = h.ckpt({"dump", "-t", std::to_string(pid), "-D", h.images()});
  ASSERT_EQ(d.exit_code(), 0) << d.err;
  h.wait_child(pid);
  const std::string copy = fmt::format("{}/{}.img", h.images(), weird);
  ASSERT_EQ(std::system(fmt::format("cp {}/inventory.img '{}'", h.images(), copy).c_str()), 0);

  CkptRun s = h.ckpt({"show", h.images(), "--json"});
  ASSERT_EQ(s.exit_code(), 0) << s.err;
  // Python reads it; the script spells the name with Python's escapes.
  const std::string json = h.dir() + "/show.json", check = h.dir() + "/check.py";
  std::ofstream(json) << s.out;
  std::ofstream(check) << R"(
import json, sys
out, dir, pid = sys.argv[1:]
name = 'we"ird\\name'
d = json.load(open(out))
assert d[name + ".img"]["kind"] == "inventory", sorted(d)
paths = [v["path"] for v in d[f"mm-{pid}.img"]["image"]["vmas"]]
assert f"{dir}/{name}" in paths, paths
)";
  EXPECT_EQ(std::system(fmt::format("/usr/bin/python3 {} {} {} {}", check, json, h.dir(), pid).c_str()), 0)
      << "the output is in " << json;

  // A name JSON can't carry (not UTF-8) is refused, not printed with bytes lost.
  const std::string latin1 = fmt::format("{}/\xff.img", h.images());
  ASSERT_EQ(std::system(fmt::format("cp {}/inventory.img '{}'", h.images(), latin1).c_str()), 0);
  CkptRun bad = h.ckpt({"show", h.images(), "--json"});
  EXPECT_EQ(bad.exit_code(), 1);
  EXPECT_EQ(bad.out, "");
  EXPECT_NE(bad.err.find("not UTF-8"), std::string::npos) << bad.err;
}

// `ckpt show` is ckpt-show's (CMakeLists.txt): ckpt runs the one beside
// it, and says so when there is none, rather than showing nothing.
TEST(Show, RunsTheProgramBesideCkpt) {
  Harness h;
  h.dump_workload("counter");
  const std::string bin = CKPT_BIN, alone = h.dir() + "/bin";
  ASSERT_EQ(std::system(fmt::format("mkdir {0} && cp {1} {0}/ckpt", alone, bin).c_str()), 0);
  auto show = [&] {
    std::string out;
    FILE* f = popen(fmt::format("{}/ckpt show {} 2>&1", alone, h.images()).c_str(), "r");
    for (char buf[4096]; size_t n = fread(buf, 1, sizeof buf, f);) out.append(buf, n);
    return std::pair(WEXITSTATUS(pclose(f)), out);
  };
  auto [code, out] = show();
  EXPECT_EQ(code, 1);
  EXPECT_NE(out.find(alone + "/ckpt-show"), std::string::npos) << out;
  EXPECT_NE(out.find("ENOENT"), std::string::npos) << out;

  const std::string program = bin.substr(0, bin.rfind('/')) + "/ckpt-show";
  ASSERT_EQ(std::system(fmt::format("cp {} {}/", program, alone).c_str()), 0);
  std::tie(code, out) = show();
  EXPECT_EQ(code, 0) << out;
  EXPECT_NE(out.find("=== process tree"), std::string::npos) << out;
}

TEST(RestoreOptions, DetachedWithPidfileAndLeaveStopped) {
  Harness h;
  pid_t pid = h.dump_workload("counter");
  std::string pidfile = h.dir() + "/pid";
  CkptRun r = h.ckpt({"restore", "-D", h.images(), "-d", "--leave-stopped", "--pidfile", pidfile});
  ASSERT_EQ(r.exit_code(), 0) << r.err;
  EXPECT_EQ(read_text(pidfile), fmt::format("{}\n", pid));
  // ckpt has returned; the task, reparented to us (the subreaper), waits.
  expect_stopped_then_continues(h, pid);
}

TEST(RestoreOptions, Sibling) {
  Harness h;
  pid_t pid = h.dump_workload("counter");
  CkptRun r = h.ckpt({"restore", "-D", h.images(), "--restore-sibling"});
  ASSERT_EQ(r.exit_code(), 0) << r.err;
  // A child of ckpt's parent (us), so we can wait for it.
  EXPECT_EQ(ppid_of(pid), getpid());
  kill(pid, SIGTERM);
  int st;
  ASSERT_EQ(waitpid(pid, &st, 0), pid);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

}  // namespace
}  // namespace e2e
