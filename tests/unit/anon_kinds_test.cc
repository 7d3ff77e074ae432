// files/eventfd.cc, signalfd.cc, timerfd.cc without a process to dump: each
// kind collects a description from an fd of our own (through our pidfd, as
// dump does from a frozen task), opens it again as restore does, and the new
// fd must hold the same state; and each refuses payloads a crafted image
// could hold (verify).
#include <linux/capability.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <functional>
#include <map>
#include <string>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "base/fs.h"
#include "base/unique_fd.h"
#include "files/kind.h"

namespace ckpt::files {
namespace {

constexpr int64_t kNs = 1'000'000'000;

// Collects `fd` of ours with the kind that claims it, and opens the result.
struct RoundTrip {
  img::FileDesc desc;
  UniqueFd restored;
};
RoundTrip round_trip(int fd) {
  RoundTrip out;
  UniqueFd pidfd(static_cast<int>(syscall(SYS_pidfd_open, getpid(), 0)));
  EXPECT_TRUE(pidfd.valid());
  FdProbe p;
  p.pid = getpid();
  p.fd = fd;
  p.pidfd = pidfd.get();
  p.link = read_link(fmt::format("/proc/self/fd/{}", fd)).value_or("");
  p.fdinfo = read_file(fmt::format("/proc/self/fdinfo/{}", fd)).value_or("");
  const Kind* kind = nullptr;
  for (const Kind* k : kinds())
    if (!kind && k->claims(p, {})) kind = k;
  if (!kind) {
    ADD_FAILURE() << "no kind claims " << p.link;
    return out;
  }
  auto c = kind->collect(p, &out.desc);
  if (!c) {
    ADD_FAILURE() << c.error().str();
    return out;
  }
  EXPECT_EQ(out.desc.kind_case(), kind->tag());
  auto v = kind->verify(out.desc);
  EXPECT_TRUE(v) << v.error().str();
  const std::map<uint32_t, UniqueFd> no_shmem;
  OpenState state(no_shmem, true);
  auto o = kind->open(out.desc, state);
  if (!o) {
    ADD_FAILURE() << o.error().str();
    return out;
  }
  out.restored = std::move(*o);
  return out;
}

// A count that is there or comes within 5 s: a lost one fails the test
// rather than blocking it.
uint64_t read_u64(int fd) {
  pollfd p{.fd = fd, .events = POLLIN, .revents = 0};
  if (poll(&p, 1, 5000) != 1) {
    ADD_FAILURE() << "fd " << fd << " has nothing to read after 5 s";
    return 0;
  }
  uint64_t v = 0;
  EXPECT_EQ(read(fd, &v, sizeof v), static_cast<ssize_t>(sizeof v)) << strerror(errno);
  return v;
}

int64_t ns(const timespec& ts) { return ts.tv_sec * kNs + ts.tv_nsec; }

TEST(AnonKinds, EventFdCountAboveTwoTo32AndSemaphore) {
  UniqueFd e(eventfd(0, 0));
  const uint64_t big = 0x1'2345'6789;
  ASSERT_EQ(write(e.get(), &big, sizeof big), static_cast<ssize_t>(sizeof big));
  RoundTrip r = round_trip(e.get());
  ASSERT_TRUE(r.restored.valid());
  EXPECT_EQ(read_u64(r.restored.get()), big);
  EXPECT_EQ(read_u64(e.get()), big) << "collect consumed the count";

  UniqueFd s(eventfd(2, EFD_SEMAPHORE));
  r = round_trip(s.get());
  ASSERT_TRUE(r.restored.valid());
  EXPECT_TRUE(r.desc.eventfd().semaphore());
  EXPECT_EQ(read_u64(r.restored.get()), 1u);
  EXPECT_EQ(read_u64(r.restored.get()), 1u);
}

TEST(AnonKinds, SignalFdMaskWithGlibcsOwnSignals) {
  // 32 and 33 are glibc's (sigaddset refuses them); a signalfd may hold them.
  const uint64_t mask = (1ULL << (SIGUSR2 - 1)) | (1ULL << 31) | (1ULL << 32) | (1ULL << 63);
  UniqueFd s(static_cast<int>(syscall(SYS_signalfd4, -1, &mask, sizeof mask, 0)));
  ASSERT_TRUE(s.valid());
  RoundTrip r = round_trip(s.get());
  ASSERT_TRUE(r.restored.valid());
  EXPECT_EQ(r.desc.signalfd().mask(), mask);
  const auto line = [](int fd) {
    const std::string t = read_file(fmt::format("/proc/self/fdinfo/{}", fd)).value_or("");
    return t.substr(t.find("sigmask:"));
  };
  EXPECT_EQ(line(r.restored.get()), line(s.get()));
}

TEST(AnonKinds, TimerFdRelativeKeepsTimeLeftAndInterval) {
  UniqueFd t(timerfd_create(CLOCK_MONOTONIC, 0));
  const itimerspec its{{7, 0}, {3600, 0}};
  ASSERT_EQ(timerfd_settime(t.get(), 0, &its, nullptr), 0);
  itimerspec before{};
  timerfd_gettime(t.get(), &before);
  RoundTrip r = round_trip(t.get());
  ASSERT_TRUE(r.restored.valid());
  itimerspec after{};
  timerfd_gettime(r.restored.get(), &after);
  EXPECT_EQ(ns(after.it_interval), 7 * kNs);
  EXPECT_LE(ns(after.it_value), ns(before.it_value));
  EXPECT_GT(ns(after.it_value), ns(before.it_value) - kNs / 10);
}

TEST(AnonKinds, TimerFdUnreadTicksAndExpiredPeriodic) {
  // Periodic, 1 ms, left unread for 30 ms: dozens of missed expirations,
  // which collect counts (gettime) and restore gives back, then more.
  UniqueFd t(timerfd_create(CLOCK_MONOTONIC, 0));
  const itimerspec its{{0, 1'000'000}, {0, 1'000'000}};
  ASSERT_EQ(timerfd_settime(t.get(), 0, &its, nullptr), 0);
  usleep(30'000);
  RoundTrip r = round_trip(t.get());
  ASSERT_TRUE(r.restored.valid());
  EXPECT_GE(r.desc.timerfd().ticks(), 20u);
  EXPECT_GT(r.desc.timerfd().value_ns(), 0u) << "a periodic timer must stay armed";
  EXPECT_GE(read_u64(r.restored.get()), r.desc.timerfd().ticks());
  EXPECT_GE(read_u64(r.restored.get()), 1u) << "still firing";
  // The original still reads all its ticks.
  EXPECT_GE(read_u64(t.get()), r.desc.timerfd().ticks());

  // Disarmed, with ticks set and an interval kept.
  UniqueFd d(timerfd_create(CLOCK_BOOTTIME, 0));
  const itimerspec interval_only{{5, 0}, {0, 0}};
  ASSERT_EQ(timerfd_settime(d.get(), 0, &interval_only, nullptr), 0);
  uint64_t ticks = 424242;
  ASSERT_EQ(ioctl(d.get(), _IOW('T', 0, uint64_t), &ticks), 0);
  r = round_trip(d.get());
  ASSERT_TRUE(r.restored.valid());
  itimerspec after{};
  timerfd_gettime(r.restored.get(), &after);
  EXPECT_EQ(ns(after.it_value), 0);
  EXPECT_EQ(ns(after.it_interval), 5 * kNs);
  EXPECT_EQ(read_u64(r.restored.get()), 424242u);
}

TEST(AnonKinds, TimerFdAbsoluteKeepsItsExpiry) {
  timespec now{};
  clock_gettime(CLOCK_REALTIME, &now);
  const int64_t at = ns(now) + 3600 * kNs + 123'456'789;
  UniqueFd t(timerfd_create(CLOCK_REALTIME, 0));
  const itimerspec its{{}, {at / kNs, at % kNs}};
  ASSERT_EQ(timerfd_settime(t.get(), TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET, &its, nullptr), 0);
  RoundTrip r = round_trip(t.get());
  ASSERT_TRUE(r.restored.valid());
  EXPECT_EQ(r.desc.timerfd().settime_flags(), uint32_t{TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET});
  EXPECT_GE(static_cast<int64_t>(r.desc.timerfd().value_ns()), at);
  EXPECT_LT(static_cast<int64_t>(r.desc.timerfd().value_ns()), at + kNs / 100);

  // Due in the past (the downtime ran past it): fires at once, and the
  // unread tick of before is not lost to it.
  UniqueFd p(timerfd_create(CLOCK_MONOTONIC, 0));
  const itimerspec soon{{}, {0, 1'000'000}};
  ASSERT_EQ(timerfd_settime(p.get(), 0, &soon, nullptr), 0);
  usleep(5'000);
  img::FileDesc d;
  d.mutable_timerfd()->set_clock(CLOCK_MONOTONIC);
  d.mutable_timerfd()->set_settime_flags(TFD_TIMER_ABSTIME);
  d.mutable_timerfd()->set_value_ns(1);  // boot + 1 ns
  d.mutable_timerfd()->set_ticks(3);
  const std::map<uint32_t, UniqueFd> no_shmem;
  OpenState state(no_shmem, true);
  auto o = kind_of(d)->open(d, state);
  ASSERT_TRUE(o) << o.error().str();
  EXPECT_EQ(read_u64(o->get()), 4u);
}

TEST(AnonKinds, TimerFdCancelOnSetWithTicksIsRefused) {
  timespec now{};
  clock_gettime(CLOCK_REALTIME, &now);
  UniqueFd t(timerfd_create(CLOCK_REALTIME, 0));
  const itimerspec its{{}, {now.tv_sec + 3600, 0}};
  ASSERT_EQ(timerfd_settime(t.get(), TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET, &its, nullptr), 0);
  uint64_t ticks = 1;
  ASSERT_EQ(ioctl(t.get(), _IOW('T', 0, uint64_t), &ticks), 0);
  UniqueFd pidfd(static_cast<int>(syscall(SYS_pidfd_open, getpid(), 0)));
  FdProbe p{.pid = getpid(), .fd = t.get(), .link = "anon_inode:[timerfd]",
            .fdinfo = read_file(fmt::format("/proc/self/fdinfo/{}", t.get())).value_or(""), .pidfd = pidfd.get()};
  img::FileDesc d;
  auto c = timerfd_kind().collect(p, &d);
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().msg.find("TFD_TIMER_CANCEL_ON_SET timerfd with 1 ticks not yet read"), std::string::npos)
      << c.error().msg;
}

// An _ALARM timer is refused at dump where ckpt may not create one (without
// CAP_WAKE_ALARM), with the clock named: restore could not bring it back.
TEST(AnonKinds, AlarmTimerRefusedWithoutCapWakeAlarm) {
  UniqueFd t(timerfd_create(CLOCK_BOOTTIME_ALARM, 0));
  if (!t.valid()) GTEST_SKIP() << "no CLOCK_BOOTTIME_ALARM timerfd here: " << strerror(errno);
  UniqueFd pidfd(static_cast<int>(syscall(SYS_pidfd_open, getpid(), 0)));
  FdProbe p{.pid = getpid(), .fd = t.get(), .link = "anon_inode:[timerfd]",
            .fdinfo = read_file(fmt::format("/proc/self/fdinfo/{}", t.get())).value_or(""), .pidfd = pidfd.get()};
  int out[2];
  ASSERT_EQ(pipe(out), 0);
  pid_t child = fork();
  if (child == 0) {
    // Drop CAP_WAKE_ALARM from the effective set: this child is ckpt without it.
    __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
    __user_cap_data_struct data[2]{};
    if (syscall(SYS_capget, &hdr, data) != 0) _exit(2);
    data[CAP_WAKE_ALARM / 32].effective &= ~(1u << (CAP_WAKE_ALARM % 32));
    if (syscall(SYS_capset, &hdr, data) != 0) _exit(2);
    img::FileDesc d;
    auto c = timerfd_kind().collect(p, &d);
    const std::string msg = c ? "collected" : c.error().str();
    (void)!write(out[1], msg.data(), msg.size());
    _exit(0);
  }
  close(out[1]);
  char buf[512] = {};
  ssize_t n = read(out[0], buf, sizeof buf - 1);
  close(out[0]);
  int st = 0;
  ASSERT_EQ(waitpid(child, &st, 0), child);
  ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
  const std::string msg(buf, n > 0 ? n : 0);
  EXPECT_NE(msg.find("a CLOCK_BOOTTIME_ALARM timerfd, which ckpt can't create here to restore it"), std::string::npos)
      << msg;
  EXPECT_NE(msg.find("EPERM"), std::string::npos) << msg;
}

// Payloads no dump writes: verify names what is wrong.
TEST(AnonKinds, VerifyRefusesWhatOpenCouldNotTake) {
  struct Case {
    const char* name;
    std::function<void(img::FileDesc&)> make;
    const char* want;  // empty: accepted
  };
  const Case cases[] = {
      {"eventfd ok", [](img::FileDesc& d) { d.mutable_eventfd()->set_count(~0ULL - 1); }, ""},
      {"eventfd 2^64-1", [](img::FileDesc& d) { d.mutable_eventfd()->set_count(~0ULL); },
       "an eventfd count of 0xffffffffffffffff"},
      {"signalfd ok", [](img::FileDesc& d) { d.mutable_signalfd()->set_mask(~0ULL & ~0x40100ULL); }, ""},
      {"signalfd SIGSTOP", [](img::FileDesc& d) { d.mutable_signalfd()->set_mask(1ULL << (SIGSTOP - 1)); },
       "with SIGKILL or SIGSTOP"},
      {"timerfd ok", [](img::FileDesc& d) { d.mutable_timerfd()->set_clock(CLOCK_BOOTTIME_ALARM); }, ""},
      {"timerfd CLOCK_PROCESS_CPUTIME_ID",
       [](img::FileDesc& d) { d.mutable_timerfd()->set_clock(CLOCK_PROCESS_CPUTIME_ID); }, "a timerfd on clock 2"},
      {"timerfd negative clock", [](img::FileDesc& d) { d.mutable_timerfd()->set_clock(-6); }, "on clock -6"},
      {"timerfd flags", [](img::FileDesc& d) { d.mutable_timerfd()->set_settime_flags(4); },
       "timerfd settime flags 04"},
      {"timerfd interval", [](img::FileDesc& d) { d.mutable_timerfd()->set_interval_ns(1ULL << 63); },
       "interval of 9223372036854775808 ns"},
      {"timerfd ticks", [](img::FileDesc& d) { d.mutable_timerfd()->set_ticks(~0ULL); }, "2^64 - 1 ticks"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    img::FileDesc d;
    c.make(d);
    const Kind* kind = kind_of(d);
    ASSERT_NE(kind, nullptr);
    auto r = kind->verify(d);
    if (!*c.want) {
      EXPECT_TRUE(r) << r.error().str();
    } else {
      ASSERT_FALSE(r);
      EXPECT_NE(r.error().msg.find(c.want), std::string::npos) << r.error().msg;
    }
  }
}

}  // namespace
}  // namespace ckpt::files
