// The one header shared by ckpt and the freestanding blobs: plain structs, no
// pointers into ckpt's memory. Addresses are absolute addresses in the task
// the blob runs in. Bump kRestorerAbiVersion on any layout change.
#pragma once

#include <stddef.h>
#include <stdint.h>

namespace ckpt::abi {

inline constexpr uint32_t kRestorerAbiVersion = 21;
inline constexpr int kCpuMaskWords = 16;  // 1024 CPUs
inline constexpr uint64_t kBounceSize = 1 << 20;  // the restorer's reads of pages, at most
inline constexpr int kMaxSignals = 64;
inline constexpr int kAuxvWords = 64;  // >= the kernel's AT_VECTOR_SIZE
inline constexpr int kNumSpeculation = 3;  // PR_SPEC_STORE_BYPASS, _INDIRECT_BRANCH, _L1D_FLUSH

// A NUMA memory policy as get_mempolicy gives it: the mode with its MPOL_F_*
// flags, and the nodes (MAX_NUMNODES bits: Linux allows up to 1024).
inline constexpr int kMemPolicyNodeWords = 16;
struct MemPolicyArg {
  uint64_t start, end;  // a VMA's range (the parasite asks at start); unused for a thread's
  int32_t mode;
  uint32_t pad;
  uint64_t nodes[kMemPolicyNodeWords];
};

// One VMA to map. fd < 0: anonymous.
struct VmaArg {
  uint64_t start;
  uint64_t end;
  uint32_t prot;       // final PROT_*
  uint32_t map_flags;  // MAP_PRIVATE / MAP_SHARED / MAP_DROPPABLE [| MAP_ANONYMOUS | MAP_GROWSDOWN | MAP_NORESERVE]
  int32_t fd;
  uint32_t has_pages;  // pages to fill: map writable first, mprotect after
  uint64_t pgoff;      // file offset in bytes
  uint32_t nr_advice;
  uint8_t advice[8];   // MADV_* to apply after mapping
  uint32_t lock;       // VmaLock: mlock2 once filled and protected
  uint32_t seal;       // mseal once everything else is set
  uint32_t map_writable;  // VM_ACCOUNT: map writable first, mprotect after
  uint32_t attach;        // 1 + index of the SysvAttachArg it is part of; 0: mmap it
  uint32_t lazy;          // restore --lazy-pages: registered with the userfaultfd, not filled
  uint32_t premapped;     // laid out before the task forked (restore/premap.h): moved, not mapped
};
static_assert(sizeof(VmaArg) == 80);

// One shmat of a System V segment, as the task made it: the whole segment
// at `base` with the attach's protection. The VMAs that name it are its
// parts (mprotect splits them); what none covers the task had unmapped.
struct SysvAttachArg {
  uint64_t base;
  uint64_t size;  // page multiple
  int32_t shmid;
  uint32_t shmflg;  // SHM_RDONLY, SHM_EXEC
  uint32_t prot;    // what shmat maps it with
  uint32_t pad;
};

enum VmaLock : uint32_t { kLockNone = 0, kLockNow, kLockOnFault };

// A kernel special mapping ([vvar], [vvar_vclock], [vdso]) moved with mremap.
struct MoveArg {
  uint64_t from;
  uint64_t len;
  uint64_t to;
};

// Present pages laid one run after another in the pages file.
struct PageRunArg {
  uint64_t vaddr;
  uint64_t nr_pages;
  uint32_t crc32c;  // of its bytes, checked by the restorer as they land
  // Its bytes are not read here: the lazy-pages daemon serves them, or the
  // task read them before it forked (restore/premap.h).
  uint32_t skip;
};

// Pages a child inherited unchanged from an ancestor: `len` bytes at
// `vaddr`, at `off` in the ancestor's pages file, open at `fd`.
struct InheritedRunArg {
  uint64_t vaddr;
  uint64_t len;
  uint64_t off;
  int32_t fd;
  int32_t pad;
};

// The kernel's struct sigaction on x86_64 (not glibc's).
struct KSigAction {
  uint64_t handler;
  uint64_t flags;
  uint64_t restorer;
  uint64_t mask;
};

// A signal to queue again: raw kernel siginfo (128 bytes).
struct SigInfoArg {
  uint8_t raw[128];
  int32_t signo;
  int32_t pad;
};

struct KTimeval {
  int64_t sec, usec;
};
struct KTimespec {
  int64_t sec, nsec;
};

// setitimer(2)'s struct itimerval.
struct ITimerArg {
  KTimeval interval, value;
};

struct RLimitArg {
  uint64_t cur, max;
};

// A POSIX timer to create with this id, then arm (struct itimerspec).
struct PosixTimerArg {
  int32_t id;
  int32_t clock;
  // The kernel's struct sigevent (64 bytes on x86_64).
  uint64_t sival;
  int32_t signo;
  int32_t notify;
  int32_t notify_tid;
  int32_t sigev_pad[11];
  KTimespec interval, value;
};
static_assert(sizeof(PosixTimerArg) == 8 + 64 + 32);

// A seccomp filter: struct sock_fprog (len, pointer) and its install flags.
struct SeccompFilterArg {
  uint16_t len;  // instructions
  uint16_t pad[3];
  uint64_t insns;  // struct sock_filter[len]
  uint64_t flags;
};

// struct prctl_mm_map of <linux/prctl.h>, for PR_SET_MM_MAP.
struct MmMap {
  uint64_t start_code, end_code, start_data, end_data;
  uint64_t start_brk, brk, start_stack;
  uint64_t arg_start, arg_end, env_start, env_end;
  uint64_t auxv;  // pointer
  uint32_t auxv_size;
  uint32_t exe_fd;
};
static_assert(sizeof(MmMap) == 104);

// Where the restorer failed, in the failing thread's ThreadArg; it stores
// this and traps (int3) so that ckpt, its tracer, reads it before killing it.
struct RestorerError {
  int32_t step;  // RestorerStep
  int32_t err;   // positive errno
  uint64_t addr;
  uint64_t len;
};

enum RestorerStep : int32_t {
  kStepNone = 0,
  kStepVersion,
  kStepUnmap,
  kStepMoveSpecial,
  kStepMapVma,
  kStepReadPages,
  kStepProtect,
  kStepMmMap,
  kStepSigaction,
  kStepSigaltstack,
  kStepQueueSignal,
  kStepRseq,
  kStepRobustList,
  kStepComm,
  kStepMadvise,
  kStepRlimit,
  kStepTimer,
  kStepPrctl,
  kStepSeccomp,
  kStepCreds,
  kStepLock,
  kStepSeal,
  kStepMembarrier,
  kStepMlockall,
  kStepSpeculation,
  kStepLoginuid,
  kStepMdwe,
  kStepMemoryMerge,
  kStepStop,
  kStepPageChecksum,
  kStepSysvAttach,
  kStepLazy,
  kStepPremap,
  kStepMempolicy,
};

// How a thread stops for ckpt before its rt_sigreturn, in syscall-trace
// completion (none with a breakpoint): int3, or a SIGSTOP to itself where
// the task ignores SIGTRAP.
enum Barrier : uint32_t { kBarrierNone = 0, kBarrierTrap = 1, kBarrierStop = 2 };

// What one thread restores itself: thread 0 is the main thread (the restorer
// proper), the others are created by ckpt's child before release and wait in
// the blob until the address space is back.
struct ThreadArg {
  uint64_t args;  // RestorerArgs*
  int32_t tid;
  uint32_t nr_siginfo;
  uint64_t siginfo;   // SigInfoArg[nr_siginfo]: its thread-private queue
  uint64_t stack_top;
  uint64_t ss_sp, ss_size;
  int32_t ss_flags;
  uint32_t rseq_len;
  uint64_t rseq_ptr;  // 0: none
  uint32_t rseq_sig;
  uint32_t pad0;
  uint64_t robust_list, robust_len;
  uint64_t clear_child_tid;
  char comm[16];
  uint64_t timerslack_ns;
  int32_t pdeathsig;
  uint32_t no_new_privs;
  int32_t seccomp_mode;  // 0 none, 1 strict, 2 filter
  uint32_t nr_filters;
  uint64_t filters;  // SeccompFilterArg[nr_filters], oldest first
  // Credentials, applied only when they differ from ckpt's (creds_change).
  uint32_t creds_change;
  uint32_t last_cap;  // /proc/sys/kernel/cap_last_cap
  uint32_t uids[4], gids[4];  // real, effective, saved, fs
  uint32_t nr_groups;
  uint32_t securebits;
  uint64_t groups;  // uint32_t[nr_groups]
  uint64_t cap_inh, cap_prm, cap_eff, cap_bnd, cap_amb;
  // PR_GET_SPECULATION_CTRL values; set again where PR_SPEC_PRCTL says the
  // thread chose them.
  uint32_t speculation[kNumSpeculation];
  uint32_t set_loginuid;  // write loginuid to /proc/thread-self/loginuid
  uint32_t loginuid;
  uint32_t pad3;
  uint32_t nr_cpu_words;  // 0: leave the affinity as it is
  uint32_t pad1;
  uint64_t cpu_affinity[kCpuMaskWords];
  // Modes set last (restore_thread_modes): PR_SET_TSC (0: leave),
  // PR_MCE_KILL_SET (-1: leave), CPUID made to fault.
  int32_t tsc_mode;
  int32_t mce_kill;
  uint32_t cpuid_faulting;
  uint32_t pad4;
  uint64_t mempolicy;  // MemPolicyArg*: 0 for the default
  RestorerError error;
};

struct RestorerArgs {
  uint32_t version;
  uint32_t page_size;
  uint32_t crc32c_hw;  // the CPU has SSE4.2's crc32 (arch/x86_64/crc32c.h)
  // The boot region: blob, these args, arrays and stacks. Kept
  // mapped until ckpt unmaps it once the task is at its dumped registers.
  uint64_t boot_start;
  uint64_t boot_end;
  uint64_t bounce;  // kBounceSize bytes of the boot region the pages are read through
  // Ranges that survive the initial unmap (boot region, special mappings).
  uint64_t keep[8][2];
  uint32_t nr_keep;

  uint32_t nr_moves;
  MoveArg moves[8];
  // Memory the task laid out before it forked (restore/premap.h), in a
  // window (kept above) from which each VMA moves into place; then the
  // window goes.
  uint64_t premap_start, premap_end;
  uint32_t nr_premapped;
  uint64_t premapped;  // MoveArg[nr_premapped]

  uint32_t nr_vmas;
  uint32_t nr_runs;
  uint64_t vmas;  // VmaArg[nr_vmas]
  uint32_t nr_attaches;
  uint64_t attaches;  // SysvAttachArg[nr_attaches]
  uint64_t runs;  // PageRunArg[nr_runs], ascending, in file order
  uint32_t nr_inherited;
  uint64_t inherited;  // InheritedRunArg[nr_inherited]
  uint32_t nr_policies;
  uint64_t policies;  // MemPolicyArg[nr_policies]: the VMAs with a policy of their own
  int32_t pages_fd;
  int32_t temp_fd_base;  // every fd >= this is ckpt's and closed at the end
  uint64_t pages_off;    // where the first run starts in pages_fd

  MmMap mm;
  uint64_t auxv[kAuxvWords];

  KSigAction sigactions[kMaxSignals];  // index signo - 1
  uint64_t sigaction_mask;             // bit signo-1 set: install sigactions[signo-1]

  uint32_t nr_siginfo;
  uint32_t umask;
  uint64_t siginfo;  // SigInfoArg[nr_siginfo]: the shared queue

  uint32_t nr_threads;
  uint32_t threads_go;     // futex: set once the address space is restored
  uint64_t threads;        // ThreadArg[nr_threads], [0] the main thread
  uint32_t threads_ready;  // futex: threads that have reached the blob
  uint32_t nr_rlimits;

  RLimitArg rlimits[16];
  ITimerArg itimers[3];  // ITIMER_REAL, _VIRTUAL, _PROF
  uint32_t nr_timers;
  uint32_t personality;
  uint64_t timers;  // PosixTimerArg[nr_timers]
  int32_t dumpable;
  uint32_t child_subreaper;
  uint32_t thp_disable;
  uint32_t creds_done;  // futex: threads whose credentials are in place
  uint32_t creds_barrier;  // set when a thread other than the main one changes them
  uint32_t mlockall;       // MCL_FUTURE [| MCL_ONFAULT], or 0
  uint32_t membarrier;     // MEMBARRIER_CMD_REGISTER_* to issue
  uint32_t thp_disable_flags;  // PR_SET_THP_DISABLE's arg3 (PR_THP_DISABLE_EXCEPT_ADVISED)
  uint32_t mdwe;               // PR_SET_MDWE, once every VMA is final
  uint32_t memory_merge;       // PR_SET_MEMORY_MERGE
  // Syscall-trace completion: each thread stops itself (rst_barrier in
  // sigreturn.S) before its last syscalls, so ckpt traces only those.
  uint32_t barrier;  // Barrier
  // restore --lazy-pages (restore/lazy.h): the VMAs marked lazy are
  // registered with a new userfaultfd (missing mode), which is sent with a
  // LazyUffdMsg on both sockets (the daemon's, ckpt's watcher's) and closed.
  uint32_t lazy;
  int32_t lazy_daemon_fd;
  int32_t lazy_watch_fd;
  uint32_t pad_lazy;
  // ckpt's own CPU affinity, which its threads inherited before ckpt pinned
  // them to arm them (ptrace/completion.h, ArmByCpu): theirs again where
  // the dumped one can't be (none dumped, or none of its CPUs here).
  uint32_t nr_ckpt_cpu_words;  // 0: leave the pin
  uint32_t pad_cpus;
  uint64_t ckpt_cpus[kCpuMaskWords];
};

// What a restorer sends with its task's userfaultfd.
inline constexpr uint32_t kLazyUffdMagic = 0x4c415a59;  // "LAZY"
struct LazyUffdMsg {
  uint32_t magic;
  int32_t pid;  // as dumped
};

}  // namespace ckpt::abi
