// CPU affinity across a restore. ckpt arms each thread's breakpoint from
// the CPU the thread is pinned to meanwhile (ArmByCpu, ptrace/completion.h):
// none may keep that pin. The restorer then sets the dumped affinity; where
// there is none, or it names no CPU of this machine, the thread gets what it
// inherited from ckpt, as it had before ckpt pinned anything. Nor do they
// keep ckpt's scheduling.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "base/fs.h"
#include "ckpt.pb.h"
#include "harness.h"
#include "image/image_file.h"

namespace e2e {
namespace {

using ckpt::image::ImageKind;

class Affinity : public ::testing::TestWithParam<bool> {};  // breakpoints or not

std::string cpus_allowed(pid_t pid) {
  std::istringstream status(read_text(fmt::format("/proc/{}/status", pid)));
  for (std::string line; std::getline(status, line);)
    if (line.starts_with("Cpus_allowed_list:")) return line.substr(line.find_first_not_of(" \t", 18));
  return "";
}

// Rewrites the core image of `pid` with `change` applied (a well-formed
// frame, as ckpt writes it).
void edit_core(const Harness& h, pid_t pid, const std::function<void(ckpt::img::TaskCore&)>& change) {
  const std::string name = fmt::format("core-{}.img", pid);
  const std::string path = h.images() + "/" + name;
  auto bytes = ckpt::read_file(path);
  ASSERT_TRUE(bytes) << bytes.error().str();
  ckpt::img::TaskCore core;
  auto r = ckpt::image::unframe(name, *bytes, ImageKind::Core, &core);
  ASSERT_TRUE(r) << r.error().str();
  change(core);
  const std::string out = ckpt::image::frame(ImageKind::Core, core);
  int fd = open(path.c_str(), O_WRONLY | O_TRUNC);
  ASSERT_GE(fd, 0);
  EXPECT_EQ(write(fd, out.data(), out.size()), static_cast<ssize_t>(out.size()));
  close(fd);
}

// The counter workload dumped, its thread's dumped mask made `mask`,
// restored: its affinity then is `want`.
void expect_restored_affinity(bool breakpoints, std::vector<uint64_t> mask, const std::string& want) {
  Harness h;
  const pid_t pid = h.dump_workload("counter");
  ASSERT_GT(pid, 0);
  edit_core(h, pid, [&](ckpt::img::TaskCore& core) {
    core.mutable_threads(0)->mutable_cpu_affinity()->Assign(mask.begin(), mask.end());
  });
  pid_t r = h.restore_background(pid, breakpoints);
  ASSERT_GT(r, 0);
  EXPECT_EQ(cpus_allowed(pid), want);
  kill(pid, SIGTERM);
  CkptRun done = h.wait_ckpt(r);
  EXPECT_EQ(done.exit_code(), 0) << done.err;
}

// Only CPU 127, which this machine lacks: the restorer's sched_setaffinity
// fails, and the thread runs where ckpt could (this test's own CPUs), not
// on the one CPU ckpt armed it from.
TEST_P(Affinity, DumpedMaskThisMachineLacksLeavesCkpts) {
  expect_restored_affinity(GetParam(), {0, 1ULL << 63}, cpus_allowed(getpid()));
}

// No mask dumped at all (an image that has none): the thread runs where
// ckpt could, as above.
TEST_P(Affinity, NoDumpedMaskLeavesCkpts) { expect_restored_affinity(GetParam(), {}, cpus_allowed(getpid())); }

// One CPU of this machine: restored as dumped.
TEST_P(Affinity, DumpedMaskOfOneCpuIsRestored) { expect_restored_affinity(GetParam(), {1}, "0"); }

// Nor is ckpt's scheduling theirs: ckpt writes a thread's policy and nice
// only where they differ from what the thread inherited from ckpt. The
// counter, dumped at nice 0, restored by a ckpt at nice 7, runs at nice 0.
TEST_P(Affinity, CkptsNiceIsNotKept) {
  Harness h;
  const pid_t pid = h.dump_workload("counter");
  ASSERT_GT(pid, 0);
  ASSERT_EQ(setpriority(PRIO_PROCESS, 0, 7), 0) << strerror(errno);  // this thread's, which ckpt inherits
  const pid_t r = h.restore_background(pid, GetParam());
  ASSERT_EQ(setpriority(PRIO_PROCESS, 0, 0), 0) << strerror(errno);
  ASSERT_GT(r, 0);
  errno = 0;
  const int nice = getpriority(PRIO_PROCESS, pid);
  EXPECT_EQ(errno, 0);
  EXPECT_EQ(nice, 0);
  kill(pid, SIGTERM);
  CkptRun done = h.wait_ckpt(r);
  EXPECT_EQ(done.exit_code(), 0) << done.err;
}

INSTANTIATE_TEST_SUITE_P(Modes, Affinity, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& i) {
                           return i.param ? "breakpoint" : "syscalltrace";
                         });

}  // namespace
}  // namespace e2e
