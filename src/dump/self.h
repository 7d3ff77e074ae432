// What a dump checks every task against in ckpt itself: read once per dump,
// not once per task, and read-only from then on (the helper thread that
// reads the next tasks' /proc files checks them against it too).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <vector>

#include "base/result.h"

namespace ckpt::dump {

struct Self {
  struct Namespace {
    const char* kind;
    dev_t dev;
    ino_t ino;
  };
  std::vector<Namespace> namespaces;  // those this kernel has
  dev_t root_dev = 0;                 // ckpt's root directory
  ino_t root_ino = 0;
  int32_t oom_score_adj = 0;
  bool sys_resource = false;  // CAP_SYS_RESOURCE in effect

  static Result<Self> read();
};

// Restore creates every task in ckpt's own namespaces: a task in others
// would come back in the wrong ones, and is refused.
Result<void> check_namespaces(pid_t pid, const Self& self);

}  // namespace ckpt::dump
