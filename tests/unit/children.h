// Children for tests that trace or watch processes: each sleeps in pause()
// until killed; the test kills and reaps it.
#pragma once

#include <unistd.h>

namespace ckpt::tests {

inline pid_t paused_child() {
  const pid_t c = fork();
  if (c == 0)
    for (;;) pause();
  return c;
}

}  // namespace ckpt::tests
