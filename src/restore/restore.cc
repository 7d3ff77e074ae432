#include "restore/restore.h"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <future>
#include <map>
#include <set>
#include <tuple>

#include "arch/x86_64/page.h"
#include "base/check.h"
#include "base/fs.h"
#include "base/mapping.h"
#include "files/file_id.h"
#include "files/pty.h"
#include "image/cpu.h"
#include "image/image_dir.h"
#include "image/verify.h"
#include "lazy/protocol.h"
#include "pie/restorer_blob.h"
#include "proc/knobs.h"
#include "proc/maps.h"
#include "proc/sched.h"
#include "proc/status.h"
#include "ptrace/tracee.h"
#include "ptrace/tree_commit.h"
#include "restore/first_step.h"
#include "restore/images.h"
#include "restore/inherited.h"
#include "restore/lazy.h"
#include "restore/pidns.h"
#include "restore/plan.h"
#include "restore/premap.h"
#include "restore/read_progress.h"
#include "restore/shmem.h"
#include "restore/spawn.h"
#include "restore/traps.h"

namespace ckpt::restore {

namespace {

using Clock = std::chrono::steady_clock;
// Restored threads die with ckpt until it lets go of them.
constexpr unsigned long kTraceOptions = PTRACE_O_EXITKILL;

const char* step_name(int32_t step) {
  static constexpr const char* kNames[] = {
      "?", "check ABI version", "unmap ckpt's memory", "move the vDSO", "map a VMA", "read pages",
      "protect a VMA", "set mm fields (PR_SET_MM_MAP)", "install a sigaction", "set the alternate signal stack",
      "queue a pending signal", "register rseq", "set the robust futex list", "set the name",
      "apply madvise flags", "set a resource limit", "restore a timer", "set prctl state",
      "install a seccomp filter", "set credentials", "mlock a VMA", "mseal a VMA", "register with membarrier",
      "set mlockall flags for later mappings",
      "set speculation control (PR_SET_SPECULATION_CTRL; addr: which, len: value)",
      "write /proc/thread-self/loginuid (addr: the loginuid)", "set memory-deny-write-execute (PR_SET_MDWE)",
      "set KSM for the whole process (PR_SET_MEMORY_MERGE)",
      "stop for ckpt before its last syscalls (tgkill SIGSTOP)", "check the checksum of the pages read",
      "attach a System V shared memory segment (addr: where, len: its id), or unmap what the task had of it",
      "register the lazy VMAs with a userfaultfd, or send it", "move memory laid out before the fork into place (addr: "
      "from, len: to), or unmap the rest of its window",
      "set a NUMA memory policy (mbind of a VMA, or set_mempolicy of the thread; addr: the VMA, len: the mode)"};
  static_assert(std::size(kNames) == abi::kStepMempolicy + 1);
  return step >= 0 && step < static_cast<int32_t>(std::size(kNames)) ? kNames[step] : "?";
}

// The restorer trapped, crashed, or a thread died: say what happened.
Error explain_stop(Tracee& t, const Stop& s, const Plan& plan, const TaskImages& ti, const PidMap& pids) {
  const pid_t tid = t.tid();
  if (s.gone()) return Error{ESRCH, fmt::format("task {} {} during restore", tid, s.describe())};
  auto regs = t.regs();
  uint64_t rip = regs ? regs->rip : 0;
  auto th = std::find_if(plan.threads.begin(), plan.threads.end(),
                         [&](const ThreadPlan& p) { return pids.outside(p.tid) == tid; });
  if (s.sig() == SIGTRAP && th != plan.threads.end()) {
    abi::RestorerError e{};
    if (!t.read_mem(RemoteAddr(th->arg) + offsetof(abi::ThreadArg, error), &e, sizeof e)) e.step = abi::kStepNone;
    const img::PageMap runs = e.step == abi::kStepPageChecksum ? image::stored_runs(ti.pagemap) : img::PageMap{};
    if (e.step == abi::kStepPageChecksum && e.addr < static_cast<uint64_t>(runs.runs_size()))
      // The restorer's check of what it read, in verify_page_data()'s words.
      return Error{EINVAL, fmt::format("task {}: {}: checksum mismatch in run {} ({:#x}, {} pages) at offset {}", tid,
                                       ti.pages_path, e.addr, runs.runs(e.addr).vaddr(), runs.runs(e.addr).nr_pages(),
                                       e.len)};
    if (e.step != abi::kStepNone)
      return Error{e.err, fmt::format("task {}: restorer could not {} (at {:#x}, {:#x})", tid, step_name(e.step),
                                      e.addr, e.len)};
  }
  const BootRegion& boot = plan.boot;
  std::string where = rip >= boot.start() && rip < boot.end() ? fmt::format("restorer+{:#x}", rip - boot.start())
                                                              : fmt::format("{:#x}", rip);
  return Error{0, fmt::format("task {} {} at {}", tid, s.describe(), where)};
}

// ckpt holds one fd per open file description of the tree, and each task,
// which inherits ckpt's fd table through the root, needs its own fds and its
// temporary ones above them (fd_moves.h): as many slots as the hard limit
// allows, as CRIU takes them.
// Each restorer sets its task's dumped limits again.
Result<void> raise_nofile_limit(int need) {
  rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) < 0) return sys_error("getrlimit(RLIMIT_NOFILE)");
  if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < static_cast<rlim_t>(need))
    return error(EMFILE, "the tree needs {} fd slots and ckpt's RLIMIT_NOFILE hard limit is {}: raise it "
                 "(prlimit --nofile)", need, rl.rlim_max);
  if (rl.rlim_cur == rl.rlim_max) return {};
  rl.rlim_cur = rl.rlim_max;
  if (setrlimit(RLIMIT_NOFILE, &rl) < 0) return sys_error("raise RLIMIT_NOFILE to {}", rl.rlim_max);
  return {};
}

uint64_t ns_since(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t).count();
}

// Any PID or TID of the images (or of a helper) in use makes clone3 fail:
// say which and who holds it, up front. In a new PID namespace every PID is
// free but 1, its init's (pidns.h).
Result<void> check_pids_free(const TreeImages& t, const tree::JoinPlan& joins, bool pidns) {
  std::vector<pid_t> ids;
  for (const tree::Task& k : t.tree.tasks())
    if (k.zombie) ids.push_back(k.pid);
  for (const tree::Helper& h : joins.helpers) ids.push_back(h.pid);
  for (const TaskImages& ti : t.tasks)
    for (const img::ThreadCore& th : ti.core.threads()) ids.push_back(th.tid());
  for (pid_t id : ids) {
    if (pidns) {
      if (id == 1)
        return error(EEXIST, "pid 1: --pidns restores the tree under an init of ckpt's, which is pid 1 of the new "
                     "namespace, and a task of the tree has pid 1");
      continue;
    }
    if (kill(id, 0) == 0 || errno == EPERM) {
      // The id may be a thread's: name the process it belongs to.
      auto st = proc::read_status(id);
      const std::string owner = !st                ? "another process"
                                : st->tgid == id ? fmt::format("another process ({})", st->name)
                                                 : fmt::format("a thread of process {} ({})", st->tgid, st->name);
      return error(EEXIST, "pid {}: the pid is taken by {}; stop it, or restore --pidns into a new PID namespace", id,
                   owner);
    }
  }
  return {};
}

// --pidns: every session and group must be one the tree makes, since the
// tree can join none outside its namespace (a --shell-job's are the shell's).
Result<void> check_all_inside(const tree::ProcessTree& tree, const tree::JoinPlan& joins) {
  auto made = [&](pid_t id) {
    return tree.find(id) != nullptr ||
           std::any_of(joins.helpers.begin(), joins.helpers.end(), [&](const tree::Helper& h) { return h.pid == id; });
  };
  for (size_t k = 0; k < tree.tasks().size(); k++) {
    const tree::Task& task = tree.tasks()[k];
    if (joins.tasks[k].join_restorer_group || !made(task.sid) || !made(task.pgid))
      return error(EINVAL, "pid {}: --pidns with --shell-job: its session {} and group {} are the restoring shell's, "
                   "outside the new PID namespace, where no task can join them", task.pid, task.sid, task.pgid);
  }
  return {};
}

// The tasks of a tree map the same files (its executable, libc): each is
// identified (fstat, ELF build-id) once per inode, size and mtime, not once
// per task; what the other tasks' fds show is the same file unchanged. The
// tasks share ckpt's fd of a path (TreeFiles), asked about once.
class FileIds {
 public:
  Result<const img::FileId*> of(int fd, const std::string& path) {
    if (auto known = by_fd_.find(fd); known != by_fd_.end()) return known->second;
    struct stat st;
    if (fstat(fd, &st) < 0) return sys_error("stat {}", path);
    const Key key{st.st_dev, st.st_ino, st.st_size, st.st_mtim.tv_sec, st.st_mtim.tv_nsec};
    auto it = ids_.find(key);
    if (it == ids_.end()) it = ids_.emplace(key, TRY(files::identify_file(fd, path))).first;
    by_fd_.emplace(fd, &it->second);
    return &it->second;
  }

 private:
  using Key = std::tuple<dev_t, ino_t, off_t, time_t, long>;
  std::map<Key, img::FileId> ids_;
  std::map<int, const img::FileId*> by_fd_;  // fds that stay open through the restore
};

// A mapped file replaced since the dump would run other code under the
// dumped registers and memory: refuse it now, on the very fds the restorer
// will map, so that what is checked is what is mapped.
Result<void> check_mapped_files(const TaskImages& ti, const MappingFiles& mf, int exe, FileIds& ids) {
  std::set<std::pair<std::string, files::Compare>> done;
  for (const img::Vma& v : ti.mm.vmas()) {
    if (!v.has_file_id() || !done.emplace(v.path(), files::compare_for(v)).second) continue;
    auto it = mf.index.lower_bound({v.path(), false});
    CHECK(it != mf.index.end() && it->first.first == v.path(), "file {} of VMA {:#x} was not opened", v.path(),
          v.start());
    const int fd = mf.fds[it->second];
    TRY(files::check_file_id(v.path(), fmt::format("mapped at {:#x}-{:#x}", v.start(), v.end()),
                             *TRY(ids.of(fd, v.path())), v.file_id(), files::compare_for(v)));
  }
  if (ti.core.mm().has_exe_id())
    TRY(files::check_file_id(ti.core.mm().exe_path(), "the executable", *TRY(ids.of(exe, ti.core.mm().exe_path())),
                             ti.core.mm().exe_id()));
  return {};
}

// Until the tree runs on its own, any failure kills every task of it:
// nothing half-alive, and no PID held by a zombie. ckpt is a child subreaper
// meanwhile, so the tasks orphaned by the kill are its to reap. With
// --pidns the "root" is the namespace's init: its death kills every task of
// the namespace, and its reaping waits until they are all gone.
class KillOnError {
 public:
  KillOnError(bool reap) : reap_(reap) { prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); }
  void set_root(pid_t root) { root_ = root; }
  // Success: orphans of the restored tree go where the dumped tree's went.
  void disarm() {
    root_ = 0;
    prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0);
  }
  ~KillOnError() {
    if (root_ == 0) {
      prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0);
      return;
    }
    // The root and its descendants, parents before children; and ckpt's
    // own children with theirs: a task whose parent died before this (a
    // restorer that crashed, one let go half-way through completion) is no
    // longer below the root but ckpt's, the child subreaper's. One that dies
    // so while this runs leaves its children to ckpt after the walk: passes
    // until one finds no task it has not seen.
    std::set<pid_t> seen;
    for (std::vector<pid_t> tasks = {root_}; ; tasks.clear()) {
      if (auto mine = proc::children(getpid())) tasks.insert(tasks.end(), mine->begin(), mine->end());
      std::erase_if(tasks, [&](pid_t p) { return !seen.insert(p).second; });
      if (tasks.empty()) break;
      for (size_t i = 0; i < tasks.size(); i++)
        if (auto kids = proc::children(tasks[i]))
          for (pid_t k : *kids)
            if (seen.insert(k).second) tasks.push_back(k);
      for (pid_t p : tasks) kill(p, SIGKILL);
      // Each one's death makes its children ckpt's: reaped in the same order.
      if (reap_)
        for (pid_t p : tasks) waitpid(p, nullptr, __WALL);
    }
    prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0);
  }

 private:
  pid_t root_ = 0;
  bool reap_;
};

// What ckpt holds for one live task from loading to letting go.
struct LiveTask {
  TaskImages* images;
  CompletionMode mode;
  MappingFiles mf;
  int exe = -1;  // TreeFiles'
  UniqueFd status_r, status_w, go_r, go_w;
  std::optional<Plan> plan;  // built once ckpt's maps are known
  std::vector<Tracee> tracees;
  std::vector<CompletionTask> completion;
  FirstSteps steps;
  const LazyLink* lazy = nullptr;  // restore --lazy-pages
};

bool ignores_sigtrap(const TaskImages& ti) {
  for (const img::SigAction& sa : ti.core.sigactions())
    if (sa.signo() == SIGTRAP && sa.handler() == reinterpret_cast<uint64_t>(SIG_IGN)) return true;
  return false;
}

CompletionMode mode_for(const TaskImages& ti, CompletionMode wanted, Log& log) {
  // A SIGTRAP the task ignores would be reset to SIG_DFL by the kernel when
  // our breakpoint fires: keep the disposition exact, trace syscalls instead.
  if (wanted == CompletionMode::Breakpoint && ignores_sigtrap(ti)) {
    log.info("pid {} ignores SIGTRAP: completing by tracing syscalls", ti.pid);
    return CompletionMode::SyscallTrace;
  }
  return wanted;
}

// Where syscall tracing starts: an int3 traps as a breakpoint does, so the
// same SIGTRAP rule holds; a SIGSTOP to itself otherwise, which costs the
// kernel a walk over the task's threads each (restorer's rst_barrier).
uint32_t barrier_for(const TaskImages& ti) { return ignores_sigtrap(ti) ? abi::kBarrierStop : abi::kBarrierTrap; }

// Waits until every live task is parked ("R") or gone. A task that fails
// says why on its status pipe and makes the others give up in silence: the
// error is the one that says why.
Result<void> wait_parked(std::vector<LiveTask>& live) {
  std::vector<bool> done(live.size(), false);
  std::optional<Error> why;
  std::optional<size_t> silent;
  for (size_t left = live.size(); left > 0;) {
    std::vector<pollfd> fds;
    std::vector<size_t> which;
    for (size_t i = 0; i < live.size(); i++)
      if (!done[i]) {
        fds.push_back({live[i].status_r.get(), POLLIN, 0});
        which.push_back(i);
      }
    if (poll(fds.data(), fds.size(), -1) < 0) {
      if (errno == EINTR) continue;
      return sys_error("wait for the tasks to be ready");
    }
    for (size_t k = 0; k < fds.size(); k++) {
      if (!fds[k].revents) continue;
      const size_t i = which[k];
      char buf[512];
      ssize_t n = read(live[i].status_r.get(), buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      done[i] = true;
      left--;
      if (n == 1 && buf[0] == 'R') continue;
      if (n > 0 && !why)
        // Its own words name the cause, and the errno where there is one.
        why = Error{0, fmt::format("pid {}: preparing the task failed: {}", live[i].images->pid,
                                   failure_text({buf, static_cast<size_t>(n)}))};
      if (n <= 0 && !silent) silent = i;
    }
  }
  if (why) return std::unexpected(*why);
  if (silent) return error(EINVAL, "pid {}: preparing the task failed: it exited", live[*silent].images->pid);
  return {};
}

// Seizes every thread of a parked task and, to arm its breakpoint, asks it
// to stop; seize_all() waits for the stops once every task was asked, so
// that no wait is for a thread interrupted a moment ago. Threads that
// complete by syscall tracing run on, seized: the first stop ckpt needs of
// them is the one they make at the barrier (3 ptrace calls and a stop less
// a thread).
Result<void> seize_threads(LiveTask& lt, const PidMap& pids, ArmByCpu& arming) {
  lt.tracees.reserve(lt.plan->threads.size());
  for (const ThreadPlan& tp : lt.plan->threads) {
    const bool leader = lt.tracees.empty();  // threads[0] is the main one
    lt.tracees.push_back(TRY(Tracee::seize(pids.outside(tp.tid), kTraceOptions, leader)));
    if (lt.mode != CompletionMode::Breakpoint) continue;
    arming.pin(lt.tracees.back().tid());
    TRY(lt.tracees.back().interrupt());
  }
  return {};
}

// A parked task was spawned to end on a breakpoint: its restorer is told to
// stop at the barrier instead, and it completes by syscall tracing.
Result<void> trace_syscalls_instead(LiveTask& lt, pid_t pid) {
  lt.mode = CompletionMode::SyscallTrace;
  const uint32_t barrier = barrier_for(*lt.images);
  const RemoteAddr at = RemoteAddr(lt.plan->boot.args_addr()) + offsetof(abi::RestorerArgs, barrier);
  return write_task_mem(pid, at, &barrier, sizeof barrier);
}

// The threads of a task, stopped: arms their breakpoints (or falls back to
// syscall tracing).
Result<void> arm_threads(LiveTask& lt, RemoteAddr sigreturn_fn, ArmByCpu& arming, Log& log) {
  if (lt.mode != CompletionMode::Breakpoint) return {};
  for (Tracee& t : lt.tracees) {
    Stop s = TRY(t.wait());
    if (!s.stopped()) return error(ESRCH, "task {} {} before its restorer ran", t.tid(), s.describe());
  }
  for (Tracee& t : lt.tracees) {
    arming.go_to(t.tid());
    if (TRY(arm_breakpoint(t, sigreturn_fn)) == Armed::Unsupported) {
      log.warn("task {}: the kernel refused a hardware breakpoint: completing by tracing syscalls", t.tid());
      for (Tracee& u : lt.tracees) TRY(disarm_breakpoint(u));
      TRY(trace_syscalls_instead(lt, lt.tracees[0].tid()));
      break;
    }
  }
  return {};
}

// Everything ckpt prepares for one live task before any task exists.
Result<void> prepare_task(LiveTask& lt, const img::ShmemImage& shmem, const ShmemFds& fds, TreeFiles& files,
                          FileIds* check_files) {
  const TaskImages& ti = *lt.images;
  lt.mf = TRY(open_mapping_files(ti.mm, shmem, fds, files));
  const std::string& exe = ti.core.mm().exe_path();
  lt.exe = TRY_CTX(files.open({exe, false}, exe, O_RDONLY), "executable");
  if (check_files) TRY(check_mapped_files(ti, lt.mf, lt.exe, *check_files));
  int p[2];
  if (pipe2(p, O_CLOEXEC) < 0) return sys_error("pipe");
  lt.status_r = UniqueFd(p[0]);
  lt.status_w = UniqueFd(p[1]);
  if (pipe2(p, O_CLOEXEC) < 0) return sys_error("pipe");
  lt.go_r = UniqueFd(p[0]);
  lt.go_w = UniqueFd(p[1]);
  return {};
}

// The breakpoint probe's answer, asked once the tree is parked. On a machine
// where no task-bound perf event lived in the last second, its first one
// waits for an RCU grace period (5-25 ms here) while the kernel turns its
// perf hooks on (`bp` empty): a wait ckpt does not take, as syscall tracing
// completes without them, and no slower (bench/completion_modes.py). Where
// it says no, or is still waiting, the tasks spawned to end on a
// breakpoint are told to stop at the barrier.
Result<void> hear_the_probe(const RestoreOptions& o, std::optional<BreakpointSupport> bp, std::vector<LiveTask>& live,
                            const PidMap& pids, Log& log) {
  // Tests: as if the probe's breakpoint never fired (pitfall 7), or as if
  // the kernel kept it waiting.
  if (auto f = o.faults.at("breakpoint-probe"); !f) bp = BreakpointSupport{false, f.error().msg};
  if (auto f = o.faults.at("breakpoint-probe-waits"); !f) bp = std::nullopt;
  if (bp && bp->usable) return {};
  if (!bp) log.info("the kernel is turning its perf hooks on (an RCU grace period): completing by tracing syscalls");
  else log.warn("hardware breakpoints unavailable ({}): completing restore by tracing syscalls", bp->why_not);
  for (LiveTask& lt : live)
    if (lt.mode == CompletionMode::Breakpoint)
      TRY_CTX(trace_syscalls_instead(lt, pids.outside(lt.images->pid)), "pid {}", lt.images->pid);
  return {};
}

// What every task needs from ckpt, ready before any task exists.
struct Prepared {
  TreeFiles files;             // before `live`, whose tasks refer to its fds
  std::optional<BootDataPool> boot_data;  // before `live` too: its plans stage their data there
  std::vector<LiveTask> live;  // TreeImages::tasks order
  std::map<pid_t, size_t> live_index;
  ShmemObjects shmem;
  files::PreparedFds fds;
  Premaps premaps;  // memory shared with children: each task's slots, ckpt's window until the spawn
  std::optional<SpawnRegion> spawner;
};

Result<void> prepare(TreeImages& t, const image::ImageDir& dir, bool check_files, bool tcp_close, Log& log,
                     Prepared* p) {
  int need_fds = 0;
  for (const TaskImages& ti : t.tasks) need_fds = std::max(need_fds, files::restore_fd_slots(ti.files, ti.mm));
  need_fds = std::max(need_fds, files::restorer_fd_slots(t.descs, static_cast<int>(t.tasks.size())));
  TRY(raise_nofile_limit(need_fds));
  p->shmem = TRY(create_shmem(dir, t.shmem, log));
  p->live.resize(t.tasks.size());
  FileIds ids;
  std::vector<std::pair<pid_t, const img::Files*>> files;
  for (size_t i = 0; i < t.tasks.size(); i++) {
    LiveTask& lt = p->live[i];
    lt.images = &t.tasks[i];
    TRY_CTX(prepare_task(lt, t.shmem, p->shmem.fds, p->files, check_files ? &ids : nullptr), "pid {}",
            t.tasks[i].pid);
    files.emplace_back(t.tasks[i].pid, &t.tasks[i].files);
    p->live_index[t.tasks[i].pid] = i;
  }
  p->fds = TRY(files::prepare_fds(t.descs, files, p->shmem.fds, check_files, tcp_close));
  return {};
}

// A live task's part of the spawn: its plan, its fds, its boot region.
Result<void> plan_live_task(LiveTask& lt, const img::ShmemImage& shmem, const std::vector<InheritedPages>& inherited,
                            const TaskPremap& premap, const std::vector<proc::MapEntry>& own, const OwnCreds& creds,
                            int base, const files::TaskFdPlan* fds, BootDataPool& pool, SpawnTask* sp) {
  const TaskImages& ti = *lt.images;
  std::vector<int> temp = {lt.status_w.get(), lt.go_r.get(), ti.pages.get(), lt.exe};
  const TempFds tfds{base, base + 2, base + 3, base + static_cast<int>(temp.size())};
  temp.insert(temp.end(), lt.mf.fds.begin(), lt.mf.fds.end());
  // The ancestors' pages files it reads what it inherited from.
  std::vector<abi::InheritedRunArg> from_ancestors;
  std::map<int, int> owner_fd;  // ckpt's fd -> the child's
  for (const InheritedPages& ip : inherited) {
    if (premap.covers(ip.vaddr, ip.len)) continue;  // in place before the fork
    auto [it, fresh] = owner_fd.try_emplace(ip.fd, base + static_cast<int>(temp.size()));
    if (fresh) temp.push_back(ip.fd);
    from_ancestors.push_back({ip.vaddr, ip.len, ip.off, it->second, 0});
  }
  int lazy_fds[2] = {-1, -1};  // the child's numbers of the lazy-pages sockets
  if (lt.lazy)
    for (int fd : {lt.lazy->daemon_fd(), lt.lazy->watch_fd()}) {
      lazy_fds[fd != lt.lazy->daemon_fd()] = base + static_cast<int>(temp.size());
      temp.push_back(fd);
    }
  lt.plan = TRY(build_plan(ti, shmem, own, lt.mf, tfds, from_ancestors, premap, creds, pool));
  if (!premap.slots.empty()) sp->premap = &premap;
  if (lt.lazy) mark_lazy(ti, lt.plan->boot, lazy_fds[0], lazy_fds[1]);
  const BootRegion& boot = lt.plan->boot;
  sp->temp_fds = std::move(temp);
  sp->fds = fds;
  TRY(plan_task_fds(*sp, base));
  sp->cwd = ti.core.cwd();
  sp->boot_start = boot.start();
  sp->boot_size = boot.size();
  sp->data_offset = boot.data_offset();
  sp->data = boot.data();
  sp->stack_top = boot.stack_top();
  sp->entry = boot.start() + pie::restorer::k_restorer_entry;
  sp->args = boot.args_addr();
  sp->thread_entry = boot.start() + pie::restorer::k_restorer_thread_entry;
  sp->threads_ready = reinterpret_cast<uint32_t*>(boot.args_addr() + offsetof(abi::RestorerArgs, threads_ready));
  for (size_t i = 1; i < lt.plan->threads.size(); i++)
    sp->threads.push_back({lt.plan->threads[i].tid, lt.plan->threads[i].stack_top, BootRegion::kThreadStackSize,
                           lt.plan->threads[i].arg});
  return {};
}

// Every task of the tree and every helper, as spawn() creates them.
Result<SpawnTree> plan_spawn(const TreeImages& t, const tree::JoinPlan& joins,
                             const std::vector<std::vector<InheritedPages>>& inherited, Prepared& p,
                             SpawnBarrier* barrier, bool sibling, bool lazy, Log& log) {
  SpawnTree st;
  st.sibling = sibling;
  st.restorer_pgid = getpgrp();
  st.barrier = barrier;
  // The temporary fds go right above the highest fd of the tree's tasks,
  // whatever ckpt's own numbers (each task closes those: fd_moves.h).
  int max_fd = 2;
  for (const auto& task_fds : p.fds.tasks)
    for (const auto& f : task_fds.fds) max_fd = std::max(max_fd, f.target);
  st.temp_fd_base = max_fd + 1;

  // Who forks whom: a session's helper forks the tasks it adopts instead of
  // their parent, which forks the helper. Helpers come after the tree's tasks.
  const size_t ntasks = t.tree.tasks().size();
  std::vector<std::vector<int>> forks(ntasks);
  std::set<int> adopted;
  for (size_t h = 0; h < joins.helpers.size(); h++) {
    forks[joins.helpers[h].parent].push_back(static_cast<int>(ntasks + h));
    adopted.insert(joins.helpers[h].adopted.begin(), joins.helpers[h].adopted.end());
  }
  p.boot_data = TRY(BootDataPool::reserve());
  p.spawner = TRY(SpawnRegion::map());
  std::vector<proc::MapEntry> own = TRY(proc::read_maps(getpid()));
  // A lazy restore's VMAs fill as the task faults: none is laid out before.
  if (!lazy) p.premaps = TRY(plan_premaps(t, inherited, adopted, own));
  else p.premaps.tasks.resize(t.tasks.size());
  // Now ckpt's too: no boot region may land on it.
  if (const Mapping& w = p.premaps.window; w.data()) {
    const auto at = reinterpret_cast<uint64_t>(w.data());
    own.push_back({.start = at, .end = at + w.size()});
    st.keep.push_back({at, at + w.size()});
  }
  // What the root keeps of ckpt's memory: what the tasks use before their
  // restorers, and the kernel's mappings the restorers move into place.
  st.region = &*p.spawner;
  st.keep.push_back(p.spawner->range());
  st.keep.push_back(p.boot_data->range());
  const auto shared_at = reinterpret_cast<uint64_t>(barrier);
  st.keep.push_back({shared_at, shared_at + sizeof *barrier});
  for (const proc::MapEntry& m : own)
    if (kernel_special(m)) st.keep.push_back({m.start, m.end});
  const OwnCreds creds = TRY(read_own_creds());
  for (size_t k = 0; k < ntasks; k++) {
    const tree::Task& task = t.tree.tasks()[k];
    SpawnTask sp;
    sp.pid = task.pid;
    sp.joins = joins.tasks[k];
    for (int c : task.children)
      if (!adopted.contains(c)) sp.children.push_back(c);
    sp.children.insert(sp.children.end(), forks[k].begin(), forks[k].end());
    sp.zombie = task.zombie;
    sp.exit_status = task.exit_status;
    if (task.zombie) sp.comm = task.comm;
    if (!task.zombie) {
      const size_t i = p.live_index.at(task.pid);
      TRY_CTX(plan_live_task(p.live[i], t.shmem, inherited[i], p.premaps.tasks[i], own, creds, st.temp_fd_base,
                             &p.fds.tasks[i], *p.boot_data, &sp),
              "pid {}", task.pid);
    }
    st.tasks.push_back(std::move(sp));
  }
  // Controlling terminals, taken by their session leaders.
  for (const files::ControllingTerminal& c : files::controlling_terminals(t.descs)) {
    const tree::Task* leader = t.tree.find(c.session);
    if (!leader || leader->zombie || leader->sid != leader->pid || c.desc == 0 || c.desc > p.fds.open.size())
      return error(EINVAL, "pty description {} is the terminal of session {}, which no live task of the tree leads",
                   c.desc, c.session);
    SpawnTask& sp = st.tasks[static_cast<size_t>(leader - t.tree.tasks().data())];
    sp.ctty_fd = p.fds.open[c.desc - 1].get();
    sp.foreground = c.foreground;
  }
  for (const tree::Helper& h : joins.helpers) {
    log.debug("helper {}: leads {} {} (pid {} forks it{})", h.pid, h.new_session ? "session" : "group", h.pid,
              t.tree.tasks()[h.parent].pid, h.adopted.empty() ? "" : ", and adopts what it forks");
    st.tasks.push_back({.pid = h.pid,
                        .joins = {.new_session = h.new_session, .lead_group = !h.new_session},
                        .children = h.adopted,
                        .helper = true});
  }
  return st;
}

// Seizes and arms every thread of every parked task: one completion group each.
Result<std::vector<CompletionGroup>> seize_all(std::vector<LiveTask>& live, const PidMap& pids, Log& log) {
  std::vector<CompletionGroup> groups;
  size_t armed = 0;
  for (const LiveTask& lt : live)
    if (lt.mode == CompletionMode::Breakpoint) armed += lt.plan->threads.size();
  ArmByCpu arming(armed);
  for (LiveTask& lt : live) TRY_CTX(seize_threads(lt, pids, arming), "pid {}", lt.images->pid);
  for (LiveTask& lt : live) {
    const BootRegion& boot = lt.plan->boot;
    const RemoteAddr boot_at(boot.start());
    const RemoteAddr sigreturn_fn = boot_at + pie::restorer::k_rst_sigreturn;
    // Stopped to be armed (a refused breakpoint then falls back, stopped).
    const bool stopped = lt.mode == CompletionMode::Breakpoint;
    TRY_CTX(arm_threads(lt, sigreturn_fn, arming, log), "pid {}", lt.images->pid);
    for (size_t i = 0; i < lt.tracees.size(); i++) {
      const img::ThreadCore& th = lt.images->core.threads(i);
      lt.completion.push_back({&lt.tracees[i],
                               {lt.plan->threads[i].regs,
                                {reinterpret_cast<const uint8_t*>(th.xsave().data()), th.xsave().size()},
                                lt.plan->threads[i].sigmask},
                               0,
                               !stopped});
    }
    CompletionSite site{sigreturn_fn, boot_at + pie::restorer::k_rst_syscall, boot_at, boot.size(),
                        boot.args()->creds_barrier != 0};
    if (lt.mode == CompletionMode::SyscallTrace && barrier_for(*lt.images) == abi::kBarrierTrap) {
      site.barrier_rip = boot_at + pie::restorer::k_rst_barrier_trap + arch::kInt3Len;
      site.barrier_sig = SIGTRAP;
    } else if (lt.mode == CompletionMode::SyscallTrace) {
      site.barrier_rip = boot_at + pie::restorer::k_rst_barrier_syscall + arch::kSyscallInsnLen;
      site.barrier_sig = SIGSTOP;
    }
    groups.push_back({lt.completion, lt.mode, site});
  }
  return groups;
}

// What every restored task has of ckpt's, inherited: written only where the
// task's own differs.
struct FromCkpt {
  proc::ThreadSched sched;
  proc::Knobs knobs;
};

// Once a task's threads run their own code: their first step under our eyes,
// then what only ckpt puts back from outside. `autogroups`: the sessions
// whose autogroup is set already (one a session).
Result<void> finish_task(LiveTask& lt, const PidMap& pids, const FromCkpt& inherited, std::set<pid_t>* autogroups,
                         Log& log) {
  const TaskImages& ti = *lt.images;
  // Syscall user dispatch judges the first steps, as the task's seccomp
  // filters do: on before them. Set from outside (no prctl sets another's).
  for (int i = 0; i < ti.core.threads_size(); i++)
    if (const img::ThreadCore& th = ti.core.threads(i); th.has_syscall_user_dispatch()) {
      const img::SyscallUserDispatch& d = th.syscall_user_dispatch();
      TRY_CTX(lt.tracees[i].set_syscall_user_dispatch({true, RemoteAddr(d.selector()), d.offset(), d.len()}),
              "thread {}", th.tid());
    }
  const auto steps_start = Clock::now();
  lt.steps = TRY(take_first_steps(lt.completion, ti.core, ti.mm, kTraceOptions));
  log.debug("pid {}: first steps of {} of {} threads: {} stops, {} us", ti.pid, lt.steps.stepped,
            lt.completion.size(), lt.steps.stops, ns_since(steps_start) / 1000);
  // Then the SIGTRAPs: no trap of ours (breakpoint, first step) may take one.
  TRY_CTX(queue_late_signals(lt.tracees, ti.core), "queue pending SIGTRAPs");
  for (size_t i = 0; i < lt.tracees.size(); i++)
    TRY(proc::write_thread_sched(lt.tracees[i].tid(), ti.core.threads(i), inherited.sched));
  if (ti.core.has_oom_score_adj() && ti.core.has_coredump_filter())
    TRY(proc::write_knobs(pids.outside(ti.pid), {ti.core.oom_score_adj(), ti.core.coredump_filter()},
                          inherited.knobs));
  // A session the restore made has an autogroup of its own, at nice 0 as
  // the kernel makes it, shared by the session's tasks; ckpt's (a
  // --shell-job tree's) is the user's shell's, and not for ckpt to change.
  if (ti.core.has_autogroup_nice() && ti.core.autogroup_nice() != 0) {
    const pid_t sid = getsid(pids.outside(ti.pid));
    if (sid != getsid(0) && autogroups->insert(sid).second)
      TRY_CTX(proc::write_autogroup_nice(pids.outside(ti.pid), ti.core.autogroup_nice()), "pid {}", ti.pid);
  }
  return {};
}

Result<void> finish_tasks(std::vector<LiveTask>& live, const PidMap& pids, Log& log) {
  // Both read before the braces (TRY, base/result.h).
  proc::ThreadSched sched = TRY_CTX(proc::read_thread_sched(gettid()), "restore");
  proc::Knobs knobs = TRY_CTX(proc::read_knobs(getpid()), "restore");
  const FromCkpt ckpts{std::move(sched), std::move(knobs)};
  std::set<pid_t> autogroups;
  for (LiveTask& lt : live)
    TRY_CTX(finish_task(lt, pids, ckpts, &autogroups, log), "restore pid {}", lt.images->pid);
  return {};
}

// The wait status of child `pid`, once it has exited.
Result<int> wait_exit(pid_t pid) {
  int status;
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) return sys_error("wait for pid {}", pid);
  return status;
}

// Per thread, in the stats; returns the total.
unsigned count_stops(const std::vector<LiveTask>& live, img::Stats* stats) {
  unsigned total = 0;
  for (const LiveTask& lt : live)
    for (const CompletionTask& c : lt.completion) {
      img::TaskStops* ts = stats->add_completion();
      ts->set_tid(c.tracee->tid());
      ts->set_pid(lt.images->pid);
      ts->set_stops(c.stops);
      ts->set_breakpoint(lt.mode == CompletionMode::Breakpoint);
      total += c.stops;
    }
  return total;
}

// The dump's network lock, taken over once the images are read and checked
// (a restore refused before leaves it, for a retry): it goes once every
// task runs, and with a restore that fails from then on too, whose
// connections are gone for good: the peers had better hear a reset now than
// retransmit into a void for minutes (docs/netlock.md).
Result<net::NetLock> take_over_network_lock(const TreeImages& t, const image::ImageDir& dir, net::LockChoice choice,
                                            Log& log) {
  if (!t.inventory.has_network_lock()) return net::NetLock{};
  const std::string images = TRY(read_link(fmt::format("/proc/self/fd/{}", dir.fd())));
  return net::NetLock::take_over(t.inventory.network_lock(), images, choice, log);
}

// The pages of the root that its parent checkpoints hold (pre-dump rounds),
// added to what it inherits; returns those ckpt itself must check: with
// --lazy-pages the daemon checks each run of a lazy VMA before it serves a
// byte of it.
Result<std::vector<InheritedPages>> pages_in_parents(const TreeImages& t, bool lazy_pages,
                                                     std::vector<InheritedPages>* root_inherits) {
  std::vector<InheritedPages> check;
  if (t.parents.empty()) return check;
  auto in_parent = TRY(resolve_in_parent(t.parents, t.tasks[0].pagemap, t.tasks[0].pid));
  const lazy::LazyVmas served(lazy_pages ? t.tasks[0].mm : img::MmImage{});
  std::copy_if(in_parent.begin(), in_parent.end(), std::back_inserter(check),
               [&](const InheritedPages& ip) { return !served.contains(ip.vaddr); });
  root_inherits->insert(root_inherits->end(), in_parent.begin(), in_parent.end());
  return check;
}

// How each task completes, as far as ckpt knows before the breakpoint probe
// answers (after the spawn: hear_the_probe), and the affinity a thread
// pinned to arm it goes back to (abi.h).
void set_completion_modes(std::vector<LiveTask>& live, bool breakpoints, Log& log) {
  const CompletionMode wanted = breakpoints ? CompletionMode::Breakpoint : CompletionMode::SyscallTrace;
  cpu_set_t ckpt_cpus;
  static_assert(sizeof ckpt_cpus == sizeof abi::RestorerArgs::ckpt_cpus);
  const bool known_cpus = sched_getaffinity(0, sizeof ckpt_cpus, &ckpt_cpus) == 0;
  for (LiveTask& lt : live) {
    lt.mode = mode_for(*lt.images, wanted, log);
    abi::RestorerArgs* args = lt.plan->boot.args();
    args->barrier = lt.mode == CompletionMode::SyscallTrace ? barrier_for(*lt.images) : abi::kBarrierNone;
    if (!known_cpus) continue;
    args->nr_ckpt_cpu_words = abi::kCpuMaskWords;
    std::memcpy(args->ckpt_cpus, &ckpt_cpus, sizeof ckpt_cpus);
  }
}

// The owners (F_SETOWN) of the descriptions, by the PIDs the tasks have
// here. An owner group whose leader has exited has no PID ckpt could learn
// in a new PID namespace.
Result<void> set_owners(const img::FileDescs& descs, const files::PreparedFds& fds, const PidMap& pids) {
  for (const img::FileDesc& d : descs.descs())
    if (d.owner() != 0 && !pids.has(std::abs(d.owner())))
      return error(EINVAL, "file description {}: its owner ({} {}) has no task in the new PID namespace (--pidns)",
                   d.id(), d.owner() < 0 ? "process group" : "pid", std::abs(d.owner()));
  return files::set_owners(descs, fds, [&](pid_t p) { return pids.outside(p); });
}

// Seizes and arms every thread, lets the parked tree go and waits until
// every thread holds its final state; `to_read`: the bytes the restorers
// read meanwhile (progress).
Result<void> release_and_complete(std::vector<LiveTask>& live, const PidMap& pids, const Faults& faults,
                                  uint64_t to_read, Log& log) {
  std::vector<CompletionGroup> groups = TRY(seize_all(live, pids, log));
  auto release = [&]() -> Result<void> {
    for (LiveTask& lt : live) {
      TRY(faults.at("release", lt.images->pid));
      if (write(lt.go_w.get(), "G", 1) != 1) return sys_error("release pid {}", lt.images->pid);
    }
    return {};
  };
  auto explain = [&](Tracee& tr, const Stop& s) {
    for (LiveTask& lt : live)
      for (const ThreadPlan& tp : lt.plan->threads)
        if (pids.outside(tp.tid) == tr.tid()) return explain_stop(tr, s, *lt.plan, *lt.images, pids);
    return Error{0, fmt::format("task {} {}", tr.tid(), s.describe())};
  };
  std::vector<pid_t> readers;
  for (const LiveTask& lt : live) readers.push_back(pids.outside(lt.images->pid));
  ReadProgress reading(fmt::format("restore pid {}", live[0].images->pid), to_read, std::move(readers));
  return complete(groups, release, explain);
}

// Lets the tree go: stopped where asked or dumped so, its TCP connections
// out of repair mode, detached one task at a time and committed at once
// (ptrace/tree_commit.h). A lone task needs no watcher: until its last
// thread is let go, a ckpt that dies SIGKILLs it (PTRACE_O_EXITKILL),
// threads let go included.
Result<void> let_go(std::vector<LiveTask>& live, const PidMap& pids, const RestoreOptions& o, pid_t init,
                    files::PreparedFds& fds) {
  // SIGSTOP while still traced: every thread stops in the group stop as it is
  // let go. So does a task that was stopped when it was dumped.
  for (LiveTask& lt : live)
    if ((o.leave_stopped || lt.images->core.group_stopped()) && kill(pids.outside(lt.images->pid), SIGSTOP) < 0)
      return sys_error("stop pid {}", lt.images->pid);
  TRY(files::leave_repair(fds.repaired));
  std::vector<pid_t> outside;
  if (o.pidns) outside.push_back(init);
  for (const LiveTask& lt : live) outside.push_back(pids.outside(lt.images->pid));
  std::optional<TreeCommit> commit;
  if (outside.size() > 1) commit.emplace(TRY(TreeCommit::watch(outside)));
  for (LiveTask& lt : live) {
    for (size_t i = 0; i < lt.tracees.size(); i++)
      TRY_CTX(lt.tracees[i].detach(lt.steps.deliver[i]), "pid {}", lt.images->pid);
    TRY(o.faults.at("detached", lt.images->pid));
  }
  if (commit) commit->commit();
  return {};
}

// Spawns the tree and returns once each task exists (parked, waiting to be
// let go), and the init with --pidns (killing it kills its namespace: the
// whole tree), else 0. What refers to the tasks by PID (a pidfd, a /proc
// file) is opened once they all exist, and handed to them through ckpt's
// pidfd. ckpt opens those by the PIDs it sees, so not for a tree in a PID
// namespace of its own.
Result<pid_t> spawn_tree(SpawnTree& st, const TreeImages& t, Prepared& p, const RestoreOptions& o,
                         KillOnError& guard) {
  UniqueFd self_pidfd;
  if (!p.fds.late.empty()) {
    if (o.pidns)
      return error(EOPNOTSUPP, "--pidns: the tree holds pidfds or /proc files of its own tasks, which ckpt can't "
                   "open inside a new PID namespace yet");
    self_pidfd = UniqueFd(static_cast<int>(syscall(SYS_pidfd_open, getpid(), 0)));
    if (!self_pidfd) return sys_error("pidfd_open of ckpt itself");
    st.ckpt_pidfd = self_pidfd.get();
  }
  TRY(write_spawn_plan(st, *p.boot_data));
  const pid_t init = o.pidns ? TRY(spawn_in_new_pidns(st, o.sibling)) : 0;
  if (!o.pidns) TRY(spawn(st));
  guard.set_root(o.pidns ? init : t.inventory.root_pid());
  p.premaps.window.reset();  // every task that maps in it has it now
  for (LiveTask& lt : p.live) {
    lt.status_w.reset();
    lt.go_r.reset();
  }
  if (st.ckpt_pidfd >= 0) {
    const bool arrived = TRY(open_when_arrived(st, [&] { return files::open_late(t.descs, p.fds); }));
    if (!arrived) {
      TRY(wait_parked(p.live));  // the error a task gave
      return error(ESRCH, "a task failed before the tree existed");
    }
  }
  return init;
}

// What restore() hands its caller instead of freeing (RestoreOutcome::loaded).
struct Loaded {
  TreeImages images;
  Prepared prepared;
  SpawnTree spawn;
  std::vector<std::vector<InheritedPages>> inherited;
};

}  // namespace

Result<RestoreOutcome> restore(const RestoreOptions& o, image::ImageDir& dir,
                               const std::function<std::optional<BreakpointSupport>()>& breakpoints, Log& log) {
  const auto start = Clock::now();
  // 1. Read and check everything before touching anything.
  TreeImages t = TRY_CTX(load_images(dir), "restore");
  if (o.check_cpu) TRY_CTX(image::check_cpu(t.inventory.cpu(), dir.file(image::kInventoryName)), "restore");
  const pid_t pid = t.inventory.root_pid();
  const tree::JoinPlan joins = TRY_CTX(t.tree.plan_joins(true), "restore");
  TRY_CTX(check_pids_free(t, joins, o.pidns), "restore");
  if (o.pidns) TRY_CTX(check_all_inside(t.tree, joins), "restore");
  auto inherited = TRY_CTX(resolve_inherited(t), "restore");
  net::NetLock netlock = TRY_CTX(take_over_network_lock(t, dir, o.network_lock, log), "restore");
  const std::vector<InheritedPages> read_from_parents =
      TRY_CTX(pages_in_parents(t, o.lazy_pages, &inherited[0]), "restore");
  RestoreOutcome out;
  out.pid = pid;
  img::Stats& stats = out.stats;
  if (o.started != Clock::time_point{})
    stats.set_startup_ns(std::chrono::duration_cast<std::chrono::nanoseconds>(start - o.started).count());
  auto phase = [last = Clock::now(), &stats](void (img::Stats::*set)(uint64_t)) mutable {
    const auto now = Clock::now();
    (stats.*set)(std::chrono::duration_cast<std::chrono::nanoseconds>(now - last).count());
    last = now;
  };
  stats.set_load_ns(ns_since(start));

  // --lazy-pages: no daemon, no task.
  std::optional<LazyLink> lazy;
  if (o.lazy_pages) lazy = TRY_CTX(LazyLink::connect(dir), "restore pid {}", pid);

  // Declared before what holds the tracees: they detach first, so that the
  // threads of a killed task can die.
  KillOnError guard(!o.sibling);

  // 2. Open what the tasks will need, as ckpt, so errors come before any task.
  Prepared p;
  TRY_CTX(prepare(t, dir, o.check_files, o.tcp_close, log, &p), "restore");
  // The tasks meet here while they take their sessions and groups; mapped
  // before ckpt's maps are read, so that no boot region lands on it.
  Mapping shared = TRY_CTX(Mapping::map(arch::kPageSize, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS), "restore");
  auto* barrier = new (shared.data()) SpawnBarrier{};
  // With --pidns the root is the init's child, and the init ckpt's or its parent's.
  if (lazy)
    for (LiveTask& lt : p.live) lt.lazy = &*lazy;
  SpawnTree st =
      TRY_CTX(plan_spawn(t, joins, inherited, p, barrier, o.sibling && !o.pidns, lazy.has_value(), log), "restore");
  std::vector<LiveTask>& live = p.live;
  phase(&img::Stats::set_prepare_ns);

  set_completion_modes(live, o.breakpoints, log);

  // 3. The tree, parked.
  const pid_t init = TRY_CTX(spawn_tree(st, t, p, o, guard), "restore pid {}", pid);
  // Each restorer checks the checksums of the pages it reads as they land
  // (a task's inherited pages are its ancestor's, checked by that one's);
  // the pages of a parent checkpoint are checked here, on the other core,
  // meanwhile. The tree is let go only once all match, so damaged data never
  // runs. (Threads only now: spawn() forked above from a single-threaded ckpt.)
  auto pages_checked = std::async(read_from_parents.empty() ? std::launch::deferred : std::launch::async,
                                  [&]() -> Result<void> {
                                    if (read_from_parents.empty()) return {};
                                    if (o.lazy_pages) return verify_parent_runs(t.parents, read_from_parents);
                                    return verify_parent_pages(t.parents);
                                  });
  TRY_CTX(wait_parked(live), "restore");
  // Every task and thread exists: what their PIDs are here.
  const PidMap pids = o.pidns ? TRY_CTX(PidMap::read(init), "restore") : PidMap{};
  out.pid_outside = pids.outside(pid);
  out.init = init;
  // Before any restorer makes a userfaultfd: from then on a daemon that dies kills the tree.
  if (lazy) TRY_CTX(lazy->start_watcher(o.pidns ? init : out.pid_outside, dir, o.detach), "restore pid {}", pid);
  if (o.pidns) log.info("restore pid {}: pid {} outside its PID namespace, whose init is pid {}", pid,
                        out.pid_outside, init);
  TRY_CTX(set_owners(t.descs, p.fds, pids), "restore");
  // Every task holds its fds now: ckpt's copies go, or a pipe's reader would
  // never see EOF (ckpt, a writer too, waits for the tree to exit).
  p.fds.open.clear();
  if (o.breakpoints) TRY_CTX(hear_the_probe(o, breakpoints(), live, pids, log), "restore");
  phase(&img::Stats::set_spawn_ns);

  // 4. Seize, arm, release, complete.
  uint64_t pages = 0, to_read = 0;
  for (size_t i = 0; i < t.tasks.size(); i++) {
    pages += t.tasks[i].pagemap.total_pages();
    for (const InheritedPages& ip : inherited[i]) to_read += ip.len;
  }
  to_read += pages * arch::kPageSize;
  TRY_CTX(release_and_complete(live, pids, o.faults, lazy ? 0 : to_read, log), "restore pid {}", pid);
  // Every restorer has sent its userfaultfd.
  if (lazy) TRY_CTX(lazy->running(), "restore pid {}", pid);
  TRY_CTX(pages_checked.get(), "restore pid {}", pid);
  // Every task has attached its System V segments: a destroyed one now
  // lives as long as the tree's attaches, no more.
  p.shmem.sysv.drop_own_attaches();
  phase(&img::Stats::set_completion_ns);

  // 5. Every thread runs its own code.
  TRY(finish_tasks(live, pids, log));

  // 6. Let go: stopped if asked or dumped so, detached.
  const unsigned stops = count_stops(live, &out.stats);
  out.stats.set_pages_read(pages);
  out.stats.set_bytes_read(pages * arch::kPageSize);
  // The last point where a failure still kills the whole tree.
  TRY_CTX(o.faults.at("let-go"), "restore pid {}", pid);
  if (!o.pidfile.empty()) {
    std::string text = fmt::format("{}\n", out.pid_outside);
    TRY_CTX(replace_file(o.pidfile, text, 0644), "restore pid {}: pidfile", pid);
  }
  TRY_CTX(let_go(live, pids, o, init, p.fds), "restore pid {}", pid);
  guard.disarm();
  p.shmem.sysv.keep();
  // Every task runs (or sits stopped with its sockets in place): their
  // packets may pass again.
  if (auto r = netlock.unlock(); !r) log.error("restore pid {}: {} (remove it by hand)", pid, r.error().str());
  phase(&img::Stats::set_finish_ns);
  out.stats.set_restore_ns(ns_since(start));
  log.info("restored pid {}: {} tasks, {} threads, {} ptrace stops", pid, t.tree.tasks().size(),
           out.stats.completion_size(), stops);
  (void)dir.write("stats-restore.img", image::ImageKind::Stats, out.stats, TempFile::Replace::Yes);

  out.loaded = std::make_shared<Loaded>(std::move(t), std::move(p), std::move(st), std::move(inherited));

  // With --pidns ckpt's child is the init, which exits as the root did.
  if (!o.detach && !o.sibling) out.wait_status = TRY_CTX(wait_exit(o.pidns ? init : pid), "restore");
  return out;
}

}  // namespace ckpt::restore
