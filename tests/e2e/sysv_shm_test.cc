// System V shared memory (docs/state.md, "System V shared memory"): the
// workload `sysvshm` checks itself after restore (workloads_test.cc runs it
// in every mode); these tests look at the segments from outside: an id
// taken at restore, a destroyed segment still attached, one attached outside
// the tree.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/shm.h>
#include <sys/wait.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <thread>

#include "harness.h"
#include "proc/sysvipc.h"

namespace e2e {
namespace {

using namespace std::chrono_literals;

// The segment's id and key, as the workload wrote them.
std::pair<int, int> segment_of(const Harness& h) {
  std::istringstream in(read_text(h.dir() + "/sysvshm.ready.shm"));
  int id = -1, key = 0;
  in >> id >> key;
  return {id, key};
}

std::optional<ckpt::proc::SysvShm> segment(int id) {
  auto all = ckpt::proc::read_sysvipc_shm();
  if (!all) return std::nullopt;
  return ckpt::proc::find_shm(*all, id);
}

std::vector<int> all_ids() {
  std::vector<int> ids;
  if (auto all = ckpt::proc::read_sysvipc_shm())
    for (const auto& s : *all) ids.push_back(s.shmid);
  return ids;
}

// The original segment outlives its tree (after dump --leave-running, the
// tree killed): restore refuses the checkpoint, naming the segment, its id
// and key, before any task or segment is made. Once it is removed, the same
// images restore.
TEST(SysvShm, IdTakenAtRestore) {
  Harness h;
  pid_t pid = h.start_workload("sysvshm");
  ASSERT_GT(pid, 0);
  const auto tasks = tree_of(pid);
  ASSERT_EQ(tasks.size(), 2u);
  const auto [id, key] = segment_of(h);
  ASSERT_GE(id, 0);
  CkptRun d = h.ckpt({"dump", "-t", std::to_string(pid), "-D", h.images(), "--leave-running", "-v4", "-o", "dump.log"});
  ASSERT_EQ(d.exit_code(), 0) << d.err << read_text(h.images() + "/dump.log");
  ASSERT_TRUE(segment(id)) << "dump --leave-running removed the segment";
  kill(pid, SIGKILL);
  for (pid_t p : tasks) kill(p, SIGKILL);
  h.wait_child(pid);
  reap_all(tasks);
  auto left = segment(id);
  ASSERT_TRUE(left) << "a SysV segment outlives its processes";
  EXPECT_EQ(left->nattch, 0u);
  const std::vector<int> before = all_ids();

  CkptRun r = h.ckpt({"restore", "-D", h.images(), "-d", "-v4", "-o", "restore.log"});
  EXPECT_NE(r.exit_code(), 0);
  EXPECT_NE(r.err.find(fmt::format("System V shared memory segment {} (key {:#x})", id, static_cast<uint32_t>(key))),
            std::string::npos) << r.err;
  EXPECT_NE(r.err.find("its id and its key is taken"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(fmt::format("ipcrm -m {}", id)), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("EEXIST"), std::string::npos) << r.err;
  for (pid_t p : tasks) EXPECT_FALSE(kill(p, 0) == 0) << "pid " << p << " left behind";
  EXPECT_EQ(all_ids(), before) << "a segment was made or removed";
  EXPECT_EQ(read_text("/proc/sys/kernel/shm_next_id"), "-1\n");

  // Not the images' fault: with the original gone, they restore.
  ASSERT_EQ(shmctl(id, IPC_RMID, nullptr), 0);
  const std::string pidfile = h.dir() + "/restored.pid";
  pid_t rr = h.ckpt_background({"restore", "-D", h.images(), "--pidfile", pidfile, "-v4", "-o", "restore2.log"});
  ASSERT_TRUE(h.wait_restored(pid, pidfile)) << read_text(h.images() + "/restore2.log");
  auto back = segment(id);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->key, key);
  kill(pid, SIGTERM);
  CkptRun done = h.wait_ckpt(rr);
  EXPECT_EQ(done.exit_code(), 0) << read_text(h.workload_log("sysvshm")) << done.err;
  EXPECT_FALSE(segment(id)) << "the workload removes its segment at the end";
}

// A restore that fails once it has made the segments (here: the executable
// changed since the dump, found while the tasks' files are opened) removes
// them: no segment, no task, shm_next_id back to -1.
TEST(SysvShm, FailedRestoreRemovesItsSegments) {
  Harness h;
  const std::string exe = h.dir() + "/wl_sysvshm";
  std::filesystem::copy_file(std::string(CKPT_WORKLOADS) + "/wl_sysvshm", exe);
  pid_t pid = h.start_workload_at(exe, "sysvshm");
  ASSERT_GT(pid, 0);
  const auto tasks = tree_of(pid);
  const auto [id, key] = segment_of(h);
  CkptRun d = h.ckpt({"dump", "-t", std::to_string(pid), "-D", h.images(), "-v4", "-o", "dump.log"});
  ASSERT_EQ(d.exit_code(), 0) << d.err << read_text(h.images() + "/dump.log");
  h.wait_child(pid);
  reap_all(tasks);
  EXPECT_FALSE(segment(id)) << "the dump that killed the tree removes its segment";
  const std::vector<int> before = all_ids();
  std::ofstream(exe, std::ios::app) << "x";  // another file now

  CkptRun r = h.ckpt({"restore", "-D", h.images(), "-d", "-v4", "-o", "restore.log"});
  EXPECT_NE(r.exit_code(), 0);
  EXPECT_NE(r.err.find("is not the file that was dumped"), std::string::npos) << r.err;
  EXPECT_NE(read_text(h.images() + "/restore.log").find(fmt::format("System V shared memory segment {} (key {:#x}): made", id, static_cast<uint32_t>(key))), std::string::npos) << "made before the check";
  EXPECT_EQ(all_ids(), before) << "the segment restore made is still there";
  EXPECT_EQ(read_text("/proc/sys/kernel/shm_next_id"), "-1\n");
  for (pid_t p : tasks) EXPECT_FALSE(kill(p, 0) == 0) << "pid " << p << " left behind";

  // Made again, whole, by the next restore.
  const std::string pidfile = h.dir() + "/restored.pid";
  pid_t rr = h.ckpt_background({"restore", "-D", h.images(), "--skip-file-check", "--pidfile", pidfile});
  ASSERT_TRUE(h.wait_restored(pid, pidfile));
  auto back = segment(id);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->key, key);
  kill(pid, SIGTERM);
  CkptRun done = h.wait_ckpt(rr);
  EXPECT_EQ(done.exit_code(), 0) << read_text(h.workload_log("sysvshm")) << done.err;
}

// Destroyed while attached (IPC_RMID: key 0, SHM_DEST): the dump that
// kills the tree leaves nothing; restore brings it back destroyed, with
// its id and every attach (nattch as before), and it goes with the
// restored tree's last detach.
TEST(SysvShm, DestroyedButAttached) {
  Harness h;
  pid_t pid = h.start_workload("sysvshm", {"rmid"});
  ASSERT_GT(pid, 0);
  const auto tasks = tree_of(pid);
  const auto [id, key] = segment_of(h);
  auto seg = segment(id);
  ASSERT_TRUE(seg);
  EXPECT_EQ(seg->key, 0);
  EXPECT_EQ(seg->mode, 01640u);
  const std::string maps = read_text(fmt::format("/proc/{}/maps", pid));
  ASSERT_NE(maps.find(fmt::format("/SYSV{:08x} (deleted)", static_cast<uint32_t>(key))), std::string::npos) << maps;

  CkptRun d = h.ckpt({"dump", "-t", std::to_string(pid), "-D", h.images(), "-v4", "-o", "dump.log"});
  ASSERT_EQ(d.exit_code(), 0) << d.err << read_text(h.images() + "/dump.log");
  h.wait_child(pid);
  reap_all(tasks);
  EXPECT_FALSE(segment(id)) << "destroyed, and its tree is gone";

  const std::string pidfile = h.dir() + "/restored.pid";
  pid_t r = h.ckpt_background({"restore", "-D", h.images(), "--pidfile", pidfile, "-v4", "-o", "restore.log"});
  ASSERT_TRUE(h.wait_restored(pid, pidfile)) << read_text(h.images() + "/restore.log");
  auto back = segment(id);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->key, 0);
  EXPECT_EQ(back->mode, 01640u);
  EXPECT_EQ(back->nattch, seg->nattch) << "ckpt's own attach is gone, every task's is back";
  EXPECT_EQ(read_text(fmt::format("/proc/{}/maps", pid)), maps);
  kill(pid, SIGTERM);
  CkptRun rr = h.wait_ckpt(r);
  EXPECT_EQ(rr.exit_code(), 0) << read_text(h.workload_log("sysvshm")) << rr.err;
  EXPECT_FALSE(segment(id)) << "it went with the tree's last detach";
}

// A segment a process outside the tree attaches too can't be the tree's
// alone: refused at dump, naming it, and the tree runs on.
TEST(SysvShm, AttachedOutsideTheTreeRefused) {
  Harness h;
  pid_t pid = h.start_workload("sysvshm");
  ASSERT_GT(pid, 0);
  const auto [id, key] = segment_of(h);
  void* mine = shmat(id, nullptr, SHM_RDONLY);
  ASSERT_NE(mine, reinterpret_cast<void*>(-1));
  CkptRun d = h.ckpt({"dump", "-t", std::to_string(pid), "-D", h.images(), "-v4", "-o", "dump.log"});
  shmdt(mine);
  EXPECT_NE(d.exit_code(), 0);
  EXPECT_NE(d.err.find(fmt::format("System V shared memory segment {} (key {:#x}) is attached outside the tree", id,
                                   static_cast<uint32_t>(key))),
            std::string::npos) << d.err;
  EXPECT_NE(d.err.find("EBUSY"), std::string::npos) << d.err;
  EXPECT_TRUE(wait_ran_on(pid)) << "the tree runs on";
  EXPECT_EQ(tracer_of(pid), 0);
  kill(pid, SIGTERM);
  int st = h.wait_child(pid);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << read_text(h.workload_log("sysvshm"));
}

}  // namespace
}  // namespace e2e
