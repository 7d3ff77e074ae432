#include "restore/spawn.h"

#include <fcntl.h>
#include <signal.h>
#include <linux/futex.h>
#include <linux/sched.h>
#include <sys/mman.h>
#include <sys/rseq.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "arch/x86_64/start.h"
#include "arch/x86_64/uapi.h"
#include "image/crc32c.h"
#include "pie/clone_pid.h"
#include "pie/restorer_blob.h"

namespace ckpt::restore {

namespace {

constexpr int kStatusFd = 0;         // indices in SpawnTask::temp_fds
constexpr uint64_t kStack = 64 << 10;

// The plan being written: records appended to arrays, laid out one after
// the other once all are known.
template <typename T>
uint32_t append(std::vector<T>& v, const T& x) {
  v.push_back(x);
  return static_cast<uint32_t>(v.size() - 1);
}

struct PlanArrays {
  std::vector<abi::SpawnTaskArg> tasks;
  std::vector<uint32_t> children;
  std::vector<abi::FdOp> fd_ops;
  std::vector<int32_t> late;
  std::vector<abi::StepArg> steps;
  std::vector<abi::PremapSlotArg> slots;
  std::vector<abi::PremapReadArg> reads;
  std::vector<uint64_t> drops;  // start, end pairs
  std::vector<abi::SpawnThreadArg> threads;
  std::string strings;

  uint32_t string(const std::string& s) {
    const auto at = static_cast<uint32_t>(strings.size());
    strings.append(s).push_back('\0');
    return at;
  }
};

void plan_live(const SpawnTask& t, PlanArrays& a, abi::SpawnTaskArg& r) {
  r.status_fd = t.temp_fds[kStatusFd];
  r.cwd = a.string(t.cwd);
  r.first_fd_op = static_cast<uint32_t>(a.fd_ops.size());
  r.nr_fd_ops = static_cast<uint32_t>(t.fd_ops.size());
  a.fd_ops.insert(a.fd_ops.end(), t.fd_ops.begin(), t.fd_ops.end());
  r.first_late = static_cast<uint32_t>(a.late.size());
  for (const files::PreparedFd& f : t.fds->fds)
    if (f.late) a.late.push_back(f.fd);
  r.nr_late = static_cast<uint32_t>(a.late.size()) - r.first_late;
  r.first_step = static_cast<uint32_t>(a.steps.size());
  for (const files::InTaskStep& s : t.fds->steps)
    a.steps.push_back({.op = s.op == files::InTaskStep::Op::EpollAdd ? abi::StepArg::kEpollAdd : abi::StepArg::kPosixLock,
                       .fd = s.fd,
                       .target = s.target,
                       .source = s.source,
                       .events = s.events,
                       .write = s.write,
                       .data = s.data,
                       .start = s.start,
                       .len = s.len});
  r.nr_steps = static_cast<uint32_t>(a.steps.size()) - r.first_step;
  r.first_slot = static_cast<uint32_t>(a.slots.size());
  if (t.premap)
    for (const PremapSlot& s : t.premap->slots) {
      abi::PremapSlotArg sa{.at = s.at, .start = s.start, .end = s.end, .create = s.create, .map_flags = s.map_flags};
      sa.first_read = static_cast<uint32_t>(a.reads.size());
      sa.nr_reads = static_cast<uint32_t>(s.reads.size());
      for (const PremapRead& rd : s.reads)
        a.reads.push_back({.fd = rd.fd, .check = rd.check, .vaddr = rd.vaddr, .len = rd.len, .off = rd.off,
                           .crc32c = rd.crc32c, .file = a.string(*rd.file)});
      sa.first_drop = static_cast<uint32_t>(a.drops.size() / 2);
      sa.nr_drops = static_cast<uint32_t>(s.drop.size());
      for (const Range& d : s.drop) a.drops.insert(a.drops.end(), {d.start, d.end});
      a.slots.push_back(sa);
    }
  r.nr_slots = static_cast<uint32_t>(a.slots.size()) - r.first_slot;
  r.boot_start = t.boot_start;
  r.boot_size = t.boot_size;
  r.data_offset = t.data_offset;
  r.data_src = reinterpret_cast<uint64_t>(t.data.data());
  r.data_size = t.data.size();
  r.stack_top = t.stack_top;
  r.entry = t.entry;
  r.args = t.args;
  r.thread_entry = t.thread_entry;
  r.threads_ready = reinterpret_cast<uint64_t>(t.threads_ready);
  r.first_thread = static_cast<uint32_t>(a.threads.size());
  r.nr_threads = static_cast<uint32_t>(t.threads.size());
  for (const SpawnTask::Thread& th : t.threads)
    a.threads.push_back({.tid = th.tid, .stack_top = th.stack_top, .stack_size = th.stack_size, .arg = th.arg});
}

// Where each array goes after the header, 8-aligned.
template <typename T>
uint64_t place(uint64_t& off, const std::vector<T>& v) {
  const uint64_t at = off;
  off = (off + v.size() * sizeof(T) + 7) & ~uint64_t{7};
  return at;
}

template <typename T>
void put(uint8_t* base, uint64_t at, const std::vector<T>& v) {
  if (!v.empty()) std::memcpy(base + at, v.data(), v.size() * sizeof(T));
}

// glibc registered rseq for this thread; the kernel would write to that area
// on every return to user space after the spawner unmaps it (pitfall 3).
bool unregister_glibc_rseq() {
  if (__rseq_size == 0) return true;
  void* area = static_cast<char*>(__builtin_thread_pointer()) + __rseq_offset;
  for (unsigned len : {static_cast<unsigned>(__rseq_size), 32u})
    if (syscall(SYS_rseq, area, len, RSEQ_FLAG_UNREGISTER, RSEQ_SIG) == 0) return true;
  return false;
}

// The root, a fork of ckpt: into the spawner, with every signal blocked but
// SIGTRAP (a breakpoint's forced SIGTRAP on a blocked signal would reset its
// handler: pitfall 5); its children inherit the mask.
[[noreturn]] void enter_spawner(const SpawnTree& tree) {
  const uint64_t mask = ~0ULL & ~(1ULL << (SIGTRAP - 1));
  long r = syscall(SYS_rt_sigprocmask, SIG_SETMASK, &mask, nullptr, 8) < 0 ? -errno : 0;
  const char* what = "block signals";
  if (r == 0) {
    what = "unregister rseq";
    r = unregister_glibc_rseq() ? 0 : -errno;
  }
  if (r == 0)
    arch::switch_stack_and_jump(tree.region->stack_top(), tree.region->blob() + pie::restorer::k_spawner_entry,
                                reinterpret_cast<uint64_t>(tree.plan));
  abi::SpawnFailure f{};
  f.err = static_cast<int32_t>(-r);
  std::strncpy(f.what, what, sizeof f.what - 1);
  (void)!write(tree.tasks[0].temp_fds[kStatusFd], &f, sizeof f);
  _exit(127);
}

// The blob's code part, as each boot region lays it out (zeros to its .bss's end).
uint64_t code_size() {
  return arch::page_up(std::max<uint64_t>(pie::restorer::image().size(), pie::restorer::k_blob_end));
}

}  // namespace

Result<SpawnRegion> SpawnRegion::map() {
  const auto blob = pie::restorer::image();
  const uint64_t code = code_size();
  UniqueFd fd(memfd_create("ckpt-restorer", MFD_CLOEXEC | MFD_ALLOW_SEALING | uapi::kMfdNoexecSeal));
  if (!fd && errno == EINVAL) fd = UniqueFd(memfd_create("ckpt-restorer", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (!fd) return sys_error("memfd_create for the restorer blob");
  if (ftruncate(fd.get(), static_cast<off_t>(code)) < 0 ||
      pwrite(fd.get(), blob.data(), blob.size(), 0) != static_cast<ssize_t>(blob.size()))
    return sys_error("write the restorer blob into its memfd");
  if (fcntl(fd.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0)
    return sys_error("seal the restorer blob's memfd");
  // The code over the start of a mapping as large as both, so that they
  // stay side by side.
  Mapping m = TRY_CTX(Mapping::anonymous(code + kStack), "map the spawner");
  if (mmap(m.data(), code, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_FIXED, fd.get(), 0) == MAP_FAILED)
    return sys_error("map the spawner's code");
  return SpawnRegion(std::move(fd), std::move(m));
}

Range SpawnRegion::range() const { return {blob(), stack_top()}; }

Result<void> plan_task_fds(SpawnTask& t, int temp_fd_base) {
  std::vector<FdMove> moves;
  moves.reserve(t.temp_fds.size() + t.fds->fds.size());
  for (size_t i = 0; i < t.temp_fds.size(); i++) moves.push_back({t.temp_fds[i], temp_fd_base + static_cast<int>(i), false});
  for (const files::PreparedFd& f : t.fds->fds) moves.push_back({f.fd, f.target, f.cloexec});
  t.fd_ops = TRY(plan_fd_moves(moves, t.temp_fds[kStatusFd]));
  return {};
}

Result<void> write_spawn_plan(SpawnTree& tree, BootDataPool& pool) {
  PlanArrays a;
  for (const SpawnTask& t : tree.tasks) {
    abi::SpawnTaskArg r{};
    r.pid = t.pid;
    r.flags = (t.zombie ? abi::kSpawnZombie : 0) | (t.helper ? abi::kSpawnHelper : 0) |
              (t.joins.new_session ? abi::kSpawnNewSession : 0) | (t.joins.lead_group ? abi::kSpawnLeadGroup : 0) |
              (t.joins.join_restorer_group ? abi::kSpawnJoinRestorerGroup : 0);
    r.join_group = t.joins.join_group;
    r.exit_status = t.exit_status;
    std::strncpy(r.comm, t.comm.c_str(), sizeof r.comm - 1);
    r.ctty_fd = t.ctty_fd;
    r.foreground = t.foreground;
    r.first_child = static_cast<uint32_t>(a.children.size());
    r.nr_children = static_cast<uint32_t>(t.children.size());
    for (int c : t.children) a.children.push_back(static_cast<uint32_t>(c));
    r.status_fd = -1;
    if (!t.zombie && !t.helper) plan_live(t, a, r);
    a.tasks.push_back(r);
  }
  std::vector<Range> keep = tree.keep;
  std::sort(keep.begin(), keep.end(), [](const Range& x, const Range& y) { return x.start < y.start; });
  abi::SpawnPlan h{};
  if (keep.size() > std::size(h.keep)) return error(E2BIG, "spawn: {} ranges of ckpt to keep", keep.size());
  h.version = abi::kSpawnAbiVersion;
  h.nr_tasks = static_cast<uint32_t>(a.tasks.size());
  h.temp_fd_base = tree.temp_fd_base;
  h.restorer_pgid = tree.restorer_pgid;
  h.ckpt_pidfd = tree.ckpt_pidfd;
  h.barrier = reinterpret_cast<uint64_t>(tree.barrier);
  h.blob_fd = tree.region->blob_fd();
  h.crc32c_hw = crc32c_hw();
  h.blob_size = code_size();
  for (const abi::SpawnTaskArg& r : a.tasks)
    if (r.boot_size != 0 && r.data_offset != h.blob_size)
      return error(EINVAL, "spawn: pid {}'s boot region has its data at {:#x}, not after the blob's {:#x} bytes", r.pid,
                   r.data_offset, h.blob_size);
  h.nr_keep = static_cast<uint32_t>(keep.size());
  for (size_t i = 0; i < keep.size(); i++) {
    h.keep[i][0] = arch::page_down(keep[i].start);
    h.keep[i][1] = arch::page_up(keep[i].end);
  }
  uint64_t off = sizeof h;
  h.tasks = place(off, a.tasks);
  h.children = place(off, a.children);
  h.fd_ops = place(off, a.fd_ops);
  h.late = place(off, a.late);
  h.steps = place(off, a.steps);
  h.slots = place(off, a.slots);
  h.reads = place(off, a.reads);
  h.drops = place(off, a.drops);
  h.threads = place(off, a.threads);
  h.strings = off;
  off += a.strings.size();
  const std::span<uint8_t> mem = TRY_CTX(pool.take(off), "spawn: stage the plan");
  uint8_t* base = mem.data();
  std::memcpy(base, &h, sizeof h);
  put(base, h.tasks, a.tasks);
  put(base, h.children, a.children);
  put(base, h.fd_ops, a.fd_ops);
  put(base, h.late, a.late);
  put(base, h.steps, a.steps);
  put(base, h.slots, a.slots);
  put(base, h.reads, a.reads);
  put(base, h.drops, a.drops);
  put(base, h.threads, a.threads);
  std::memcpy(base + h.strings, a.strings.data(), a.strings.size());
  tree.plan = reinterpret_cast<const abi::SpawnPlan*>(base);
  return {};
}

std::string failure_text(std::string_view said) {
  if (said.size() == sizeof(abi::SpawnFailure)) {
    abi::SpawnFailure f;
    std::memcpy(&f, said.data(), sizeof f);
    const std::string what(f.what, strnlen(f.what, sizeof f.what));
    return f.err ? Error{f.err, what}.str() : what;
  }
  return std::string(said);
}

Result<bool> open_when_arrived(const SpawnTree& tree, const std::function<Result<void>()>& open) {
  SpawnBarrier* b = tree.barrier;
  const uint32_t all = tree.tasks.size();
  auto give_up = [b] {
    __atomic_store_n(&b->failed, 1, __ATOMIC_RELEASE);
    for (uint32_t* f : {&b->arrived, &b->joined, &b->late_opened})
      syscall(SYS_futex, f, FUTEX_WAKE, INT32_MAX, nullptr, nullptr, 0);
  };
  // Timed: a task that dies without saying so must not hang ckpt here.
  const timespec tick{0, 50'000'000};
  for (uint32_t seen; (seen = __atomic_load_n(&b->arrived, __ATOMIC_ACQUIRE)) < all;) {
    if (__atomic_load_n(&b->failed, __ATOMIC_ACQUIRE)) return false;
    siginfo_t si{};
    if (waitid(P_PID, tree.tasks[0].pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid != 0) {
      give_up();  // the root is gone: its status pipe says why
      return false;
    }
    syscall(SYS_futex, &b->arrived, FUTEX_WAIT, seen, &tick, nullptr, 0);
  }
  if (auto r = open(); !r) {
    give_up();
    return std::unexpected(r.error());
  }
  __atomic_store_n(&b->late_opened, 1, __ATOMIC_RELEASE);
  syscall(SYS_futex, &b->late_opened, FUTEX_WAKE, INT32_MAX, nullptr, nullptr, 0);
  return true;
}

Result<pid_t> spawn(const SpawnTree& tree) {
  const SpawnTask& root = tree.tasks[0];
  clone_args a{};
  a.flags = tree.sibling ? CLONE_PARENT : 0;
  a.exit_signal = tree.sibling ? 0 : SIGCHLD;
  const int32_t want = root.pid;
  const long r = ::pie::clone_with_pid(a, &want, [&] { return ::pie::sys(SYS_clone3, &a, sizeof a); });
  if (r == 0) enter_spawner(tree);
  if (r == -EEXIST)
    return error(EEXIST, "pid {} is taken by another process (restore --pidns: into a new PID namespace)", root.pid);
  if (r < 0) return error(static_cast<int>(-r), "clone3 with pid {}", root.pid);
  return static_cast<pid_t>(r);
}

}  // namespace ckpt::restore
