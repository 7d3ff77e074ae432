// The kernel writes the rseq area of the thread the parasite runs in on
// that thread's returns to user space, after it was moved to another CPU or
// preempted. With the area's page vmspliced into the pipe and still waiting
// there, the bytes the images got were not the ones the parasite had
// checksummed: the dump succeeded and killed the process, and no restore
// would take the images ("checksum mismatch in run N"). Here the task is
// moved between CPUs all through its dumps, with many pieces of memory after
// its TCB; every dump must verify. Before the fix: 44 and 51 of two runs of
// 150 such dumps made images that failed verification (and one CI run's
// WireKey test); after it, none of 2 x 150.
#include <sched.h>
#include <sys/stat.h>

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <string>
#include <thread>

#include "harness.h"

using namespace e2e;

namespace {

// Moves `pid` between the first two CPUs it may use until told to stop,
// every ~100 us: often enough that the parasite moves while a page waits in
// the pipe (a tight loop made 1 bad dump in 150, this 44 to 51 in 150).
constexpr int kSpin = 100'000;
class CpuFlipper {
 public:
  explicit CpuFlipper(pid_t pid) : thread_([this, pid] {
    cpu_set_t allowed;
    if (sched_getaffinity(0, sizeof allowed, &allowed) < 0 || CPU_COUNT(&allowed) < 2) return;
    int cpus[2], n = 0;
    for (int c = 0; c < CPU_SETSIZE && n < 2; c++)
      if (CPU_ISSET(c, &allowed)) cpus[n++] = c;
    for (int i = 0; !stop_.load(); i ^= 1) {
      cpu_set_t one;
      CPU_ZERO(&one);
      CPU_SET(cpus[i], &one);
      if (sched_setaffinity(pid, sizeof one, &one) < 0) return;
      for (int spin = 0; spin < kSpin; spin++) asm volatile("");  // a busy wait the compiler keeps
    }
  }) {}
  ~CpuFlipper() {
    stop_ = true;
    thread_.join();
  }

 private:
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

TEST(RseqArea, DumpsVerifyWhileTheTaskMovesBetweenCpus) {
  // The CPUs the flipper may move the task between: those of this test.
  cpu_set_t cpus;
  ASSERT_EQ(sched_getaffinity(0, sizeof cpus, &cpus), 0);
  if (CPU_COUNT(&cpus) < 2)
    GTEST_SKIP() << "one CPU: the task can't be moved to another, so the kernel never changes its rseq area's cpu_id "
                    "during a dump (the race this attacks can't happen here)";
  constexpr int kRounds = 60;
  Harness h;
  int failed = 0;
  for (int round = 0; round < kRounds; round++) {
    const bool last = round == kRounds - 1;
    const std::string dir = last ? h.images() : fmt::format("{}/round", h.dir());
    pid_t pid = h.start_workload("highvmas", {"3000"});
    ASSERT_GT(pid, 0);
    CkptRun d;
    {
      CpuFlipper flip(pid);
      d = h.ckpt({"dump", "-t", std::to_string(pid), "-D", dir});
    }
    ASSERT_EQ(d.exit_code(), 0) << "round " << round << ": " << d.err;
    h.wait_child(pid);
    CkptRun v = h.ckpt({"verify", dir});
    if (v.exit_code() != 0 && failed++ == 0) ADD_FAILURE() << "round " << round << ": " << v.err;
    if (last) {
      // The images of the last round restore, and the task finds its pages.
      h.restore_expect_pass(pid, "highvmas");
    } else {
      std::filesystem::remove_all(dir);
    }
  }
  EXPECT_EQ(failed, 0) << failed << " of " << kRounds << " dumps made images that fail verification";
}

// The same moves through a chain: a pre-dump holds the pages in a pipe and
// writes them out once the task runs again, so what it stores may be newer
// than its snapshot, the rseq area's cpu_id included. That is safe only as
// long as the dump after it stores again every page written since the
// pre-dump armed its tracking, and the chain, read back, verifies.
TEST(RseqArea, PreDumpChainsVerifyWhileTheTaskMovesBetweenCpus) {
  cpu_set_t cpus;
  ASSERT_EQ(sched_getaffinity(0, sizeof cpus, &cpus), 0);
  if (CPU_COUNT(&cpus) < 2)
    GTEST_SKIP() << "one CPU: the task can't be moved to another, so the kernel never changes its rseq area's cpu_id "
                    "between a pre-dump and its dump (the case this checks can't happen here)";
  constexpr int kRounds = 15;
  Harness h;
  int failed = 0;
  for (int round = 0; round < kRounds; round++) {
    const bool last = round == kRounds - 1;
    const std::string base = fmt::format("{}/chain{}", h.dir(), round);
    ASSERT_EQ(mkdir(base.c_str(), 0700), 0);
    const std::string pre = base + "/pre", final_dir = last ? h.images() : base + "/final";
    pid_t pid = h.start_workload("highvmas", {"3000"});
    ASSERT_GT(pid, 0);
    CkptRun p, d;
    {
      CpuFlipper flip(pid);
      p = h.ckpt({"pre-dump", "-t", std::to_string(pid), "-D", pre});
      if (p.exit_code() == 0)
        d = h.ckpt({"dump", "-t", std::to_string(pid), "-D", final_dir, "--prev-images-dir",
                    std::filesystem::relative(pre, final_dir).string(), "--track-mem"});
    }
    ASSERT_EQ(p.exit_code(), 0) << "round " << round << ": " << p.err;
    ASSERT_EQ(d.exit_code(), 0) << "round " << round << ": " << d.err;
    h.wait_child(pid);
    CkptRun v = h.ckpt({"verify", final_dir});
    if (v.exit_code() != 0 && failed++ == 0) ADD_FAILURE() << "round " << round << ": " << v.err;
    if (last) h.restore_expect_pass(pid, "highvmas");
    else std::filesystem::remove_all(base);
  }
  EXPECT_EQ(failed, 0) << failed << " of " << kRounds << " chains failed verification";
}

}  // namespace
