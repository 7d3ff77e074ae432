// A /proc file the kernel makes whole at each read: one seq_file record
// (single_open: stat, status, limits, fdinfo, autogroup) or a buffer filled
// at once (simple_read_from_buffer: loginuid, oom_score_adj,
// coredump_filter). A read shorter than asked for returned all of it, so the
// read that would see end-of-file is not made: one syscall a file, at 3-5 µs
// each on a guest, thousands of files at 10,000 threads or fds.
//
// Not for files of many records (maps, smaps, timers, mountinfo, children):
// their reads end short at a record that did not fit the kernel's buffer.
#pragma once

#include <string>

#include "base/result.h"

namespace ckpt::proc {

Result<std::string> read_record(const std::string& path);
// `name` under the directory `dir`; `path` names it in errors.
Result<std::string> read_record_at(int dir, const std::string& name, const std::string& path);

}  // namespace ckpt::proc
