// The breakpoint probe's child holds no copy of ckpt's memory (making one
// cost a tiny restore 0.6 ms), nor any fd of ckpt's: a copy of ckpt's fd
// table kept a UDP stand-in bound at a port for as long as the probe lasted;
// the datagrams sent again to that port went to the stand-in, and the
// restore failed ("0 of the 2 datagrams sent again arrived", inetsk, about 1
// restore in 50 with both cores busy). Nor does it share ckpt's table: each
// time a shared table grows, the kernel waits for an RCU grace period.
#include <fcntl.h>
#include <linux/kcmp.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <iterator>
#include <thread>
#include <vector>

#include "base/unique_fd.h"
#include "ptrace/completion.h"

namespace ckpt {
namespace {

UniqueFd pipe_end(int fds[2], int which) {
  close(fds[1 - which]);
  return UniqueFd(fds[which]);
}

// The fds in /proc/PID/fd.
// Where each of its fds leads, but its perf event (ProbeChild::warm).
std::vector<std::string> fds_but_perf(pid_t pid) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(fmt::format("/proc/{}/fd", pid), ec)) {
    std::string link = std::filesystem::read_symlink(e.path(), ec).string();
    if (link != "anon_inode:[perf_event]") out.push_back(e.path().filename().string() + " " + link);
  }
  return out;
}

TEST(BreakpointProbe, ChildHoldsNoFdOfCkptsAndSharesItsMemory) {
  // Open before the child exists, as the restore's sockets can be.
  int p[2];
  ASSERT_EQ(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
  int go[2];
  ASSERT_EQ(pipe2(go, O_CLOEXEC), 0);
  UniqueFd go_read(go[0]), go_write(go[1]);
  ProbeChild probe;
  probe.go = go_read.get();
  const pid_t child = fork_probe_child(probe);
  ASSERT_GT(child, 0) << strerror(errno);
  EXPECT_EQ(syscall(SYS_kcmp, getpid(), child, KCMP_VM, 0, 0), 0) << "the child has a copy of ckpt's memory";
  EXPECT_NE(syscall(SYS_kcmp, getpid(), child, KCMP_FILES, 0, 0), 0) << "the child shares ckpt's fd table";

  // It closes its copy of the table but its end of `go`, first thing (and
  // then opens a perf event of its own).
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (fds_but_perf(child).size() != 1 && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  const std::vector<std::string> left = fds_but_perf(child);
  ASSERT_EQ(left.size(), 1u) << fmt::format("{}", fmt::join(left, ", "));
  EXPECT_TRUE(left[0].starts_with(fmt::format("{} pipe:", go_read.get()))) << left[0];
  // Its perf event: the kernel's context-switch hooks turned on before any
  // breakpoint needs them (root may always open one on itself).
  if (geteuid() == 0) {
    auto perf_events = [&] {
      std::error_code ec;
      size_t n = 0;
      for (const auto& e : std::filesystem::directory_iterator(fmt::format("/proc/{}/fd", child), ec))
        n += std::filesystem::read_symlink(e.path(), ec).string() == "anon_inode:[perf_event]";
      return n;
    };
    while (perf_events() == 0 && std::chrono::steady_clock::now() < until)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    EXPECT_EQ(perf_events(), 1u);
  }

  // An fd ckpt closes is closed: no copy in the child keeps the file open.
  UniqueFd reader = pipe_end(p, 0);
  char c;
  EXPECT_EQ(read(reader.get(), &c, 1), 0) << "the pipe's write end lives on after ckpt closed it";

  // It calls the probed function and exits once told to.
  ASSERT_EQ(write(go_write.get(), "g", 1), 1);
  int st = 0;
  ASSERT_EQ(waitpid(child, &st, 0), child);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << "status " << st;
}

}  // namespace
}  // namespace ckpt
