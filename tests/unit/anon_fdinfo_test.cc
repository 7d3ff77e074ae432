// The eventfd, signalfd and timerfd lines of /proc/PID/fdinfo/FD: table-driven
// cases on text captured from this 6.18 kernel, malformed lines that must come
// back as an error naming them, and a live read of fds of our own.
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <random>
#include <string>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "base/fs.h"
#include "base/unique_fd.h"
#include "proc/anon_fdinfo.h"

namespace ckpt::proc {
namespace {

// Captured: eventfd(5, EFD_SEMAPHORE | EFD_NONBLOCK).
constexpr std::string_view kEventFd =
    "pos:\t0\nflags:\t04002\nmnt_id:\t17\nino:\t25\neventfd-count:                5\neventfd-id: 1\n"
    "eventfd-semaphore: 1\n";
// Captured: SFD_NONBLOCK | SFD_CLOEXEC, SIGUSR1 and SIGRTMIN+3.
constexpr std::string_view kSignalFd = "pos:\t0\nflags:\t02004002\nmnt_id:\t17\nino:\t25\nsigmask:\t0000001000000200\n";
// Captured: CLOCK_MONOTONIC, 50 ms interval, expired once and not read.
constexpr std::string_view kTimerFdPeriodic =
    "pos:\t0\nflags:\t04002\nmnt_id:\t17\nino:\t25\nclockid: 1\nticks: 1\nsettime flags: 00\nit_value: (0, 0)\n"
    "it_interval: (0, 50000000)\n";
// Captured: CLOCK_REALTIME, TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET, 100 s ahead.
constexpr std::string_view kTimerFdAbsolute =
    "pos:\t0\nflags:\t02\nmnt_id:\t17\nino:\t25\nclockid: 0\nticks: 0\nsettime flags: 03\n"
    "it_value: (99, 950714224)\nit_interval: (0, 0)\n";

// Captured: pidfd_open(child, PIDFD_NONBLOCK), before and after the child was reaped.
constexpr std::string_view kPidFd = "pos:\t0\nflags:\t02004002\nmnt_id:\t4\nino:\t7112872\nPid:\t19266\nNSpid:\t19266\n";
constexpr std::string_view kPidFdReaped = "pos:\t0\nflags:\t02004002\nmnt_id:\t4\nino:\t7112872\nPid:\t-1\nNSpid:\t-1\n";

std::string show(const PidFdInfo& p) { return fmt::format("pid={} levels={}", p.pid, p.nspid_levels); }
std::string show(const EventFdInfo& e) {
  return fmt::format("count={:#x} semaphore={} shown={}", e.count, e.semaphore, e.shows_semaphore);
}
std::string show(const SignalFdInfo& s) { return fmt::format("sigmask={:#x}", s.sigmask); }
std::string show(const TimerFdInfo& t) {
  return fmt::format("clock={} ticks={} flags={:o} value={} interval={}", t.clockid, t.ticks, t.settime_flags,
                     t.value_ns, t.interval_ns);
}

template <typename T, typename Parse>
void expect_cases(const std::vector<std::pair<std::string, T>>& cases, Parse parse) {
  for (const auto& [text, want] : cases) {
    SCOPED_TRACE(text);
    auto r = parse(text);
    ASSERT_TRUE(r) << r.error().str();
    EXPECT_EQ(show(*r), show(want));
  }
}

// Malformed: an error naming the line, never a crash.
template <typename Parse>
void expect_errors(const std::vector<std::pair<std::string, std::string>>& cases, Parse parse) {
  for (const auto& [text, want] : cases) {
    SCOPED_TRACE(text);
    auto r = parse(text);
    ASSERT_FALSE(r) << "parsed garbage: " << show(*r);
    EXPECT_NE(r.error().msg.find(want), std::string::npos) << r.error().msg;
  }
}

TEST(AnonFdinfo, EventFd) {
  expect_cases<EventFdInfo>(
      {
          {std::string(kEventFd), {5, true, true}},
          {"eventfd-count:         fffffffe\neventfd-id: 2\neventfd-semaphore: 0\n", {0xfffffffe, false, true}},
          {"eventfd-count: fffffffffffffffe\n", {0xfffffffffffffffe, false, false}},  // before 6.2
      },
      parse_eventfd_fdinfo);
  expect_errors(
      {
          {"pos:\t0\nflags:\t02\n", "/proc eventfd fdinfo: no eventfd-count line"},
          {"eventfd-count: 5x\n", "/proc eventfd fdinfo line 1: bad eventfd-count '5x'"},
          {"eventfd-count: 10000000000000000\n", "bad eventfd-count"},
          {"eventfd-count: -1\n", "bad eventfd-count"},
          {"eventfd-count: 0\neventfd-semaphore: 2\n", "line 2: bad eventfd-semaphore '2'"},
      },
      parse_eventfd_fdinfo);
}

TEST(AnonFdinfo, SignalFd) {
  expect_cases<SignalFdInfo>(
      {
          {std::string(kSignalFd), {0x1000000200}},
          {"sigmask:\tfffffffffffbfeff\n", {0xfffffffffffbfeff}},
      },
      parse_signalfd_fdinfo);
  expect_errors(
      {
          {"pos:\t0\n", "/proc signalfd fdinfo: no sigmask line"},
          {"sigmask:\t\n", "bad sigmask ''"},
          {"sigmask:\t10000000000000000\n", "bad sigmask"},
      },
      parse_signalfd_fdinfo);
}

TEST(AnonFdinfo, TimerFd) {
  expect_cases<TimerFdInfo>(
      {
          {std::string(kTimerFdPeriodic), {1, 1, 0, 0, 50'000'000}},
          {std::string(kTimerFdAbsolute), {0, 0, 03, 99'950'714'224, 0}},
          {"clockid: 9\nticks: 18446744073709551614\nsettime flags: 01\nit_value: (9223372036, 854775807)\n"
           "it_interval: (1, 0)\n",
           {9, 18446744073709551614u, 01, 9'223'372'036'854'775'807, 1'000'000'000}},
      },
      parse_timerfd_fdinfo);
  const std::string head = "clockid: 1\nticks: 0\nsettime flags: 00\n";
  expect_errors(
      {
          {"clockid: 1\nticks: 0\nsettime flags: 00\nit_value: (0, 0)\n", "/proc timerfd fdinfo: no it_interval line"},
          {"ticks: 0\n", "no clockid line"},
          {"clockid: x\n", "line 1: bad clockid 'x'"},
          {"clockid: 1\nticks: 0\nsettime flags: 08\n", "line 3: bad settime flags '08'"},
          {head + "it_value: 0, 0\nit_interval: (0, 0)\n", "line 4: bad it_value '0, 0'"},
          {head + "it_value: (0,0)\nit_interval: (0, 0)\n", "bad it_value"},
          {head + "it_value: (0, 1000000000)\nit_interval: (0, 0)\n", "bad it_value"},
          {head + "it_value: (9223372036, 854775808)\nit_interval: (0, 0)\n", "bad it_value"},
          {head + "it_value: (0, 0)\nit_interval: (-1, 0)\n", "line 5: bad it_interval '(-1, 0)'"},
      },
      parse_timerfd_fdinfo);
}

TEST(AnonFdinfo, PidFd) {
  expect_cases<PidFdInfo>(
      {
          {std::string(kPidFd), {19266, 1}},
          {std::string(kPidFdReaped), {-1, 1}},
          {"Pid:\t4121\nNSpid:\t4121\t1\n", {4121, 2}},  // in a nested PID namespace
          {"Pid:\t7\n", {7, 0}},                           // a kernel without NSpid
      },
      parse_pidfd_fdinfo);
  expect_errors(
      {
          {"pos:\t0\nflags:\t02\n", "/proc pidfd fdinfo: no Pid line"},
          {"Pid:\t12a\n", "line 1: bad Pid '12a'"},
          {"Pid:\t1\nNSpid:\t1 x\n", "line 2: bad NSpid"},
          {"Pid:\t1\nNSpid:\t\n", "line 2: bad NSpid"},
      },
      parse_pidfd_fdinfo);
}

TEST(AnonFdinfo, MutatedInputDoesNotCrash) {
  const std::string_view seeds[] = {kEventFd, kSignalFd, kTimerFdPeriodic, kTimerFdAbsolute, kPidFd};
  std::mt19937 rng(4242);
  const char alphabet[] = "0123456789abcdefx-:(), \t\n\xff";
  for (int i = 0; i < 4000; ++i) {
    std::string s(seeds[i % std::size(seeds)]);
    for (int k = 0, n = 1 + rng() % 8; k < n; ++k) {
      size_t at = rng() % (s.size() + 1);
      switch (rng() % 3) {
        case 0: if (at < s.size()) s[at] = alphabet[rng() % (sizeof alphabet - 1)]; break;
        case 1: s.erase(at, rng() % 16); break;
        case 2: s.insert(at, 1, alphabet[rng() % (sizeof alphabet - 1)]); break;
      }
    }
    (void)parse_eventfd_fdinfo(s);
    (void)parse_signalfd_fdinfo(s);
    (void)parse_timerfd_fdinfo(s);
    (void)parse_pidfd_fdinfo(s);
  }
}

std::string fdinfo_of(int fd) {
  auto text = read_file(fmt::format("/proc/self/fdinfo/{}", fd));
  EXPECT_TRUE(text) << text.error().str();
  return text.value_or("");
}

TEST(AnonFdinfo, LiveFdsOfOurOwn) {
  UniqueFd e(eventfd(7, EFD_SEMAPHORE));
  ASSERT_TRUE(e.valid());
  auto ev = parse_eventfd_fdinfo(fdinfo_of(e.get()));
  ASSERT_TRUE(ev) << ev.error().str();
  EXPECT_EQ(show(*ev), show(EventFdInfo{7, true, true}));

  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGUSR2);
  UniqueFd s(signalfd(-1, &set, 0));
  ASSERT_TRUE(s.valid());
  auto sig = parse_signalfd_fdinfo(fdinfo_of(s.get()));
  ASSERT_TRUE(sig) << sig.error().str();
  EXPECT_EQ(sig->sigmask, uint64_t{1} << (SIGUSR2 - 1));

  UniqueFd t(timerfd_create(CLOCK_BOOTTIME, 0));
  ASSERT_TRUE(t.valid());
  const itimerspec its{{2, 500}, {3600, 0}};
  ASSERT_EQ(timerfd_settime(t.get(), 0, &its, nullptr), 0);
  auto tim = parse_timerfd_fdinfo(fdinfo_of(t.get()));
  ASSERT_TRUE(tim) << tim.error().str();
  EXPECT_EQ(tim->clockid, CLOCK_BOOTTIME);
  EXPECT_EQ(tim->interval_ns, 2'000'000'500u);
  EXPECT_GT(tim->value_ns, 3599'000'000'000u);
  EXPECT_LE(tim->value_ns, 3600'000'000'000u);
}

}  // namespace
}  // namespace ckpt::proc
