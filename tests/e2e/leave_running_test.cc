// After dump --leave-running every thread is exactly as before the dump:
// registers, xsave, signal mask, pending signals (shared and private, with
// their siginfo) and /proc/PID/maps, compared from outside with ptrace of
// our own. Each thread of the "parked" workload sits in pause() with its
// vector registers loaded, so that its state holds still between looks.
#include <elf.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>

#include "harness.h"

namespace e2e {
namespace {

struct ThreadState {
  user_regs_struct regs{};
  std::vector<uint8_t> xsave;
  uint64_t blocked = 0;
  std::vector<std::string> pending, shared_pending;  // raw siginfo, oldest first
};

std::vector<std::string> peek_siginfo(pid_t tid, bool shared) {
  std::vector<std::string> out;
  for (;;) {
    __ptrace_peeksiginfo_args a{static_cast<uint64_t>(out.size()), shared ? static_cast<uint32_t>(PTRACE_PEEKSIGINFO_SHARED) : 0u, 1};
    siginfo_t si;
    long n = ptrace(PTRACE_PEEKSIGINFO, tid, &a, &si);
    if (n <= 0) break;
    out.emplace_back(reinterpret_cast<const char*>(&si), sizeof si);
  }
  return out;
}

// Seizes one thread, stops it, looks, lets it go (pause() restarts).
ThreadState look(pid_t tid) {
  ThreadState s;
  EXPECT_EQ(ptrace(PTRACE_SEIZE, tid, nullptr, 0), 0) << strerror(errno);
  EXPECT_EQ(ptrace(PTRACE_INTERRUPT, tid, nullptr, nullptr), 0);
  int status;
  EXPECT_EQ(waitpid(tid, &status, __WALL), tid);
  EXPECT_EQ(ptrace(PTRACE_GETREGS, tid, nullptr, &s.regs), 0);
  s.xsave.resize(16384);
  iovec v{s.xsave.data(), s.xsave.size()};
  EXPECT_EQ(ptrace(PTRACE_GETREGSET, tid, NT_X86_XSTATE, &v), 0);
  s.xsave.resize(v.iov_len);
  EXPECT_EQ(ptrace(PTRACE_GETSIGMASK, tid, sizeof s.blocked, &s.blocked), 0);
  s.pending = peek_siginfo(tid, false);
  s.shared_pending = peek_siginfo(tid, true);
  EXPECT_EQ(ptrace(PTRACE_DETACH, tid, nullptr, 0), 0);
  return s;
}

std::vector<pid_t> threads_of(pid_t pid) {
  std::vector<pid_t> out;
  for (const auto& e : std::filesystem::directory_iterator(fmt::format("/proc/{}/task", pid)))
    out.push_back(std::stoi(e.path().filename()));
  std::sort(out.begin(), out.end());
  return out;
}

// XSTATE_BV, the xsave header's word of components in use (XINUSE).
constexpr size_t kXstateBv = 512;

// The state a thread computes with: every byte but XSTATE_BV. The regset
// gives a component not in use as its init values, so these bytes are the
// registers either way; XINUSE may be 1 for a component in its init state
// (Intel SDM 13.6), and here x87's turned to 1 in about 1 run in 300
// without a single register changing.
bool same_xstate(std::vector<uint8_t> a, std::vector<uint8_t> b) {
  if (a.size() != b.size() || a.size() < kXstateBv + 8) return false;
  std::fill_n(a.begin() + kXstateBv, 8, 0);
  std::fill_n(b.begin() + kXstateBv, 8, 0);
  return a == b;
}

// Names the differing byte ranges, so that a failure says which component moved.
std::string xsave_diff(const std::vector<uint8_t>& a, const std::vector<uint8_t>& b) {
  std::string out = fmt::format(" sizes {} and {};", a.size(), b.size());
  for (size_t i = 0; i < std::min(a.size(), b.size()); i++) {
    if (a[i] == b[i]) continue;
    size_t j = i;
    while (j < std::min(a.size(), b.size()) && a[j] != b[j]) j++;
    out += fmt::format(" [{:#x},{:#x}): {:02x} -> {:02x}", i, j, fmt::join(a.begin() + i, a.begin() + j, ""),
                       fmt::join(b.begin() + i, b.begin() + j, ""));
    i = j;
  }
  return out;
}

void expect_same(const ThreadState& a, const ThreadState& b, pid_t tid, const std::string& how) {
  SCOPED_TRACE(fmt::format("thread {} after dump {}", tid, how));
  EXPECT_EQ(std::memcmp(&a.regs, &b.regs, sizeof a.regs), 0)
      << fmt::format("rip {:#x} -> {:#x}, rsp {:#x} -> {:#x}, rax {:#x} -> {:#x}", a.regs.rip, b.regs.rip,
                     a.regs.rsp, b.regs.rsp, a.regs.rax, b.regs.rax);
  EXPECT_TRUE(same_xstate(a.xsave, b.xsave)) << "xsave area differs:" << xsave_diff(a.xsave, b.xsave);
  EXPECT_EQ(a.blocked, b.blocked);
  EXPECT_EQ(a.pending, b.pending);
  EXPECT_EQ(a.shared_pending, b.shared_pending);
}

class LeaveRunning : public ::testing::TestWithParam<std::vector<std::string>> {};

TEST_P(LeaveRunning, EveryThreadExactlyAsBefore) {
  Harness h;
  pid_t pid = h.start_workload("parked");
  ASSERT_GT(pid, 0);
  std::vector<pid_t> tids = threads_of(pid);
  ASSERT_EQ(tids.size(), 2u);
  // Pending signals: one shared, one queued to the second thread with data.
  ASSERT_EQ(kill(pid, SIGUSR1), 0);
  siginfo_t si{};
  si.si_signo = SIGRTMIN + 1;
  si.si_code = SI_QUEUE;
  si.si_pid = getpid();
  si.si_value.sival_int = 4242;
  ASSERT_EQ(syscall(SYS_rt_tgsigqueueinfo, pid, tids[1], SIGRTMIN + 1, &si), 0);
  // Both parked, so that their state holds still between looks.
  for (pid_t t : tids) ASSERT_TRUE(wait_in_syscall(t, SYS_pause)) << "thread " << t << " never parked";

  std::vector<ThreadState> before;
  for (pid_t t : tids) before.push_back(look(t));
  ASSERT_EQ(before[1].pending.size(), 1u);
  ASSERT_EQ(before[0].shared_pending.size(), 1u);
  const std::string maps = read_text(fmt::format("/proc/{}/maps", pid));

  std::vector<std::string> args = {"dump", "-t", std::to_string(pid), "-D", h.images(), "--leave-running"};
  args.insert(args.end(), GetParam().begin(), GetParam().end());
  CkptRun d = h.ckpt(args);
  ASSERT_EQ(d.exit_code(), 0) << d.err;
  // Let go, each thread goes back into its pause() (restarted).
  for (pid_t t : tids) EXPECT_TRUE(wait_in_syscall(t, SYS_pause)) << "thread " << t << " never parked again";

  EXPECT_EQ(read_text(fmt::format("/proc/{}/maps", pid)), maps);
  for (size_t i = 0; i < tids.size(); i++)
    expect_same(before[i], look(tids[i]), tids[i], fmt::format("{} (thread {})", fmt::join(GetParam(), " "), i));
  // Again until it exits: a SIGTERM that lands while our last look's pause()
  // is being restarted runs the handler and returns into that pause (the
  // workload checks its flag before the syscall only).
  for (int i = 0; i < 50 && proc_state(pid) != 'Z'; i++) {
    kill(pid, SIGTERM);
    wait_until([&] { return proc_state(pid) == 'Z'; }, std::chrono::milliseconds(200));
  }
  int st = h.wait_child(pid);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << read_text(h.workload_log("parked"));
}

INSTANTIATE_TEST_SUITE_P(Modes, LeaveRunning,
                         ::testing::Values(std::vector<std::string>{},
                                           std::vector<std::string>{"--no-breakpoints"},
                                           std::vector<std::string>{"--page-transfer", "readv"}),
                         [](const ::testing::TestParamInfo<std::vector<std::string>>& i) {
                           return std::string(i.index == 0 ? "breakpoint" : i.index == 1 ? "syscalltrace" : "readv");
                         });

}  // namespace
}  // namespace e2e
