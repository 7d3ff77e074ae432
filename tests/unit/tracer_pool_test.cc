// Tracer threads (ptrace/tracer_pool.h): a tracee is its tracer's alone, so
// the pool runs each task's requests, and its detach, on the thread that
// seized it; and a SIGCHLD one tracer takes wakes the others.
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <future>
#include <iterator>
#include <thread>

#include "children.h"
#include "proc/status.h"
#include "ptrace/tracer_pool.h"

namespace ckpt {
namespace {

using namespace std::chrono_literals;

size_t thread_count() {
  auto it = std::filesystem::directory_iterator("/proc/self/task");
  return static_cast<size_t>(std::distance(it, std::filesystem::directory_iterator{}));
}

using ckpt::tests::paused_child;

pid_t tracer_pid(pid_t pid) {
  auto st = proc::read_status(pid);
  return st ? st->tracer_pid : -1;
}

TEST(TracerPool, TracersStartWhenFirstUsed) {
  const size_t before = thread_count();
  TracerPool pool(3);
  EXPECT_EQ(pool.run(0, [] { return gettid(); }), gettid());
  EXPECT_EQ(thread_count(), before) << "tracer 0 is this thread: nothing to start";
  const pid_t one = pool.run(1, [] { return gettid(); });
  EXPECT_NE(one, gettid());
  EXPECT_EQ(pool.run(1, [] { return gettid(); }), one) << "a tracer is one thread for its whole life";
  EXPECT_EQ(thread_count(), before + 1);
  // Run from tracer 1 itself, on tracer 1: at once, not queued behind itself.
  EXPECT_EQ(pool.run(1, [&] { return pool.run(1, [] { return gettid(); }); }), one);
}

TEST(TracerPool, TraceesAnswerAndDetachOnTheirTracer) {
  ChildEvents events;
  const pid_t child = paused_child();
  ASSERT_GT(child, 0);
  {
    TracerPool pool(2);
    const pid_t one = pool.run(1, [] { return gettid(); });
    TaskTracees task = pool.run(1, [&]() -> TaskTracees {
      auto t = Tracee::seize(child);
      if (!t || !t->interrupt() || !t->wait()) return {};
      std::vector<Tracee> threads;
      threads.push_back(std::move(*t));
      return TaskTracees(pool, 1, std::move(threads));
    });
    ASSERT_FALSE(task.empty());
    EXPECT_EQ(tracer_pid(child), one);
    // This thread is not the tracer: the kernel refuses it.
    auto here = task.threads()[0].regs();
    ASSERT_FALSE(here);
    EXPECT_EQ(here.error().err, ESRCH);
    EXPECT_TRUE(pool.run(1, [&] { return task.threads()[0].regs().has_value(); }));
  }  // `task` goes first, detached by tracer 1; then the pool
  EXPECT_EQ(tracer_pid(child), 0) << "the task was left traced";
  kill(child, SIGKILL);
  EXPECT_EQ(waitpid(child, nullptr, 0), child);
}

// A tree's tasks go all at once (SeizedTree's end): each one detached by
// its own tracer, tracer 0's here and tracer 1's on its thread, in one call.
TEST(TracerPool, TasksOfEveryTracerReleasedTogether) {
  ChildEvents events;
  const pid_t a = paused_child(), b = paused_child();
  ASSERT_GT(a, 0);
  ASSERT_GT(b, 0);
  {
    TracerPool pool(2);
    auto seize = [&](pid_t pid, size_t tracer) {
      return pool.run(tracer, [&]() -> TaskTracees {
        auto t = Tracee::seize(pid);
        if (!t || !t->interrupt() || !t->wait()) return {};
        std::vector<Tracee> threads;
        threads.push_back(std::move(*t));
        return TaskTracees(pool, tracer, std::move(threads));
      });
    };
    std::vector<TaskTracees> tasks;
    tasks.push_back(seize(a, 0));
    tasks.push_back(seize(b, 1));
    ASSERT_FALSE(tasks[0].empty());
    ASSERT_FALSE(tasks[1].empty());
    EXPECT_EQ(tracer_pid(a), gettid());
    EXPECT_NE(tracer_pid(b), gettid());
    TaskTracees::release(tasks);
    EXPECT_TRUE(tasks[0].empty() && tasks[1].empty());
    EXPECT_EQ(tracer_pid(a), 0) << "tracer 0's task was left traced";
    EXPECT_EQ(tracer_pid(b), 0) << "tracer 1's task was left traced";
  }
  for (pid_t p : {a, b}) {
    kill(p, SIGKILL);
    EXPECT_EQ(waitpid(p, nullptr, 0), p);
  }
}

// A tracee stops while its tracer is busy, and the SIGCHLD that says so goes
// to another tracer, asleep on it meanwhile: that one passes it on, so the
// busy tracer's next sleep ends at once. Without that it slept its whole
// 20 s here (in a tracee's wait: until its next 20 ms check, at every stop
// whose signal another tracer took).
TEST(TracerPool, SigchldAnotherTracerTookWakesThisOne) {
  ChildEvents events;  // SIGCHLD blocked here and in the threads started from here
  TracerPool pool(2);
  auto sleep_on_sigchld = [] {
    ChildEvents ev;
    const auto start = std::chrono::steady_clock::now();
    ev.sleep(start + 20s);
    return std::chrono::steady_clock::now() - start;
  };
  auto other = pool.post(1, sleep_on_sigchld);
  std::this_thread::sleep_for(100ms);  // tracer 1 asleep by then
  // This thread busy (not asleep on SIGCHLD) while its child exits: the
  // kernel gives the SIGCHLD to the thread that waits for one, tracer 1.
  const pid_t c = fork();
  if (c == 0) _exit(0);
  ASSERT_EQ(waitpid(c, nullptr, 0), c);
  ASSERT_EQ(other.wait_for(15s), std::future_status::ready);
  EXPECT_LT(other.get(), 10s);
  EXPECT_LT(sleep_on_sigchld(), 10s) << "the SIGCHLD tracer 1 took never reached this thread";
}

}  // namespace
}  // namespace ckpt
