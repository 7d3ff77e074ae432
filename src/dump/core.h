// Everything of a task that is not memory or files: registers, signals, the
// mm fields, rseq and the rest (TaskCore in proto/ckpt.proto).
#pragma once

#include <vector>

#include "base/result.h"
#include "ckpt.pb.h"
#include "dump/self.h"
#include "files/file_id.h"
#include "parasite/parasite.h"
#include "proc/status.h"
#include "ptrace/tracee.h"

namespace ckpt::dump {

// What /proc shows of the stopped process as a whole (comm, cwd, exe, auxv,
// the knobs): no ptrace, so it can be read ahead of its tracer.
// `ids`: the identities of mapped files this dump has taken already.
Result<img::TaskCore> collect_core_proc(pid_t pid, const Self& self, files::FileIdCache& ids);
// Then what ptrace and /proc show of its threads, into `core`. Every thread
// is stopped; threads[0] is the main thread, `status` its /proc/PID/status.
// Comes before the parasite, which changes the main thread's registers.
Result<void> collect_core_outside(std::vector<Tracee>& threads, const proc::Status& status, img::TaskCore* core);

// What only the task can tell, from its parasite; fills in `core`.
Result<void> collect_core_inside(Parasite& p, std::vector<Tracee>& threads, img::TaskCore* core);
// The NUMA memory policy of each VMA (mbind), which only the task can read.
Result<void> collect_vma_policies(Parasite& p, img::MmImage* mm);

}  // namespace ckpt::dump
