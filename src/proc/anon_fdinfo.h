// The lines eventfd, signalfd and timerfd add to /proc/PID/fdinfo/FD (after
// pos, flags, mnt_id and ino, which parse_fdinfo reads): their state, which
// no syscall reads without consuming it.
#pragma once

#include <cstdint>
#include <string_view>

#include "base/result.h"

namespace ckpt::proc {

// fs/eventfd.c, eventfd_show_fdinfo:
//   eventfd-count:                5      (hex, %16llx)
//   eventfd-id: 1
//   eventfd-semaphore: 1                 (since Linux 6.2)
struct EventFdInfo {
  uint64_t count = 0;
  bool semaphore = false;
  bool shows_semaphore = false;  // the kernel printed the line
};

// fs/signalfd.c, signalfd_show_fdinfo:
//   sigmask:	0000001000000200          (hex, bit N-1 for signal N)
struct SignalFdInfo {
  uint64_t sigmask = 0;
};

// fs/timerfd.c, timerfd_show:
//   clockid: 1
//   ticks: 0
//   settime flags: 03                    (octal)
//   it_value: (99, 950714224)            (time left: seconds, nanoseconds)
//   it_interval: (0, 50000000)
struct TimerFdInfo {
  int clockid = 0;
  uint64_t ticks = 0;
  uint32_t settime_flags = 0;
  uint64_t value_ns = 0;
  uint64_t interval_ns = 0;
};

// fs/pidfs.c, pidfd_show_fdinfo (in the reader's PID namespace):
//   Pid:	4121                          (-1 once the task is reaped)
//   NSpid:	4121                          (its PID in each nested namespace)
struct PidFdInfo {
  int pid = 0;
  int nspid_levels = 0;  // fields of NSpid: 1 when the task is in the reader's namespace
};

Result<EventFdInfo> parse_eventfd_fdinfo(std::string_view text);
Result<SignalFdInfo> parse_signalfd_fdinfo(std::string_view text);
Result<TimerFdInfo> parse_timerfd_fdinfo(std::string_view text);
Result<PidFdInfo> parse_pidfd_fdinfo(std::string_view text);

}  // namespace ckpt::proc
