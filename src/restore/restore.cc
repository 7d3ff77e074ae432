#include "restore/restore.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <map>

#include "arch/x86_64/sigframe.h"
#include "base/check.h"
#include "base/fs.h"
#include "image/image_dir.h"
#include "image/page_store.h"
#include "pie/restorer_blob.h"
#include "proc/maps.h"
#include "proc/status.h"
#include "ptrace/tracee.h"
#include "restore/boot_region.h"
#include "restore/images.h"
#include "restore/spawn.h"

namespace ckpt::restore {

namespace {

using Clock = std::chrono::steady_clock;
constexpr uint64_t kPage = 4096;

const char* step_name(int32_t step) {
  static constexpr const char* kNames[] = {
      "?", "check ABI version", "unmap ckpt's memory", "move the vDSO", "map a VMA", "read pages",
      "protect a VMA", "set mm fields (PR_SET_MM_MAP)", "install a sigaction", "set the alternate signal stack",
      "queue a pending signal", "set fs/gs base", "register rseq", "set the robust futex list", "set the name"};
  return step >= 0 && step < static_cast<int32_t>(std::size(kNames)) ? kNames[step] : "?";
}

// Opened mapping files, one fd per distinct path and mode.
struct MappingFiles {
  std::vector<UniqueFd> fds;
  std::map<std::pair<std::string, bool>, size_t> index;
};

Result<MappingFiles> open_mapping_files(const img::MmImage& mm) {
  MappingFiles mf;
  for (const img::Vma& v : mm.vmas()) {
    if (v.kind() != img::Vma::FILE_PRIVATE && v.kind() != img::Vma::FILE_SHARED) continue;
    bool rw = v.kind() == img::Vma::FILE_SHARED && (v.prot() & PROT_WRITE);
    auto key = std::make_pair(v.path(), rw);
    if (mf.index.count(key)) continue;
    UniqueFd fd = TRY_CTX(open_file(v.path(), rw ? O_RDWR : O_RDONLY), "file of VMA {:#x}-{:#x}", v.start(), v.end());
    mf.index[key] = mf.fds.size();
    mf.fds.push_back(std::move(fd));
  }
  return mf;
}

struct SpecialVmas {
  std::vector<SpecialMove> moves;
  std::vector<Range> current;  // where they are in ckpt (and so in its child)
};

// [vvar], [vvar_vclock] and [vdso] go to their dumped addresses together: the
// vDSO code finds its data at fixed offsets (pitfall 2).
Result<SpecialVmas> plan_specials(const img::MmImage& mm, const std::vector<proc::MapEntry>& own) {
  SpecialVmas out;
  for (const img::Vma& v : mm.vmas()) {
    const char* name = v.kind() == img::Vma::VDSO          ? "[vdso]"
                       : v.kind() == img::Vma::VVAR        ? "[vvar]"
                       : v.kind() == img::Vma::VVAR_VCLOCK ? "[vvar_vclock]"
                                                           : nullptr;
    if (!name) continue;
    auto it = std::find_if(own.begin(), own.end(), [&](const proc::MapEntry& m) { return m.path == name; });
    if (it == own.end() || it->end - it->start != v.end() - v.start())
      return error(EINVAL, "the dump's {} ({} bytes) does not match this kernel's{}: restoring onto another kernel "
                   "version is not supported yet", name, v.end() - v.start(), it == own.end() ? " (none)" : "");
    out.moves.push_back({{it->start, it->end}, v.start()});
  }
  for (const proc::MapEntry& m : own)
    if (m.path == "[vdso]" || m.path == "[vvar]" || m.path == "[vvar_vclock]") out.current.push_back({m.start, m.end});
  return out;
}

struct Plan {
  BootRegion boot;
  arch::Regs regs;
  uint64_t sigmask;
};

// Lays out the boot region and fills RestorerArgs: everything the restorer
// needs, with fds numbered as the child will have them.
Result<Plan> build_plan(const TaskImages& ti, const std::vector<proc::MapEntry>& own, const SpecialVmas& sp,
                        const MappingFiles& mf, int temp_fd_base, int pages_fd, int exe_fd, int first_map_fd) {
  const img::ThreadCore& th = ti.core.threads(0);
  auto blob = pie::restorer::image();
  const uint64_t blob_size = pie::restorer::k_blob_end;
  const uint64_t nsig = th.pending_size() + ti.core.shared_pending_size();
  const uint64_t data_size = sizeof(abi::RestorerArgs) + ti.mm.vmas_size() * sizeof(abi::VmaArg) +
                             ti.pagemap.runs_size() * sizeof(abi::PageRunArg) + nsig * sizeof(abi::SigInfoArg) +
                             th.xsave().size() + 2048 + 1024;

  std::vector<Range> busy;
  for (const img::Vma& v : ti.mm.vmas()) busy.push_back({v.start(), v.end()});
  for (const proc::MapEntry& m : own) busy.push_back({m.start, m.end});
  uint64_t at = TRY(find_hole(busy, BootRegion::size_for(blob_size, data_size)));
  Plan p{BootRegion(at, blob_size, data_size), arch::from_image(th.regs()), th.blocked()};
  (void)blob;

  abi::RestorerArgs* a = p.boot.args();
  a->version = abi::kRestorerAbiVersion;
  a->page_size = kPage;
  a->boot_start = p.boot.start();
  a->boot_end = p.boot.end();
  std::vector<Range> keep = sp.current;
  keep.push_back({p.boot.start(), p.boot.end()});
  std::sort(keep.begin(), keep.end(), [](const Range& x, const Range& y) { return x.start < y.start; });
  a->nr_keep = keep.size();
  for (size_t i = 0; i < keep.size(); i++) a->keep[i][0] = keep[i].start, a->keep[i][1] = keep[i].end;

  busy.push_back({p.boot.start(), p.boot.end()});
  auto moves = TRY(plan_special_moves(sp.moves, busy));
  if (moves.size() > std::size(a->moves)) return fail("too many special mappings to move");
  a->nr_moves = moves.size();
  for (size_t i = 0; i < moves.size(); i++) a->moves[i] = {moves[i].from.start, moves[i].from.len(), moves[i].to};

  // VMAs, skipping the special ones (moved, not mapped).
  uint8_t* w;
  std::vector<abi::VmaArg> vmas;
  size_t run = 0;
  for (const img::Vma& v : ti.mm.vmas()) {
    abi::VmaArg va{v.start(), v.end(), v.prot(), 0, -1, 0, 0};
    switch (v.kind()) {
      case img::Vma::ANON_PRIVATE: va.map_flags = MAP_PRIVATE | MAP_ANONYMOUS; break;
      case img::Vma::FILE_PRIVATE:
      case img::Vma::FILE_SHARED: {
        bool shared = v.kind() == img::Vma::FILE_SHARED;
        va.map_flags = shared ? MAP_SHARED : MAP_PRIVATE;
        va.fd = first_map_fd + static_cast<int>(mf.index.at({v.path(), shared && (v.prot() & PROT_WRITE)}));
        va.pgoff = v.pgoff();
        break;
      }
      default: continue;
    }
    if (v.growsdown()) va.map_flags |= MAP_GROWSDOWN;
    while (run < static_cast<size_t>(ti.pagemap.runs_size()) && ti.pagemap.runs(run).vaddr() < v.end()) {
      va.has_pages = 1;
      run++;
    }
    vmas.push_back(va);
  }
  a->nr_vmas = vmas.size();
  a->vmas = p.boot.alloc(vmas.size() * sizeof(abi::VmaArg), 8, &w);
  std::memcpy(w, vmas.data(), vmas.size() * sizeof(abi::VmaArg));

  a->nr_runs = ti.pagemap.runs_size();
  a->runs = p.boot.alloc(a->nr_runs * sizeof(abi::PageRunArg), 8, &w);
  for (const img::PageRun& r : ti.pagemap.runs()) {
    abi::PageRunArg pr{r.vaddr(), r.nr_pages()};
    std::memcpy(w, &pr, sizeof pr);
    w += sizeof pr;
  }
  a = p.boot.args();
  a->pages_fd = pages_fd;
  a->pages_off = image::kPagesDataOffset;
  a->temp_fd_base = temp_fd_base;

  const img::MmCore& mm = ti.core.mm();
  a->mm = {mm.start_code(), mm.end_code(), mm.start_data(), mm.end_data(), mm.start_brk(), mm.brk(),
           mm.start_stack(), mm.arg_start(), mm.arg_end(), mm.env_start(), mm.env_end(), 0,
           static_cast<uint32_t>(mm.auxv().size()), static_cast<uint32_t>(exe_fd)};
  if (mm.auxv().size() > sizeof a->auxv || mm.auxv().size() % 16)
    return error(EINVAL, "core image: auxv of {} bytes is not a valid auxiliary vector", mm.auxv().size());
  std::memcpy(a->auxv, mm.auxv().data(), mm.auxv().size());

  for (const img::SigAction& s : ti.core.sigactions()) {
    if (s.signo() < 1 || s.signo() > abi::kMaxSignals || s.signo() == SIGKILL || s.signo() == SIGSTOP) continue;
    a->sigactions[s.signo() - 1] = {s.handler(), s.flags(), s.restorer(), s.mask()};
    a->sigaction_mask |= 1ULL << (s.signo() - 1);
  }
  a->nr_siginfo = nsig;
  a->siginfo = p.boot.alloc(nsig * sizeof(abi::SigInfoArg), 8, &w);
  auto put_sig = [&](const img::SigInfo& s, int thread) {
    abi::SigInfoArg si{};
    std::memcpy(si.raw, s.raw().data(), std::min(s.raw().size(), sizeof si.raw));
    si.signo = s.signo();
    si.thread = thread;
    std::memcpy(w, &si, sizeof si);
    w += sizeof si;
  };
  for (const img::SigInfo& s : th.pending()) put_sig(s, 1);
  for (const img::SigInfo& s : ti.core.shared_pending()) put_sig(s, 0);
  a = p.boot.args();
  a->umask = ti.core.umask();
  a->fs_base = p.regs.fs_base;
  a->gs_base = p.regs.gs_base;
  a->ss_sp = th.altstack().sp();
  a->ss_flags = th.altstack().flags();
  a->ss_size = th.altstack().size();
  a->rseq_ptr = th.rseq().abi_pointer();
  a->rseq_len = th.rseq().abi_size();
  a->rseq_sig = th.rseq().signature();
  a->robust_list = th.robust_list();
  a->robust_len = th.robust_list_len();
  a->clear_child_tid = th.clear_child_tid();
  std::strncpy(a->comm, ti.core.comm().c_str(), sizeof a->comm - 1);

  arch::AltStackState ss{th.altstack().sp(), th.altstack().flags(), th.altstack().size()};
  std::span<const uint8_t> xsave(reinterpret_cast<const uint8_t*>(th.xsave().data()), th.xsave().size());
  uint64_t probe = p.boot.alloc(0, 64, &w);
  auto frame = TRY(arch::build_rt_sigframe(probe, p.regs, xsave, p.sigmask, ss));
  uint64_t frame_at = p.boot.alloc(frame.size(), 64, &w);
  CHECK(frame_at == probe);
  std::memcpy(w, frame.data(), frame.size());
  p.boot.args()->sigframe = frame_at + arch::rt_sigframe_rsp_offset();
  return p;
}

// The restorer trapped, crashed, or the task died: say what happened.
Error explain_stop(Tracee& t, const Stop& s, const BootRegion& boot) {
  pid_t pid = t.tid();
  if (s.gone()) return Error{ESRCH, fmt::format("restore pid {}: the task {} during restore", pid, s.describe())};
  auto regs = t.regs();
  uint64_t rip = regs ? regs->rip : 0;
  if (s.sig() == SIGTRAP) {
    abi::RestorerError e{};
    uint64_t at = boot.args_addr() + offsetof(abi::RestorerArgs, error);
    if (t.read_mem(at, &e, sizeof e) && e.step != abi::kStepNone)
      return Error{e.err, fmt::format("restore pid {}: restorer could not {} (at {:#x}, {:#x})", pid,
                                      step_name(e.step), e.addr, e.len)};
  }
  std::string where = rip >= boot.start() && rip < boot.end()
                          ? fmt::format("restorer+{:#x}", rip - boot.start())
                          : fmt::format("{:#x}", rip);
  return Error{0, fmt::format("restore pid {}: the task {} at {}", pid, s.describe(), where)};
}

Result<int> highest_open_fd() {
  auto fds = TRY(proc::list_numeric_dir("/proc/self/fd"));
  return fds.empty() ? 0 : fds.back();
}

uint64_t ns_since(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t).count();
}

}  // namespace

Result<RestoreOutcome> restore(const RestoreOptions& o, const BreakpointSupport& bp, Log& log) {
  const auto start = Clock::now();
  // 1. Read and check everything before touching anything.
  image::ImageDir dir = TRY_CTX(image::ImageDir::open(o.dir), "restore");
  TaskImages ti = TRY_CTX(load_task_images(dir), "restore");
  const pid_t pid = ti.inventory.root_pid();
  if (kill(pid, 0) == 0 || errno == EPERM) {
    auto st = proc::read_stat(pid);
    return error(EEXIST, "restore pid {}: the pid is taken by another process ({}); stop it or restore into a new "
                 "PID namespace", pid, st ? st->comm : "?");
  }

  CompletionMode mode = CompletionMode::Breakpoint;
  if (!o.breakpoints) {
    mode = CompletionMode::SyscallTrace;
  } else if (!bp.usable) {
    log.warn("hardware breakpoints unavailable ({}): completing restore by tracing syscalls", bp.why_not);
    mode = CompletionMode::SyscallTrace;
  }

  // 2. Open what the task will need, as ckpt, so errors come before any task.
  MappingFiles mf = TRY_CTX(open_mapping_files(ti.mm), "restore pid {}", pid);
  UniqueFd exe = TRY_CTX(open_file(ti.core.mm().exe_path(), O_RDONLY), "restore pid {}: executable", pid);
  std::vector<files::PreparedFd> fds = TRY_CTX(files::prepare_fds(ti.files), "restore pid {}", pid);
  int status_pipe[2], go_pipe[2];
  if (pipe2(status_pipe, O_CLOEXEC) < 0 || pipe2(go_pipe, O_CLOEXEC) < 0) return sys_error("restore: pipe");
  UniqueFd status_r(status_pipe[0]), status_w(status_pipe[1]), go_r(go_pipe[0]), go_w(go_pipe[1]);

  int max_fd = TRY(highest_open_fd());
  for (const auto& f : fds) max_fd = std::max(max_fd, f.target);
  const int base = max_fd + 1;
  std::vector<int> temp = {status_w.get(), go_r.get(), ti.pages.get(), exe.get()};
  const int first_map_fd = base + static_cast<int>(temp.size());
  for (const UniqueFd& f : mf.fds) temp.push_back(f.get());

  std::vector<proc::MapEntry> own = TRY_CTX(proc::read_maps(getpid()), "restore");
  SpecialVmas sp = TRY_CTX(plan_specials(ti.mm, own), "restore pid {}", pid);
  Plan plan = TRY_CTX(build_plan(ti, own, sp, mf, base, base + 2, base + 3, first_map_fd), "restore pid {}", pid);
  BootRegion& boot = plan.boot;

  // 3. The boot region is mapped here, inherited by the child, unmapped here.
  auto blob = pie::restorer::image();
  void* m = mmap(reinterpret_cast<void*>(boot.start()), boot.size(), PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
  if (m == MAP_FAILED) return sys_error("restore pid {}: map the boot region at {:#x}", pid, boot.start());
  std::memcpy(m, blob.data(), blob.size());
  std::memcpy(static_cast<char*>(m) + boot.data_offset(), boot.data().data(), boot.data().size());
  mprotect(m, boot.data_offset(), PROT_READ | PROT_EXEC);

  SpawnPlan sp_plan{pid, o.sibling, base, temp, &fds, ti.core.cwd(), boot.stack_top(),
                    boot.start() + pie::restorer::k_restorer_entry, boot.args_addr()};
  auto child = spawn(sp_plan);
  munmap(m, boot.size());
  if (!child) return std::unexpected(child.error().context(fmt::format("restore pid {}", pid)));
  status_w.reset();
  go_r.reset();

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
  } guard{pid, !o.sibling};

  char buf[512];
  ssize_t n = read(status_r.get(), buf, sizeof buf);
  if (n != 1 || buf[0] != 'R')
    return error(EINVAL, "restore pid {}: preparing the task failed: {}", pid,
                 n > 0 ? std::string(buf, n) : std::string("it exited"));

  // 4. Seize, arm, release, complete.
  Tracee t = TRY_CTX(Tracee::seize(pid, PTRACE_O_EXITKILL), "restore pid {}", pid);
  TRY_CTX(t.interrupt(), "restore pid {}", pid);
  Stop s = TRY_CTX(t.wait(), "restore pid {}", pid);
  if (!s.stopped()) return error(ESRCH, "restore pid {}: the task {} before its restorer ran", pid, s.describe());
  const uint64_t sigreturn_fn = boot.start() + pie::restorer::k_rst_sigreturn;
  if (mode == CompletionMode::Breakpoint) {
    const img::SigAction* trap = nullptr;
    for (const auto& sa : ti.core.sigactions())
      if (sa.signo() == SIGTRAP) trap = &sa;
    // A SIGTRAP the task ignores would be reset to SIG_DFL by the kernel when
    // our breakpoint fires: keep the disposition exact, trace syscalls instead.
    if (trap && trap->handler() == reinterpret_cast<uint64_t>(SIG_IGN)) {
      log.info("pid {} ignores SIGTRAP: completing by tracing syscalls", pid);
      mode = CompletionMode::SyscallTrace;
    } else if (TRY_CTX(arm_breakpoint(t, sigreturn_fn), "restore pid {}", pid) == Armed::Unsupported) {
      log.warn("pid {}: the kernel refused a hardware breakpoint: completing by tracing syscalls", pid);
      mode = CompletionMode::SyscallTrace;
    }
  }
  if (write(go_w.get(), "G", 1) != 1) return sys_error("restore pid {}: release the task", pid);

  const img::ThreadCore& th = ti.core.threads(0);
  FinalState fin{plan.regs,
                 {reinterpret_cast<const uint8_t*>(th.xsave().data()), th.xsave().size()},
                 plan.sigmask};
  CompletionSite site{sigreturn_fn, boot.start() + pie::restorer::k_rst_syscall, boot.start(), boot.size()};
  unsigned stops = TRY(complete(t, mode, site, fin, [&](Tracee& tr, const Stop& st) {
    return explain_stop(tr, st, boot);
  }));

  RestoreOutcome out;
  out.pid = pid;
  img::TaskStops* ts = out.stats.add_completion();
  ts->set_tid(pid);
  ts->set_stops(stops);
  ts->set_breakpoint(mode == CompletionMode::Breakpoint);
  out.stats.set_pages_read(ti.pagemap.total_pages());
  out.stats.set_bytes_read(ti.pagemap.total_pages() * kPage);
  if (!o.pidfile.empty()) {
    std::string text = fmt::format("{}\n", pid);
    UniqueFd pf = TRY_CTX(open_file(o.pidfile, O_WRONLY | O_CREAT | O_TRUNC, 0644), "restore: pidfile");
    TRY_CTX(write_all(pf.get(), text.data(), text.size()), "restore: pidfile {}", o.pidfile);
  }
  TRY_CTX(t.detach(o.leave_stopped ? SIGSTOP : 0), "restore pid {}", pid);
  guard.armed = false;
  out.stats.set_restore_ns(ns_since(start));
  log.info("restored pid {} ({} ptrace stops, {})", pid, stops,
           mode == CompletionMode::Breakpoint ? "breakpoint" : "syscall tracing");
  (void)dir.write("stats-restore.img", image::ImageKind::Stats, out.stats);

  if (!o.detach && !o.sibling) {
    int status;
    while (waitpid(pid, &status, 0) < 0)
      if (errno != EINTR) return sys_error("restore: wait for pid {}", pid);
    out.wait_status = status;
  }
  return out;
}

}  // namespace ckpt::restore
