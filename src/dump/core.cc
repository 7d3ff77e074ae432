#include "dump/core.h"

#include <linux/prctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "arch/x86_64/xsave.h"
#include "base/fs.h"
#include "proc/status.h"
#include "proc/timers.h"
#include "ptrace/remote_syscall.h"

namespace ckpt::dump {

namespace {

constexpr int kMaxSignals = 64;

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
Result<void> collect_posix_timers(RemoteSyscalls& rs, Tracee& t, img::TaskCore* core) {
  uint64_t buf = TRY(rs.scratch());
  for (const proc::PosixTimer& pt : TRY(proc::read_timers(t.tid()))) {
    struct {
      uint64_t interval_sec, interval_nsec, value_sec, value_nsec;
    } spec;
    const uint64_t id = static_cast<uint64_t>(pt.id);
    TRY(rs.must(fmt::format("timer_gettime({})", pt.id), SYS_timer_gettime, {id, buf}));
    TRY(t.read_mem(buf, &spec, sizeof spec));
    img::PosixTimer* out = core->add_posix_timers();
    out->set_id(pt.id);
    out->set_clock(pt.clock);
    out->set_signo(pt.signo);
    out->set_notify(pt.notify);
    if (pt.notify & SIGEV_THREAD_ID) out->set_notify_tid(pt.notify_pid);
    out->set_sival(pt.sival);
    out->set_interval_ns(spec.interval_sec * 1000000000 + spec.interval_nsec);
    out->set_value_ns(rearm_value(spec.value_sec * 1000000000 + spec.value_nsec, out->interval_ns()));
    out->set_overrun(static_cast<int32_t>(TRY(rs.must("timer_getoverrun", SYS_timer_getoverrun, {id}))));
  }
  return {};
}

// Process-wide state only the task can tell: sigactions, brk, timers,
// limits, personality, prctl state.
Result<void> collect_process_inside(RemoteSyscalls& rs, Tracee& t, img::TaskCore* core) {
  uint64_t buf = TRY(rs.scratch());
  struct KSigAction {
    uint64_t handler, flags, restorer, mask;
  } act;
  for (int sig = 1; sig <= kMaxSignals; sig++) {
    if (sig == SIGKILL || sig == SIGSTOP) continue;
    TRY(rs.must(fmt::format("rt_sigaction({})", sig), SYS_rt_sigaction, {static_cast<uint64_t>(sig), 0, buf, 8}));
    TRY(t.read_mem(buf, &act, sizeof act));
    img::SigAction* a = core->add_sigactions();
    a->set_signo(sig);
    a->set_handler(act.handler);
    a->set_flags(act.flags);
    a->set_restorer(act.restorer);
    a->set_mask(act.mask);
  }
  core->mutable_mm()->set_brk(TRY(rs.must("brk(0)", SYS_brk, {0})));

  struct {
    uint64_t interval_sec, interval_usec, value_sec, value_usec;
  } it;
  for (int which : {ITIMER_REAL, ITIMER_VIRTUAL, ITIMER_PROF}) {
    TRY(rs.must(fmt::format("getitimer({})", which), SYS_getitimer, {static_cast<uint64_t>(which), buf}));
    TRY(t.read_mem(buf, &it, sizeof it));
    img::ITimer* out = core->add_itimers();
    out->set_which(which);
    out->set_interval_us(it.interval_sec * 1000000 + it.interval_usec);
    out->set_value_us(rearm_value(it.value_sec * 1000000 + it.value_usec, out->interval_us()));
  }
  struct {
    uint64_t cur, max;
  } lim;
  for (int res = 0; res < RLIM_NLIMITS; res++) {
    TRY(rs.must(fmt::format("prlimit64({})", res), SYS_prlimit64, {0, static_cast<uint64_t>(res), 0, buf}));
    TRY(t.read_mem(buf, &lim, sizeof lim));
    img::RLimit* out = core->add_rlimits();
    out->set_resource(res);
    out->set_cur(lim.cur);
    out->set_max(lim.max);
  }
  core->set_personality(static_cast<uint32_t>(TRY(rs.must("personality", SYS_personality, {0xffffffff}))));
  img::ProcessPrctl* pr = core->mutable_prctl();
  pr->set_dumpable(static_cast<int>(TRY(rs.must("prctl(PR_GET_DUMPABLE)", SYS_prctl, {PR_GET_DUMPABLE}))));
  pr->set_thp_disable(TRY(rs.must("prctl(PR_GET_THP_DISABLE)", SYS_prctl, {PR_GET_THP_DISABLE})) != 0);
  TRY(rs.must("prctl(PR_GET_CHILD_SUBREAPER)", SYS_prctl, {PR_GET_CHILD_SUBREAPER, buf}));
  int32_t subreaper;
  TRY(t.read_mem(buf, &subreaper, sizeof subreaper));
  pr->set_child_subreaper(subreaper != 0);
  return collect_posix_timers(rs, t, core);
}

// Per-thread state only the thread can tell: clear_child_tid, sigaltstack.
Result<void> collect_thread_inside(RemoteSyscalls& rs, Tracee& t, img::ThreadCore* th) {
  uint64_t buf = TRY(rs.scratch());
  TRY(rs.must("prctl(PR_GET_TID_ADDRESS)", SYS_prctl, {PR_GET_TID_ADDRESS, buf, 0, 0, 0}));
  uint64_t tid_addr;
  TRY(t.read_mem(buf, &tid_addr, sizeof tid_addr));
  th->set_clear_child_tid(tid_addr);
  struct {
    uint64_t sp;
    int32_t flags;
    int32_t pad;
    uint64_t size;
  } ss;
  TRY(rs.must("sigaltstack", SYS_sigaltstack, {0, buf}));
  TRY(t.read_mem(buf, &ss, sizeof ss));
  th->mutable_altstack()->set_sp(ss.sp);
  th->mutable_altstack()->set_flags(ss.flags);
  th->mutable_altstack()->set_size(ss.size);
  th->set_no_new_privs(TRY(rs.must("prctl(PR_GET_NO_NEW_PRIVS)", SYS_prctl, {PR_GET_NO_NEW_PRIVS})) != 0);
  th->mutable_creds()->set_securebits(TRY(rs.must("prctl(PR_GET_SECUREBITS)", SYS_prctl, {PR_GET_SECUREBITS})));
  th->set_timerslack_ns(TRY(rs.must("prctl(PR_GET_TIMERSLACK)", SYS_prctl, {PR_GET_TIMERSLACK})));
  TRY(rs.must("prctl(PR_GET_PDEATHSIG)", SYS_prctl, {PR_GET_PDEATHSIG, buf}));
  int32_t pdeathsig;
  TRY(t.read_mem(buf, &pdeathsig, sizeof pdeathsig));
  th->set_pdeathsig(pdeathsig);
  return {};
}

// Credentials (from /proc, securebits from the thread itself), seccomp mode
// and filters, oldest first; a filter ckpt cannot read fails the dump (the
// task would come back less confined than it was).
Result<void> collect_creds_and_seccomp(Tracee& t, img::ThreadCore* th) {
  proc::Status st = TRY(proc::read_status(t.tid()));
  img::Creds* c = th->mutable_creds();
  for (pid_t id : st.uids) c->add_uids(id);
  for (pid_t id : st.gids) c->add_gids(id);
  for (pid_t id : st.groups) c->add_groups(id);
  c->set_cap_inh(st.cap_inh);
  c->set_cap_prm(st.cap_prm);
  c->set_cap_eff(st.cap_eff);
  c->set_cap_bnd(st.cap_bnd);
  c->set_cap_amb(st.cap_amb);
  th->set_seccomp_mode(st.seccomp);
  if (st.seccomp != 2) return {};
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

// What ptrace and /proc show of one thread.
Result<void> collect_thread_outside(Tracee& t, pid_t pid, img::ThreadCore* th) {
  const pid_t tid = t.tid();
  th->set_tid(tid);
  std::string comm = TRY(read_file(fmt::format("/proc/{}/task/{}/comm", pid, tid)));
  if (!comm.empty() && comm.back() == '\n') comm.pop_back();
  th->set_comm(comm);
  arch::Regs regs = TRY(t.regs());
  arch::rewind_restartable_syscall(regs, arch::Restart::Reexecute);
  arch::to_image(regs, th->mutable_regs());
  std::vector<uint8_t> xs = TRY(t.xstate());
  // Only up to the last component in use (restore pads it back with init state).
  xs.resize(arch::xsave_used_size(xs));
  th->set_xsave(std::string(xs.begin(), xs.end()));
  th->set_blocked(TRY(t.blocked()));
  for (const siginfo_t& si : TRY(t.pending(false))) *th->add_pending() = to_image(si);
  RseqConfig rseq = TRY(t.rseq());
  th->mutable_rseq()->set_abi_pointer(rseq.abi_pointer);
  th->mutable_rseq()->set_abi_size(rseq.abi_size);
  th->mutable_rseq()->set_signature(rseq.signature);
  th->mutable_rseq()->set_flags(rseq.flags);
  uint64_t head = 0;
  size_t len = 0;
  if (syscall(SYS_get_robust_list, tid, &head, &len) < 0) return sys_error("get_robust_list of thread {}", tid);
  TRY(collect_creds_and_seccomp(t, th));
  th->set_robust_list(head);
  th->set_robust_list_len(len);
  return {};
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

}  // namespace

Result<img::TaskCore> collect_core(std::vector<Tracee>& threads, uint64_t vdso_start, const Faults& faults) {
  Tracee& leader = threads[0];
  const pid_t pid = leader.tid();
  img::TaskCore core;
  core.set_pid(pid);
  proc::Status status = TRY(proc::read_status(pid));
  proc::Stat stat = TRY(proc::read_stat(pid));
  core.set_comm(stat.comm);
  core.set_umask(status.umask);
  core.set_cwd(TRY(read_link(fmt::format("/proc/{}/cwd", pid))));
  collect_mm(stat, core.mutable_mm());
  core.mutable_mm()->set_auxv(TRY(read_file(fmt::format("/proc/{}/auxv", pid))));
  core.mutable_mm()->set_exe_path(TRY(read_link(fmt::format("/proc/{}/exe", pid))));
  for (const siginfo_t& si : TRY(leader.pending(true))) *core.add_shared_pending() = to_image(si);

  // Outside first: remote syscalls change registers and masks until they end.
  for (Tracee& t : threads) TRY_CTX(collect_thread_outside(t, pid, core.add_threads()), "thread {}", t.tid());

  uint64_t insn = TRY(find_vdso_syscall(vdso_start));
  RemoteSyscalls leader_rs = TRY(RemoteSyscalls::begin(leader, insn));
  TRY(collect_process_inside(leader_rs, leader, &core));
  // While the leader runs our syscalls: its registers and mask are not its own.
  TRY(faults.at("remote-syscalls"));
  TRY_CTX(collect_thread_inside(leader_rs, leader, core.mutable_threads(0)), "thread {}", pid);
  // The leader's scratch page serves every thread: one address space.
  uint64_t scratch = TRY(leader_rs.scratch());
  for (size_t i = 1; i < threads.size(); i++) {
    RemoteSyscalls rs = TRY(RemoteSyscalls::begin(threads[i], insn, scratch));
    TRY_CTX(collect_thread_inside(rs, threads[i], core.mutable_threads(i)), "thread {}", threads[i].tid());
    TRY(rs.end());
  }
  TRY(leader_rs.end());
  return core;
}

}  // namespace ckpt::dump
