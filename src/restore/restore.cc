#include "restore/restore.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <future>
#include <set>

#include "base/check.h"
#include "base/fs.h"
#include "files/file_id.h"
#include "image/image_dir.h"
#include "image/verify.h"
#include "pie/restorer_blob.h"
#include "proc/knobs.h"
#include "proc/maps.h"
#include "proc/sched.h"
#include "proc/status.h"
#include "ptrace/tracee.h"
#include "restore/first_step.h"
#include "restore/images.h"
#include "restore/plan.h"
#include "restore/spawn.h"
#include "restore/traps.h"

namespace ckpt::restore {

namespace {

using Clock = std::chrono::steady_clock;
constexpr uint64_t kPage = 4096;
// Restored threads die with ckpt until it lets go of them.
constexpr unsigned long kTraceOptions = PTRACE_O_EXITKILL;

const char* step_name(int32_t step) {
  static constexpr const char* kNames[] = {
      "?", "check ABI version", "unmap ckpt's memory", "move the vDSO", "map a VMA", "read pages",
      "protect a VMA", "set mm fields (PR_SET_MM_MAP)", "install a sigaction", "set the alternate signal stack",
      "queue a pending signal", "set fs/gs base", "register rseq", "set the robust futex list", "set the name",
      "apply madvise flags", "set a resource limit", "restore a timer", "set prctl state",
      "install a seccomp filter", "set credentials", "mlock a VMA", "mseal a VMA", "register with membarrier",
      "set mlockall flags for later mappings"};
  return step >= 0 && step < static_cast<int32_t>(std::size(kNames)) ? kNames[step] : "?";
}

// The restorer trapped, crashed, or a thread died: say what happened.
Error explain_stop(Tracee& t, const Stop& s, const Plan& plan) {
  const pid_t tid = t.tid();
  if (s.gone()) return Error{ESRCH, fmt::format("task {} {} during restore", tid, s.describe())};
  auto regs = t.regs();
  uint64_t rip = regs ? regs->rip : 0;
  auto th = std::find_if(plan.threads.begin(), plan.threads.end(), [&](const ThreadPlan& p) { return p.tid == tid; });
  if (s.sig() == SIGTRAP && th != plan.threads.end()) {
    abi::RestorerError e{};
    if (t.read_mem(th->arg + offsetof(abi::ThreadArg, error), &e, sizeof e) && e.step != abi::kStepNone)
      return Error{e.err, fmt::format("task {}: restorer could not {} (at {:#x}, {:#x})", tid, step_name(e.step),
                                      e.addr, e.len)};
  }
  const BootRegion& boot = plan.boot;
  std::string where = rip >= boot.start() && rip < boot.end() ? fmt::format("restorer+{:#x}", rip - boot.start())
                                                              : fmt::format("{:#x}", rip);
  return Error{0, fmt::format("task {} {} at {}", tid, s.describe(), where)};
}

Result<int> highest_open_fd() {
  auto fds = TRY(proc::list_numeric_dir("/proc/self/fd"));
  return fds.empty() ? 0 : fds.back();
}

uint64_t ns_since(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t).count();
}

// Any TID of the image in use makes clone3 fail: say which, up front.
Result<void> check_pids_free(const TaskImages& ti) {
  for (const img::ThreadCore& th : ti.core.threads()) {
    if (kill(th.tid(), 0) == 0 || errno == EPERM) {
      auto st = proc::read_stat(th.tid());
      return error(EEXIST, "pid {}: the pid is taken by another process ({}); stop it or restore into a new PID "
                   "namespace", th.tid(), st ? st->comm : "?");
    }
  }
  return {};
}

// A mapped file replaced since the dump would run other code under the
// dumped registers and memory: refuse it now, on the very fds the restorer
// will map, so that what is checked is what is mapped.
Result<void> check_mapped_files(const TaskImages& ti, const MappingFiles& mf, int exe) {
  std::set<std::pair<std::string, files::Compare>> done;
  for (const img::Vma& v : ti.mm.vmas()) {
    if (!v.has_file_id() || !done.emplace(v.path(), files::compare_for(v)).second) continue;
    auto it = mf.index.lower_bound({v.path(), false});
    CHECK(it != mf.index.end() && it->first.first == v.path(), "file {} of VMA {:#x} was not opened", v.path(),
          v.start());
    TRY(files::check_file_id(v.path(), fmt::format("mapped at {:#x}-{:#x}", v.start(), v.end()),
                             mf.fds[it->second].get(), v.file_id(), files::compare_for(v)));
  }
  if (ti.core.mm().has_exe_id())
    TRY(files::check_file_id(ti.core.mm().exe_path(), "the executable", exe, ti.core.mm().exe_id()));
  return {};
}

// Until the task runs on its own, any failure kills it: nothing half-alive.
struct KillOnError {
  pid_t pid;
  bool reap;
  bool armed = true;
  ~KillOnError() {
    if (!armed) return;
    kill(pid, SIGKILL);
    if (reap) waitpid(pid, nullptr, __WALL);
  }
};

// Seizes every thread of the parked child and arms its breakpoint.
Result<std::vector<Tracee>> seize_threads(const Plan& plan, CompletionMode& mode, uint64_t sigreturn_fn, Log& log) {
  std::vector<Tracee> out;
  out.reserve(plan.threads.size());
  for (const ThreadPlan& tp : plan.threads) {
    out.push_back(TRY(Tracee::seize(tp.tid, kTraceOptions)));
    TRY(out.back().interrupt());
  }
  for (Tracee& t : out) {
    Stop s = TRY(t.wait());
    if (!s.stopped()) return error(ESRCH, "task {} {} before its restorer ran", t.tid(), s.describe());
  }
  if (mode != CompletionMode::Breakpoint) return out;
  for (Tracee& t : out) {
    if (TRY(arm_breakpoint(t, sigreturn_fn)) == Armed::Unsupported) {
      log.warn("task {}: the kernel refused a hardware breakpoint: completing by tracing syscalls", t.tid());
      for (Tracee& u : out) TRY(disarm_breakpoint(u));
      mode = CompletionMode::SyscallTrace;
      break;
    }
  }
  return out;
}

}  // namespace

Result<RestoreOutcome> restore(const RestoreOptions& o, image::ImageDir& dir, const BreakpointSupport& bp, Log& log) {
  const auto start = Clock::now();
  // 1. Read and check everything before touching anything.
  TaskImages ti = TRY_CTX(load_task_images(dir), "restore");
  const pid_t pid = ti.inventory.root_pid();
  TRY_CTX(check_pids_free(ti), "restore");

  CompletionMode mode = CompletionMode::Breakpoint;
  if (!o.breakpoints) {
    mode = CompletionMode::SyscallTrace;
  } else if (!bp.usable) {
    log.warn("hardware breakpoints unavailable ({}): completing restore by tracing syscalls", bp.why_not);
    mode = CompletionMode::SyscallTrace;
  }
  for (const img::SigAction& sa : ti.core.sigactions())
    // A SIGTRAP the task ignores would be reset to SIG_DFL by the kernel when
    // our breakpoint fires: keep the disposition exact, trace syscalls instead.
    if (mode == CompletionMode::Breakpoint && sa.signo() == SIGTRAP &&
        sa.handler() == reinterpret_cast<uint64_t>(SIG_IGN)) {
      log.info("pid {} ignores SIGTRAP: completing by tracing syscalls", pid);
      mode = CompletionMode::SyscallTrace;
    }

  // 2. Open what the task will need, as ckpt, so errors come before any task.
  MappingFiles mf = TRY_CTX(open_mapping_files(ti.mm), "restore pid {}", pid);
  UniqueFd exe = TRY_CTX(open_file(ti.core.mm().exe_path(), O_RDONLY), "restore pid {}: executable", pid);
  if (o.check_files) TRY_CTX(check_mapped_files(ti, mf, exe.get()), "restore pid {}", pid);
  std::vector<files::PreparedFd> fds = TRY_CTX(files::prepare_fds(ti.files), "restore pid {}", pid);
  int status_pipe[2], go_pipe[2];
  if (pipe2(status_pipe, O_CLOEXEC) < 0) return sys_error("restore: pipe");
  UniqueFd status_r(status_pipe[0]), status_w(status_pipe[1]);
  if (pipe2(go_pipe, O_CLOEXEC) < 0) return sys_error("restore: pipe");
  UniqueFd go_r(go_pipe[0]), go_w(go_pipe[1]);

  int max_fd = TRY(highest_open_fd());
  for (const auto& f : fds) max_fd = std::max(max_fd, f.target);
  const int base = max_fd + 1;
  std::vector<int> temp = {status_w.get(), go_r.get(), ti.pages.get(), exe.get()};
  const TempFds tfds{base, base + 2, base + 3, base + static_cast<int>(temp.size())};
  for (const UniqueFd& f : mf.fds) temp.push_back(f.get());

  std::vector<proc::MapEntry> own = TRY_CTX(proc::read_maps(getpid()), "restore");
  Plan plan = TRY_CTX(build_plan(ti, own, mf, tfds), "restore pid {}", pid);
  const BootRegion& boot = plan.boot;

  // 3. The boot region is mapped here, inherited by the child, unmapped here.
  auto blob = pie::restorer::image();
  void* m = mmap(reinterpret_cast<void*>(boot.start()), boot.size(), PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
  if (m == MAP_FAILED) return sys_error("restore pid {}: map the boot region at {:#x}", pid, boot.start());
  std::memcpy(m, blob.data(), blob.size());
  std::memcpy(static_cast<char*>(m) + boot.data_offset(), boot.data().data(), boot.data().size());
  mprotect(m, boot.data_offset(), PROT_READ | PROT_EXEC);

  SpawnPlan sp{pid, o.sibling, base, temp, &fds, ti.core.cwd(), boot.stack_top(),
               boot.start() + pie::restorer::k_restorer_entry, boot.args_addr()};
  sp.thread_entry = boot.start() + pie::restorer::k_restorer_thread_entry;
  sp.threads_ready = reinterpret_cast<uint32_t*>(boot.args_addr() + offsetof(abi::RestorerArgs, threads_ready));
  for (size_t i = 1; i < plan.threads.size(); i++)
    sp.threads.push_back({plan.threads[i].tid, plan.threads[i].stack_top, BootRegion::kThreadStackSize,
                          plan.threads[i].arg});
  auto child = spawn(sp);
  munmap(m, boot.size());
  if (!child) return std::unexpected(child.error().context(fmt::format("restore pid {}", pid)));
  KillOnError guard{pid, !o.sibling};
  status_w.reset();
  go_r.reset();
  // Page checksums are checked on the other core while the restorer reads the
  // same pages into place; the task is let go only if they all match, so
  // damaged data never runs, and a 1 GiB restore doesn't read it twice in a row.
  // (Threads only now: spawn() forked above from a single-threaded ckpt.)
  auto pages_checked = std::async(std::launch::async, [&ti] {
    return image::verify_page_data(ti.pages_path, ti.pages.get(), ti.pagemap);
  });

  char buf[512];
  ssize_t n = read(status_r.get(), buf, sizeof buf);
  if (n != 1 || buf[0] != 'R')
    return error(EINVAL, "restore pid {}: preparing the task failed: {}", pid,
                 n > 0 ? std::string(buf, n) : std::string("it exited"));

  // 4. Seize, arm, release, complete.
  const uint64_t sigreturn_fn = boot.start() + pie::restorer::k_rst_sigreturn;
  std::vector<Tracee> tracees = TRY_CTX(seize_threads(plan, mode, sigreturn_fn, log), "restore pid {}", pid);
  std::vector<CompletionTask> tasks;
  for (size_t i = 0; i < tracees.size(); i++) {
    const img::ThreadCore& th = ti.core.threads(i);
    tasks.push_back({&tracees[i],
                     {plan.threads[i].regs,
                      {reinterpret_cast<const uint8_t*>(th.xsave().data()), th.xsave().size()},
                      plan.threads[i].sigmask}});
  }
  CompletionSite site{sigreturn_fn, boot.start() + pie::restorer::k_rst_syscall, boot.start(), boot.size(),
                      boot.args()->creds_barrier != 0};
  auto release = [&]() -> Result<void> {
    if (write(go_w.get(), "G", 1) != 1) return sys_error("release the task");
    return {};
  };
  TRY_CTX(complete(tasks, mode, site, release, [&](Tracee& tr, const Stop& st) { return explain_stop(tr, st, plan); }),
          "restore pid {}", pid);

  TRY_CTX(pages_checked.get(), "restore pid {}", pid);
  // 5. Every thread runs its own code: its first step, under our eyes.
  const auto steps_start = Clock::now();
  FirstSteps steps = TRY_CTX(take_first_steps(tasks, ti.core, ti.mm, kTraceOptions), "restore pid {}", pid);
  log.debug("pid {}: first steps of {} of {} threads: {} stops, {} us", pid, steps.stepped, tasks.size(), steps.stops,
            ns_since(steps_start) / 1000);
  // Then the SIGTRAPs: no trap of ours (breakpoint, first step) may take one.
  TRY_CTX(queue_late_signals(tracees, ti.core), "restore pid {}: queue pending SIGTRAPs", pid);
  for (size_t i = 0; i < tracees.size(); i++) {
    const img::ThreadCore& th = ti.core.threads(i);
    if (th.has_sched()) TRY_CTX(proc::write_sched(tracees[i].tid(), th.sched()), "restore pid {}", pid);
    if (th.has_ioprio()) TRY_CTX(proc::write_ioprio(tracees[i].tid(), th.ioprio()), "restore pid {}", pid);
  }
  if (ti.core.has_oom_score_adj() && ti.core.has_coredump_filter())
    TRY_CTX(proc::write_knobs(pid, {ti.core.oom_score_adj(), ti.core.coredump_filter()}), "restore pid {}", pid);

  RestoreOutcome out;
  out.pid = pid;
  for (const CompletionTask& c : tasks) {
    img::TaskStops* ts = out.stats.add_completion();
    ts->set_tid(c.tracee->tid());
    ts->set_stops(c.stops);
    ts->set_breakpoint(mode == CompletionMode::Breakpoint);
  }
  out.stats.set_pages_read(ti.pagemap.total_pages());
  out.stats.set_bytes_read(ti.pagemap.total_pages() * kPage);
  if (!o.pidfile.empty()) {
    std::string text = fmt::format("{}\n", pid);
    TRY_CTX(replace_file(o.pidfile, text, 0644), "restore pid {}: pidfile", pid);
  }
  // SIGSTOP while still traced: every thread stops in the group stop as it is
  // let go. So does a task that was stopped when it was dumped.
  if ((o.leave_stopped || ti.core.group_stopped()) && kill(pid, SIGSTOP) < 0)
    return sys_error("restore pid {}: stop", pid);
  for (size_t i = 0; i < tracees.size(); i++) TRY_CTX(tracees[i].detach(steps.deliver[i]), "restore pid {}", pid);
  guard.armed = false;
  out.stats.set_restore_ns(ns_since(start));
  unsigned total = 0;
  for (const CompletionTask& c : tasks) total += c.stops;
  log.info("restored pid {}: {} threads, {} ptrace stops, {}", pid, tasks.size(), total,
           mode == CompletionMode::Breakpoint ? "breakpoint" : "syscall tracing");
  (void)dir.write("stats-restore.img", image::ImageKind::Stats, out.stats, TempFile::Replace::Yes);

  if (!o.detach && !o.sibling) {
    int status;
    while (waitpid(pid, &status, 0) < 0)
      if (errno != EINTR) return sys_error("restore: wait for pid {}", pid);
    out.wait_status = status;
  }
  return out;
}

}  // namespace ckpt::restore
