// /proc/PID/timers: the POSIX timers of a process (timer_create), which
// timer_gettime alone can't enumerate.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace ckpt::proc {

struct PosixTimer {
  int id = 0;
  int signo = 0;
  uint64_t sival = 0;  // sigev_value as the kernel prints it
  int notify = 0;      // SIGEV_SIGNAL / SIGEV_NONE / SIGEV_THREAD, | SIGEV_THREAD_ID with "tid"
  pid_t notify_pid = 0;
  int clock = 0;
};

Result<std::vector<PosixTimer>> parse_timers(std::string_view text);
Result<std::vector<PosixTimer>> read_timers(pid_t pid);

}  // namespace ckpt::proc
