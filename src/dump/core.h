// Everything of a task that is not memory or files: registers, signals, the
// mm fields, rseq and the rest (TaskCore in proto/ckpt.proto).
#pragma once

#include "base/result.h"
#include "ckpt.pb.h"
#include "ptrace/tracee.h"

namespace ckpt::dump {

// `t` is stopped; `vdso_start` is where the task's [vdso] is (the remote
// syscalls that read sigactions and the like run from its syscall instruction).
Result<img::TaskCore> collect_core(Tracee& t, uint64_t vdso_start);

}  // namespace ckpt::dump
