// The restorer: freestanding code that turns a task the spawner made into the
// dumped task. It runs from the boot region (see src/restore/boot_region.h),
// which is the only memory it touches once it has unmapped everything else.
//
// The main thread restores the address space and the process-wide state,
// then lets the other threads (created before release, waiting in
// restorer_thread_main) go; every thread restores its own state and ends in
// rst_sigreturn(), where ckpt holds a hardware breakpoint (or traces syscalls
// until its rt_sigreturn) and finishes it from outside.
#include <asm/prctl.h>
#include <asm/unistd.h>
#include <linux/futex.h>
#include <linux/mman.h>
#include <linux/prctl.h>
#include <linux/signal.h>
#include <linux/uio.h>
#include <linux/ioctl.h>
#include <linux/userfaultfd.h>

#include "arch/x86_64/cpu_now.h"
#include "arch/x86_64/crc32c.h"
#include "pie/abi.h"
#include "pie/mem.h"
#include "pie/sys.h"

using namespace ckpt::abi;
using pie::sys;

extern "C" {
// In sigreturn.S: rsp = frame, rt_sigreturn; where the breakpoint goes.
[[noreturn]] void rst_sigreturn(uint64_t frame, uint64_t cpu);
// In sigreturn.S: the barrier where syscall-trace completion takes over
// (src/ptrace/completion.h): int3, or tgkill(tgid, tid, SIGSTOP).
long rst_barrier(long tgid, long tid, uint32_t how);
}

namespace {

[[noreturn]] void fail(ThreadArg* t, RestorerStep step, long ret, uint64_t addr = 0, uint64_t len = 0) {
  t->error.step = step;
  t->error.err = static_cast<int32_t>(-ret);
  t->error.addr = addr;
  t->error.len = len;
  // ckpt traces us: the trap stops the thread so it can read the error.
  for (;;) asm volatile("int3" ::: "memory");
}

#define MUST(t, step, expr, addr, len)                 \
  do {                                                 \
    long _r = (expr);                                  \
    if (pie::is_err(_r)) fail(t, step, _r, addr, len); \
  } while (0)

ThreadArg* threads(RestorerArgs* a) { return reinterpret_cast<ThreadArg*>(a->threads); }

// Unmap everything but the ranges in a->keep (sorted by ckpt).
void unmap_all_but_keep(RestorerArgs* a, ThreadArg* t) {
  uint64_t at = 0, len = 0;
  if (long r = pie::unmap_all_but(a->keep, a->nr_keep, &at, &len)) fail(t, kStepUnmap, r, at, len);
}

// The slots the task filled before it forked, into place; the window, with
// what it inherited and does not use, goes.
void move_premapped(RestorerArgs* a, ThreadArg* t) {
  if (!a->nr_premapped) return;
  auto* m = reinterpret_cast<const MoveArg*>(a->premapped);
  for (uint32_t i = 0; i < a->nr_premapped; i++) {
    long r = sys(__NR_mremap, m[i].from, m[i].len, m[i].len, MREMAP_MAYMOVE | MREMAP_FIXED, m[i].to);
    if (pie::is_err(r)) fail(t, kStepPremap, r, m[i].from, m[i].to);
  }
  MUST(t, kStepPremap, sys(__NR_munmap, a->premap_start, a->premap_end - a->premap_start), a->premap_start,
       a->premap_end - a->premap_start);
}

void move_special(RestorerArgs* a, ThreadArg* t) {
  for (uint32_t i = 0; i < a->nr_moves; i++) {
    const MoveArg& m = a->moves[i];
    if (m.from == m.to) continue;
    long r = sys(__NR_mremap, m.from, m.len, m.len, MREMAP_MAYMOVE | MREMAP_FIXED, m.to);
    if (pie::is_err(r)) fail(t, kStepMoveSpecial, r, m.from, m.to);
  }
}

// System V segments, attached whole at the task's addresses before anything
// else is mapped (the boot region lies outside every attach); then the
// parts of each that the task had unmapped go again.
void attach_sysv(RestorerArgs* a, ThreadArg* t) {
  auto* at = reinterpret_cast<const SysvAttachArg*>(a->attaches);
  auto* v = reinterpret_cast<const VmaArg*>(a->vmas);
  for (uint32_t i = 0; i < a->nr_attaches; i++) {
    long r = sys(__NR_shmat, at[i].shmid, at[i].base, at[i].shmflg);
    if (pie::is_err(r)) fail(t, kStepSysvAttach, r, at[i].base, static_cast<uint64_t>(at[i].shmid));
    if (static_cast<uint64_t>(r) != at[i].base) fail(t, kStepSysvAttach, -22 /* EINVAL */, r, at[i].shmid);
  }
  for (uint32_t i = 0; i < a->nr_attaches; i++) {
    uint64_t cur = at[i].base;
    const uint64_t end = at[i].base + at[i].size;
    for (uint32_t k = 0; k < a->nr_vmas; k++) {
      if (v[k].attach != i + 1) continue;
      if (v[k].start > cur) MUST(t, kStepSysvAttach, sys(__NR_munmap, cur, v[k].start - cur), cur, v[k].start - cur);
      cur = v[k].end;
    }
    if (cur < end) MUST(t, kStepSysvAttach, sys(__NR_munmap, cur, end - cur), cur, end - cur);
  }
}

// Mapped writable first: to be filled, or to be charged (VM_ACCOUNT) as the
// task's was when it mapped it writable.
// A premapped one is writable already, and filled.
bool map_writable_first(const VmaArg& v) { return v.has_pages || v.map_writable || v.premapped; }

void map_vmas(RestorerArgs* a, ThreadArg* t) {
  auto* v = reinterpret_cast<const VmaArg*>(a->vmas);
  auto* at = reinterpret_cast<const SysvAttachArg*>(a->attaches);
  for (uint32_t i = 0; i < a->nr_vmas; i++) {
    if (v[i].attach) {
      // Attached already: only its own protection, as the task's mprotect.
      if (v[i].prot != at[v[i].attach - 1].prot)
        MUST(t, kStepProtect, sys(__NR_mprotect, v[i].start, v[i].end - v[i].start, v[i].prot), v[i].start,
             v[i].end - v[i].start);
    } else if (!v[i].premapped) {
      uint32_t prot = v[i].prot | (map_writable_first(v[i]) ? PROT_WRITE | PROT_READ : 0);
      long r = sys(__NR_mmap, v[i].start, v[i].end - v[i].start, prot, v[i].map_flags | MAP_FIXED, v[i].fd, v[i].pgoff);
      if (pie::is_err(r)) fail(t, kStepMapVma, r, v[i].start, v[i].end - v[i].start);
    }
    if (v[i].map_writable && !v[i].has_pages && !v[i].premapped && v[i].fd < 0) {
      // mprotect drops the charge of anonymous memory never written (no
      // anon_vma): write it, and drop the page, as the task did.
      *reinterpret_cast<volatile uint8_t*>(v[i].start) = 0;
      MUST(t, kStepMadvise, sys(__NR_madvise, v[i].start, a->page_size, MADV_DONTNEED), v[i].start, MADV_DONTNEED);
    }
    // Flags that only madvise sets; they also keep the VMA from merging with
    // its neighbours where it did not merge before.
    for (uint32_t k = 0; k < v[i].nr_advice; k++)
      MUST(t, kStepMadvise, sys(__NR_madvise, v[i].start, v[i].end - v[i].start, v[i].advice[k]), v[i].start,
           v[i].advice[k]);
  }
}

// Pages land through a bounce buffer: read(2) into it, summed there, then
// copied into place by this task. Two reasons:
//  - each run's crc32c is summed from the buffer, still in the cache, so
//    the file is read once and no byte is used unchecked;
//  - the destination is written once, from user mode, after one
//    MADV_POPULATE_WRITE of its range (5.14) faulted all of it in at once.
//    Where a first touch is dear this halves a 1 GiB restore: on the PVM
//    guest (shadow page tables, filled per page and per mode), reading 1 GiB
//    straight into fresh memory and summing it there took 4.3 s, populating
//    and copying through a 1 MiB buffer 2.4 s (bench/README.md). Elsewhere
//    the copy costs ~60 ms per GiB. Where the kernel lacks the madvise, or
//    a range is not page-aligned, the copy faults as ever.
constexpr uint64_t kChunk = kBounceSize;

// Reads `n` bytes at `off` of `fd` into `buf`, whole.
void read_chunk(ThreadArg* t, long fd, uint8_t* buf, uint64_t n, uint64_t off) {
  for (uint64_t got = 0; got < n;) {
    long r = sys(__NR_pread64, fd, buf + got, n - got, off + got);
    if (pie::is_err(r)) fail(t, kStepReadPages, r, off + got, n - got);
    if (r == 0) fail(t, kStepReadPages, -5 /* EIO: truncated */, off + got, n - got);
    got += r;
  }
}

// Page runs lie back to back in the pages file, so one read covers many
// small runs; a mismatch traps, and ckpt lets no thread run its own code
// before every restorer is through.
void read_pages(RestorerArgs* a, ThreadArg* t, uint8_t* buf) {
  auto* runs = reinterpret_cast<const PageRunArg*>(a->runs);
  const uint64_t ps = a->page_size;
  uint64_t off = a->pages_off;  // file offset of runs[next] + done
  uint32_t next = 0;            // first run not completely in place
  uint64_t done = 0;            // bytes of runs[next] already in place
  uint32_t crc = 0;             // of those bytes
  while (next < a->nr_runs) {
    if (runs[next].skip) {  // the lazy-pages daemon's, or in place already: its bytes stay in the file
      off += runs[next].nr_pages * ps;
      next++;
      continue;
    }
    uint64_t want = 0;
    for (uint32_t j = next; j < a->nr_runs && !runs[j].skip && want < kChunk; j++)
      want += runs[j].nr_pages * ps - (j == next ? done : 0);
    if (want > kChunk) want = kChunk;
    read_chunk(t, a->pages_fd, buf, want, off);
    // Sum and place what came; finish the runs it completes (empty ones at once).
    const uint8_t* src = buf;
    for (uint64_t got = want; next < a->nr_runs && !runs[next].skip;) {
      const uint64_t size = runs[next].nr_pages * ps;
      const uint64_t take = size - done < got ? size - done : got;
      if (done == 0) pie::populate(runs[next].vaddr, size);
      crc = ckpt::arch::crc32c(crc, src, take, a->crc32c_hw);
      pie::copy(runs[next].vaddr + done, src, take);
      src += take;
      done += take;
      got -= take;
      if (done < size) break;
      if (crc != runs[next].crc32c) fail(t, kStepPageChecksum, -74 /* EBADMSG */, next, off + want - got - size);
      next++;
      done = 0;
      crc = 0;
    }
    off += want;
  }
}

// What the task inherited unchanged, from its ancestors' pages files.
void read_inherited(RestorerArgs* a, ThreadArg* t, uint8_t* buf) {
  auto* runs = reinterpret_cast<const InheritedRunArg*>(a->inherited);
  uint64_t populated = 0;  // end of the last stretch populated
  for (uint32_t i = 0; i < a->nr_inherited; i++) {
    // Pieces side by side (a chain of checkpoints cuts memory into many,
    // between the pages written in each round) are populated as one.
    if (runs[i].vaddr >= populated) {
      uint64_t end = runs[i].vaddr + runs[i].len;
      for (uint32_t j = i + 1; j < a->nr_inherited && runs[j].vaddr == end; j++) end += runs[j].len;
      pie::populate(runs[i].vaddr, end - runs[i].vaddr);
      populated = end;
    }
    for (uint64_t done = 0; done < runs[i].len;) {
      const uint64_t n = runs[i].len - done < kChunk ? runs[i].len - done : kChunk;
      read_chunk(t, runs[i].fd, buf, n, runs[i].off + done);
      pie::copy(runs[i].vaddr + done, buf, n);
      done += n;
    }
  }
}

// The task's memory from the images, through the boot region's bounce
// buffer: gone with the region at completion, not by an munmap of its own
// (one TLB flush less a task: dear on a guest with shadow page tables).
void fill_memory(RestorerArgs* a, ThreadArg* t) {
  read_pages(a, t, reinterpret_cast<uint8_t*>(a->bounce));
  read_inherited(a, t, reinterpret_cast<uint8_t*>(a->bounce));
}

// restore --lazy-pages: the lazy VMAs (mapped, not filled) are registered
// for missing-page faults with a userfaultfd of this mm, which goes to the
// lazy-pages daemon (it serves the faults) and to ckpt's watcher (its copy
// keeps the registration alive if the daemon dies, so that a fault waits
// until the watcher kills the task rather than reading zeros). The task's
// own fd is closed at once: it never shows in its fd table.
void register_lazy(RestorerArgs* a, ThreadArg* t) {
  constexpr int kSolSocket = 1, kScmRights = 1, kMsgNosignal = 0x4000;
  if (!a->lazy) return;
  long uffd = sys(__NR_userfaultfd, 02000000 /* O_CLOEXEC */ | 04000 /* O_NONBLOCK */);
  if (pie::is_err(uffd)) fail(t, kStepLazy, uffd, 0, 0);
  struct uffdio_api api = {UFFD_API,
                           UFFD_FEATURE_EVENT_FORK | UFFD_FEATURE_EVENT_REMAP | UFFD_FEATURE_EVENT_REMOVE |
                               UFFD_FEATURE_EVENT_UNMAP,
                           0};
  MUST(t, kStepLazy, sys(__NR_ioctl, uffd, UFFDIO_API, &api), 0, 1);
  auto* v = reinterpret_cast<const VmaArg*>(a->vmas);
  for (uint32_t i = 0; i < a->nr_vmas; i++) {
    if (!v[i].lazy) continue;
    struct uffdio_register reg = {{v[i].start, v[i].end - v[i].start}, UFFDIO_REGISTER_MODE_MISSING, 0};
    MUST(t, kStepLazy, sys(__NR_ioctl, uffd, UFFDIO_REGISTER, &reg), v[i].start, v[i].end - v[i].start);
  }
  LazyUffdMsg msg = {kLazyUffdMagic, threads(a)[0].tid};
  struct {
    void* base;
    uint64_t len;
  } iov = {&msg, sizeof msg};
  struct {
    uint64_t len;
    int32_t level, type;
    int32_t fd, pad;
  } cmsg = {16 + 4, kSolSocket, kScmRights, static_cast<int32_t>(uffd), 0};
  struct {
    void* name;
    int32_t namelen;
    void* iov;
    uint64_t iovlen;
    void* control;
    uint64_t controllen;
    uint32_t flags;
  } m = {nullptr, 0, &iov, 1, &cmsg, sizeof cmsg, 0};
  const int32_t socks[2] = {a->lazy_daemon_fd, a->lazy_watch_fd};
  for (int32_t sock : socks) {
    long r = sys(__NR_sendmsg, sock, &m, kMsgNosignal);
    if (pie::is_err(r)) fail(t, kStepLazy, r, static_cast<uint64_t>(sock), 2);
  }
  sys(__NR_close, uffd);
}

void protect_vmas(RestorerArgs* a, ThreadArg* t) {
  auto* v = reinterpret_cast<const VmaArg*>(a->vmas);
  for (uint32_t i = 0; i < a->nr_vmas; i++) {
    if (!map_writable_first(v[i]) || (v[i].prot & (PROT_READ | PROT_WRITE)) == (PROT_READ | PROT_WRITE)) continue;
    MUST(t, kStepProtect, sys(__NR_mprotect, v[i].start, v[i].end - v[i].start, v[i].prot), v[i].start,
         v[i].end - v[i].start);
  }
}

// Once the pages are in and the protection final: mlock faults in what is
// not (MLOCK_ONFAULT only locks what comes later), mseal forbids any later
// change. ckpt still has CAP_IPC_LOCK here, as the task had its
// RLIMIT_MEMLOCK or the capability when it locked them.
void lock_and_seal_vmas(RestorerArgs* a, ThreadArg* t) {
  constexpr long kNrMseal = 462;  // Linux 6.10
  auto* v = reinterpret_cast<const VmaArg*>(a->vmas);
  for (uint32_t i = 0; i < a->nr_vmas; i++) {
    const uint64_t len = v[i].end - v[i].start;
    if (v[i].lock != kLockNone)
      MUST(t, kStepLock, sys(__NR_mlock2, v[i].start, len, v[i].lock == kLockOnFault ? MLOCK_ONFAULT : 0), v[i].start,
           len);
    if (v[i].seal) MUST(t, kStepSeal, sys(kNrMseal, v[i].start, len, 0), v[i].start, len);
  }
}

// membarrier registrations of the mm, as MEMBARRIER_CMD_GET_REGISTRATIONS
// gave them at dump: each bit is the command that registers it.
void register_membarrier(RestorerArgs* a, ThreadArg* t) {
  for (uint32_t bit = 1; bit && bit <= a->membarrier; bit <<= 1)
    if (a->membarrier & bit) MUST(t, kStepMembarrier, sys(__NR_membarrier, bit, 0, 0), bit, 0);
}

void queue_signals(ThreadArg* t, const SigInfoArg* si, uint32_t n, bool thread) {
  long tgid = sys(__NR_getpid);
  for (uint32_t i = 0; i < n; i++) {
    long r = thread ? sys(__NR_rt_tgsigqueueinfo, tgid, t->tid, si[i].signo, si[i].raw)
                    : sys(__NR_rt_sigqueueinfo, tgid, si[i].signo, si[i].raw);
    if (pie::is_err(r)) fail(t, kStepQueueSignal, r, si[i].signo, i);
  }
}

void restore_limits_and_prctl(RestorerArgs* a, ThreadArg* t) {
  for (uint32_t r = 0; r < a->nr_rlimits; r++)
    MUST(t, kStepRlimit, sys(__NR_prlimit64, 0, r, &a->rlimits[r], 0), r, a->rlimits[r].cur);
  sys(__NR_personality, a->personality);
  MUST(t, kStepPrctl, sys(__NR_prctl, PR_SET_CHILD_SUBREAPER, a->child_subreaper, 0, 0, 0), PR_SET_CHILD_SUBREAPER, 0);
  MUST(t, kStepPrctl, sys(__NR_prctl, PR_SET_THP_DISABLE, a->thp_disable, a->thp_disable_flags, 0, 0),
       PR_SET_THP_DISABLE, a->thp_disable_flags);
}

// KSM for the whole mm: every VMA that can merge gets mg, as it had at
// dump, but for those the task unmerged itself (MADV_UNMERGEABLE), which
// are unmerged again (a no-op on a VMA that can't merge).
void restore_memory_merge(RestorerArgs* a, ThreadArg* t) {
  constexpr int kPrSetMemoryMerge = 67;
  if (!a->memory_merge) return;
  MUST(t, kStepMemoryMerge, sys(__NR_prctl, kPrSetMemoryMerge, 1, 0, 0, 0), 0, 0);
  auto* v = reinterpret_cast<const VmaArg*>(a->vmas);
  for (uint32_t i = 0; i < a->nr_vmas; i++) {
    bool mergeable = false;
    for (uint32_t k = 0; k < v[i].nr_advice; k++) mergeable |= v[i].advice[k] == MADV_MERGEABLE;
    if (!mergeable)
      MUST(t, kStepMadvise, sys(__NR_madvise, v[i].start, v[i].end - v[i].start, MADV_UNMERGEABLE), v[i].start,
           MADV_UNMERGEABLE);
  }
}

// Memory-deny-write-execute refuses a mapping that gains PROT_EXEC, as the
// restorer's do (mapped writable, filled, then protected): set once every
// VMA is final. It can't be unset; ckpt's child starts without it.
void restore_mdwe(RestorerArgs* a, ThreadArg* t) {
  constexpr int kPrSetMdwe = 65;
  if (a->mdwe) MUST(t, kStepMdwe, sys(__NR_prctl, kPrSetMdwe, a->mdwe, 0, 0, 0), a->mdwe, 0);
}

// Speculation controls the thread chose (PR_SPEC_PRCTL in the value it
// read); a value without it is the machine's mitigation mode, not the
// thread's. A force-disable can't be undone: a thread whose dumped state is
// weaker than ckpt's own fails here (EPERM).
void restore_speculation(ThreadArg* t) {
  constexpr uint32_t kPrctl = 1;
  for (int which = 0; which < kNumSpeculation; which++) {
    const uint32_t v = t->speculation[which];
    if (!(v & kPrctl)) continue;
    if (sys(__NR_prctl, PR_GET_SPECULATION_CTRL, which, 0, 0, 0) == static_cast<long>(v)) continue;
    MUST(t, kStepSpeculation, sys(__NR_prctl, PR_SET_SPECULATION_CTRL, which, v & ~kPrctl, 0, 0), which, v);
  }
}

// NUMA memory policies, for the thread and, before their pages come, for the
// VMAs that had their own. Where the machine lacks those nodes (EINVAL), or
// NUMA (ENOSYS), the default stays, as a CPU affinity does.
long set_policy(const MemPolicyArg* p, bool vma) {
  constexpr unsigned long kMaxNode = kMemPolicyNodeWords * 64 + 1;  // the kernel counts one bit less
  long r = vma ? sys(__NR_mbind, p->start, p->end - p->start, p->mode, p->nodes, kMaxNode, 0)
               : sys(__NR_set_mempolicy, p->mode, p->nodes, kMaxNode);
  return r == -22 /* EINVAL */ || r == -38 /* ENOSYS */ ? 0 : r;
}

void restore_vma_policies(RestorerArgs* a, ThreadArg* t) {
  auto* p = reinterpret_cast<const MemPolicyArg*>(a->policies);
  for (uint32_t i = 0; i < a->nr_policies; i++) MUST(t, kStepMempolicy, set_policy(&p[i], true), p[i].start, p[i].mode);
}

// Modes the thread chose for itself, which a new thread does not inherit
// from ckpt's: last before the stop, since rdtsc and cpuid may fault from
// here on (the blob uses neither). A machine without CPUID faulting refuses
// it (ENODEV): a failed restore rather than a task that no longer traps.
void restore_thread_modes(ThreadArg* t) {
  if (t->tsc_mode) MUST(t, kStepPrctl, sys(__NR_prctl, PR_SET_TSC, t->tsc_mode, 0, 0, 0), PR_SET_TSC, t->tsc_mode);
  if (t->mce_kill >= 0)
    MUST(t, kStepPrctl, sys(__NR_prctl, PR_MCE_KILL, PR_MCE_KILL_SET, t->mce_kill, 0, 0), PR_MCE_KILL, t->mce_kill);
  if (t->cpuid_faulting) MUST(t, kStepPrctl, sys(__NR_arch_prctl, ARCH_SET_CPUID, 0), ARCH_SET_CPUID, 0);
}

// Audit's login uid: only the thread itself may write its own file. With
// ckpt's CAP_AUDIT_CONTROL, before the credentials drop.
void restore_loginuid(ThreadArg* t) {
  if (!t->set_loginuid) return;
  static const char kPath[] = "/proc/thread-self/loginuid";
  char text[12];
  int n = 0;
  uint32_t v = t->loginuid;
  char rev[12];
  do rev[n++] = static_cast<char>('0' + v % 10);
  while ((v /= 10) != 0);
  for (int i = 0; i < n; i++) text[i] = rev[n - 1 - i];
  long fd = sys(__NR_open, kPath, 01 /* O_WRONLY */ | 02000000 /* O_CLOEXEC */, 0);
  if (pie::is_err(fd)) fail(t, kStepLoginuid, fd, t->loginuid, 0);
  long r = sys(__NR_write, fd, text, n);
  sys(__NR_close, fd);
  if (pie::is_err(r)) fail(t, kStepLoginuid, r, t->loginuid, 1);
}

// Credentials of one thread, dropped from root in the one order that works:
// groups and the bounding set while privileged, keep-caps across the uid
// change, then the capability sets, ambient ones last (they need the others).
void restore_creds(ThreadArg* t) {
  constexpr uint32_t kKeepCaps = 1 << 4, kKeepCapsLocked = 1 << 5;
  if (!t->creds_change) return;
  MUST(t, kStepCreds, sys(__NR_setgroups, t->nr_groups, t->groups), 1, t->nr_groups);
  for (uint32_t cap = 0; cap <= t->last_cap && cap < 64; cap++)
    if (!(t->cap_bnd & (1ULL << cap))) MUST(t, kStepCreds, sys(__NR_prctl, PR_CAPBSET_DROP, cap, 0, 0, 0), 2, cap);
  uint32_t bits = t->securebits | ((t->securebits & kKeepCapsLocked) ? 0 : kKeepCaps);
  MUST(t, kStepCreds, sys(__NR_prctl, PR_SET_SECUREBITS, bits, 0, 0, 0), 3, bits);
  MUST(t, kStepCreds, sys(__NR_setresgid, t->gids[0], t->gids[1], t->gids[2]), 4, t->gids[1]);
  sys(__NR_setfsgid, t->gids[3]);
  MUST(t, kStepCreds, sys(__NR_setresuid, t->uids[0], t->uids[1], t->uids[2]), 5, t->uids[1]);
  sys(__NR_setfsuid, t->uids[3]);
  struct {
    uint32_t version;
    int32_t pid;
  } hdr = {0x20080522 /* _LINUX_CAPABILITY_VERSION_3 */, 0};
  struct {
    uint32_t effective, permitted, inheritable;
  } data[2] = {{uint32_t(t->cap_eff), uint32_t(t->cap_prm), uint32_t(t->cap_inh)},
               {uint32_t(t->cap_eff >> 32), uint32_t(t->cap_prm >> 32), uint32_t(t->cap_inh >> 32)}};
  MUST(t, kStepCreds, sys(__NR_capset, &hdr, data), 6, t->cap_prm);
  for (uint32_t cap = 0; cap < 64; cap++)
    if (t->cap_amb & (1ULL << cap))
      MUST(t, kStepCreds, sys(__NR_prctl, PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0), 7, cap);
  if (bits != t->securebits)
    MUST(t, kStepCreds, sys(__NR_prctl, PR_SET_KEEPCAPS, (t->securebits & kKeepCaps) ? 1 : 0, 0, 0, 0), 8, 0);
}

// A change of credentials resets the mm's dumpable flag: it is set once every
// thread's are in place. Without changes in other threads nobody waits.
void creds_barrier(RestorerArgs* a, ThreadArg* t) {
  if (t != &threads(a)[0]) {
    if (a->creds_barrier &&
        __atomic_add_fetch(&a->creds_done, 1, __ATOMIC_RELEASE) == a->nr_threads - 1)
      sys(__NR_futex, &a->creds_done, FUTEX_WAKE_PRIVATE, 1, 0, 0, 0);
    return;
  }
  while (a->creds_barrier) {
    uint32_t seen = __atomic_load_n(&a->creds_done, __ATOMIC_ACQUIRE);
    if (seen == a->nr_threads - 1) break;
    sys(__NR_futex, &a->creds_done, FUTEX_WAIT_PRIVATE, seen, 0, 0, 0);
  }
  // With 0, /proc/PID belongs to root: ckpt, the tracer, is root.
  MUST(t, kStepPrctl, sys(__NR_prctl, PR_SET_DUMPABLE, a->dumpable, 0, 0, 0), PR_SET_DUMPABLE, a->dumpable);
}

// POSIX timers come back with their ids (PR_TIMER_CREATE_RESTORE_IDS, Linux
// 6.15: timer_create takes the id in *timerid) and their remaining time;
// interval timers likewise. Time spent checkpointed does not count.
void restore_timers(RestorerArgs* a, ThreadArg* t) {
  constexpr int kPrTimerCreateRestoreIds = 77;
  auto* timers = reinterpret_cast<PosixTimerArg*>(a->timers);
  if (a->nr_timers) MUST(t, kStepTimer, sys(__NR_prctl, kPrTimerCreateRestoreIds, 1, 0, 0, 0), 0, 0);
  for (uint32_t i = 0; i < a->nr_timers; i++) {
    int32_t id = timers[i].id;
    MUST(t, kStepTimer, sys(__NR_timer_create, timers[i].clock, &timers[i].sival, &id), timers[i].id, 0);
    if (id != timers[i].id) fail(t, kStepTimer, -22, timers[i].id, id);
    MUST(t, kStepTimer, sys(__NR_timer_settime, id, 0, &timers[i].interval, 0), id, 1);
  }
  if (a->nr_timers) sys(__NR_prctl, kPrTimerCreateRestoreIds, 0, 0, 0, 0);
  for (int which = 0; which < 3; which++)
    MUST(t, kStepTimer, sys(__NR_setitimer, which, &a->itimers[which], 0), which, 2);
}

void restore_process(RestorerArgs* a, ThreadArg* t) {
  unmap_all_but_keep(a, t);
  move_special(a, t);
  move_premapped(a, t);
  attach_sysv(a, t);
  map_vmas(a, t);
  restore_vma_policies(a, t);
  restore_memory_merge(a, t);
  register_lazy(a, t);
  fill_memory(a, t);
  protect_vmas(a, t);
  lock_and_seal_vmas(a, t);
  // Locks mappings made from now on (mm->def_flags): none of ours are left.
  if (a->mlockall) MUST(t, kStepMlockall, sys(__NR_mlockall, a->mlockall), a->mlockall, 0);
  register_membarrier(a, t);
  restore_mdwe(a, t);

  // The mm fields before closing ckpt's fds: exe_fd is one of them.
  a->mm.auxv = reinterpret_cast<uint64_t>(a->auxv);
  MUST(t, kStepMmMap, sys(__NR_prctl, PR_SET_MM, PR_SET_MM_MAP, &a->mm, sizeof(a->mm), 0), 0, 0);
  sys(__NR_close_range, a->temp_fd_base, ~0U, 0);
  sys(__NR_umask, a->umask);
  // What came while the task was ckpt's child (the SIGCHLD of a child
  // restored as a zombie) is not the task's: ignoring a signal discards it.
  uint64_t pending = 0;
  if (!pie::is_err(sys(__NR_rt_sigpending, &pending, 8)) && pending) {
    for (int sig = 1; sig <= kMaxSignals; sig++) {
      if (!(pending & (1ULL << (sig - 1))) || sig == 9 || sig == 19) continue;
      const KSigAction ign = {1 /* SIG_IGN */, 0, 0, 0}, dfl = {};
      sys(__NR_rt_sigaction, sig, &ign, 0, 8);
      if (!(a->sigaction_mask & (1ULL << (sig - 1)))) sys(__NR_rt_sigaction, sig, &dfl, 0, 8);
    }
  }
  for (int sig = 1; sig <= kMaxSignals; sig++) {
    if (!(a->sigaction_mask & (1ULL << (sig - 1)))) continue;
    MUST(t, kStepSigaction, sys(__NR_rt_sigaction, sig, &a->sigactions[sig - 1], 0, 8), sig, 0);
  }
  queue_signals(t, reinterpret_cast<const SigInfoArg*>(a->siginfo), a->nr_siginfo, false);
  restore_limits_and_prctl(a, t);
  // Timers last of all, so that they lose as little time as possible.
  restore_timers(a, t);
}

// Per thread; all signals stay blocked until the dumped mask comes back at
// completion, so nothing is delivered on restorer registers.
[[noreturn]] void restore_thread(RestorerArgs* a, ThreadArg* t) {
  MUST(t, kStepComm, sys(__NR_prctl, PR_SET_NAME, t->comm, 0, 0, 0), 0, 0);
  struct {
    uint64_t sp;
    int32_t flags;
    int32_t pad;
    uint64_t size;
  } ss = {t->ss_sp, t->ss_flags, 0, t->ss_size};
  MUST(t, kStepSigaltstack, sys(__NR_sigaltstack, &ss, 0), t->ss_sp, t->ss_size);
  if (t->robust_list)
    MUST(t, kStepRobustList, sys(__NR_set_robust_list, t->robust_list, t->robust_len), t->robust_list, 0);
  sys(__NR_set_tid_address, t->clear_child_tid);
  // Before seccomp, which may force-disable speculative store bypass.
  restore_speculation(t);
  restore_loginuid(t);
  // Seccomp before credentials: installing a filter may need privileges the
  // task has dropped. ckpt traces us with PTRACE_O_SUSPEND_SECCOMP, so the
  // filters judge nothing until ckpt lets go.
  auto* filters = reinterpret_cast<const SeccompFilterArg*>(t->filters);
  for (uint32_t i = 0; i < t->nr_filters; i++)
    MUST(t, kStepSeccomp, sys(__NR_seccomp, 1 /* SECCOMP_SET_MODE_FILTER */, filters[i].flags, &filters[i]), i,
         filters[i].len);
  if (t->seccomp_mode == 1) MUST(t, kStepSeccomp, sys(__NR_seccomp, 0 /* SECCOMP_SET_MODE_STRICT */, 0, 0), 0, 0);
  restore_creds(t);
  creds_barrier(a, t);
  // After the credentials, which reset it.
  MUST(t, kStepPrctl, sys(__NR_prctl, PR_SET_PDEATHSIG, t->pdeathsig, 0, 0, 0), PR_SET_PDEATHSIG, 0);
  if (t->timerslack_ns) sys(__NR_prctl, PR_SET_TIMERSLACK, t->timerslack_ns, 0, 0, 0);
  // Best effort: a machine without those CPUs refuses the mask (EINVAL);
  // the thread then gets back what it had before ckpt pinned it.
  if (!t->nr_cpu_words || sys(__NR_sched_setaffinity, 0, t->nr_cpu_words * 8, t->cpu_affinity) < 0)
    if (a->nr_ckpt_cpu_words) sys(__NR_sched_setaffinity, 0, a->nr_ckpt_cpu_words * 8, a->ckpt_cpus);
  if (t->no_new_privs)
    MUST(t, kStepPrctl, sys(__NR_prctl, PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), PR_SET_NO_NEW_PRIVS, 0);
  queue_signals(t, reinterpret_cast<const SigInfoArg*>(t->siginfo), t->nr_siginfo, true);

  // No fs or gs base here: ckpt loads both with the registers (ptrace's
  // NT_PRSTATUS holds them), where an arch_prctl of each cost the thread two
  // MSR writes (10,000 threads: 90 ms on the PVM guest).

  if (t->mempolicy) {
    auto* p = reinterpret_cast<const MemPolicyArg*>(t->mempolicy);
    MUST(t, kStepMempolicy, set_policy(p, false), 0, p->mode);
  }
  restore_thread_modes(t);
  // Last: the kernel writes the rseq area on every return to user space.
  if (t->rseq_ptr) MUST(t, kStepRseq, sys(__NR_rseq, t->rseq_ptr, t->rseq_len, 0, t->rseq_sig), t->rseq_ptr, 0);
  // Without a breakpoint, ckpt takes the thread at this stop as it would at
  // the breakpoint: the rt_sigreturn is all that is left. A pending SIGCONT
  // would be flushed by a SIGSTOP: ckpt queues those after completion
  // (restore/traps.h).
  if (a->barrier) MUST(t, kStepStop, rst_barrier(threads(a)[0].tid, t->tid, a->barrier), 0, 0);
  // ckpt stops the thread at this call (breakpoint) or at the barrier above
  // and loads its own state there: the rt_sigreturn never runs. Were it to,
  // a frame at 0 faults, so a thread past ckpt dies instead of running on
  // from the restorer's registers.
  rst_sigreturn(0, ckpt::arch::cpu_now());
}

}  // namespace

extern "C" [[noreturn]] void restorer_main(RestorerArgs* a) {
  ThreadArg* self = &threads(a)[0];
  if (a->version != kRestorerAbiVersion) fail(self, kStepVersion, -22, a->version, 0);
  restore_process(a, self);
  __atomic_store_n(&a->threads_go, 1, __ATOMIC_RELEASE);
  if (a->nr_threads > 1) sys(__NR_futex, &a->threads_go, FUTEX_WAKE_PRIVATE, 0x7fffffff, 0, 0, 0);
  restore_thread(a, self);
}

extern "C" [[noreturn]] void restorer_thread_main(ThreadArg* t) {
  auto* a = reinterpret_cast<RestorerArgs*>(t->args);
  // ckpt's child waits for this before it lets ckpt release us: only then is
  // no thread left in ckpt's code, which the main thread is about to unmap.
  // Only the last one wakes it: 10,000 wakes would contend on one futex.
  if (__atomic_add_fetch(&a->threads_ready, 1, __ATOMIC_RELEASE) == a->nr_threads - 1)
    sys(__NR_futex, &a->threads_ready, FUTEX_WAKE_PRIVATE, 1, 0, 0, 0);
  while (!__atomic_load_n(&a->threads_go, __ATOMIC_ACQUIRE)) sys(__NR_futex, &a->threads_go, FUTEX_WAIT_PRIVATE, 0, 0, 0, 0);
  restore_thread(a, t);
}
