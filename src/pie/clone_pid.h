// clone3 with one wanted PID (set_tid), for ckpt's root and the spawner's
// tasks and threads. The PID of a task reaped a moment ago can stay
// allocated for a short while after the last wait for it (seen about once
// in 30 restores straight after a reap): the clone is tried again for that
// while, 1 ms apart. `clone()` makes the call with `a` and returns the
// child's PID (0 in the child) or the negative errno.
#pragma once

#include <asm/unistd.h>
#include <linux/sched.h>
#include <stdint.h>

#include "pie/sys.h"

namespace pie {

template <typename Clone>
long clone_with_pid(clone_args& a, const int32_t* want, Clone&& clone) {
  constexpr int kRetries = 200;
  constexpr long kEexist = 17;
  a.set_tid = reinterpret_cast<uint64_t>(want);
  a.set_tid_size = 1;
  long r = clone();
  for (int tries = 0; r == -kEexist && tries < kRetries; tries++) {
    const struct {
      long sec, nsec;
    } ms{0, 1000 * 1000};
    sys(__NR_nanosleep, &ms, 0);
    r = clone();
  }
  return r;
}

}  // namespace pie
