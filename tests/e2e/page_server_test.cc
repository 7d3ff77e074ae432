// ckpt page-server and dump --page-server (image/page_wire.h): a dump
// whose pages go over TCP restores like any other; a stream cut on either
// side leaves nothing a restore accepts, and the process running.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <fstream>
#include <string>
#include <vector>

#include "fmt/format.h"
#include "harness.h"

using namespace e2e;

namespace {

const std::string kWorkload = "dirtier";

class PageServer : public ::testing::TestWithParam<bool> {};

TEST_P(PageServer, DumpThroughTheServerRestores) {
  Harness h;
  pid_t pid = h.start_workload(kWorkload, {"64", "16"});
  ASSERT_GT(pid, 0);
  PageServerRun srv(h, h.images());
  std::vector<std::string> dump = {"dump", "-t", std::to_string(pid), "-D", h.images(), "-o", "dump.log", "-v4"};
  for (const std::string& f : srv.flags()) dump.push_back(f);
  CkptRun d = h.ckpt(dump);
  ASSERT_EQ(d.exit_code(), 0) << d.err << read_text(h.images() + "/dump.log");
  CkptRun s = h.wait_ckpt(srv.pid);
  EXPECT_EQ(s.exit_code(), 0) << s.err;
  h.wait_child(pid);

  const std::string pidfile = h.dir() + "/restored.pid";
  std::vector<std::string> rst = {"restore", "-D", h.images(), "--pidfile", pidfile};
  if (!GetParam()) rst.push_back("--no-breakpoints");
  pid_t r = h.ckpt_background(rst);
  ASSERT_TRUE(h.wait_restored(pid, pidfile));
  ASSERT_TRUE(wait_ran_on(pid));
  kill(pid, SIGTERM);
  CkptRun rr = h.wait_ckpt(r);
  EXPECT_EQ(rr.exit_code(), 0) << read_text(h.workload_log(kWorkload)) << rr.err;
  EXPECT_NE(read_text(h.workload_log(kWorkload)).find("PASS"), std::string::npos);
}

INSTANTIATE_TEST_SUITE_P(Modes, PageServer, ::testing::Bool(),
                         [](const auto& i) { return i.param ? "breakpoint" : "syscalltrace"; });

// The server dies while the dump has the process frozen (before its pages
// go out): the dump fails,
// the process runs on untouched, and nothing in the directory is a
// checkpoint.
TEST(PageServerCut, ServerKilledDuringTheDump) {
  Harness h;
  pid_t pid = h.start_workload(kWorkload, {"64", "16"});
  ASSERT_GT(pid, 0);
  PageServerRun srv(h, h.images());
  setenv("CKPT_FAULT", "slow:parasite", 1);
  std::vector<std::string> dump = {"dump", "-t", std::to_string(pid), "-D", h.images()};
  for (const std::string& f : srv.flags()) dump.push_back(f);
  pid_t d = h.ckpt_background(dump);
  unsetenv("CKPT_FAULT");
  ASSERT_TRUE(wait_for_parasite(pid, d));
  kill(srv.pid, SIGKILL);
  h.wait_ckpt(srv.pid);
  CkptRun dr = h.wait_ckpt(d);
  EXPECT_NE(dr.exit_code(), 0);
  EXPECT_NE(dr.err.find("page server"), std::string::npos) << dr.err;
  ASSERT_TRUE(wait_ran_on(pid));
  EXPECT_EQ(tracer_of(pid), 0);
  EXPECT_FALSE(maps_but_parasite(pid).second);
  EXPECT_NE(access((h.images() + "/inventory.img").c_str(), F_OK), 0);
  CkptRun r = h.ckpt({"restore", "-D", h.images()});
  EXPECT_NE(r.exit_code(), 0);
  kill(pid, SIGTERM);
  int st = h.wait_child(pid);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << read_text(h.workload_log(kWorkload));
}

// The dump dies mid-stream: the server keeps no part of it.
TEST(PageServerCut, DumpKilledMidStream) {
  Harness h;
  pid_t pid = h.start_workload(kWorkload, {"64", "16"});
  ASSERT_GT(pid, 0);
  PageServerRun srv(h, h.images());
  setenv("CKPT_FAULT", "hang:memory", 1);
  std::vector<std::string> dump = {"dump", "-t", std::to_string(pid), "-D", h.images()};
  for (const std::string& f : srv.flags()) dump.push_back(f);
  pid_t d = h.ckpt_background(dump);
  unsetenv("CKPT_FAULT");
  const std::string tmp = fmt::format("{}/.pages-{}.img.tmp", h.images(), pid);
  ASSERT_TRUE(wait_until([&] { return access(tmp.c_str(), F_OK) == 0; })) << "the stream never began";
  kill(d, SIGKILL);
  h.wait_ckpt(d);
  CkptRun s = h.wait_ckpt(srv.pid);
  EXPECT_NE(s.exit_code(), 0);
  EXPECT_NE(access(tmp.c_str(), F_OK), 0);
  EXPECT_NE(access(fmt::format("{}/pages-{}.img", h.images(), pid).c_str(), F_OK), 0);
  // The process gets rid of the parasite by itself and runs on.
  ASSERT_TRUE(wait_ran_on(pid));
  kill(pid, SIGTERM);
  int st = h.wait_child(pid);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << read_text(h.workload_log(kWorkload));
}

}  // namespace
