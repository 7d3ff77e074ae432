// The restorer: freestanding code that turns a forked ckpt child into the
// dumped task. It runs from the boot region (see src/restore/boot_region.h),
// which is the only memory it touches once it has unmapped everything else.
//
// It ends in rst_sigreturn(): ckpt holds a hardware breakpoint there (or
// traces syscalls until its rt_sigreturn) and finishes the task from outside.
#include <asm/unistd.h>
#include <linux/mman.h>
#include <linux/prctl.h>
#include <linux/signal.h>
#include <linux/uio.h>

#include "pie/abi.h"
#include "pie/sys.h"

using namespace ckpt::abi;
using pie::sys;

extern "C" {
// Both in restorer_entry.S: rst_sigreturn loads the sigframe and issues
// rt_sigreturn; it never returns.
[[noreturn]] void rst_sigreturn(uint64_t frame);
}

namespace {

constexpr uint64_t kTaskSizeMax = (1ULL << 47) - 4096;
constexpr long kArchSetGs = 0x1001, kArchSetFs = 0x1002;
constexpr int kRseqFlagUnregister = 1;

[[noreturn]] void fail(RestorerArgs* a, RestorerStep step, long ret, uint64_t addr = 0, uint64_t len = 0) {
  a->error.step = step;
  a->error.err = static_cast<int32_t>(-ret);
  a->error.addr = addr;
  a->error.len = len;
  // ckpt traces us: the trap stops the task so it can read the error.
  for (;;) asm volatile("int3" ::: "memory");
}

#define MUST(a, step, expr, addr, len)                    \
  do {                                                    \
    long _r = (expr);                                     \
    if (pie::is_err(_r)) fail(a, step, _r, addr, len);    \
  } while (0)

// Unmap everything but the ranges in a->keep (sorted by ckpt).
void unmap_all_but_keep(RestorerArgs* a) {
  uint64_t cur = 0;
  for (uint32_t i = 0; i <= a->nr_keep; i++) {
    uint64_t next = i < a->nr_keep ? a->keep[i][0] : kTaskSizeMax;
    if (next > cur) MUST(a, kStepUnmap, sys(__NR_munmap, cur, next - cur), cur, next - cur);
    if (i < a->nr_keep) cur = a->keep[i][1];
  }
}

void move_special(RestorerArgs* a) {
  for (uint32_t i = 0; i < a->nr_moves; i++) {
    const MoveArg& m = a->moves[i];
    if (m.from == m.to) continue;
    long r = sys(__NR_mremap, m.from, m.len, m.len, MREMAP_MAYMOVE | MREMAP_FIXED, m.to);
    if (pie::is_err(r)) fail(a, kStepMoveSpecial, r, m.from, m.to);
  }
}

void map_vmas(RestorerArgs* a) {
  auto* v = reinterpret_cast<const VmaArg*>(a->vmas);
  for (uint32_t i = 0; i < a->nr_vmas; i++) {
    uint32_t prot = v[i].prot | (v[i].has_pages ? PROT_WRITE | PROT_READ : 0);
    long r = sys(__NR_mmap, v[i].start, v[i].end - v[i].start, prot, v[i].map_flags | MAP_FIXED,
                 v[i].fd, v[i].pgoff);
    if (pie::is_err(r)) fail(a, kStepMapVma, r, v[i].start, v[i].end - v[i].start);
  }
}

// Page runs lie back to back in the pages file, so one preadv fills many runs
// straight into place. The kernel caps one read near 2 GiB: loop on short reads.
void read_pages(RestorerArgs* a) {
  auto* runs = reinterpret_cast<const PageRunArg*>(a->runs);
  const uint64_t ps = a->page_size;
  constexpr uint32_t kBatch = 512;
  struct iovec iov[kBatch];
  uint64_t off = a->pages_off;
  uint32_t next = 0;   // first run not yet in a batch
  uint64_t done = 0;   // bytes of runs[next_batch_start] already read
  while (next < a->nr_runs) {
    uint32_t n = 0;
    uint64_t want = 0;
    for (uint32_t j = next; j < a->nr_runs && n < kBatch; j++, n++) {
      uint64_t skip = (j == next) ? done : 0;
      iov[n].iov_base = reinterpret_cast<void*>(runs[j].vaddr + skip);
      iov[n].iov_len = runs[j].nr_pages * ps - skip;
      want += iov[n].iov_len;
    }
    long r = sys(__NR_preadv, a->pages_fd, iov, n, off, 0);
    if (pie::is_err(r)) fail(a, kStepReadPages, r, off, want);
    if (r == 0) fail(a, kStepReadPages, -5 /* EIO: truncated */, off, want);
    off += r;
    // Advance over what was read.
    uint64_t got = r;
    while (got > 0) {
      uint64_t left = runs[next].nr_pages * ps - done;
      if (got >= left) {
        got -= left;
        next++;
        done = 0;
      } else {
        done += got;
        got = 0;
      }
    }
  }
}

void protect_vmas(RestorerArgs* a) {
  auto* v = reinterpret_cast<const VmaArg*>(a->vmas);
  for (uint32_t i = 0; i < a->nr_vmas; i++) {
    if (!v[i].has_pages || v[i].prot == (v[i].prot | PROT_READ | PROT_WRITE)) continue;
    MUST(a, kStepProtect, sys(__NR_mprotect, v[i].start, v[i].end - v[i].start, v[i].prot), v[i].start,
         v[i].end - v[i].start);
  }
}

void restore_signals(RestorerArgs* a) {
  for (int sig = 1; sig <= kMaxSignals; sig++) {
    if (!(a->sigaction_mask & (1ULL << (sig - 1)))) continue;
    MUST(a, kStepSigaction, sys(__NR_rt_sigaction, sig, &a->sigactions[sig - 1], 0, 8), sig, 0);
  }
  long tgid = sys(__NR_getpid);
  auto* si = reinterpret_cast<SigInfoArg*>(a->siginfo);
  for (uint32_t i = 0; i < a->nr_siginfo; i++) {
    long r = si[i].thread ? sys(__NR_rt_tgsigqueueinfo, tgid, tgid, si[i].signo, si[i].raw)
                          : sys(__NR_rt_sigqueueinfo, tgid, si[i].signo, si[i].raw);
    if (pie::is_err(r)) fail(a, kStepQueueSignal, r, si[i].signo, i);
  }
}

}  // namespace

extern "C" [[noreturn]] void restorer_main(RestorerArgs* a) {
  if (a->version != kRestorerAbiVersion) fail(a, kStepVersion, -22, a->version, 0);

  unmap_all_but_keep(a);
  move_special(a);
  map_vmas(a);
  read_pages(a);
  protect_vmas(a);

  // The mm fields before closing ckpt's fds: exe_fd is one of them.
  a->mm.auxv = reinterpret_cast<uint64_t>(a->auxv);
  MUST(a, kStepMmMap, sys(__NR_prctl, PR_SET_MM, PR_SET_MM_MAP, &a->mm, sizeof(a->mm), 0), 0, 0);
  sys(__NR_close_range, a->temp_fd_base, ~0U, 0);

  sys(__NR_umask, a->umask);
  MUST(a, kStepComm, sys(__NR_prctl, PR_SET_NAME, a->comm, 0, 0, 0), 0, 0);
  sys(__NR_prctl, PR_SET_PDEATHSIG, 0, 0, 0, 0);

  restore_signals(a);

  struct {
    uint64_t sp;
    int32_t flags;
    int32_t pad;
    uint64_t size;
  } ss = {a->ss_sp, a->ss_flags, 0, a->ss_size};
  MUST(a, kStepSigaltstack, sys(__NR_sigaltstack, &ss, 0), a->ss_sp, a->ss_size);

  if (a->robust_list)
    MUST(a, kStepRobustList, sys(__NR_set_robust_list, a->robust_list, a->robust_len), a->robust_list, 0);
  sys(__NR_set_tid_address, a->clear_child_tid);

  // From here on the dumped TLS is in place: nothing may use %fs (we don't).
  MUST(a, kStepFsBase, sys(__NR_arch_prctl, kArchSetFs, a->fs_base), a->fs_base, 0);
  MUST(a, kStepFsBase, sys(__NR_arch_prctl, kArchSetGs, a->gs_base), a->gs_base, 0);

  // Last: the kernel writes the rseq area on every return to user space.
  if (a->rseq_ptr)
    MUST(a, kStepRseq, sys(__NR_rseq, a->rseq_ptr, a->rseq_len, 0, a->rseq_sig), a->rseq_ptr, 0);

  rst_sigreturn(a->sigframe);
}
