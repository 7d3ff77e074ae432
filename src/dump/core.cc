#include "dump/core.h"

#include <linux/capability.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <functional>
#include <span>

#include "arch/x86_64/uapi.h"
#include "arch/x86_64/xsave.h"
#include "base/fs.h"
#include "base/parallel.h"
#include "files/file_id.h"
#include "image/mempolicy.h"
#include "proc/knobs.h"
#include "proc/record.h"
#include "proc/sched.h"
#include "proc/smaps.h"
#include "proc/status.h"
#include "proc/timers.h"

namespace ckpt::dump {

namespace {

img::SigInfo to_image(const siginfo_t& si) {
  img::SigInfo out;
  out.set_signo(si.si_signo);
  out.set_code(si.si_code);
  out.set_raw(std::string(reinterpret_cast<const char*>(&si), sizeof si));
  return out;
}

// A periodic timer whose signal is still pending reads as disarmed: the
// kernel re-arms it only when the signal is taken. The pending signal is in
// the image; the timer goes on one interval after it.
uint64_t rearm_value(uint64_t value, uint64_t interval) { return value == 0 ? interval : value; }

// POSIX timers: /proc lists them, the task tells their times.
Result<void> collect_posix_timers(Parasite& p, pid_t pid, img::TaskCore* core) {
  std::vector<proc::PosixTimer> listed = TRY(proc::read_timers(pid));
  std::vector<int32_t> ids;
  for (const proc::PosixTimer& pt : listed) ids.push_back(pt.id);
  std::vector<abi::TimerState> times = TRY(p.timers(ids));
  for (size_t i = 0; i < listed.size(); i++) {
    const proc::PosixTimer& pt = listed[i];
    const abi::TimerState& ts = times[i];
    img::PosixTimer* out = core->add_posix_timers();
    out->set_id(pt.id);
    out->set_clock(pt.clock);
    out->set_signo(pt.signo);
    out->set_notify(pt.notify);
    if (pt.notify & SIGEV_THREAD_ID) out->set_notify_tid(pt.notify_pid);
    out->set_sival(pt.sival);
    out->set_interval_ns(ts.interval.sec * 1000000000 + ts.interval.nsec);
    out->set_value_ns(rearm_value(ts.value.sec * 1000000000 + ts.value.nsec, out->interval_ns()));
    out->set_overrun(ts.overrun);
  }
  return {};
}

// mlockall(MCL_FUTURE) locks every mapping made later: the kernel keeps it in
// mm->def_flags, which no /proc file shows, but which every new VMA takes.
// The parasite's mapping is one ckpt made just now: locked, its VmFlags lo
// and lf are MCL_FUTURE and MCL_ONFAULT.
Result<uint32_t> future_locking(const Parasite& p, pid_t pid) {
  if (!p.mapped_locked()) return 0;
  const std::vector<proc::SmapsVma> vmas = TRY(proc::read_smaps(pid));
  auto it = std::ranges::find_if(vmas, [&](const proc::SmapsVma& v) { return v.map.start == p.base().raw(); });
  if (it == vmas.end()) return error(ENOENT, "pid {}: the parasite's mapping at {:#x} is not in smaps", pid, p.base());
  if (!it->flags.has("lo")) return 0;
  return MCL_FUTURE | (it->flags.has("lf") ? MCL_ONFAULT : 0);
}

// Process-wide state only the task can tell: sigactions, brk, itimers,
// limits, personality, prctl state.
Result<void> collect_process_inside(Parasite& p, pid_t pid, img::TaskCore* core) {
  const abi::ProcessState* ps = TRY(p.process_state());
  for (int sig = 1; sig <= abi::kMaxSignals; sig++) {
    if (sig == SIGKILL || sig == SIGSTOP) continue;
    const abi::KSigAction& act = ps->sigactions[sig - 1];
    img::SigAction* a = core->add_sigactions();
    a->set_signo(sig);
    a->set_handler(act.handler);
    a->set_flags(act.flags);
    a->set_restorer(act.restorer);
    a->set_mask(act.mask);
  }
  core->mutable_mm()->set_brk(ps->brk);
  const int which[] = {ITIMER_REAL, ITIMER_VIRTUAL, ITIMER_PROF};
  for (int i = 0; i < 3; i++) {
    const abi::ITimerArg& it = ps->itimers[i];
    img::ITimer* out = core->add_itimers();
    out->set_which(which[i]);
    out->set_interval_us(it.interval.sec * 1000000 + it.interval.usec);
    out->set_value_us(rearm_value(it.value.sec * 1000000 + it.value.usec, out->interval_us()));
  }
  for (int res = 0; res < RLIM_NLIMITS && res < abi::kNumRLimits; res++) {
    img::RLimit* out = core->add_rlimits();
    out->set_resource(res);
    out->set_cur(ps->rlimits[res].cur);
    out->set_max(ps->rlimits[res].max);
  }
  core->set_personality(ps->personality);
  img::ProcessPrctl* pr = core->mutable_prctl();
  pr->set_dumpable(ps->dumpable);
  pr->set_thp_disable(ps->thp_disable != 0);
  pr->set_thp_disable_flags(static_cast<uint32_t>(ps->thp_disable));
  pr->set_mdwe(ps->mdwe);
  pr->set_memory_merge(ps->memory_merge != 0);
  pr->set_child_subreaper(ps->child_subreaper != 0);
  // ENOSYS: a kernel without membarrier, where nothing can be registered.
  if (ps->membarrier_err && ps->membarrier_err != EINVAL && ps->membarrier_err != ENOSYS)
    return error(ps->membarrier_err, "pid {}: membarrier(MEMBARRIER_CMD_GET_REGISTRATIONS)", pid);
  core->set_membarrier(ps->membarrier);
  core->mutable_mm()->set_mlockall(TRY(future_locking(p, pid)));
  return collect_posix_timers(p, pid, core);
}

// Per-thread state only the thread can tell: securebits, clear_child_tid,
// sigaltstack, prctl state.
void collect_thread_inside(const abi::ThreadState& ts, img::ThreadCore* th) {
  th->mutable_creds()->set_securebits(ts.securebits);
  th->set_clear_child_tid(ts.clear_child_tid);
  th->mutable_altstack()->set_sp(ts.ss_sp);
  th->mutable_altstack()->set_flags(ts.ss_flags);
  th->mutable_altstack()->set_size(ts.ss_size);
  th->set_timerslack_ns(ts.timerslack_ns);
  th->set_pdeathsig(ts.pdeathsig);
  for (uint32_t v : ts.speculation) th->add_speculation(v);
  th->set_tsc_mode(ts.tsc_mode);
  th->set_mce_kill(ts.mce_kill);
  th->set_cpuid(ts.cpuid != 0);
  if (!image::is_default(ts.mempolicy)) *th->mutable_mempolicy() = image::to_image(ts.mempolicy);
}

// Seccomp filters, oldest first, of a thread whose mode /proc gave; a
// filter ckpt cannot read fails the dump (the task would come back less
// confined than it was).
Result<void> collect_seccomp(Tracee& t, img::ThreadCore* th) {
  if (th->seccomp_mode() != 2) return {};
  std::vector<std::pair<std::string, uint64_t>> newest_first;
  for (unsigned long i = 0;; i++) {
    auto f = t.seccomp_filter(i);
    if (!f && f.error().err == ENOENT && i > 0) break;
    if (!f) return std::unexpected(f.error().context("its seccomp filters cannot be read, so they could not be restored"));
    newest_first.push_back(std::move(*f));
  }
  for (auto it = newest_first.rbegin(); it != newest_first.rend(); ++it) {
    img::SeccompFilter* out = th->add_seccomp_filters();
    out->set_program(std::move(it->first));
    out->set_flags(it->second);
  }
  return {};
}

// A thread stopped inside an rseq critical section is due an abort: the
// kernel moves it to the abort handler on its way back to user space. Do
// that now, as the kernel would (clear rseq_cs, rip = abort_ip): the
// parasite moves the thread elsewhere first, and the kernel, finding it
// outside the section, would clear rseq_cs without aborting; a restored
// thread would resume inside the section just the same.
Result<void> abort_rseq_critical_section(Tracee& t, const RseqConfig& rseq, arch::Regs* regs) {
  constexpr uint64_t kRseqCsOffset = 8;  // struct rseq: cpu_id_start, cpu_id, rseq_cs
  if (!rseq.abi_pointer) return {};
  uint64_t cs_ptr = 0;
  TRY(t.read_mem(rseq.abi_pointer + kRseqCsOffset, &cs_ptr, sizeof cs_ptr));
  if (!cs_ptr) return {};
  struct {
    uint32_t version, flags;
    uint64_t start_ip, post_commit_offset, abort_ip;
  } cs;
  TRY(t.read_mem(RemoteAddr(cs_ptr), &cs, sizeof cs));
  if (regs->rip < cs.start_ip || regs->rip - cs.start_ip >= cs.post_commit_offset) return {};
  // A bad signature gets the task a SIGSEGV from the kernel: leave that to it.
  uint32_t sig = 0;
  TRY(t.read_mem(RemoteAddr(cs.abort_ip) - sizeof sig, &sig, sizeof sig));
  if (sig != rseq.signature) return {};
  const uint64_t zero = 0;
  TRY(t.write_mem(rseq.abi_pointer + kRseqCsOffset, &zero, sizeof zero));
  regs->rip = cs.abort_ip;
  return t.set_regs(*regs);
}

// Syscall user dispatch judges every syscall of the thread, the parasite's
// and ckpt's remote ones too: a selector at "block" (or none) would send
// them to the task's SIGSYS handler. Refused then, before any is made; with
// the selector at "allow" nothing is dispatched, and restore sets it again.
Result<void> collect_syscall_user_dispatch(Tracee& t, img::ThreadCore* th) {
  const SyscallUserDispatch sud = TRY(t.syscall_user_dispatch());
  if (!sud.on) return {};
  constexpr std::string_view kWhen = "dump it while the byte says allow (outside the code it dispatches)";
  if (!sud.selector)
    return error(EOPNOTSUPP, "it has syscall user dispatch on without a selector byte: every syscall ckpt would "
                 "make in it would go to its SIGSYS handler");
  uint8_t selector = 0;
  TRY(t.read_mem(sud.selector, &selector, sizeof selector));
  if (selector != uapi::kSyscallDispatchAllow)
    return error(EOPNOTSUPP, "it has syscall user dispatch on and its selector byte at {:#x} says {} ({}): every "
                 "syscall ckpt would make in it would go to its SIGSYS handler; {}", sud.selector.raw(),
                 selector == uapi::kSyscallDispatchBlock ? "block" : "neither allow nor block", selector, kWhen);
  img::SyscallUserDispatch* out = th->mutable_syscall_user_dispatch();
  out->set_selector(sud.selector.raw());
  out->set_offset(sud.offset);
  out->set_len(sud.len);
  return {};
}

// What ptrace shows of one thread: the tracer thread's to ask.
Result<void> collect_thread_ptrace(Tracee& t, img::ThreadCore* th) {
  th->set_tid(t.tid());
  arch::Regs regs = TRY(t.regs());
  if (regs.cs != arch::kUserCs64)
    return error(EOPNOTSUPP, "it runs 32-bit code (cs {:#x}): only 64-bit processes are supported", regs.cs);
  TRY(collect_syscall_user_dispatch(t, th));
  RseqConfig rseq = TRY(t.rseq());
  TRY(abort_rseq_critical_section(t, rseq, &regs));
  arch::rewind_restartable_syscall(regs, arch::Restart::Reexecute);
  arch::to_image(regs, th->mutable_regs());
  std::vector<uint8_t> xs = TRY(t.xstate());
  // Only up to the last component in use (restore pads it back with init state).
  xs.resize(arch::xsave_used_size(xs));
  th->set_xsave(std::string(xs.begin(), xs.end()));
  th->set_blocked(TRY(t.blocked()));
  th->mutable_rseq()->set_abi_pointer(rseq.abi_pointer.raw());
  th->mutable_rseq()->set_abi_size(rseq.abi_size);
  th->mutable_rseq()->set_signature(rseq.signature);
  th->mutable_rseq()->set_flags(rseq.flags);
  return {};
}

// What /proc and plain syscalls show of one thread: any ckpt thread may ask.
// `private_pending`: the signals queued to the thread itself (SigPnd).
Result<void> collect_thread_proc(pid_t pid, pid_t tid, img::ThreadCore* th, uint64_t* private_pending) {
  // Its comm from the status line Name (the kernel escapes only newline and
  // backslash there, parse_status undoes it): one /proc file a thread less.
  const proc::Status st = TRY(proc::read_status(tid));
  th->set_comm(st.name);
  // Its credentials but the securebits, here rather than from the parasite
  // (parasite_abi.h: ThreadState).
  if (st.uids.size() != 4 || st.gids.size() != 4)
    return error(EINVAL, "/proc/{}/status shows no Uid or Gid line of 4 ids", tid);
  img::Creds* c = th->mutable_creds();
  for (uid_t id : st.uids) c->add_uids(id);
  for (gid_t id : st.gids) c->add_gids(id);
  for (gid_t g : st.groups) c->add_groups(g);
  c->set_cap_inh(st.cap_inh);
  c->set_cap_prm(st.cap_prm);
  c->set_cap_eff(st.cap_eff);
  c->set_cap_bnd(st.cap_bnd);
  c->set_cap_amb(st.cap_amb);
  th->set_no_new_privs(st.no_new_privs);
  *th->mutable_sched() = TRY(proc::read_sched(tid));
  th->set_ioprio(TRY(proc::read_ioprio(tid)));
  cpu_set_t cpus;
  if (sched_getaffinity(tid, sizeof cpus, &cpus) < 0) return sys_error("sched_getaffinity of thread {}", tid);
  const auto* words = reinterpret_cast<const uint64_t*>(&cpus);
  size_t nwords = sizeof cpus / sizeof(uint64_t);
  while (nwords > 1 && words[nwords - 1] == 0) nwords--;
  for (size_t w = 0; w < nwords; w++) th->add_cpu_affinity(words[w]);
  uint64_t head = 0;
  size_t len = 0;
  if (syscall(SYS_get_robust_list, tid, &head, &len) < 0) return sys_error("get_robust_list of thread {}", tid);
  // arch_prctl(ARCH_SHSTK_ENABLE): the shadow stack's VMA, its token and
  // the SSP register are not restored yet.
  if (std::ranges::find(st.x86_thread_features, "shstk") != st.x86_thread_features.end())
    return error(EOPNOTSUPP, "it has the x86 user shadow stack enabled (x86_Thread_features: shstk): "
                 "restoring a shadow stack is not supported yet");
  th->set_seccomp_mode(st.seccomp);
  *private_pending = st.sig_pnd;
  // Audit's login uid, per thread; absent without CONFIG_AUDIT.
  if (auto text = proc::read_record(fmt::format("/proc/{}/task/{}/loginuid", pid, tid)); text) {
    uint32_t uid = 0;
    auto [end, ec] = std::from_chars(text->data(), text->data() + text->size(), uid);
    if (ec != std::errc()) return error(EINVAL, "/proc/{}/task/{}/loginuid: not a number: '{}'", pid, tid, *text);
    th->set_loginuid(uid);
  } else if (text.error().err != ENOENT) {
    return std::unexpected(text.error());
  }
  th->set_robust_list(head);
  th->set_robust_list_len(len);
  return {};
}

struct ThreadsFromProc {
  std::vector<img::ThreadCore> cores;
  std::vector<uint64_t> private_pending;
};

// The /proc part of every thread, shared with a helper thread, while
// `ptrace_part` (which must stay on the tracer thread) runs here. The two
// fill separate messages: protobuf messages are not written from two
// threads at once.
Result<ThreadsFromProc> collect_threads_proc(pid_t pid, std::span<const pid_t> tids,
                                             const std::function<Result<void>()>& ptrace_part) {
  ThreadsFromProc out{std::vector<img::ThreadCore>(tids.size()), std::vector<uint64_t>(tids.size())};
  std::vector<Result<void>> done(tids.size());
  Result<void> traced;
  share_with_helper(
      tids.size(), 64,
      [&](size_t i) { done[i] = collect_thread_proc(pid, tids[i], &out.cores[i], &out.private_pending[i]); },
      [&] { traced = ptrace_part(); });
  TRY(traced);
  for (size_t i = 0; i < tids.size(); i++) TRY_CTX(done[i], "thread {}", tids[i]);
  return out;
}

void collect_mm(const proc::Stat& stat, img::MmCore* mm) {
  mm->set_start_code(stat.start_code);
  mm->set_end_code(stat.end_code);
  mm->set_start_data(stat.start_data);
  mm->set_end_data(stat.end_data);
  mm->set_start_brk(stat.start_brk);
  mm->set_start_stack(stat.start_stack);
  mm->set_arg_start(stat.arg_start);
  mm->set_arg_end(stat.arg_end);
  mm->set_env_start(stat.env_start);
  mm->set_env_end(stat.env_end);
}

// Restore opens the executable at its path for /proc/PID/exe
// (PR_SET_MM_MAP's exe_fd) and refuses a file there that is not the one
// dumped: a task whose executable was deleted, or replaced by another file
// at the same path (an upgrade), could never come back. Refused now.
Result<void> check_exe(pid_t pid, const img::MmCore& mm) {
  const std::string& path = mm.exe_path();
  if (path.ends_with(" (deleted)"))
    return error(ENOENT, "pid {}: its executable {} was deleted since it started: restore could not open it for "
                 "/proc/PID/exe", pid, path);
  // The very file (same inode, size and mtime), which nobody can have written
  // while it runs (ETXTBSY): no need to read its build-id again.
  if (struct stat st; stat(path.c_str(), &st) == 0 && files::same_inode(mm.exe_id(), st)) return {};
  auto now = files::identify_path(path);
  if (!now)
    return std::unexpected(now.error().context(fmt::format(
        "pid {}: its executable {} (/proc/PID/exe) can't be opened at that path: restore could not set it", pid,
        path)));
  if (std::string diff = files::file_id_difference(mm.exe_id(), *now); !diff.empty())
    return error(ESTALE, "pid {}: its executable {} was replaced since it started ({}): restore could not put "
                 "back the file it runs as /proc/PID/exe", pid, path, diff);
  return {};
}

// Restore chdir()s to the cwd's path and leaves the root as ckpt's: a cwd
// removed or moved, or another root (chroot), would not come back.
Result<std::string> restorable_cwd(pid_t pid, const Self& self) {
  const std::string link = fmt::format("/proc/{}/cwd", pid);
  std::string path = TRY(read_link(link));
  struct stat cwd, at, root;
  if (stat(link.c_str(), &cwd) < 0) return sys_error("stat the cwd of pid {}", pid);
  if (stat(path.c_str(), &at) < 0 || at.st_dev != cwd.st_dev || at.st_ino != cwd.st_ino)
    return error(EOPNOTSUPP, "pid {}: its working directory {} is not at that path any more (removed or moved): "
                 "restore could not enter it", pid, path);
  if (stat(fmt::format("/proc/{}/root", pid).c_str(), &root) < 0)
    return sys_error("stat the root directory of pid {}", pid);
  if (root.st_dev != self.root_dev || root.st_ino != self.root_ino)
    return error(EOPNOTSUPP, "pid {} runs in another root directory (chroot) than ckpt: not supported yet", pid);
  return path;
}

}  // namespace

Result<img::TaskCore> collect_core_proc(pid_t pid, const Self& self, files::FileIdCache& ids) {
  img::TaskCore core;
  core.set_pid(pid);
  proc::Stat stat = TRY(proc::read_stat(pid));
  core.set_comm(stat.comm);
  core.set_cwd(TRY(restorable_cwd(pid, self)));
  collect_mm(stat, core.mutable_mm());
  core.mutable_mm()->set_auxv(TRY(read_file(fmt::format("/proc/{}/auxv", pid))));
  core.mutable_mm()->set_exe_path(TRY(read_link(fmt::format("/proc/{}/exe", pid))));
  // stat follows the link to the file the task runs, whatever its path holds now.
  *core.mutable_mm()->mutable_exe_id() = TRY(ids.identify_path(fmt::format("/proc/{}/exe", pid)));
  TRY(check_exe(pid, core.mm()));
  const proc::Knobs knobs = TRY(proc::read_knobs(pid));
  // Restore writes it as ckpt, whose child may go no lower than ckpt itself
  // without CAP_SYS_RESOURCE: a value it could not put back is refused now.
  if (knobs.oom_score_adj < self.oom_score_adj && !self.sys_resource)
    return error(EPERM, "pid {} has oom_score_adj {}, lower than ckpt's own {}: restoring it needs CAP_SYS_RESOURCE, "
                 "which ckpt lacks", pid, knobs.oom_score_adj, self.oom_score_adj);
  core.set_oom_score_adj(knobs.oom_score_adj);
  if (knobs.autogroup_nice) core.set_autogroup_nice(*knobs.autogroup_nice);
  core.set_coredump_filter(knobs.coredump_filter);
  return core;
}

Result<void> collect_core_outside(std::vector<Tracee>& threads, const proc::Status& status, img::TaskCore* core) {
  Tracee& leader = threads[0];
  const pid_t pid = leader.tid();
  core->set_umask(status.umask);
  for (const siginfo_t& si : TRY(leader.pending(true))) *core->add_shared_pending() = to_image(si);
  std::vector<pid_t> tids;
  for (const Tracee& t : threads) tids.push_back(t.tid());
  for (size_t i = 0; i < threads.size(); i++) core->add_threads();
  ThreadsFromProc from_proc = TRY(collect_threads_proc(pid, tids, [&]() -> Result<void> {
    for (size_t i = 0; i < threads.size(); i++)
      TRY_CTX(collect_thread_ptrace(threads[i], core->mutable_threads(i)), "thread {}", tids[i]);
    return {};
  }));
  for (size_t i = 0; i < threads.size(); i++) {
    img::ThreadCore* th = core->mutable_threads(i);
    th->MergeFrom(from_proc.cores[i]);
    // What only ptrace tells, for the threads /proc says have any: seccomp
    // filters, and the signals queued to the thread (a ptrace request per
    // thread saved where none are, nearly everywhere).
    TRY_CTX(collect_seccomp(threads[i], th), "thread {}", tids[i]);
    if (from_proc.private_pending[i])
      for (const siginfo_t& si : TRY_CTX(threads[i].pending(false), "thread {}", tids[i]))
        *th->add_pending() = to_image(si);
  }
  return {};
}

Result<void> collect_vma_policies(Parasite& p, img::MmImage* mm) {
  std::vector<abi::MemPolicyArg> asked;
  std::vector<img::Vma*> of;
  for (img::Vma& v : *mm->mutable_vmas()) {
    if (v.kind() == img::Vma::VDSO || v.kind() == img::Vma::VVAR || v.kind() == img::Vma::VVAR_VCLOCK) continue;
    asked.push_back({.start = v.start(), .end = v.end()});
    of.push_back(&v);
  }
  TRY_CTX(p.policies(asked), "read the NUMA memory policies of its VMAs");
  for (size_t i = 0; i < asked.size(); i++)
    if (!image::is_default(asked[i])) *of[i]->mutable_mempolicy() = image::to_image(asked[i]);
  return {};
}

Result<void> collect_core_inside(Parasite& p, std::vector<Tracee>& threads, img::TaskCore* core) {
  const pid_t pid = threads[0].tid();
  TRY(collect_process_inside(p, pid, core));
  collect_thread_inside(*TRY_CTX(p.main_thread_state(), "thread {}", pid), core->mutable_threads(0));
  std::vector<Tracee*> others;
  std::vector<Parasite::KnownState> known;
  for (size_t i = 1; i < threads.size(); i++) {
    const img::ThreadCore& th = core->threads(i);
    others.push_back(&threads[i]);
    known.push_back({{reinterpret_cast<const uint8_t*>(th.xsave().data()), th.xsave().size()}, th.blocked()});
  }
  return p.visit(others, known, [&](size_t i, const abi::ThreadState& ts) -> Result<void> {
    collect_thread_inside(ts, core->mutable_threads(i + 1));
    return {};
  });
}

}  // namespace ckpt::dump
