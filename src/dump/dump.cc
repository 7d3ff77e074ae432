#include "dump/dump.h"

#include <sys/ptrace.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <chrono>

#include "dump/core.h"
#include "dump/memory.h"
#include "dump/seize.h"
#include "files/files.h"
#include "image/image_dir.h"
#include "proc/status.h"
#include "parasite/leftovers.h"
#include "parasite/parasite.h"
#include "ptrace/remote_syscall.h"
#include "ptrace/tracee.h"

namespace ckpt::dump {

namespace {

using Clock = std::chrono::steady_clock;
uint64_t ns_since(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t).count();
}

constexpr uint64_t kPfKthread = 0x00200000;

// Has the process died, or is it dying: its main thread a zombie and every
// other thread a zombie too or with SIGKILL pending (a group kill queues it to
// each). A process killed during a dump makes some step fail in its own terms
// (a closed socket, empty maps): the user must hear that it died.
bool process_died(pid_t pid) {
  auto st = proc::read_stat(pid);
  if (!st) return true;
  if (st->state != 'Z' && st->state != 'X') return false;
  auto tids = proc::list_numeric_dir(fmt::format("/proc/{}/task", pid));
  if (!tids) return true;
  for (int tid : *tids) {
    auto t = proc::read_status(tid);
    if (t && t->state != 'Z' && t->state != 'X' && !(t->sig_pnd & (1ULL << (SIGKILL - 1)))) return false;
  }
  return true;
}

// Children that appeared between the check and the stop.
Result<void> check_dumpable_after_seize(pid_t pid) {
  if (!TRY(proc::children(pid)).empty())
    return error(EOPNOTSUPP, "pid {} forked while being seized: process trees are not supported yet", pid);
  return {};
}

// Removes what a failed dump wrote, so that nothing half-written lingers
// (temporaries remove themselves: base/dir.h).
struct Scratch {
  image::ImageDir& dir;
  bool keep = false;
  ~Scratch() {
    if (!keep) dir.remove_written();
  }
};

// Kill, resume or stop the process, as asked, once its images are complete.
Result<void> let_go(std::vector<Tracee>& threads, After after) {
  const pid_t pid = threads[0].tid();
  switch (after) {
    case After::Kill:
      if (kill(pid, SIGKILL) < 0) return sys_error("kill after dump");
      // Collect every thread's death as its tracer, so the parent hears of
      // it; the main thread's is reported only after all the others'.
      for (auto t = threads.rbegin(); t != threads.rend(); ++t)
        for (auto s = t->wait(); s && !s->gone(); s = t->wait()) (void)t->cont();
      return {};
    case After::Stop:
      // Queued while traced: each thread enters the group stop as it is let go.
      if (kill(pid, SIGSTOP) < 0) return sys_error("stop after dump");
      [[fallthrough]];
    case After::Run:
      for (Tracee& t : threads) TRY_CTX(t.detach(), "resume thread {}", t.tid());
      return {};
  }
  return {};
}

}  // namespace

Result<void> check_dumpable(pid_t pid) {
  if (pid <= 0) return error(EINVAL, "{} is not a valid pid", pid);
  if (pid == getpid()) return error(EINVAL, "pid {} is ckpt itself", pid);
  auto st = proc::read_stat(pid);
  if (!st) return error(ESRCH, "no process with pid {}", pid);
  if (st->flags & kPfKthread) return error(EPERM, "pid {} ({}) is a kernel thread", pid, st->comm);
  auto status = proc::read_status(pid);
  if (!status) return error(ESRCH, "no process with pid {}", pid);
  // A zombie main thread may still lead live threads.
  auto tasks = proc::list_numeric_dir(fmt::format("/proc/{}/task", pid));
  const size_t nthreads = tasks ? tasks->size() : 0;
  if ((st->state == 'Z' || st->state == 'X') && nthreads <= 1)
    return error(ESRCH, "pid {} ({}) is a zombie", pid, st->comm);
  if (process_died(pid)) return error(ESRCH, "pid {} ({}) is exiting", pid, st->comm);
  if (status->tgid != pid)
    return error(EINVAL, "pid {} is a thread of process {}; dump the process", pid, status->tgid);
  if (status->tracer_pid != 0)
    return error(EBUSY, "pid {} ({}) is already traced by pid {}", pid, st->comm, status->tracer_pid);
  if (st->state == 'Z')
    return error(EOPNOTSUPP, "pid {} ({}): its main thread has exited while {} threads live on; such processes are "
                 "not supported yet", pid, st->comm, nthreads - 1);
  auto kids = TRY(proc::children(pid));
  if (!kids.empty())
    return error(EOPNOTSUPP, "pid {} ({}) has children (pid {}{}): process trees are not supported yet", pid,
                 st->comm, kids[0], kids.size() > 1 ? ", ..." : "");
  return {};
}

namespace {

// Every step of a dump, once the process is known to be dumpable.
Result<img::Stats> dump_dumpable(const DumpOptions& o, image::ImageDir& dir, Log& log, Clock::time_point start) {
  img::Stats stats;
  const pid_t pid = o.pid;
  dir.set_durable(o.fsync);
  Scratch scratch{dir};

  // 1. Seize and stop every thread.
  const auto freeze_start = Clock::now();
  std::vector<Tracee> threads =
      TRY_CTX(seize_process(pid, freeze_start + std::chrono::seconds(o.timeout_s)), "dump pid {}: seize", pid);
  stats.set_freeze_ns(ns_since(freeze_start));
  // Stopped (SIGSTOP and kin) when seized: restored stopped. A stop or
  // continue that comes later is the kernel's to apply when ckpt lets go.
  const bool group_stopped = threads[0].group_stopped();
  if (group_stopped) log.info("pid {} is stopped: it is dumped stopped", pid);
  log.debug("pid {} stopped in {} us", pid, stats.freeze_ns() / 1000);
  // It may have cloned or forked between the check and the stop.
  TRY_CTX(check_dumpable_after_seize(pid), "dump");
  TRY_CTX(o.faults.at("seize"), "dump pid {}", pid);

  // 2. Collect, once what a ckpt killed mid-dump left is out of the way.
  const SyscallSite site = TRY_CTX(find_syscall_site(threads[0]), "dump pid {}", pid);
  Leftovers left = TRY_CTX(find_leftovers(threads[0]), "dump pid {}", pid);
  if (!left.empty()) {
    log.info("pid {}: removing the parasite a killed ckpt left ({} mappings, {} fds)", pid, left.maps.size(),
             left.fds.size());
    TRY_CTX(remove_leftovers(threads, left, site), "dump pid {}: remove what a killed ckpt left", pid);
  }
  img::MmImage mm = TRY_CTX(collect_vmas(pid), "dump pid {}", pid);
  img::Files fds = TRY_CTX(files::dump_fds(pid, {.shell_job = o.shell_job}), "dump pid {}", pid);
  img::TaskCore core = TRY_CTX(collect_core_outside(threads), "dump pid {}", pid);
  core.set_group_stopped(group_stopped);
  for (size_t i = 0; i < threads.size(); i++)
    if (core.threads(i).seccomp_mode() != 0 && !threads[i].seccomp_suspended())
      return error(EPERM, "dump pid {}: thread {} runs under seccomp and ckpt cannot suspend its filters (that needs "
                   "CAP_SYS_ADMIN): they would judge, and could kill it for, the parasite's syscalls", pid,
                   threads[i].tid());

  // 3. The parasite: what only the task can tell, and its memory.
  // Cured by tracing syscalls, not at a breakpoint: a breakpoint that fires
  // after a killed ckpt detached sends a SIGTRAP that kills the task (1 kill
  // in ~200 landed in that window), a syscall stop does not. ~11 more stops.
  Parasite parasite = TRY_CTX(Parasite::inject(threads[0], site, CompletionMode::SyscallTrace, log, o.faults),
                              "dump pid {}: inject the parasite", pid);
  TRY_CTX(o.faults.at("parasite"), "dump pid {}", pid);
  TRY_CTX(collect_core_inside(parasite, threads, &core), "dump pid {}", pid);
  const auto mem_start = Clock::now();
  img::PageMap pagemap;
  PageSource src{threads[0], o.pages == PageTransfer::Splice ? &parasite : nullptr};
  PageStats ps = TRY_CTX(dump_pages(src, mm, dir, &pagemap, o.faults), "dump pid {}", pid);
  stats.set_memory_dump_ns(ns_since(mem_start));
  stats.set_pages_written(ps.pages);
  stats.set_bytes_written(ps.bytes);

  // 4. Cure: the task is as it was before the parasite.
  TRY_CTX(o.faults.at("cure"), "dump pid {}", pid);
  img::TaskStops* cure = stats.add_completion();
  cure->set_tid(pid);
  cure->set_breakpoint(parasite.mode() == CompletionMode::Breakpoint);
  cure->set_stops(TRY_CTX(parasite.cure(), "dump pid {}: cure", pid));

  // 5. Images: metadata, inventory last.
  TRY_CTX(dir.write(image::core_name(pid), image::ImageKind::Core, core), "dump pid {}", pid);
  TRY_CTX(dir.write(image::mm_name(pid), image::ImageKind::Mm, mm), "dump pid {}", pid);
  TRY_CTX(dir.write(image::pagemap_name(pid), image::ImageKind::PageMap, pagemap), "dump pid {}", pid);
  TRY_CTX(dir.write(image::files_name(pid), image::ImageKind::Files, fds), "dump pid {}", pid);
  TRY_CTX(o.faults.at("images"), "dump pid {}: write images", pid);

  img::Inventory inv;
  inv.set_format_version(image::kFormatVersion);
  inv.set_root_pid(pid);
  inv.add_pids(pid);
  utsname u;
  if (uname(&u) == 0) inv.set_kernel_release(u.release);
  inv.set_ckpt_version(CKPT_VERSION);
  inv.set_dump_unix_ns(std::chrono::duration_cast<std::chrono::nanoseconds>(
                           std::chrono::system_clock::now().time_since_epoch()).count());
  inv.set_page_size(4096);
  TRY_CTX(dir.write(image::kInventoryName, image::ImageKind::Inventory, inv), "dump pid {}", pid);
  scratch.keep = true;

  // 6. The images are complete: now the task may go.
  stats.set_frozen_ns(ns_since(freeze_start));
  TRY_CTX(let_go(threads, o.after), "dump pid {}", pid);
  stats.set_dump_ns(ns_since(start));
  (void)dir.write("stats-dump.img", image::ImageKind::Stats, stats);
  return stats;
}

}  // namespace

Result<img::Stats> dump(const DumpOptions& o, image::ImageDir& dir, Log& log) {
  const auto start = Clock::now();
  TRY_CTX(check_dumpable(o.pid), "dump");
  auto stats = dump_dumpable(o, dir, log, start);
  if (!stats && process_died(o.pid)) {
    // Say it first; what failed follows, without the repeated "dump pid P: ".
    const Error& e = stats.error();
    std::string_view what = e.msg;
    if (const std::string prefix = fmt::format("dump pid {}: ", o.pid); what.starts_with(prefix))
      what.remove_prefix(prefix.size());
    return error(ESRCH, "dump pid {}: the process died during the dump ({}{}{})", o.pid, what, e.err ? ": " : "",
                 e.err ? errno_name(e.err) : "");
  }
  return stats;
}

}  // namespace ckpt::dump
