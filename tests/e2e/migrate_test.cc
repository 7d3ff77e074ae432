// ckpt migrate (migrate/migrate.h): a process that keeps rewriting its
// memory moves to a destination in a PID namespace of its own (so its PID
// is free there, as on another host), and checks every page after; when
// the destination can't take it, or goes away mid-way, it runs on at the
// source, unharmed.
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdio>
#include <string>
#include <vector>

#include "fmt/format.h"
#include "harness.h"

using namespace e2e;

namespace {

// 32 MiB rewritten at ~16 MiB/s: several pre-dump rounds, a small final one.
const std::vector<std::string> kDirtier = {"32", "4"};

struct Destination {
  Harness& h;
  uint16_t port = free_port();
  std::string dir;
  pid_t pid = -1;  // ckpt
  Destination(Harness& h, bool own_pidns, bool lazy = false) : h(h), dir(h.dir() + "/dst") {
    std::vector<std::string> args = {"migrate", "--listen", std::to_string(port), "--address", "127.0.0.1", "-D", dir};
    if (own_pidns) args.push_back("--pidns");
    if (lazy) args.insert(args.end(), {"--lazy-pages", "-v4"});
    pid = h.ckpt_background(args);
    EXPECT_TRUE(wait_until([&] { return listening(port); })) << "the destination never listened";
  }
  std::string to() const { return fmt::format("127.0.0.1:{}", port); }
};

bool running_untraced(pid_t pid) {
  const char s = proc_state(pid);
  return (s == 'S' || s == 'R') && tracer_of(pid) == 0;
}

class Migration : public ::testing::TestWithParam<bool> {};

// Pre-copy, and with the parameter post-copy too: the process runs there
// before its memory is in, served by the destination's lazy-pages daemon.
TEST_P(Migration, ProcessMovesToAFreshPidNamespaceAndChecksEveryPage) {
  const bool lazy = GetParam();
  Harness h;
  pid_t pid = h.start_workload("dirtier", kDirtier);
  ASSERT_GT(pid, 0);
  Destination dst(h, true, lazy);
  CkptRun r = h.ckpt({"migrate", "-t", std::to_string(pid), "--to", dst.to(), "-D", h.dir() + "/src"});
  ASSERT_EQ(r.exit_code(), 0) << r.err;
  EXPECT_NE(r.err.find(fmt::format("migrated pid {} to {} (pid {} there)", pid, dst.to(), pid)), std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("downtime"), std::string::npos) << r.err;
  EXPECT_TRUE(wait_until([&] { return !alive(pid); })) << "the source's copy still runs";
  // ckpt -> its init (PID 1 there) -> the process, with the same PID inside
  // (and post-copy, ckpt's lazy-pages daemon and watcher for a while).
  std::vector<pid_t> there;
  ASSERT_TRUE(wait_until([&] {
    for (pid_t t : tree_of(dst.pid))
      if (comm_of(t) == "ckpt-init") there = tree_of(t);
    return there.size() == 2;
  })) << there.size();
  const pid_t moved = there[1];
  EXPECT_TRUE(wait_until([&] { return running_untraced(moved); })) << proc_state(moved);
  EXPECT_NE(read_text(fmt::format("/proc/{}/status", moved)).find(fmt::format("NSpid:\t{}\t{}\n", moved, pid)),
            std::string::npos)
      << read_text(fmt::format("/proc/{}/status", moved));
  EXPECT_TRUE(wait_ran_on(moved));
  kill(moved, SIGTERM);
  CkptRun d = h.wait_ckpt(dst.pid);
  EXPECT_EQ(d.exit_code(), 0) << d.err << read_text(h.workload_log("dirtier"));
  EXPECT_NE(read_text(h.workload_log("dirtier")).find("PASS dirtier"), std::string::npos);
  EXPECT_EQ(d.err.find("every page is in") != std::string::npos, lazy) << d.err;
}

INSTANTIATE_TEST_SUITE_P(Copy, Migration, ::testing::Bool(),
                         [](const auto& i) { return i.param ? "PostCopy" : "PreCopy"; });

// The destination shares the source's PIDs: the restore there fails (the
// PID is taken, by the process itself), and the process runs on here.
TEST(Migrate, RestoreRefusedThereResumesHere) {
  Harness h;
  pid_t pid = h.start_workload("dirtier", kDirtier);
  ASSERT_GT(pid, 0);
  Destination dst(h, false);
  CkptRun r = h.ckpt({"migrate", "-t", std::to_string(pid), "--to", dst.to(), "-D", h.dir() + "/src"});
  EXPECT_NE(r.exit_code(), 0);
  EXPECT_NE(r.err.find(fmt::format("pid {}", pid)), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("it runs on here"), std::string::npos) << r.err;
  EXPECT_TRUE(running_untraced(pid)) << proc_state(pid);
  EXPECT_TRUE(wait_ran_on(pid));
  CkptRun d = h.wait_ckpt(dst.pid);
  EXPECT_NE(d.exit_code(), 0);
  kill(pid, SIGTERM);
  int st = h.wait_child(pid);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st << read_text(h.workload_log("dirtier"));
}

// The destination is killed once the first round has reached it.
TEST(Migrate, DestinationKilledMidWayResumesHere) {
  Harness h;
  pid_t pid = h.start_workload("dirtier", kDirtier);
  ASSERT_GT(pid, 0);
  Destination dst(h, false);
  pid_t src = h.ckpt_background({"migrate", "-t", std::to_string(pid), "--to", dst.to(), "-D", h.dir() + "/src"});
  struct stat st;
  ASSERT_TRUE(wait_until([&] { return stat((dst.dir + "/r1/inventory.img").c_str(), &st) == 0; }));
  kill(dst.pid, SIGKILL);
  h.wait_ckpt(dst.pid);
  CkptRun r = h.wait_ckpt(src);
  EXPECT_NE(r.exit_code(), 0);
  EXPECT_TRUE(running_untraced(pid)) << proc_state(pid) << r.err;
  EXPECT_TRUE(wait_ran_on(pid));
  kill(pid, SIGTERM);
  int s = h.wait_child(pid);
  EXPECT_TRUE(WIFEXITED(s) && WEXITSTATUS(s) == 0) << s << read_text(h.workload_log("dirtier"));
}

// tools/migrate-demo.sh, end to end: the destination is a network namespace
// of its own reached over a veth pair, the counter lands there in a PID
// namespace of its own, counts on, and at SIGTERM finds no number skipped
// or repeated (the script exits with its status).
TEST(Migrate, DemoBetweenTwoHostsOverAVethPair) {
  const std::string cmd = fmt::format("CKPT={} CKPT_WORKLOADS={} {}/tools/migrate-demo.sh 1 2>&1", ckpt_bin(),
                                      CKPT_WORKLOADS, CKPT_SOURCE_DIR);
  FILE* p = popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  char buf[4096];
  for (size_t n; (n = fread(buf, 1, sizeof buf, p)) > 0;) out.append(buf, n);
  const int st = pclose(p);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << out;
  EXPECT_NE(out.find("downtime"), std::string::npos) << out;
  EXPECT_NE(out.find("PASS counter"), std::string::npos) << out;
  // The same PID inside its new PID namespace, another outside.
  const size_t at = out.find("(NSpid: ");
  ASSERT_NE(at, std::string::npos) << out;
  pid_t outside = 0, inside = 0;
  ASSERT_EQ(sscanf(out.c_str() + at, "(NSpid: %d %d)", &outside, &inside), 2) << out;
  EXPECT_NE(outside, inside);
  EXPECT_NE(out.find(fmt::format("here: ckpt migrate -t {} ", inside)), std::string::npos) << out;
}

}  // namespace
