// The watcher (ptrace/watcher.h) itself: where it runs. TreeCommit's tests
// cover what it does.
#include "ptrace/watcher.h"

#include <gtest/gtest.h>
#include <sched.h>
#include <unistd.h>

#include <fstream>
#include <string>

namespace {

void nothing(const void*) {}

// ckpt's only child here: the watcher.
pid_t only_child() {
  std::ifstream in("/proc/self/task/" + std::to_string(gettid()) + "/children");
  pid_t pid = 0;
  in >> pid;
  return pid;
}

TEST(Watcher, RunsOnTheCpuItsMakerWasOnAndLeavesTheMakersAffinity) {
  cpu_set_t mine;
  ASSERT_EQ(sched_getaffinity(0, sizeof mine, &mine), 0);
  // With one CPU allowed every process runs there: no other CPU for a
  // watcher to wake, and nothing this test could tell apart.
  if (CPU_COUNT(&mine) < 2)
    GTEST_SKIP() << "ckpt may use one CPU only here: a watcher has no other CPU to run on, so there is no pin to check";
  auto w = ckpt::Watcher::start(nothing, nullptr, {}, "test watcher");
  ASSERT_TRUE(w) << w.error().str();
  const pid_t pid = only_child();
  ASSERT_GT(pid, 0);
  cpu_set_t its, after;
  ASSERT_EQ(sched_getaffinity(pid, sizeof its, &its), 0);
  EXPECT_EQ(CPU_COUNT(&its), 1) << "the watcher may run on any CPU: its start and end wake another one";
  ASSERT_EQ(sched_getaffinity(0, sizeof after, &after), 0);
  EXPECT_TRUE(CPU_EQUAL(&after, &mine)) << "the maker kept the pin";
  w->commit();
}

}  // namespace
