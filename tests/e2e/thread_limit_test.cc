// A restore that can't make every thread of a task fails and leaves nothing.
// Many threads are made by two streams at once (restore/spawn.cc): the main
// thread's and its first thread's; a limit on the tasks of ckpt's cgroup
// stops one of them, or both, part way.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include "harness.h"

namespace e2e {
namespace {

// A hierarchy with the pids controller: cgroup v1's own, or v2's with it
// enabled for children; empty if none.
std::string pids_hierarchy() {
  if (access("/sys/fs/cgroup/pids/cgroup.procs", W_OK) == 0) return "/sys/fs/cgroup/pids";
  if (read_text("/sys/fs/cgroup/cgroup.subtree_control").find("pids") != std::string::npos) return "/sys/fs/cgroup";
  return "";
}

bool write_text(const std::string& path, const std::string& text) {
  std::ofstream f(path);
  f << text;
  f.close();
  return f.good();
}

TEST(ThreadLimit, AThreadThatCantBeMadeFailsTheRestoreAndLeavesNothing) {
  const std::string root = pids_hierarchy();
  if (root.empty()) GTEST_SKIP() << "no pids cgroup controller to limit the restore with";
  for (const char* limit : {"150", "60", "190"}) {
    Harness h;
    const pid_t pid = h.dump_workload("threads", {"200"});
    ASSERT_GT(pid, 0);
    const std::string group = fmt::format("{}/ckpt-e2e-{}", root, getpid());
    ASSERT_TRUE(mkdir(group.c_str(), 0755) == 0 || errno == EEXIST) << group << ": " << strerror(errno);
    ASSERT_TRUE(write_text(group + "/pids.max", limit)) << group;
    const std::string join = fmt::format("echo $$ > {}/cgroup.procs && exec \"$@\"", group);
    const pid_t r = h.ckpt_background({"restore", "-D", h.images(), "-v4", "-o", "restore.log"},
                                      {"/bin/sh", "-c", join, "sh"});
    ASSERT_GT(r, 0);
    CkptRun done = h.wait_ckpt(r);
    EXPECT_NE(done.exit_code(), 0) << "limit " << limit;
    EXPECT_NE(done.err.find("create a thread"), std::string::npos) << "limit " << limit << ": " << done.err;
    EXPECT_TRUE(wait_until([&] {
      waitpid(pid, nullptr, WNOHANG | __WALL);
      return kill(pid, 0) < 0 && errno == ESRCH;
    })) << "limit " << limit << ": a restore that failed left its task";
    EXPECT_TRUE(wait_until([&] { return read_text(group + "/cgroup.procs").empty(); })) << read_text(group + "/cgroup.procs");
    EXPECT_EQ(rmdir(group.c_str()), 0) << strerror(errno);
  }
}

}  // namespace
}  // namespace e2e
