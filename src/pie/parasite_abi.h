// What ckpt and the parasite blob share: one ParasiteArgs block in a memory
// mapping both of them see (the task maps a memfd, ckpt maps the same
// memfd), so commands' arguments and results are never copied. The unix
// socket only carries the command word, its reply, and file descriptors.
//
// Layout of the mapping (offsets from ckpt's ParasiteLayout):
//   blob | ParasiteArgs | daemon's sigframe, stack | kVisitSlots x (visitor's sigframe, stack)
#pragma once

#include "pie/abi.h"

namespace ckpt::abi {

inline constexpr uint32_t kParasiteAbiVersion = 13;
// Threads visited at once, each in its own slot.
inline constexpr int kVisitSlots = 64;
inline constexpr int kMaxDrainIov = 1024;
inline constexpr int kMaxTimersPerCall = 256;
inline constexpr int kMaxPoliciesPerCall = 1024;
inline constexpr int kMaxFdsPerCall = 253;  // SCM_MAX_FD
inline constexpr int kMaxFdFlagsPerCall = 4096;
inline constexpr int kNumRLimits = 16;

enum ParasiteCmd : uint32_t {
  kParasiteProcess = 1,  // fill ParasiteArgs::process
  kParasiteThread,       // fill ParasiteArgs::thread for the daemon's own thread
  kParasiteTimers,       // timer_gettime/getoverrun of timers[0..count)
  kParasiteTakePipe,     // the message carries a pipe's write end: keep it
  kParasiteDrain,        // vmsplice iov[0..count) into that pipe, crc32c of each
  kParasiteSendFds,      // send fds[0..count) back with SCM_RIGHTS
  kParasiteFinish,       // close our fds, rt_sigreturn through rst_sigreturn
  kParasiteCloseExtras,  // close the pipe and the visit socket: only the daemon's socket stays
  kParasiteVisitSock,    // make the visit socket pair, send ckpt its end
  kParasitePolicies,     // get_mempolicy of the VMA at policies[0..count).start
  kParasiteFdFlags,      // F_GETFD of fd_flags[0..count).fd
};

// One datagram each way (SOCK_SEQPACKET).
struct ParasiteMsg {
  uint32_t cmd;
  uint32_t count;
};
struct ParasiteReply {
  uint32_t cmd;
  int32_t err;      // 0, or the errno of the first failure
  uint32_t step;    // which call failed (ParasiteStep)
  uint32_t index;   // and on which item
};

enum ParasiteStep : uint32_t {
  kPsNone = 0,
  kPsVersion,
  kPsSigaction,
  kPsItimer,
  kPsRlimit,
  kPsPrctl,
  kPsTimer,
  kPsAltstack,
  kPsVmsplice,
  kPsSendmsg,
  kPsRecvmsg,
  kPsUnknownCmd,
  kPsSocketpair,
  kPsMempolicy,
  kPsFdFlags,
};

// Process-wide state only the task can tell.
struct ProcessState {
  KSigAction sigactions[kMaxSignals];  // index signo - 1; SIGKILL, SIGSTOP left zero
  ITimerArg itimers[3];                // ITIMER_REAL, _VIRTUAL, _PROF
  RLimitArg rlimits[kNumRLimits];
  uint64_t brk;
  uint32_t personality;
  int32_t dumpable;
  int32_t thp_disable;  // PR_GET_THP_DISABLE: bit 1 is PR_THP_DISABLE_EXCEPT_ADVISED
  int32_t child_subreaper;
  uint32_t mdwe;          // PR_GET_MDWE; 0 on a kernel without it
  uint32_t memory_merge;  // PR_GET_MEMORY_MERGE; 0 on a kernel without it
  // MEMBARRIER_CMD_REGISTER_* of the mm; membarrier_err: errno of the query.
  uint32_t membarrier;
  int32_t membarrier_err;
};

// Per-thread state only the thread can tell. Not its ids, groups,
// capability sets and no_new_privs, which /proc/TID/status shows (ckpt
// reads that file of every thread anyway): ~50 syscalls a visited thread,
// 41 of them a prctl a capability of the bounding set.
struct ThreadState {
  uint32_t securebits;
  uint64_t clear_child_tid;
  uint64_t ss_sp, ss_size;
  int32_t ss_flags;
  int32_t pdeathsig;
  uint64_t timerslack_ns;
  // PR_GET_SPECULATION_CTRL of PR_SPEC_STORE_BYPASS, _INDIRECT_BRANCH,
  // _L1D_FLUSH; 0 where the kernel knows none.
  uint32_t speculation[kNumSpeculation];
  int32_t tsc_mode;  // PR_GET_TSC
  int32_t mce_kill;  // PR_MCE_KILL_GET
  int32_t cpuid;     // ARCH_GET_CPUID: 0 when CPUID faults
  MemPolicyArg mempolicy;  // get_mempolicy; MPOL_DEFAULT on a kernel without NUMA
  // Out, for a thread run outside the daemon: the first failure.
  int32_t err;
  uint32_t step;
};

// One visited thread: its state, and the rsp for rt_sigreturn into its own
// registers should ckpt be gone (the frame is in the slot's own area).
struct VisitSlot {
  ThreadState state;
  uint64_t frame;
};

struct TimerState {
  int32_t id;  // in
  int32_t overrun;
  KTimespec interval, value;
};

// An fd's own flags (FD_CLOEXEC): only the task can tell them without a
// /proc/PID/fdinfo file a fd.
struct FdFlagsArg {
  int32_t fd;     // in
  int32_t flags;  // out: F_GETFD
};

struct DrainIov {
  uint64_t base;
  uint64_t len;
  uint32_t crc32c;  // out: of these bytes (initial value 0, as crc32c() in ckpt)
  uint32_t pad;
};

// Index into ParasiteArgs' socket pairs, as socketpair() wrote them in the
// task: the parasite's end, and the end ckpt took with pidfd_getfd (which the
// daemon closes before anything else).
enum SocketEnd { kTaskEnd = 0, kCkptEnd = 1 };

// The start of ParasiteArgs: the parasite's fds in the task, -1 once closed.
// A later dump reads it to close those a killed ckpt left open
// (src/parasite/leftovers.h).
struct ParasiteRecord {
  uint32_t version;
  int32_t sock[2];        // the daemon's socket pair
  int32_t visit_sock[2];  // the pair visited threads wait on
  int32_t pipe;           // the pipe's write end, -1 until kParasiteTakePipe
  int32_t memfd;          // the parasite's own memfd, until the daemon closes it
};

struct ParasiteArgs : ParasiteRecord {
  uint32_t sigpipe_pending;  // SIGPIPE was pending before: a failed vmsplice must not take it away
  // The task has a seccomp mode: once ckpt is gone (and its suspension of the
  // filters with it), the daemon's way back makes no syscall but rt_sigreturn
  // and leaves its fds to the next dump, which removes them.
  uint32_t seccomp;
  uint32_t crc32c_hw;  // the CPU has SSE4.2's crc32 (arch/x86_64/crc32c.h)
  uint64_t sigframe;  // rsp for rt_sigreturn into the main thread's own registers
  ProcessState process;
  ThreadState thread;
  // Visited threads, each in its slot: says it is done on visit_sock, then
  // waits there; ckpt takes it back from that wait, or, gone, closes the
  // socket and the thread returns through its slot's frame.
  VisitSlot visits[kVisitSlots];
  TimerState timers[kMaxTimersPerCall];
  MemPolicyArg policies[kMaxPoliciesPerCall];
  DrainIov iov[kMaxDrainIov];
  int32_t fds[kMaxFdsPerCall];
  FdFlagsArg fd_flags[kMaxFdFlagsPerCall];
};

}  // namespace ckpt::abi
