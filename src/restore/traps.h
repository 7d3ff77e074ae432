// SIGTRAPs (and SIGCONTs) pending at dump wait until ckpt no longer traps. The restorer
// queues every other pending signal itself; a SIGTRAP queued there would
// merge with the breakpoint's own (one legacy signal per queue) and turn
// ckpt's trap into the task's, or the task's into ckpt's. After completion
// each thread queues its own (rt_tgsigqueueinfo) and the first one the
// process's (rt_sigqueueinfo) through remote syscalls: the kernel lets no
// other process queue a siginfo that claims to come from kill or tgkill.
#pragma once

#include <signal.h>

#include <span>

#include "base/result.h"
#include "ckpt.pb.h"
#include "ptrace/tracee.h"

namespace ckpt::restore {

// SIGCONT too: syscall-trace completion stops each thread with a SIGSTOP,
// and the kernel flushes every pending SIGCONT of the group when it queues one.
inline bool queued_late(const img::SigInfo& s) { return s.signo() == SIGTRAP || s.signo() == SIGCONT; }

// `threads` in the core image's order, each stopped in its final state.
Result<void> queue_late_signals(std::span<Tracee> threads, const img::TaskCore& core);

}  // namespace ckpt::restore
