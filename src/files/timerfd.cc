// timerfd(2): a timer on a clock, its interval, and the expirations not yet
// read, all in its fdinfo lines. Two kinds of timer are read again through
// ckpt's own fd rather than taken from the lines of the scan: a periodic
// one that expired shows no time left until a read or timerfd_gettime arms
// it again, so dump calls timerfd_gettime first (its missed expirations
// become ticks, as the task's next read would count them: that read returns
// the same); and an absolute one, whose time left is read right before the
// clock it is added to.
//
// Time between dump and restore: a relative timer (no TFD_TIMER_ABSTIME)
// gets back the time it had left at dump, as CRIU does: the downtime does
// not count, and its interval goes on from there. An absolute timer keeps
// its expiry on its clock: if that passed while the process was not
// running, it fires at once and its next read counts every interval missed.
// The absolute expiry is taken as (time left) + (clock read after it), so
// it is later than the real one by the microseconds between the two reads,
// never earlier.
//
// TFD_TIMER_CANCEL_ON_SET (an absolute CLOCK_REALTIME timer whose read fails
// with ECANCELED once the clock is set) is kept; a clock set between dump
// and restore is not reported to the task. A cancellation already pending
// at dump looks like a tick in fdinfo, so such a timer with ticks not yet
// read is refused.
#include <sys/ioctl.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <limits>

#include "base/fs.h"
#include "files/kind.h"
#include "proc/anon_fdinfo.h"

namespace ckpt::files {

namespace {

// linux/timerfd.h (it can't be included next to glibc's fcntl.h): set the
// ticks a read returns; CONFIG_CHECKPOINT_RESTORE.
constexpr unsigned long kTfdSetTicks = _IOW('T', 0, uint64_t);
constexpr uint32_t kSettimeFlags = TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET;
constexpr uint64_t kNsPerSec = 1'000'000'000;
constexpr uint64_t kMaxNs = std::numeric_limits<int64_t>::max();  // ktime_t

// The clocks timerfd_create takes, by name; nullptr for any other.
const char* clock_name(int clock) {
  switch (clock) {
    case CLOCK_REALTIME: return "CLOCK_REALTIME";
    case CLOCK_MONOTONIC: return "CLOCK_MONOTONIC";
    case CLOCK_BOOTTIME: return "CLOCK_BOOTTIME";
    case CLOCK_REALTIME_ALARM: return "CLOCK_REALTIME_ALARM";
    case CLOCK_BOOTTIME_ALARM: return "CLOCK_BOOTTIME_ALARM";
    default: return nullptr;
  }
}

bool is_alarm(int clock) { return clock == CLOCK_REALTIME_ALARM || clock == CLOCK_BOOTTIME_ALARM; }

// Now on the clock an absolute expiry is measured on: an _ALARM clock's
// base clock (clock_gettime of the alarm clock itself needs an RTC device).
Result<uint64_t> now_ns(int clock) {
  const clockid_t base =
      clock == CLOCK_REALTIME_ALARM ? CLOCK_REALTIME : clock == CLOCK_BOOTTIME_ALARM ? CLOCK_BOOTTIME : clock;
  timespec ts{};
  if (clock_gettime(base, &ts) < 0) return sys_error("clock_gettime {}", clock_name(clock));
  return static_cast<uint64_t>(ts.tv_sec) * kNsPerSec + static_cast<uint64_t>(ts.tv_nsec);
}

timespec to_timespec(uint64_t ns) {
  return {static_cast<time_t>(ns / kNsPerSec), static_cast<long>(ns % kNsPerSec)};
}

Result<proc::TimerFdInfo> read_state(int fd) {
  const std::string text = TRY(read_file(fmt::format("/proc/self/fdinfo/{}", fd)));
  return TRY(proc::parse_timerfd_fdinfo(text));
}

class TimerFd final : public Kind {
  static Result<proc::TimerFdInfo> state_of(const FdProbe& p) {
    proc::TimerFdInfo info = TRY(proc::parse_timerfd_fdinfo(p.fdinfo));
    const bool expired = info.interval_ns != 0 && info.value_ns == 0;  // or disarmed
    if (!expired && !(info.settime_flags & TFD_TIMER_ABSTIME)) return info;
    UniqueFd f = TRY(take_file(p));
    itimerspec now{};
    if (timerfd_gettime(f.get(), &now) < 0) return sys_error("timerfd_gettime");
    info = TRY(read_state(f.get()));
    // Armed, by gettime, but 0 left in fdinfo: it expired between the two
    // (that tick is in fdinfo's count); a periodic one is next due an
    // interval later.
    if (info.value_ns == 0 && (now.it_value.tv_sec || now.it_value.tv_nsec)) info.value_ns = info.interval_ns;
    return info;
  }

 public:
  std::string_view name() const override { return "timerfd"; }
  img::FileDesc::KindCase tag() const override { return img::FileDesc::kTimerfd; }

  bool claims(const FdProbe& p, const DumpFlags&) const override { return p.link == "anon_inode:[timerfd]"; }

  Result<void> collect(const FdProbe& p, img::FileDesc* d) const override {
    const proc::TimerFdInfo info = TRY(state_of(p));
    const char* clock = clock_name(info.clockid);
    if (!clock) return error(EOPNOTSUPP, "a timerfd on clock {}, which timerfd_create does not take", info.clockid);
    if (is_alarm(info.clockid)) {
      // Restore must be allowed to make one (CAP_WAKE_ALARM).
      int probe = timerfd_create(info.clockid, TFD_CLOEXEC);
      if (probe < 0) return sys_error("a {} timerfd, which ckpt can't create here to restore it", clock);
      close(probe);
    }
    if (info.settime_flags & ~kSettimeFlags)
      return error(EOPNOTSUPP, "timerfd settime flags {:#o}: not supported", info.settime_flags);
    if ((info.settime_flags & TFD_TIMER_CANCEL_ON_SET) && info.ticks != 0)
      return error(EOPNOTSUPP, "a TFD_TIMER_CANCEL_ON_SET timerfd with {} ticks not yet read (one may be a clock "
                   "change, which fdinfo does not tell apart): not supported", info.ticks);
    uint64_t value = info.value_ns;
    if (value != 0 && (info.settime_flags & TFD_TIMER_ABSTIME)) {
      const uint64_t at = TRY(now_ns(info.clockid));
      if (value > kMaxNs - at) return error(EOPNOTSUPP, "a timerfd due past the end of ktime_t");
      value += at;
    }
    img::TimerFd* t = d->mutable_timerfd();
    t->set_clock(info.clockid);
    t->set_settime_flags(info.settime_flags);
    t->set_value_ns(value);
    t->set_interval_ns(info.interval_ns);
    t->set_ticks(info.ticks);
    return {};
  }

  Result<void> verify(const img::FileDesc& d) const override {
    const img::TimerFd& t = d.timerfd();
    if (!clock_name(t.clock())) return error(EINVAL, "a timerfd on clock {}", t.clock());
    if (t.settime_flags() & ~kSettimeFlags) return error(EINVAL, "timerfd settime flags {:#o}", t.settime_flags());
    if (t.value_ns() > kMaxNs || t.interval_ns() > kMaxNs)
      return error(EINVAL, "a timerfd value of {} ns and interval of {} ns (at most {})", t.value_ns(),
                   t.interval_ns(), kMaxNs);
    if (t.ticks() == std::numeric_limits<uint64_t>::max()) return error(EINVAL, "a timerfd with 2^64 - 1 ticks");
    return {};
  }

  Result<UniqueFd> open(const img::FileDesc& d, OpenState&) const override {
    const img::TimerFd& t = d.timerfd();
    int fd = timerfd_create(t.clock(), TFD_CLOEXEC);
    if (fd < 0) return sys_error("timerfd_create {}", clock_name(t.clock()));
    UniqueFd out(fd);
    const bool absolute = t.settime_flags() & TFD_TIMER_ABSTIME;
    const uint64_t before = TRY(now_ns(t.clock()));
    // Also when disarmed: the interval and flags show in timerfd_gettime and fdinfo.
    const itimerspec its{to_timespec(t.interval_ns()), to_timespec(t.value_ns())};
    if (timerfd_settime(fd, static_cast<int>(t.settime_flags()), &its, nullptr) < 0)
      return sys_error("timerfd_settime {} ns, every {} ns, flags {:#o}", t.value_ns(), t.interval_ns(),
                       t.settime_flags());
    if (t.ticks() == 0) return out;
    // settime zeroes the ticks; the ioctl sets them, and replaces the tick
    // of an expiry that came between the two.
    uint64_t ticks = t.ticks();
    if (ioctl(fd, kTfdSetTicks, &ticks) < 0) return sys_error("TFD_IOC_SET_TICKS {}", ticks);
    if (t.value_ns() == 0) return out;  // disarmed: nothing fired
    const uint64_t due = absolute ? t.value_ns() : before + t.value_ns();  // or a little later
    if (TRY(now_ns(t.clock())) < due) return out;  // not due yet when the ioctl ran
    // Due by now. The timer fires once (it is armed again only by a read or
    // gettime), from the hrtimer interrupt, microseconds after its time: if
    // its tick has not come on top of ours soon, it came before the ioctl.
    for (int ms = 0; ms < 20; ms++) {
      if (TRY(read_state(fd)).ticks != ticks) return out;
      usleep(1000);
    }
    ticks++;  // below 2^64 - 1: verified
    if (ioctl(fd, kTfdSetTicks, &ticks) < 0) return sys_error("TFD_IOC_SET_TICKS {}", ticks);
    return out;
  }
};

}  // namespace

const Kind& timerfd_kind() {
  static const TimerFd k;
  return k;
}

}  // namespace ckpt::files
