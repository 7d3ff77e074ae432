// The spawner: freestanding code that creates the tasks of a restored tree
// and takes each from its fork to its restorer (restore/spawn.h says what
// each step is for). It runs from the restorer blob, which ckpt maps from a
// memfd before the spawn, on a stack of its own, so that the root, once it
// has unmapped all the rest of ckpt, forks its children from an address
// space of a few pages. Forks of ckpt (a C++ process with its heap,
// libraries and threads' stacks) cost each task the copy of their page
// tables, the faults on what it touched of them, and their teardown in its
// restorer (bench/README.md, "Stop 43").
//
// A task that fails writes a SpawnFailure on its status pipe (its parent's,
// for a helper or a zombie), marks the barrier failed, wakes the others
// (who give up in silence) and exits.
#include <asm/unistd.h>
#include <linux/eventpoll.h>
#include <linux/fcntl.h>
#include <linux/futex.h>
#include <linux/mman.h>
#include <linux/prctl.h>
#include <linux/sched.h>
#include <linux/signal.h>
#include <linux/wait.h>
#include <asm-generic/ioctls.h>

#include "arch/x86_64/clone3_thread.h"
#include "arch/x86_64/crc32c.h"
#include "pie/clone_pid.h"
#include "pie/fd_ops.h"
#include "pie/mem.h"
#include "pie/spawn_abi.h"
#include "pie/sys.h"

using namespace ckpt::abi;
using pie::sys;

extern "C" {
// arch/x86_64/clone3_thread.h
long spawner_clone3_thread(clone_args* args, uint64_t size, uint64_t entry, uint64_t arg);
[[noreturn]] void spawner_main(const SpawnPlan* p);
}

asm(CKPT_CLONE3_THREAD_ASM("spawner_clone3_thread"));

namespace {

constexpr int kStatusFd = 0, kGoFd = 1;  // above temp_fd_base, once the fds moved
constexpr long kEexist = 17, kEintr = 4;

template <typename T>
const T* at(const SpawnPlan* p, uint64_t off) {
  return reinterpret_cast<const T*>(reinterpret_cast<const uint8_t*>(p) + off);
}
const SpawnTaskArg& task(const SpawnPlan* p, uint32_t i) { return at<SpawnTaskArg>(p, p->tasks)[i]; }
const char* str(const SpawnPlan* p, uint32_t off) { return at<char>(p, p->strings) + off; }
SpawnBarrier* barrier(const SpawnPlan* p) { return reinterpret_cast<SpawnBarrier*>(p->barrier); }

// What failed, in words (ckpt adds the errno's).
class Text {
 public:
  Text& s(const char* t) {
    while (*t && n_ < sizeof f_.what - 1) f_.what[n_++] = *t++;
    return *this;
  }
  Text& d(long v) {
    char b[24];
    int k = 0;
    const bool neg = v < 0;
    unsigned long u = neg ? -static_cast<unsigned long>(v) : static_cast<unsigned long>(v);
    do b[k++] = static_cast<char>('0' + u % 10); while (u /= 10);
    if (neg) b[k++] = '-';
    while (k) put(b[--k]);
    return *this;
  }
  Text& x(uint64_t v) {
    s("0x");
    int shift = 60;
    while (shift > 0 && !(v >> shift)) shift -= 4;
    for (; shift >= 0; shift -= 4) put("0123456789abcdef"[(v >> shift) & 15]);
    return *this;
  }
  SpawnFailure& failure(long ret) {
    f_.err = ret < 0 ? static_cast<int32_t>(-ret) : 0;
    f_.what[n_] = 0;
    return f_;
  }

 private:
  void put(char c) {
    if (n_ < sizeof f_.what - 1) f_.what[n_++] = c;
  }
  SpawnFailure f_{};
  uint32_t n_ = 0;
};

void wake_all(uint32_t* f) { sys(__NR_futex, f, FUTEX_WAKE, 0x7fffffff, 0, 0, 0); }

// The others are told to give up, and the task exits: in silence, its
// status pipe closing without its "R" (another task's failure says why).
[[noreturn]] void give_up(const SpawnPlan* p) {
  SpawnBarrier* b = barrier(p);
  __atomic_store_n(&b->failed, 1, __ATOMIC_RELEASE);
  wake_all(&b->arrived);
  wake_all(&b->joined);
  sys(__NR_exit_group, 127);
  __builtin_unreachable();
}

// ret: the failed call's (negative errno), or 0 where no errno tells more.
[[noreturn]] void fail(const SpawnPlan* p, int status, long ret, Text& what) {
  const SpawnFailure& f = what.failure(ret);
  if (status >= 0) sys(__NR_write, status, &f, sizeof f);
  give_up(p);
}
[[noreturn]] void fail(const SpawnPlan* p, int status, long ret, Text&& what) { fail(p, status, ret, what); }

// Counts the task in, then waits until every task is: a futex barrier on
// `counter`, left early if a task fails.
void barrier_phase(const SpawnPlan* p, uint32_t* counter) {
  const uint32_t all = p->nr_tasks;
  if (__atomic_add_fetch(counter, 1, __ATOMIC_ACQ_REL) == all) wake_all(counter);
  for (uint32_t seen; (seen = __atomic_load_n(counter, __ATOMIC_ACQUIRE)) < all;) {
    if (__atomic_load_n(&barrier(p)->failed, __ATOMIC_ACQUIRE)) give_up(p);
    sys(__NR_futex, counter, FUTEX_WAIT, seen, 0, 0, 0);
  }
}

// ckpt has opened what needs the tasks to exist (files.h: open_late).
void wait_for_late(const SpawnPlan* p) {
  if (p->ckpt_pidfd < 0) return;
  SpawnBarrier* b = barrier(p);
  while (!__atomic_load_n(&b->late_opened, __ATOMIC_ACQUIRE)) {
    if (__atomic_load_n(&b->failed, __ATOMIC_ACQUIRE)) give_up(p);
    sys(__NR_futex, &b->late_opened, FUTEX_WAIT, 0, 0, 0, 0);
  }
}

// The task is in its group. Only helpers wait for the others: a group whose
// helper left before the last member joined would be gone.
void joined(const SpawnPlan* p, const SpawnTaskArg& t) {
  SpawnBarrier* b = barrier(p);
  if (!(t.flags & kSpawnHelper)) {
    if (__atomic_add_fetch(&b->joined, 1, __ATOMIC_ACQ_REL) == p->nr_tasks) wake_all(&b->joined);
    return;
  }
  barrier_phase(p, &b->joined);
}

// Dies as the zombie did: its parent's wait() will get `status`. Nothing
// may dump core on the way (a core file, or a core_pattern helper run).
[[noreturn]] void die_as(int32_t status) {
  const int sig = status & 0x7f;
  if (sig == 0) sys(__NR_exit_group, (status >> 8) & 0xff);
  sys(__NR_prctl, PR_SET_DUMPABLE, 0, 0, 0, 0);
  const struct {
    uint64_t handler, flags, restorer, mask;
  } dfl{};  // SIG_DFL
  sys(__NR_rt_sigaction, sig, &dfl, 0, 8);
  const uint64_t one = 1ULL << (sig - 1);
  sys(__NR_rt_sigprocmask, SIG_UNBLOCK, &one, 0, 8);
  sys(__NR_kill, sys(__NR_getpid), sig);
  sys(__NR_exit_group, 126);  // a signal whose default is to go on: not a status a zombie can have
  __builtin_unreachable();
}

[[noreturn]] void task_main(const SpawnPlan* p, uint32_t i);
[[noreturn]] void helper_main(const SpawnPlan* p, uint32_t i, int status);

// Forks task `i` with its PID. `status` is the forking task's status pipe:
// a helper, which has none, reports there.
void fork_task(const SpawnPlan* p, uint32_t i, int status) {
  const SpawnTaskArg& t = task(p, i);
  clone_args a{};
  a.exit_signal = SIGCHLD;
  const long r = pie::clone_with_pid(a, &t.pid, [&] { return sys(__NR_clone3, &a, sizeof a); });
  if (r == 0 && (t.flags & kSpawnHelper)) helper_main(p, i, status);
  if (r == 0) task_main(p, i);
  if (r == -kEexist)
    fail(p, status, 0,
         Text().s("pid ").d(t.pid).s(" is taken by another process (restore --pidns: into a new PID namespace)"));
  if (r < 0) fail(p, status, r, Text().s("clone3 with pid ").d(t.pid));
}

// Before a helper with children exits, the task must be a child subreaper:
// they are to become its own, not the nearest subreaper's above (ckpt).
void fork_children(const SpawnPlan* p, const SpawnTaskArg& t, int status) {
  const uint32_t* kids = at<uint32_t>(p, p->children) + t.first_child;
  for (uint32_t k = 0; k < t.nr_children; k++) {
    const SpawnTaskArg& c = task(p, kids[k]);
    if (!(c.flags & kSpawnHelper) || c.nr_children == 0) continue;
    if (long r = sys(__NR_prctl, PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); r < 0)
      fail(p, status, r, Text().s("pid ").d(t.pid).s(": PR_SET_CHILD_SUBREAPER"));
    break;
  }
  for (uint32_t k = 0; k < t.nr_children; k++) fork_task(p, kids[k], status);
}

// The zombies among the task's children have exited (not reaped: WNOWAIT)
// with their dumped statuses, so their SIGCHLDs are pending before the
// restorer flushes what is pending. Those a session's helper forked are the
// task's children once the helper is reaped.
void wait_for_zombie(const SpawnPlan* p, const SpawnTaskArg& z, int status) {
  if (!(z.flags & kSpawnZombie)) return;
  siginfo_t si{};
  long r;
  while ((r = sys(__NR_waitid, P_PID, z.pid, &si, WEXITED | WNOWAIT, 0)) < 0)
    if (r != -kEintr) fail(p, status, r, Text().s("wait for zombie ").d(z.pid));
  const int32_t got = si.si_code == CLD_EXITED ? si.si_status << 8 : si.si_status;
  if ((got & 0x7f7f) != (z.exit_status & 0x7f7f))
    fail(p, status, 0, Text().s("zombie ").d(z.pid).s(" exited with status ").x(got).s(", not ").x(z.exit_status));
}

void wait_for_zombies(const SpawnPlan* p, const SpawnTaskArg& t, int status) {
  const uint32_t* kids = at<uint32_t>(p, p->children);
  for (uint32_t k = 0; k < t.nr_children; k++) {
    const SpawnTaskArg& c = task(p, kids[t.first_child + k]);
    if (!(c.flags & kSpawnHelper)) wait_for_zombie(p, c, status);
    else
      for (uint32_t j = 0; j < c.nr_children; j++) wait_for_zombie(p, task(p, kids[c.first_child + j]), status);
  }
}

// The task's helpers have exited once every task joined its group: reaped
// here, before the task parks, so that its wait() never sees them. The
// orphans a session's helper left are the task's children by then.
void reap_helpers(const SpawnPlan* p, const SpawnTaskArg& t, int status) {
  const uint32_t* kids = at<uint32_t>(p, p->children) + t.first_child;
  bool adopted = false;
  for (uint32_t k = 0; k < t.nr_children; k++) {
    const SpawnTaskArg& h = task(p, kids[k]);
    if (!(h.flags & kSpawnHelper)) continue;
    int st = 0;
    long r;
    while ((r = sys(__NR_wait4, h.pid, &st, 0, 0)) < 0)
      if (r != -kEintr) fail(p, status, r, Text().s("reap helper ").d(h.pid));
    if (st != 0)
      fail(p, status, 0,
           Text().s("helper ").d(h.pid).s(" (leader of ").s(h.flags & kSpawnNewSession ? "session " : "group ").d(h.pid)
               .s(") failed: status ").x(st));
    adopted |= h.nr_children != 0;
  }
  // The restorer sets the dumped value later.
  if (adopted)
    if (long r = sys(__NR_prctl, PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0); r < 0)
      fail(p, status, r, Text().s("pid ").d(t.pid).s(": PR_SET_CHILD_SUBREAPER"));
}

[[noreturn]] void helper_main(const SpawnPlan* p, uint32_t i, int status) {
  const SpawnTaskArg& h = task(p, i);
  if (h.flags & kSpawnNewSession)
    if (long r = sys(__NR_setsid); r < 0) fail(p, status, r, Text().s("helper ").d(h.pid).s(": setsid"));
  if (h.flags & kSpawnLeadGroup)
    if (long r = sys(__NR_setpgid, 0, 0); r < 0)
      fail(p, status, r, Text().s("helper ").d(h.pid).s(": lead process group ").d(h.pid));
  fork_children(p, h, status);
  barrier_phase(p, &barrier(p)->arrived);
  joined(p, h);
  sys(__NR_exit_group, 0);
  __builtin_unreachable();
}

// Memory laid out before the task forks, which its children share.
void fill_premapped(const SpawnPlan* p, const SpawnTaskArg& t, int status) {
  for (uint32_t k = 0; k < t.nr_slots; k++) {
    const PremapSlotArg& s = at<PremapSlotArg>(p, p->slots)[t.first_slot + k];
    const uint64_t len = s.end - s.start;
    auto to = [&](uint64_t vaddr) { return s.at + (vaddr - s.start); };
    if (s.create) {
      const long r = sys(__NR_mmap, to(s.start), len, PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | s.map_flags, -1, 0);
      if (pie::is_err(r))
        fail(p, status, r, Text().s("map memory at ").x(s.start).s(" (").d(len).s(" bytes) to share with its children"));
    }
    for (uint32_t j = 0; j < s.nr_drops; j++) {
      const uint64_t* d = at<uint64_t>(p, p->drops) + 2 * (s.first_drop + j);
      if (long r = sys(__NR_madvise, to(d[0]), d[1] - d[0], MADV_DONTNEED); r < 0)
        fail(p, status, r, Text().s("drop the pages at ").x(d[0]).s(" (").d(d[1] - d[0]).s(" bytes) it lacks"));
    }
    for (uint32_t j = 0; j < s.nr_reads; j++) {
      const PremapReadArg& rd = at<PremapReadArg>(p, p->reads)[s.first_read + j];
      uint8_t* dst = reinterpret_cast<uint8_t*>(to(rd.vaddr));
      pie::populate(to(rd.vaddr), rd.len);
      for (uint64_t got = 0; got < rd.len;) {
        const long r = sys(__NR_pread64, rd.fd, dst + got, rd.len - got, rd.off + got);
        if (r == -kEintr) continue;
        if (r < 0)
          fail(p, status, r,
               Text().s(str(p, rd.file)).s(": read the pages at ").x(rd.vaddr).s(" from offset ").d(rd.off));
        if (r == 0)
          fail(p, status, 0,
               Text().s(str(p, rd.file)).s(": the pages at ").x(rd.vaddr).s(" end at offset ").d(rd.off + got).s(", ")
                   .d(rd.len - got).s(" bytes short (truncated)"));
        got += r;
      }
      if (rd.check && ckpt::arch::crc32c(0, dst, rd.len, p->crc32c_hw) != rd.crc32c)
        fail(p, status, 0,
             Text().s(str(p, rd.file)).s(": checksum mismatch in the pages at ").x(rd.vaddr).s(" (").d(rd.len)
                 .s(" bytes at offset ").d(rd.off).s("): the file is damaged"));
    }
  }
}

// Its copy of each late placeholder replaced by ckpt's fd of that number.
void take_late_fds(const SpawnPlan* p, const SpawnTaskArg& t, int status) {
  for (uint32_t k = 0; k < t.nr_late; k++) {
    const int32_t fd = at<int32_t>(p, p->late)[t.first_late + k];
    const long got = sys(__NR_pidfd_getfd, p->ckpt_pidfd, fd, 0);
    if (got < 0) fail(p, status, got, Text().s("pid ").d(t.pid).s(": take ckpt's fd ").d(fd).s(" (pidfd_getfd)"));
    const long r = sys(__NR_dup3, got, fd, O_CLOEXEC);
    sys(__NR_close, got);
    if (r < 0) fail(p, status, r, Text().s("pid ").d(t.pid).s(": put ckpt's fd ").d(fd).s(" in place"));
  }
}

// An epoll target added under fd `target`, which was closed (or reused)
// since while the file lives on at `source`: the kernel keys it by file and
// number, so the file goes to `target` for the time of the epoll_ctl, and
// `target` is closed again, or given back the file it holds now.
void add_closed_target(const SpawnPlan* p, int status, const StepArg& s, epoll_event& ev) {
  const long cloexec = sys(__NR_fcntl, s.target, F_GETFD);
  const long saved = cloexec < 0 ? -1 : sys(__NR_fcntl, s.target, F_DUPFD_CLOEXEC, 0);
  if (cloexec >= 0 && saved < 0)
    fail(p, status, saved, Text().s("epoll fd ").d(s.fd).s(": keep fd ").d(s.target).s(" aside"));
  if (long r = sys(__NR_dup2, s.source, s.target); r < 0)
    fail(p, status, r, Text().s("epoll fd ").d(s.fd).s(": put fd ").d(s.source).s(" at fd ").d(s.target));
  if (long r = sys(__NR_epoll_ctl, s.fd, EPOLL_CTL_ADD, s.target, &ev); r < 0)
    fail(p, status, r,
         Text().s("epoll fd ").d(s.fd).s(": add target fd ").d(s.target).s(" (held at fd ").d(s.source).s(")"));
  if (saved < 0) {
    sys(__NR_close, s.target);
    return;
  }
  if (long r = sys(__NR_dup3, saved, s.target, cloexec & FD_CLOEXEC ? O_CLOEXEC : 0); r < 0)
    fail(p, status, r, Text().s("epoll fd ").d(s.fd).s(": put fd ").d(s.target).s(" back"));
  sys(__NR_close, saved);
}

// Its fds in place: each step.
void run_steps(const SpawnPlan* p, const SpawnTaskArg& t, int status) {
  for (uint32_t k = 0; k < t.nr_steps; k++) {
    const StepArg& s = at<StepArg>(p, p->steps)[t.first_step + k];
    if (s.op == StepArg::kEpollAdd) {
      epoll_event ev{};
      ev.events = s.events;
      ev.data = s.data;
      if (s.source >= 0) {
        add_closed_target(p, status, s, ev);
        continue;
      }
      if (long r = sys(__NR_epoll_ctl, s.fd, EPOLL_CTL_ADD, s.target, &ev); r < 0)
        fail(p, status, r, Text().s("epoll fd ").d(s.fd).s(": add target fd ").d(s.target));
    } else {
      struct flock fl{};
      fl.l_type = s.write ? F_WRLCK : F_RDLCK;
      fl.l_whence = 0;  // SEEK_SET
      fl.l_start = static_cast<long>(s.start);
      fl.l_len = static_cast<long>(s.len);
      if (long r = sys(__NR_fcntl, s.fd, F_SETLK, &fl); r < 0)
        fail(p, status, r, Text().s("fd ").d(s.fd).s(": POSIX lock of ").d(s.len).s(" bytes at ").d(s.start));
    }
  }
}

// Many threads are made by two: the main thread makes the first half, and
// the first thread it makes makes the second half before it goes into the
// restorer as itself (10,000 threads: two streams of 5,000 clone3 calls,
// one on each core).
constexpr uint32_t kTwoStreams = 64;

struct SecondStream {
  const SpawnPlan* p;
  const SpawnTaskArg* t;
  uint32_t from;            // it makes threads [from, end)
  int32_t failed_tid;       // its first failure, 0: none
  long failed_err;          // written before failed_tid
};

clone_args thread_args(const SpawnThreadArg& th) {
  clone_args a{};
  a.flags = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD | CLONE_SYSVSEM;
  a.stack = th.stack_top - th.stack_size;
  a.stack_size = th.stack_size;
  return a;
}

long clone_thread(const SpawnThreadArg& th, uint64_t entry, uint64_t arg) {
  clone_args a = thread_args(th);
  return pie::clone_with_pid(a, &th.tid, [&] { return spawner_clone3_thread(&a, sizeof a, entry, arg); });
}

// Entered by a jump on a fresh stack: realigned as a call would have left it.
[[noreturn, gnu::force_align_arg_pointer]] void second_stream(uint64_t arg) {
  auto* s = reinterpret_cast<SecondStream*>(arg);
  const SpawnTaskArg& t = *s->t;
  const SpawnThreadArg* th = at<SpawnThreadArg>(s->p, s->p->threads) + t.first_thread;
  uint32_t* ready = reinterpret_cast<uint32_t*>(t.threads_ready);
  for (uint32_t i = s->from; i < t.nr_threads; i++) {
    const long r = clone_thread(th[i], t.thread_entry, th[i].arg);
    if (r < 0) {
      s->failed_err = r;
      __atomic_store_n(&s->failed_tid, th[i].tid, __ATOMIC_RELEASE);
      // The count moves too, so that a main thread asleep on it wakes.
      __atomic_add_fetch(ready, 1, __ATOMIC_RELEASE);
      sys(__NR_futex, ready, FUTEX_WAKE_PRIVATE, 1, 0, 0, 0);
      sys(__NR_exit, 0);
    }
  }
  reinterpret_cast<void (*)(uint64_t)>(t.thread_entry)(th[0].arg);
  __builtin_unreachable();
}

void create_threads(const SpawnPlan* p, const SpawnTaskArg& t, int status) {
  const uint32_t n = t.nr_threads;
  const SpawnThreadArg* th = at<SpawnThreadArg>(p, p->threads) + t.first_thread;
  SecondStream second{p, &t, n >= kTwoStreams ? n / 2 : n, 0, 0};
  auto thread_failed = [&](int32_t tid, long err) {
    fail(p, status, err, Text().s("pid ").d(t.pid).s(": create a thread with tid ").d(tid));
  };
  for (uint32_t i = 0; i < second.from; i++) {
    const bool starts_second = i == 0 && second.from < n;
    const uint64_t entry = starts_second ? reinterpret_cast<uint64_t>(&second_stream) : t.thread_entry;
    const uint64_t arg = starts_second ? reinterpret_cast<uint64_t>(&second) : th[i].arg;
    if (long r = clone_thread(th[i], entry, arg); r < 0) thread_failed(th[i].tid, r);
  }
  // Until each has left the spawner's code (and the second stream
  // `second`), the spawner must stay mapped: they count in the restorer.
  uint32_t* ready = reinterpret_cast<uint32_t*>(t.threads_ready);
  for (;;) {
    if (const int32_t tid = __atomic_load_n(&second.failed_tid, __ATOMIC_ACQUIRE)) thread_failed(tid, second.failed_err);
    const uint32_t seen = __atomic_load_n(ready, __ATOMIC_ACQUIRE);
    if (seen >= n) break;
    sys(__NR_futex, ready, FUTEX_WAIT_PRIVATE, seen, 0, 0, 0);
  }
  if (const int32_t tid = __atomic_load_n(&second.failed_tid, __ATOMIC_ACQUIRE)) thread_failed(tid, second.failed_err);
}

// The boot region: the blob, mapped from ckpt's memfd of it (no copy, no
// write access to take away), and what it is told. Before the fds move,
// which close that memfd.
void map_boot_region(const SpawnPlan* p, const SpawnTaskArg& t, int status) {
  auto mapped = [&](long m, uint64_t want) {
    if (pie::is_err(m) || static_cast<uint64_t>(m) != want)
      fail(p, status, pie::is_err(m) ? m : -kEexist, Text().s("map the boot region at ").x(t.boot_start));
  };
  mapped(sys(__NR_mmap, t.boot_start, p->blob_size, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_FIXED_NOREPLACE,
             p->blob_fd, 0),
         t.boot_start);
  const uint64_t data = t.boot_start + t.data_offset;
  mapped(sys(__NR_mmap, data, t.boot_size - t.data_offset, PROT_READ | PROT_WRITE,
             MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0),
         data);
  // Faulted in at once where a first touch is dear (10,000 threads' args are
  // 4.6 MB); the stacks fill as the threads use them.
  pie::populate(data, t.data_size);
  pie::copy(data, reinterpret_cast<const void*>(t.data_src), t.data_size);
}

[[noreturn]] void task_main(const SpawnPlan* p, uint32_t i) {
  const SpawnTaskArg& t = task(p, i);
  const bool zombie = t.flags & kSpawnZombie;
  // ckpt's status pipe for this task stays where ckpt opened it until the
  // fds move: used there meanwhile. A zombie's parent reports for it.
  int status = zombie ? -1 : t.status_fd;

  // Its session and group, its children, then the groups others lead.
  // (Every signal is blocked but SIGTRAP: the root's mask, inherited.)
  if (t.flags & kSpawnNewSession)
    if (long r = sys(__NR_setsid); r < 0) fail(p, status, r, Text().s("pid ").d(t.pid).s(": setsid"));
  if (t.flags & kSpawnLeadGroup)
    if (long r = sys(__NR_setpgid, 0, 0); r < 0)
      fail(p, status, r, Text().s("pid ").d(t.pid).s(": lead its process group"));
  if (t.ctty_fd >= 0)
    if (long r = sys(__NR_ioctl, t.ctty_fd, TIOCSCTTY, 0); r < 0)
      fail(p, status, r, Text().s("pid ").d(t.pid).s(": take its controlling terminal (TIOCSCTTY)"));
  fill_premapped(p, t, status);
  fork_children(p, t, status);
  barrier_phase(p, &barrier(p)->arrived);
  wait_for_late(p);
  // SIGTTOU, which a background caller would get, is blocked.
  if (t.ctty_fd >= 0 && t.foreground > 0)
    if (long r = sys(__NR_ioctl, t.ctty_fd, TIOCSPGRP, &t.foreground); r < 0)
      fail(p, status, r,
           Text().s("pid ").d(t.pid).s(": set the foreground process group ").d(t.foreground).s(" of its terminal"));
  const int32_t group = t.flags & kSpawnJoinRestorerGroup ? p->restorer_pgid : t.join_group;
  if (group != 0)
    if (long r = sys(__NR_setpgid, 0, group); r < 0)
      fail(p, status, r, Text().s("pid ").d(t.pid).s(": join process group ").d(group));
  joined(p, t);
  if (zombie) {
    sys(__NR_prctl, PR_SET_NAME, t.comm, 0, 0, 0);
    die_as(t.exit_status);
  }
  reap_helpers(p, t, status);
  wait_for_zombies(p, t, status);
  map_boot_region(p, t, status);

  // Its fds take their numbers and its temporary fds go above them
  // (restore/fd_moves.h); every other fd of ckpt is closed.
  if (p->ckpt_pidfd >= 0) take_late_fds(p, t, status);
  const FdOp* ops = at<FdOp>(p, p->fd_ops) + t.first_fd_op;
  for (uint32_t k = 0; k < t.nr_fd_ops; k++) {
    if (const pie::FdOpResult r = pie::run_fd_op(ops[k], &status); r.failed) {
      Text what;
      pie::describe_fd_op(ops[k], r, what);
      fail(p, status, r.err, what);
    }
  }
  status = p->temp_fd_base + kStatusFd;
  run_steps(p, t, status);
  if (long r = sys(__NR_chdir, str(p, t.cwd)); r < 0) fail(p, status, r, Text().s("chdir ").s(str(p, t.cwd)));

  create_threads(p, t, status);

  // Parked until released.
  const char ready = 'R';
  if (sys(__NR_write, status, &ready, 1) != 1) sys(__NR_exit_group, 125);
  char go = 0;
  if (sys(__NR_read, p->temp_fd_base + kGoFd, &go, 1) != 1 || go != 'G') sys(__NR_exit_group, 124);
  asm volatile(
      "mov %0, %%rsp\n\t"
      "jmp *%1\n\t" ::"r"(t.stack_top),
      "r"(t.entry), "D"(t.args)
      : "memory");
  __builtin_unreachable();
}

}  // namespace

// The root, forked from ckpt: all of ckpt's memory but what the tasks need
// goes, then it is the root.
extern "C" [[noreturn]] void spawner_main(const SpawnPlan* p) {
  if (p->version != kSpawnAbiVersion)
    fail(p, task(p, 0).status_fd, -22 /* EINVAL */,
         Text().s("the spawner's plan is of version ").d(p->version).s(", not ").d(kSpawnAbiVersion));
  uint64_t at = 0, len = 0;
  if (long r = pie::unmap_all_but(p->keep, p->nr_keep, &at, &len))
    fail(p, task(p, 0).status_fd, r, Text().s("unmap ckpt's memory at ").x(at).s(" (").d(len).s(" bytes)"));
  task_main(p, 0);
}
