// Test-only fault injection: CKPT_FAULT=<point> makes the step that reaches
// <point> fail as if the kernel had, so tests can show that a dump failing
// there loses nothing (and a restore that fails at "let-go", its last step,
// leaves nothing); CKPT_FAULT=hang:<point> stops ckpt there for good, so
// that a test can kill it at a known place; CKPT_FAULT=slow:<point> pauses
// there for 300 ms, so that a test can act on the frozen task. <point>@PID
// limits it to the task PID of a tree, at the points that name their task.
// main reads the variable once; the value is passed down with the options
// (no global).
#pragma once

#include <unistd.h>

#include <string>
#include <string_view>

#include "base/result.h"

namespace ckpt {

struct Faults {
  std::string point;  // empty: none

  // An error at the named point (of task `pid`, where it names one), else nothing.
  Result<void> at(std::string_view name, pid_t pid = 0) const {
    std::string_view p = point;
    if (const size_t a = p.find('@'); a != std::string_view::npos) {
      if (pid == 0 || p.substr(a + 1) != std::to_string(pid)) return {};
      p = p.substr(0, a);
    }
    if (p.starts_with("hang:") && p.substr(5) == name)
      for (;;) ::pause();
    if (p.starts_with("slow:") && p.substr(5) == name) ::usleep(300 * 1000);
    if (p != name) return {};
    return error(EIO, "injected fault at {} (CKPT_FAULT)", name);
  }
};

}  // namespace ckpt
