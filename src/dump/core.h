// Everything of a task that is not memory or files: registers, signals, the
// mm fields, rseq and the rest (TaskCore in proto/ckpt.proto).
#pragma once

#include <vector>

#include "base/fault.h"
#include "base/result.h"
#include "ckpt.pb.h"
#include "ptrace/tracee.h"

namespace ckpt::dump {

// Every thread is stopped; threads[0] is the main thread. `vdso_start` is
// where the task's [vdso] is: the remote syscalls that read sigactions and
// the like run from its syscall instruction.
Result<img::TaskCore> collect_core(std::vector<Tracee>& threads, uint64_t vdso_start, const Faults& faults);

}  // namespace ckpt::dump
