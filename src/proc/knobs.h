// Per-process numbers that /proc/PID both shows and takes: read at dump,
// written back through the same files at restore, by ckpt, before it lets
// the task go.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string_view>

#include "base/result.h"

namespace ckpt::proc {

struct Knobs {
  int32_t oom_score_adj = 0;       // /proc/PID/oom_score_adj, -1000..1000
  uint32_t coredump_filter = 0x33;  // /proc/PID/coredump_filter (hex)
  // The nice of its session's autogroup (/proc/PID/autogroup, "/autogroup-N
  // nice X"); none without CONFIG_SCHED_AUTOGROUP, or for a task whose
  // sessions never called setsid (init's default autogroup: an empty file).
  std::optional<int32_t> autogroup_nice;
};

Result<Knobs> read_knobs(pid_t pid);
Result<int32_t> read_oom_score_adj(pid_t pid);
// The text of /proc/PID/autogroup; `path` names it in errors.
Result<std::optional<int32_t>> parse_autogroup_nice(std::string_view text, std::string_view path);
// The knobs of `k` that differ from what the task inherited (`inherited`:
// its parent's, ckpt's). Lowering oom_score_adj below the inherited value
// needs CAP_SYS_RESOURCE: without it the error says so.
Result<void> write_knobs(pid_t pid, const Knobs& k, const Knobs& inherited);
// The autogroup is its session's: every task of the session shares it.
Result<void> write_autogroup_nice(pid_t pid, int32_t nice);

}  // namespace ckpt::proc
