// Test-only fault injection: CKPT_FAULT=<point> makes the step that reaches
// <point> fail as if the kernel had, so tests can show that a dump failing
// there loses nothing; CKPT_FAULT=hang:<point> stops ckpt there for good, so
// that a test can kill it at a known place; CKPT_FAULT=slow:<point> pauses
// there for 300 ms, so that a test can act on the frozen task. main reads the variable once;
// the value is passed down with the options (no global).
#pragma once

#include <unistd.h>

#include <string>
#include <string_view>

#include "base/result.h"

namespace ckpt {

struct Faults {
  std::string point;  // empty: none

  // An error at the named point, else nothing.
  Result<void> at(std::string_view name) const {
    if (point.starts_with("hang:") && point.substr(5) == name)
      for (;;) ::pause();
    if (point.starts_with("slow:") && point.substr(5) == name) ::usleep(300 * 1000);
    if (point != name) return {};
    return error(EIO, "injected fault at {} (CKPT_FAULT)", name);
  }
};

}  // namespace ckpt
