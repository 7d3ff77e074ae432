// A long dump or restore shows its progress on a terminal
// (base/progress.h, restore/read_progress.h), and nothing when stderr is
// not one.
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>

#include <gtest/gtest.h>

#include <string>

#include "fmt/format.h"
#include "harness.h"

using namespace e2e;

namespace {

// 8 MiB, each 1 MiB splice slowed down by 300 ms (CKPT_FAULT=slow:drain):
// a dump of over two seconds.
TEST(Progress, ShownOnATerminalOnly) {
  Harness h;
  pid_t pid = h.start_workload("dirtier", {"8", "1"});
  ASSERT_GT(pid, 0);
  const std::string out = h.dir() + "/terminal.txt";
  // script(1) runs the dump on a pseudo-terminal, as a user's shell would.
  const std::string cmd = fmt::format("CKPT_FAULT=slow:drain {} dump -R -t {} -D {}/tty", ckpt_bin(), pid, h.dir());
  const int st = system(fmt::format("/usr/bin/script -qec '{}' /dev/null > {}", cmd, out).c_str());
  ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st << read_text(out);
  const std::string shown = read_text(out);
  EXPECT_NE(shown.find(fmt::format("\rdump pid {}: ", pid)), std::string::npos) << shown;
  EXPECT_NE(shown.find(" MiB of 8."), std::string::npos) << shown;
  EXPECT_NE(shown.find("/s, "), std::string::npos) << shown;
  // The last line ends the progress (the terminal turns its \n into \r\n).
  EXPECT_NE(shown.find(" left\r\n"), std::string::npos) << shown;

  setenv("CKPT_FAULT", "slow:drain", 1);
  CkptRun r = h.ckpt({"dump", "-R", "-t", std::to_string(pid), "-D", h.dir() + "/file"});
  unsetenv("CKPT_FAULT");
  EXPECT_EQ(r.exit_code(), 0) << r.err;
  EXPECT_EQ(r.err, "");
  kill(pid, SIGTERM);
  const int s = h.wait_child(pid);
  EXPECT_TRUE(WIFEXITED(s) && WEXITSTATUS(s) == 0) << s << read_text(h.workload_log("dirtier"));
}

// A tree of 9 small tasks, each held 300 ms before its parasite is asked
// anything (CKPT_FAULT=slow:parasite): no task's dump takes a second, the
// tree's does, and its one line counts every task's pages.
TEST(Progress, TreeDumpShowsOneLine) {
  Harness h;
  const pid_t root = h.start_workload("fleet", {"8"});
  ASSERT_GT(root, 0);
  const std::string out = h.dir() + "/terminal.txt";
  const std::string cmd =
      fmt::format("CKPT_FAULT=slow:parasite {} dump -R -t {} -D {}/tty", ckpt_bin(), root, h.dir());
  const int st = system(fmt::format("/usr/bin/script -qec '{}' /dev/null > {}", cmd, out).c_str());
  ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st << read_text(out);
  const std::string shown = read_text(out);
  EXPECT_NE(shown.find(fmt::format("\rdump pid {}: ", root)), std::string::npos) << shown;
  EXPECT_NE(shown.find(" left\r\n"), std::string::npos) << shown;
  for (pid_t p : tree_of(root)) {
    if (p == root) continue;
    EXPECT_EQ(shown.find(fmt::format("dump pid {}: ", p)), std::string::npos) << shown;
  }
  kill(root, SIGTERM);
  const int s = h.wait_child(root);
  EXPECT_TRUE(WIFEXITED(s) && WEXITSTATUS(s) == 0) << s << read_text(h.workload_log("fleet"));
}

// A pre-fork tree of 6 tasks whose release is slowed by 300 ms a task
// (CKPT_FAULT=slow:release): the restorers read their pages after more than
// a second, and the line shows what they read.
TEST(Progress, RestoreShownOnATerminalOnly) {
  Harness h;
  const pid_t root = h.start_workload("prefork", {"16", "4"});
  ASSERT_GT(root, 0);
  std::vector<pid_t> tree = tree_of(root);
  ASSERT_EQ(tree.size(), 6u);
  CkptRun d = h.ckpt({"dump", "-t", std::to_string(root), "-D", h.images()});
  ASSERT_EQ(d.exit_code(), 0) << d.err;
  reap_all(tree);
  const std::string out = h.dir() + "/terminal.txt";
  const std::string cmd =
      fmt::format("CKPT_FAULT=slow:release {} restore -d --no-breakpoints -D {}", ckpt_bin(), h.images());
  const int st = system(fmt::format("/usr/bin/script -qec '{}' /dev/null > {}", cmd, out).c_str());
  ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st << read_text(out);
  const std::string shown = read_text(out);
  EXPECT_NE(shown.find(fmt::format("\rrestore pid {}: ", root)), std::string::npos) << shown;
  EXPECT_NE(shown.find(" left\r\n"), std::string::npos) << shown;
  tree = tree_of(root);
  kill(root, SIGTERM);
  reap_all(tree);
  EXPECT_NE(read_text(h.workload_log("prefork")).find("PASS"), std::string::npos) << read_text(h.workload_log("prefork"));

  setenv("CKPT_FAULT", "slow:release", 1);
  // (No probe of breakpoints, whose warning would be on stderr where they don't work.)
  CkptRun r = h.ckpt({"restore", "-d", "--no-breakpoints", "-D", h.images(), "--skip-file-check"});  // its log grew
  unsetenv("CKPT_FAULT");
  EXPECT_EQ(r.exit_code(), 0) << r.err;
  EXPECT_EQ(r.err, "");
  tree = tree_of(root);
  kill(root, SIGTERM);
  reap_all(tree);
}

}  // namespace
