// The parasite: freestanding code that runs inside a task being dumped and
// tells ckpt what only the task can tell. ckpt maps it, with its arguments,
// stacks and a sigframe holding the task's own registers, in a memfd that
// both see (src/parasite/parasite.h), and points the main thread at
// parasite_entry; the other threads visit parasite_thread_entry, many at
// once, each with its own slot, stack and frame.
//
// Every signal is blocked while it runs (ckpt set the mask); it never uses
// the task's stack or memory beyond what it is asked to read, and it is
// built without SSE so that it leaves the FPU state alone.
#include <asm/prctl.h>
#include <asm/unistd.h>
#include <linux/prctl.h>
#include <linux/signal.h>

#include "arch/x86_64/cpu_now.h"
#include "arch/x86_64/crc32c.h"
#include "pie/parasite_abi.h"
#include "pie/sys.h"

using namespace ckpt::abi;
using pie::sys;

extern "C" {
[[noreturn]] void rst_sigreturn(uint64_t frame, uint64_t cpu);
[[noreturn]] void parasite_selfcure(uint64_t frame);
}

namespace {

constexpr int kSolSocket = 1, kScmRights = 1;
constexpr int kAfUnix = 1, kSockSeqpacket = 5, kSockCloexec = 0x80000;
constexpr int kMsgNosignal = 0x4000, kMsgCmsgCloexec = 0x40000000;
constexpr int kSigPipe = 13, kSigKill = 9, kSigStop = 19;
constexpr int kFGetFd = 1;  // F_GETFD

// The kernel's struct user_msghdr and cmsghdr (no libc here).
struct KIovec {
  void* base;
  uint64_t len;
};
struct KMsghdr {
  void* name;
  int32_t namelen;
  KIovec* iov;
  uint64_t iovlen;
  void* control;
  uint64_t controllen;
  uint32_t flags;
};
struct KCmsghdr {
  uint64_t len;
  int32_t level;
  int32_t type;
};

struct Failure {
  int32_t err = 0;
  uint32_t step = kPsNone;
  uint32_t index = 0;
  bool failed() const { return err != 0; }
};

// Records the first failure; later calls keep it.
bool check(Failure& f, long r, uint32_t step, uint32_t index = 0) {
  if (!pie::is_err(r)) return true;
  if (!f.failed()) f = {static_cast<int32_t>(-r), step, index};
  return false;
}

// The mm's membarrier registrations, as the MEMBARRIER_CMD_REGISTER_*
// commands that made them. MEMBARRIER_CMD_GET_REGISTRATIONS tells them all
// (Linux 6.3). Before it, a private expedited command fails with EPERM
// unless registered, and has no other effect on a task whose other threads
// are stopped; a global registration can't be told there.
void collect_membarrier(ProcessState* p) {
  constexpr int kGetRegistrations = 1 << 9;
  long r = sys(__NR_membarrier, kGetRegistrations, 0, 0);
  p->membarrier_err = pie::is_err(r) ? static_cast<int32_t>(-r) : 0;
  p->membarrier = pie::is_err(r) ? 0 : static_cast<uint32_t>(r);
  if (p->membarrier_err != 22 /* EINVAL: older kernel */) return;
  // {command, its registration}: PRIVATE_EXPEDITED, _SYNC_CORE, _RSEQ.
  constexpr uint32_t kPrivate[][2] = {{1 << 3, 1 << 4}, {1 << 5, 1 << 6}, {1 << 7, 1 << 8}};
  for (const auto& c : kPrivate)
    if (sys(__NR_membarrier, c[0], 0, 0) == 0) p->membarrier |= c[1];
}

void collect_process(ParasiteArgs* a, Failure& f) {
  ProcessState* p = &a->process;
  for (int sig = 1; sig <= kMaxSignals; sig++) {
    if (sig == kSigKill || sig == kSigStop) continue;
    check(f, sys(__NR_rt_sigaction, sig, 0, &p->sigactions[sig - 1], 8), kPsSigaction, sig);
  }
  for (int which = 0; which < 3; which++) check(f, sys(__NR_getitimer, which, &p->itimers[which]), kPsItimer, which);
  for (int res = 0; res < kNumRLimits; res++)
    check(f, sys(__NR_prlimit64, 0, res, 0, &p->rlimits[res]), kPsRlimit, res);
  p->brk = sys(__NR_brk, 0);
  p->personality = static_cast<uint32_t>(sys(__NR_personality, 0xffffffff));
  long r = sys(__NR_prctl, PR_GET_DUMPABLE, 0, 0, 0, 0);
  if (check(f, r, kPsPrctl, PR_GET_DUMPABLE)) p->dumpable = static_cast<int32_t>(r);
  r = sys(__NR_prctl, PR_GET_THP_DISABLE, 0, 0, 0, 0);
  if (check(f, r, kPsPrctl, PR_GET_THP_DISABLE)) p->thp_disable = static_cast<int32_t>(r);
  // Both are newer than some kernels (6.3, 6.4): EINVAL there means unset.
  constexpr int kPrGetMdwe = 66, kPrGetMemoryMerge = 68;
  r = sys(__NR_prctl, kPrGetMdwe, 0, 0, 0, 0);
  p->mdwe = pie::is_err(r) ? 0 : static_cast<uint32_t>(r);
  r = sys(__NR_prctl, kPrGetMemoryMerge, 0, 0, 0, 0);
  p->memory_merge = pie::is_err(r) ? 0 : static_cast<uint32_t>(r);
  check(f, sys(__NR_prctl, PR_GET_CHILD_SUBREAPER, &p->child_subreaper, 0, 0, 0), kPsPrctl, PR_GET_CHILD_SUBREAPER);
  collect_membarrier(p);
}

// The policy of the thread, or of the VMA at p->start. ENOSYS: a kernel
// without NUMA, where every policy is the default.
void get_mempolicy(MemPolicyArg* p, bool vma, Failure& f, uint32_t index) {
  constexpr unsigned long kMpolFAddr = 1 << 1;
  constexpr unsigned long kMaxNode = kMemPolicyNodeWords * 64;
  p->mode = 0;
  for (uint64_t& w : p->nodes) w = 0;
  long r = sys(__NR_get_mempolicy, &p->mode, p->nodes, kMaxNode, vma ? p->start : 0, vma ? kMpolFAddr : 0);
  if (r == -38 /* ENOSYS */) return;
  check(f, r, kPsMempolicy, index);
}

void collect_thread(ThreadState* t, Failure& f) {
  long r = sys(__NR_prctl, PR_GET_SECUREBITS, 0, 0, 0, 0);
  if (check(f, r, kPsPrctl, PR_GET_SECUREBITS)) t->securebits = static_cast<uint32_t>(r);
  check(f, sys(__NR_prctl, PR_GET_TID_ADDRESS, &t->clear_child_tid, 0, 0, 0), kPsPrctl, PR_GET_TID_ADDRESS);
  struct {
    uint64_t sp;
    int32_t flags;
    int32_t pad;
    uint64_t size;
  } ss;
  if (check(f, sys(__NR_sigaltstack, 0, &ss), kPsAltstack)) {
    t->ss_sp = ss.sp;
    t->ss_flags = ss.flags;
    t->ss_size = ss.size;
  }
  r = sys(__NR_prctl, PR_GET_TIMERSLACK, 0, 0, 0, 0);
  if (check(f, r, kPsPrctl, PR_GET_TIMERSLACK)) t->timerslack_ns = static_cast<uint64_t>(r);
  check(f, sys(__NR_prctl, PR_GET_PDEATHSIG, &t->pdeathsig, 0, 0, 0), kPsPrctl, PR_GET_PDEATHSIG);
  // ENODEV: a control this kernel doesn't know (PR_SPEC_L1D_FLUSH before 5.10).
  for (int which = 0; which < kNumSpeculation; which++) {
    r = sys(__NR_prctl, PR_GET_SPECULATION_CTRL, which, 0, 0, 0);
    t->speculation[which] = pie::is_err(r) ? 0 : static_cast<uint32_t>(r);
  }
  check(f, sys(__NR_prctl, PR_GET_TSC, &t->tsc_mode, 0, 0, 0), kPsPrctl, PR_GET_TSC);
  r = sys(__NR_prctl, PR_MCE_KILL_GET, 0, 0, 0, 0);
  if (check(f, r, kPsPrctl, PR_MCE_KILL_GET)) t->mce_kill = static_cast<int32_t>(r);
  r = sys(__NR_arch_prctl, ARCH_GET_CPUID, 0);
  if (check(f, r, kPsPrctl, ARCH_GET_CPUID)) t->cpuid = static_cast<int32_t>(r);
  get_mempolicy(&t->mempolicy, false, f, 0);
}

void collect_policies(ParasiteArgs* a, uint32_t count, Failure& f) {
  for (uint32_t i = 0; i < count && i < kMaxPoliciesPerCall; i++) get_mempolicy(&a->policies[i], true, f, i);
}

void collect_timers(ParasiteArgs* a, uint32_t count, Failure& f) {
  for (uint32_t i = 0; i < count && i < kMaxTimersPerCall; i++) {
    TimerState* t = &a->timers[i];
    check(f, sys(__NR_timer_gettime, t->id, &t->interval), kPsTimer, i);
    long r = sys(__NR_timer_getoverrun, t->id);
    if (check(f, r, kPsTimer, i)) t->overrun = static_cast<int32_t>(r);
  }
}

void collect_fd_flags(ParasiteArgs* a, uint32_t count, Failure& f) {
  for (uint32_t i = 0; i < count && i < kMaxFdFlagsPerCall; i++) {
    FdFlagsArg* d = &a->fd_flags[i];
    const long r = sys(__NR_fcntl, d->fd, kFGetFd);
    if (check(f, r, kPsFdFlags, i)) d->flags = static_cast<int32_t>(r);
  }
}

// Moves the pages of iov[0..count) into the pipe without copying them, each
// piece's checksum computed while ckpt empties the pipe into the image.
void drain(ParasiteArgs* a, uint32_t count, Failure& f) {
  for (uint32_t i = 0; i < count && i < kMaxDrainIov; i++) {
    DrainIov* d = &a->iov[i];
    uint32_t crc = 0;
    for (uint64_t off = 0; off < d->len;) {
      KIovec v = {reinterpret_cast<void*>(d->base + off), d->len - off};
      long n = sys(__NR_vmsplice, a->pipe, &v, 1, 0);
      if (!check(f, n, kPsVmsplice, i)) {
        // ckpt closed the pipe: the kernel queued a SIGPIPE the task did
        // not have. Take it back (every signal is blocked here).
        if (n == -32 /* EPIPE */ && !a->sigpipe_pending) {
          uint64_t set = 1ULL << (kSigPipe - 1);
          KTimespec zero = {0, 0};
          sys(__NR_rt_sigtimedwait, &set, 0, &zero, 8);
        }
        return;
      }
      crc = ckpt::arch::crc32c(crc, reinterpret_cast<const uint8_t*>(d->base + off), static_cast<uint64_t>(n),
                               a->crc32c_hw);
      off += static_cast<uint64_t>(n);
    }
    d->crc32c = crc;
  }
}

long send_reply(ParasiteArgs* a, const ParasiteReply& r, const int32_t* fds = nullptr, uint32_t nfds = 0) {
  KIovec v = {const_cast<ParasiteReply*>(&r), sizeof r};
  alignas(8) uint8_t control[sizeof(KCmsghdr) + kMaxFdsPerCall * sizeof(int32_t)];
  KMsghdr m = {};
  m.iov = &v;
  m.iovlen = 1;
  if (nfds) {
    auto* c = reinterpret_cast<KCmsghdr*>(control);
    c->len = sizeof(KCmsghdr) + nfds * sizeof(int32_t);
    c->level = kSolSocket;
    c->type = kScmRights;
    auto* out = reinterpret_cast<int32_t*>(control + sizeof(KCmsghdr));
    for (uint32_t i = 0; i < nfds; i++) out[i] = fds[i];
    m.control = control;
    m.controllen = c->len;
  }
  return sys(__NR_sendmsg, a->sock[kTaskEnd], &m, kMsgNosignal);
}

// Next command; a received fd (kParasiteTakePipe) lands in *fd. Returns 0
// when ckpt is gone (the socket closed) or the message is malformed.
long receive(ParasiteArgs* a, ParasiteMsg* msg, int32_t* fd) {
  KIovec v = {msg, sizeof *msg};
  alignas(8) uint8_t control[sizeof(KCmsghdr) + 8];
  KMsghdr m = {};
  m.iov = &v;
  m.iovlen = 1;
  m.control = control;
  m.controllen = sizeof control;
  long n;
  do n = sys(__NR_recvmsg, a->sock[kTaskEnd], &m, kMsgCmsgCloexec);
  while (n == -4 /* EINTR */);
  if (n != sizeof *msg) return 0;
  auto* c = reinterpret_cast<KCmsghdr*>(control);
  if (m.controllen >= sizeof(KCmsghdr) + 4 && c->level == kSolSocket && c->type == kScmRights)
    *fd = *reinterpret_cast<int32_t*>(control + sizeof(KCmsghdr));
  return n;
}

// Closes *fd in the task and says so in the shared record.
void close_fd(int32_t* fd) {
  if (*fd < 0) return;
  sys(__NR_close, *fd);
  *fd = -1;
}

void close_fds(ParasiteArgs* a) {
  close_fd(&a->memfd);
  close_fd(&a->pipe);
  close_fd(&a->sock[kTaskEnd]);
  close_fd(&a->visit_sock[kTaskEnd]);
}

}  // namespace

extern "C" [[noreturn]] void parasite_daemon(ParasiteArgs* a) {
  // ckpt holds its own copies of these: with them closed here, its death
  // closes the sockets, which ends our waits.
  close_fd(&a->sock[kCkptEnd]);
  close_fd(&a->visit_sock[kCkptEnd]);
  close_fd(&a->memfd);  // mapped: the mapping holds the file
  for (;;) {
    ParasiteMsg msg;
    int32_t fd = -1;
    if (receive(a, &msg, &fd) == 0) break;
    Failure f;
    ParasiteReply r = {msg.cmd, 0, kPsNone, 0};
    const int32_t* send = nullptr;
    uint32_t nsend = 0;
    if (a->version != kParasiteAbiVersion) {
      f = {22 /* EINVAL */, kPsVersion, a->version};
    } else {
      switch (msg.cmd) {
        case kParasiteProcess: collect_process(a, f); break;
        case kParasiteThread: collect_thread(&a->thread, f); break;
        case kParasiteTimers: collect_timers(a, msg.count, f); break;
        case kParasitePolicies: collect_policies(a, msg.count, f); break;
        case kParasiteFdFlags: collect_fd_flags(a, msg.count, f); break;
        case kParasiteTakePipe:
          if (fd < 0) {
            f = {9 /* EBADF */, kPsRecvmsg, 0};
          } else {
            close_fd(&a->pipe);  // one broken off by a failed drain
            a->pipe = fd;
          }
          fd = -1;
          break;
        case kParasiteDrain: drain(a, msg.count, f); break;
        case kParasiteSendFds:
          send = a->fds;
          nsend = msg.count < kMaxFdsPerCall ? msg.count : kMaxFdsPerCall;
          break;
        case kParasiteCloseExtras:
          close_fd(&a->pipe);
          close_fd(&a->visit_sock[kTaskEnd]);
          break;
        case kParasiteVisitSock:
          // Its fds are in the record from the moment they exist; ckpt's
          // end is closed here once sent.
          if (a->visit_sock[kTaskEnd] < 0 &&
              check(f, sys(__NR_socketpair, kAfUnix, kSockSeqpacket | kSockCloexec, 0, a->visit_sock), kPsSocketpair)) {
            send = &a->visit_sock[kCkptEnd];
            nsend = 1;
          }
          break;
        case kParasiteFinish:
          close_fds(a);
          rst_sigreturn(a->sigframe, ckpt::arch::cpu_now());
        default: f = {22, kPsUnknownCmd, msg.cmd};
      }
    }
    if (fd >= 0) sys(__NR_close, fd);
    r.err = f.err;
    r.step = f.step;
    r.index = f.index;
    long sent = send_reply(a, r, send, nsend);
    if (pie::is_err(sent) && nsend) {
      // A bad fd among those asked for: say so, without fds.
      r = {msg.cmd, static_cast<int32_t>(-sent), kPsSendmsg, 0};
      sent = send_reply(a, r);
    }
    close_fd(&a->visit_sock[kCkptEnd]);  // sent, or not to be
    if (pie::is_err(sent)) break;
  }
  // ckpt is gone: put the task back as it was and let it go on. The mapping
  // stays (nothing can unmap the code it runs on); it is never used again.
  // The task's seccomp judges us again: rt_sigreturn is all strict mode and
  // most filters allow, so the fds stay for the next dump to remove.
  if (!a->seccomp) close_fds(a);
  parasite_selfcure(a->sigframe);
}

// A visit: no trap at the end (with ckpt gone, its SIGTRAP would kill the
// task), but a wait ckpt interrupts, or that ends when ckpt is gone.
extern "C" [[noreturn]] void parasite_thread_main(ParasiteArgs* a, VisitSlot* s) {
  Failure f;
  collect_thread(&s->state, f);
  s->state.err = f.err;
  s->state.step = f.step;
  const char done = 1;
  sys(__NR_sendto, a->visit_sock[kTaskEnd], &done, 1, kMsgNosignal, 0, 0);
  char any;
  long r;
  do r = sys(__NR_read, a->visit_sock[kTaskEnd], &any, 1);
  while (r > 0 || r == -4 /* EINTR */);
  parasite_selfcure(s->frame);
}
