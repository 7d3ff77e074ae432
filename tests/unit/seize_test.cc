// Seizing processes (dump/seize.h): many at once by one tracer, each with
// the result seize_process would give it alone.
#include "dump/seize.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <vector>

#include "children.h"
#include "proc/status.h"

namespace ckpt::dump {
namespace {

using ckpt::tests::paused_child;

TEST(SeizeProcesses, EachStoppedOrItsOwnError) {
  ChildEvents events;
  const pid_t a = paused_child(), gone = paused_child(), b = paused_child();
  ASSERT_GT(a, 0);
  ASSERT_GT(gone, 0);
  ASSERT_GT(b, 0);
  kill(gone, SIGKILL);
  ASSERT_EQ(waitpid(gone, nullptr, 0), gone);
  {
    const std::vector<pid_t> pids = {a, gone, b};
    auto seized = seize_processes(pids, Tracee::Clock::now() + std::chrono::seconds(5));
    ASSERT_EQ(seized.size(), 3u);
    for (size_t i : {0u, 2u}) {
      ASSERT_TRUE(seized[i]) << "pid " << pids[i] << ": " << seized[i].error().str();
      ASSERT_EQ(seized[i]->size(), 1u);
      EXPECT_EQ((*seized[i])[0].tid(), pids[i]);
      auto st = proc::read_status(pids[i]);
      ASSERT_TRUE(st);
      EXPECT_EQ(st->tracer_pid, gettid());
      auto stat = proc::read_stat(pids[i]);
      ASSERT_TRUE(stat);
      EXPECT_EQ(stat->state, 't') << "pid " << pids[i] << " is not stopped";
    }
    ASSERT_FALSE(seized[1]) << "a reaped pid was seized";
    EXPECT_EQ(seized[1].error().err, ESRCH) << seized[1].error().str();
    // Alone too: gone, as one that exits while seized (the tree's seize
    // takes ESRCH for that), not a failed read of /proc/PID/task.
    auto alone = seize_process(gone, Tracee::Clock::now() + std::chrono::seconds(5));
    ASSERT_FALSE(alone);
    EXPECT_EQ(alone.error().err, ESRCH) << alone.error().str();
  }  // detached here
  for (pid_t p : {a, b}) {
    auto st = proc::read_status(p);
    ASSERT_TRUE(st);
    EXPECT_EQ(st->tracer_pid, 0) << "pid " << p << " was left traced";
    kill(p, SIGKILL);
    EXPECT_EQ(waitpid(p, nullptr, 0), p);
  }
}

}  // namespace
}  // namespace ckpt::dump
