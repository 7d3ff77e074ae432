#include "parasite/parasite.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstring>

#include "arch/x86_64/page.h"
#include "base/check.h"
#include "base/fs.h"
#include "base/scm.h"
#include "arch/x86_64/sigframe.h"
#include "arch/x86_64/uapi.h"
#include "arch/x86_64/xsave.h"
#include "image/crc32c.h"
#include "pie/parasite_blob.h"
#include "proc/status.h"
#include "ptrace/remote_syscall.h"

namespace ckpt {

namespace {

constexpr size_t kFrameArea = 64 << 10;  // a sigframe with the largest xsave area
constexpr size_t kStack = 64 << 10;
constexpr size_t kVisitStack = 16 << 10;
constexpr size_t kPipeSize = 1 << 20;  // fs.pipe-max-size's default: more needs CAP_SYS_RESOURCE
constexpr uint64_t kEflagsDf = 1 << 10;

// Where things are in the shared mapping: the blob, its arguments, the
// daemon's frame and stack, then a frame and a stack per visit slot, each
// frame as large as this machine's xsave area needs.
struct Layout {
  size_t args, frame, stack_top, visits, visit_frame_area, visit_slot, total;
  size_t visit_frame(size_t slot) const { return visits + slot * visit_slot; }
  size_t visit_stack_top(size_t slot) const { return visits + (slot + 1) * visit_slot; }
};
Layout layout() {
  Layout l;
  l.args = arch::page_up(std::max<size_t>(pie::parasite::k_blob_end, pie::parasite::image().size()));
  l.frame = l.args + arch::page_up(sizeof(abi::ParasiteArgs));
  l.stack_top = l.frame + kFrameArea + kStack;
  l.visits = l.stack_top;
  l.visit_frame_area = arch::page_up(arch::xsave_regset_size() + arch::kPageSize);  // + ucontext, siginfo, alignment
  l.visit_slot = l.visit_frame_area + kVisitStack;
  l.total = l.visit_frame(abi::kVisitSlots);
  return l;
}

const char* step_name(uint32_t step) {
  switch (step) {
    case abi::kPsVersion: return "ABI version check";
    case abi::kPsSigaction: return "rt_sigaction";
    case abi::kPsItimer: return "getitimer";
    case abi::kPsRlimit: return "prlimit64";
    case abi::kPsPrctl: return "prctl";
    case abi::kPsTimer: return "timer_gettime";
    case abi::kPsAltstack: return "sigaltstack";
    case abi::kPsVmsplice: return "vmsplice";
    case abi::kPsSendmsg: return "sendmsg";
    case abi::kPsRecvmsg: return "recvmsg";
    case abi::kPsUnknownCmd: return "command dispatch";
    case abi::kPsSocketpair: return "socketpair";
    case abi::kPsMempolicy: return "get_mempolicy";
    case abi::kPsFdFlags: return "F_GETFD";
  }
  return "an unknown step";
}

// Undoes, through remote syscalls, what a failed injection made in the task.
struct RemoteLeftovers {
  RemoteSyscalls& rs;
  int memfd = -1;
  uint64_t map = 0, len = 0;
  abi::ParasiteArgs* args = nullptr;  // once the fd record is there
  bool keep = false;
  ~RemoteLeftovers() {
    if (keep) return;
    if (memfd >= 0) (void)rs.call(SYS_close, {static_cast<uint64_t>(memfd)});
    if (args)
      for (int fd : parasite_fds(*args)) (void)rs.call(SYS_close, {static_cast<uint64_t>(fd)});
    if (map) (void)rs.call(SYS_munmap, {map, len});
  }
};

}  // namespace

std::vector<int> parasite_fds(const abi::ParasiteRecord& a) {
  std::vector<int> fds;
  for (int fd : {a.sock[0], a.sock[1], a.visit_sock[0], a.visit_sock[1], a.pipe, a.memfd})
    if (fd >= 0) fds.push_back(fd);
  return fds;
}

abi::ParasiteArgs* Parasite::args() const { return reinterpret_cast<abi::ParasiteArgs*>(local_.data() + layout().args); }

Result<Parasite> Parasite::inject(Tracee& leader, const SyscallSite& site, CompletionMode mode, Log& log,
                                  const Faults& faults) {
  Parasite p(leader, mode, log, faults);
  p.site_ = site;
  p.orig_.regs = TRY(leader.regs());
  // It goes on where it was: a syscall interrupted by the stop runs again.
  arch::rewind_restartable_syscall(p.orig_.regs, arch::Restart::InPlace);
  p.orig_.xsave = TRY(leader.xstate());
  p.orig_.sigmask = TRY(leader.blocked());
  TRY(p.map_into_task());
  // From here on the destructor takes it out again.
  p.in_ = true;
  TRY(faults.at("inject", leader.tid()));
  TRY(p.start());
  return p;
}

// In the task, through remote syscalls: a memfd mapped at base_ (code
// read-only, data not executable: W^X, and allowed under MDWE) and a unix
// socket pair; ckpt takes the memfd and one end with pidfd_getfd.
// What stays in the task is in the shared fd record from the moment it
// exists (socketpair writes its fds there), so that nothing is lost if ckpt
// is killed now. On failure leaves nothing.
Result<void> Parasite::map_into_task() {
  Tracee& t = *leader_;
  const pid_t pid = t.tid();
  const Layout l = layout();
  UniqueFd pidfd(static_cast<int>(syscall(SYS_pidfd_open, pid, 0)));
  if (!pidfd) return sys_error("pidfd_open({})", pid);
  locked_before_kib_ = TRY(proc::read_status(pid)).vm_lck_kib;
  RemoteSyscalls rs = TRY(RemoteSyscalls::begin(t, site_));
  if (!rs.kill_safe())
    log_->warn("task {}: no signal-restorer code or no room on its stack: killed now, ckpt would lose it", pid);
  RemoteLeftovers undo{rs};
  const RemoteAddr scratch = TRY(rs.scratch());
  const std::string name(kMemfdPath.substr(kMemfdPath.find(':') + 1));
  TRY(t.write_mem(scratch, name.c_str(), name.size() + 1));
  TRY(faults_->at("remote", leader_->tid()));  // hang:remote parks ckpt with the thread hijacked
  long memfd = TRY(rs.call(SYS_memfd_create, {scratch.raw(), MFD_CLOEXEC | uapi::kMfdNoexecSeal}));
  if (memfd == -EINVAL) memfd = TRY(rs.call(SYS_memfd_create, {scratch.raw(), MFD_CLOEXEC}));
  if (memfd < 0) return error(static_cast<int>(-memfd), "task {}: remote memfd_create", pid);
  undo.memfd = static_cast<int>(memfd);
  const uint64_t fd = static_cast<uint64_t>(memfd);
  // Sized from here: the same file, without a remote syscall.
  UniqueFd local_memfd = TRY_CTX(take_task_fd(pidfd.get(), pid, undo.memfd), "the parasite's memfd");
  if (ftruncate(local_memfd.get(), static_cast<off_t>(l.total)) < 0)
    return sys_error("task {}: ftruncate of the parasite's memfd", pid);
  base_ = RemoteAddr(
      TRY(rs.must("mmap of the parasite", SYS_mmap, {0, l.total, PROT_READ | PROT_EXEC, MAP_SHARED, fd, 0})));
  undo.map = base_.raw();
  undo.len = l.total;
  TRY(rs.must("mmap of the parasite's data", SYS_mmap,
              {(base_ + l.args).raw(), l.total - l.args, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, l.args}));
  local_ = TRY_CTX(Mapping::map(l.total, PROT_READ | PROT_WRITE, MAP_SHARED, local_memfd.get()),
                   "task {}: map the parasite's memfd into ckpt", pid);

  // From here on the record holds the memfd, which the daemon closes first
  // thing: no remote close.
  abi::ParasiteArgs* a = args();
  a->sock[0] = a->sock[1] = a->visit_sock[0] = a->visit_sock[1] = a->pipe = -1;
  a->memfd = undo.memfd;
  a->version = abi::kParasiteAbiVersion;  // a later dump trusts the record from here on
  undo.args = a;
  undo.memfd = -1;
  // The visit socket pair, only needed for a task with threads, is made by
  // the daemon on demand (visit_socket()).
  const RemoteAddr socks = base_ + l.args + offsetof(abi::ParasiteRecord, sock);
  TRY(rs.must("socketpair for the parasite", SYS_socketpair, {AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, socks.raw()}));
  sock_ = TRY_CTX(take_task_fd(pidfd.get(), pid, a->sock[abi::kCkptEnd]), "the parasite's socket");
  undo.keep = true;
  return rs.end();
}

// Blob and the frame back into the task's own state go into the shared
// memory; the main thread, armed, starts the daemon on its own stack. The
// daemon's first act is to close ckpt's ends of the socket pairs in the task.
Result<void> Parasite::start() {
  Tracee& t = *leader_;
  const Layout l = layout();
  auto blob = pie::parasite::image();
  std::memcpy(local_.data(), blob.data(), blob.size());
  abi::ParasiteArgs* a = args();
  for (const siginfo_t& si : TRY(t.pending(false))) a->sigpipe_pending |= si.si_signo == SIGPIPE;
  // Locked memory grew by the mapping only if the task locks all it maps.
  const proc::Status status = TRY(proc::read_status(t.tid()));
  a->seccomp = status.seccomp != 0;
  a->crc32c_hw = crc32c_hw();
  mapped_locked_ = status.vm_lck_kib > locked_before_kib_;
  TRY(put_frame(l.frame, kFrameArea, orig_.regs, orig_.xsave, orig_.sigmask));
  a->sigframe = (base_ + l.frame + arch::rt_sigframe_rsp_offset()).raw();

  // Armed while it is stopped: the daemon then runs until it hits it.
  if (mode_ == CompletionMode::Breakpoint &&
      TRY(arm_breakpoint(t, base_ + pie::parasite::k_rst_sigreturn)) == Armed::Unsupported) {
    log_->warn("task {}: no hardware breakpoint; the parasite is cured by tracing syscalls", t.tid());
    mode_ = CompletionMode::SyscallTrace;
  }
  TRY(run_blob(t, orig_.regs, pie::parasite::k_parasite_entry, l.stack_top));
  running_ = true;
  log_->debug("task {}: parasite at {:#x} ({} KiB), {} completion", t.tid(), base_, l.total >> 10,
              mode_ == CompletionMode::Breakpoint ? "breakpoint" : "syscall-trace");
  return {};
}

// A frame for rt_sigreturn into that state, at `offset` in the shared
// mapping, in `room` bytes.
Result<void> Parasite::put_frame(size_t offset, size_t room, const arch::Regs& regs, std::span<const uint8_t> xsave,
                                 uint64_t sigmask) {
  // The parasite never touches the sigaltstack: the frame leaves it as it is.
  auto frame =
      TRY(arch::build_rt_sigframe((base_ + offset).raw(), regs, xsave, sigmask, arch::AltStackState::unchanged()));
  if (frame.size() > room)
    return error(E2BIG, "task {}: a sigframe of {} bytes does not fit the parasite's {}", leader_->tid(),
                 frame.size(), room);
  std::memcpy(local_.data() + offset, frame.data(), frame.size());
  return {};
}

// Runs a stopped thread from `entry` in the blob on the stack ending at
// `stack_top`, the arguments in rdi (and `arg2` in rsi) and every signal
// blocked. orig_rax = -1: the kernel must not restart a syscall from these
// registers.
Result<void> Parasite::run_blob(Tracee& t, const arch::Regs& from, uint64_t entry, size_t stack_top, RemoteAddr arg2) {
  arch::Regs r = from;
  r.rip = (base_ + entry).raw();
  r.rsp = (base_ + stack_top).raw();
  r.rdi = (base_ + layout().args).raw();
  r.rsi = arg2.raw();
  r.orig_rax = static_cast<uint64_t>(-1);
  r.eflags &= ~kEflagsDf;  // the ABI the blob is compiled for
  // Registers first: a ckpt killed in between leaves the blob to run with
  // the task's own mask, which it returns to anyway, rather than the task's
  // own code with every signal blocked.
  TRY(t.set_regs(r));
  TRY(t.set_blocked(~0ULL));
  return t.cont();
}

Parasite::~Parasite() {
  if (!in_) return;
  auto cured = cure();
  if (cured) return;
  log_->warn("task {}: {}; taking the parasite out by force", leader_->tid(), cured.error().str());
  if (auto r = rescue(); !r) log_->error("task {}: {}", leader_->tid(), r.error().str());
}

Result<void> Parasite::send(abi::ParasiteMsg msg, int fd) {
  if (send_with_fd(sock_.get(), &msg, sizeof msg, fd) != sizeof msg)
    return sys_error("task {}: send command {} to the parasite", leader_->tid(), msg.cmd);
  return {};
}

// A thread running parasite code stops only if it crashed (a synchronous
// signal) or someone sent SIGSTOP, which is kept for after the dump.
Result<void> Parasite::check_running(Tracee& t) {
  auto s = t.wait(Tracee::Clock::now());
  if (!s && s.error().err == ETIMEDOUT) return {};
  if (!s) return std::unexpected(s.error());
  if (TRY(t.took_sigstop(*s, false))) return {};
  if (&t == leader_) running_ = false;
  if (s->gone()) return error(ESRCH, "task {} {} while the parasite ran", t.tid(), s->describe());
  return std::unexpected(explain(t, *s));
}

// Waits until one of `fds` is ready, making sure that `running`, which run
// parasite code meanwhile, have neither crashed nor died: whenever a tracee
// stops or dies (SIGCHLD), so that one stopped by job control goes on at
// once, and every 100 ms. `stopped`, if given, is set for a thread that
// stopped for good (it is not running any more).
Result<void> Parasite::poll_while_running(std::span<pollfd> fds, std::span<Tracee* const> running,
                                          std::vector<bool>* stopped) {
  ChildEvents events;
  std::vector<pollfd> all(fds.begin(), fds.end());
  all.push_back({TRY(events.fd()), POLLIN, 0});
  for (;;) {
    int n = poll(all.data(), all.size(), 100);
    if (n < 0 && errno != EINTR) return sys_error("task {}: poll the parasite's sockets", leader_->tid());
    bool ready = false;
    for (size_t i = 0; i < fds.size(); i++) ready |= (fds[i].revents = all[i].revents) != 0;
    if (ready) return {};
    events.drain();
    for (size_t i = 0; i < running.size(); i++) {
      if (stopped && (*stopped)[i]) continue;
      auto r = check_running(*running[i]);
      if (r) continue;
      if (stopped) (*stopped)[i] = true;
      return r;
    }
  }
}

Result<void> Parasite::poll_while_running(std::span<pollfd> fds, Tracee& t) {
  Tracee* one = &t;
  return poll_while_running(fds, {&one, 1});
}

Error Parasite::explain(Tracee& t, const Stop& s) const {
  auto regs = t.regs();
  const RemoteAddr rip(regs ? regs->rip : 0);
  std::string where = rip >= base_ && rip < base_ + size() ? fmt::format("parasite+{:#x}", rip - base_)
                                                          : fmt::format("{:#x}", rip);
  return Error{EFAULT, fmt::format("the parasite in task {} {} at {}", t.tid(), s.describe(), where)};
}

Result<abi::ParasiteReply> Parasite::receive(std::vector<UniqueFd>* fds) {
  for (;;) {
    pollfd pfd{sock_.get(), POLLIN, 0};
    TRY(poll_while_running({&pfd, 1}, *leader_));
    abi::ParasiteReply r;
    ssize_t got = recv_with_fds(sock_.get(), &r, sizeof r, fds, abi::kMaxFdsPerCall);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) return sys_error("task {}: read the parasite's reply", leader_->tid());
    if (got == 0) {
      TRY(check_running(*leader_));
      return error(ECONNRESET, "task {}: the parasite closed its socket", leader_->tid());
    }
    if (got != sizeof r) return error(EPROTO, "task {}: a reply of {} bytes from the parasite", leader_->tid(), got);
    if (r.err)
      return error(r.err, "task {}: the parasite's {} (item {}) failed", leader_->tid(), step_name(r.step), r.index);
    return r;
  }
}

Result<abi::ParasiteReply> Parasite::call(abi::ParasiteCmd cmd, uint32_t count) {
  TRY(send({cmd, count}));
  return receive();
}

Result<const abi::ProcessState*> Parasite::process_state() {
  TRY(call(abi::kParasiteProcess));
  return &args()->process;
}

Result<const abi::ThreadState*> Parasite::main_thread_state() {
  TRY(call(abi::kParasiteThread));
  return &args()->thread;
}

Result<void> Parasite::visit_socket() {
  if (visit_sock_) return {};
  std::vector<UniqueFd> got;
  TRY(send({abi::kParasiteVisitSock, 0}));
  TRY(receive(&got));
  if (got.size() != 1)
    return error(EPROTO, "task {}: the parasite sent {} fds for its visit socket", leader_->tid(), got.size());
  visit_sock_ = std::move(got[0]);
  return {};
}

Result<void> Parasite::visit(std::span<Tracee* const> threads, std::span<const KnownState> known,
                             const std::function<Result<void>(size_t, const abi::ThreadState&)>& take) {
  if (threads.empty()) return {};
  TRY(visit_socket());
  CHECK(threads.size() == known.size(), "task {}: {} threads, {} known states", leader_->tid(), threads.size(),
        known.size());
  for (size_t at = 0; at < threads.size(); at += abi::kVisitSlots) {
    const size_t n = std::min<size_t>(threads.size() - at, abi::kVisitSlots);
    TRY(visit_batch(threads.subspan(at, n), known.subspan(at, n)));
    for (size_t i = 0; i < n; i++) {
      TRY_CTX(take(at + i, args()->visits[i].state), "thread {}", threads[at + i]->tid());
    }
  }
  return {};
}

// Sends stopped threads, one per slot, through parasite_thread_entry and
// back, all at once. Each says when its state is collected and waits; ckpt
// interrupts that wait and puts its registers and mask back, where the
// kernel still restarts a syscall they were in. Were ckpt gone, the wait
// would end and the thread return through its slot's frame of its own
// state. Every thread sent is taken back, whatever fails. The blob touches
// no FPU state.
Result<void> Parasite::visit_batch(std::span<Tracee* const> threads,
                                   std::span<const KnownState> known) {
  const Layout l = layout();
  std::vector<arch::Regs> saved;
  saved.reserve(threads.size());
  std::vector<bool> stopped(threads.size(), false);  // for good: crashed or gone
  auto send_and_wait = [&]() -> Result<void> {
    for (size_t i = 0; i < threads.size(); i++) {
      Tracee& t = *threads[i];
      const arch::Regs regs = TRY(t.regs());
      arch::Regs resume = regs;
      arch::rewind_restartable_syscall(resume, arch::Restart::InPlace);
      TRY(put_frame(l.visit_frame(i), l.visit_frame_area, resume, known[i].xsave, known[i].sigmask));
      abi::VisitSlot& slot = args()->visits[i];
      slot.frame = (base_ + l.visit_frame(i) + arch::rt_sigframe_rsp_offset()).raw();
      slot.state.err = 0;
      const RemoteAddr slot_addr = base_ + static_cast<uint64_t>(reinterpret_cast<const char*>(&slot) - local_.data());
      saved.push_back(regs);
      // Not resumed, if it failed: stopped with (some of) the blob's registers.
      if (auto r = run_blob(t, regs, pie::parasite::k_parasite_thread_entry, l.visit_stack_top(i), slot_addr); !r) {
        stopped[i] = true;
        return r;
      }
    }
    TRY(visits_done(threads, &stopped));
    return faults_->at("visit", leader_->tid());
  };
  Result<void> sent = send_and_wait();
  // Take back every thread that got into the blob: interrupt those that run
  // first, so that they stop while ckpt waits for the others.
  Result<void> back;
  auto keep_first = [&](Result<void> r) {
    if (!r && back) back = std::move(r);
  };
  for (size_t i = 0; i < saved.size(); i++)
    if (!stopped[i]) keep_first(threads[i]->interrupt());
  for (size_t i = 0; i < saved.size(); i++) {
    Tracee& t = *threads[i];
    if (!stopped[i]) {
      auto s = t.wait_past_sigstop(false);
      if (!s) {
        keep_first(std::unexpected(s.error()));
        continue;
      }
      if (s->gone()) {
        keep_first(error(ESRCH, "thread {} {} in the parasite", t.tid(), s->describe()));
        continue;
      }
    }
    // Stopped: taken back from its wait, or where it crashed. Mask first: a
    // ckpt killed in between leaves the thread in the blob, which returns
    // through its frame, not in its own code with every signal blocked.
    keep_first(t.set_blocked(known[i].sigmask));
    keep_first(t.set_regs(saved[i]));
  }
  TRY(sent);
  TRY(back);
  for (size_t i = 0; i < threads.size(); i++)
    if (const abi::ThreadState& st = args()->visits[i].state; st.err)
      return error(st.err, "thread {}: the parasite's {} failed", threads[i]->tid(), step_name(st.step));
  return {};
}

// Waits for every visited thread's word that its state is collected.
Result<void> Parasite::visits_done(std::span<Tracee* const> threads, std::vector<bool>* stopped) {
  for (size_t got_all = 0; got_all < threads.size();) {
    pollfd pfd{visit_sock_.get(), POLLIN, 0};
    TRY(poll_while_running({&pfd, 1}, threads, stopped));
    char done;
    ssize_t got = recv(visit_sock_.get(), &done, 1, MSG_DONTWAIT);
    if (got == 1) {
      got_all++;
      continue;
    }
    if (got < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (got < 0) return sys_error("task {}: read the parasite's visit socket", leader_->tid());
    return error(ECONNRESET, "task {}: the parasite's visit socket closed", leader_->tid());
  }
  return {};
}

Result<std::vector<abi::TimerState>> Parasite::timers(std::span<const int32_t> ids) {
  std::vector<abi::TimerState> out;
  for (size_t at = 0; at < ids.size(); at += abi::kMaxTimersPerCall) {
    const size_t n = std::min<size_t>(ids.size() - at, abi::kMaxTimersPerCall);
    for (size_t i = 0; i < n; i++) args()->timers[i] = {.id = ids[at + i]};
    TRY(call(abi::kParasiteTimers, static_cast<uint32_t>(n)));
    out.insert(out.end(), args()->timers, args()->timers + n);
  }
  return out;
}

Result<void> Parasite::policies(std::span<abi::MemPolicyArg> policies) {
  for (size_t at = 0; at < policies.size(); at += abi::kMaxPoliciesPerCall) {
    const size_t n = std::min<size_t>(policies.size() - at, abi::kMaxPoliciesPerCall);
    std::copy_n(policies.begin() + at, n, args()->policies);
    TRY_CTX(call(abi::kParasitePolicies, static_cast<uint32_t>(n)), "the VMAs from {:#x} to {:#x}",
            policies[at].start, policies[at + n - 1].end);
    std::copy_n(args()->policies, n, policies.begin() + at);
  }
  return {};
}

Result<void> Parasite::fd_flags(std::span<abi::FdFlagsArg> fds) {
  for (size_t at = 0; at < fds.size(); at += abi::kMaxFdFlagsPerCall) {
    const size_t n = std::min<size_t>(fds.size() - at, abi::kMaxFdFlagsPerCall);
    std::copy_n(fds.begin() + at, n, args()->fd_flags);
    TRY_CTX(call(abi::kParasiteFdFlags, static_cast<uint32_t>(n)), "fds {} to {}", fds[at].fd, fds[at + n - 1].fd);
    std::copy_n(args()->fd_flags, n, fds.begin() + at);
  }
  return {};
}

Result<std::vector<UniqueFd>> Parasite::fds(std::span<const int32_t> task_fds) {
  std::vector<UniqueFd> out;
  for (size_t at = 0; at < task_fds.size(); at += abi::kMaxFdsPerCall) {
    const size_t n = std::min<size_t>(task_fds.size() - at, abi::kMaxFdsPerCall);
    std::copy_n(task_fds.begin() + at, n, args()->fds);
    TRY(send({abi::kParasiteSendFds, static_cast<uint32_t>(n)}));
    const size_t before = out.size();
    TRY(receive(&out));
    if (out.size() - before != n)
      return error(EPROTO, "task {}: asked the parasite for {} fds, got {}", leader_->tid(), n, out.size() - before);
  }
  return out;
}

Result<void> Parasite::drain(std::span<abi::DrainIov> pieces, int out, Progress* progress) {
  if (pieces.size() > abi::kMaxDrainIov)
    return error(E2BIG, "task {}: {} pieces in one drain (at most {})", leader_->tid(), pieces.size(),
                 abi::kMaxDrainIov);
  if (!pipe_r_) {
    int p[2];
    if (pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0) return sys_error("task {}: pipe for the parasite", leader_->tid());
    UniqueFd r(p[0]), w(p[1]);
    (void)fcntl(w.get(), F_SETPIPE_SZ, kPipeSize);  // a smaller pipe only costs more round trips
    TRY(send({abi::kParasiteTakePipe, 0}, w.get()));
    TRY(receive());
    pipe_r_ = std::move(r);
  }
  uint64_t total = 0;
  for (size_t i = 0; i < pieces.size(); i++) {
    args()->iov[i] = pieces[i];
    total += pieces[i].len;
  }
  TRY(send({abi::kParasiteDrain, static_cast<uint32_t>(pieces.size())}));
  // A drain that fails half-way leaves the daemon in a vmsplice on a full
  // pipe: closing the pipe breaks it off, so that the cure can follow.
  if (auto moved = move_drained(total, out, progress); !moved) {
    pipe_r_.reset();
    return std::unexpected(moved.error());
  }
  for (size_t i = 0; i < pieces.size(); i++) pieces[i].crc32c = args()->iov[i].crc32c;
  return {};
}

Result<void> Parasite::hold(std::span<abi::DrainIov> pieces, int pipe_w) {
  if (pieces.size() > abi::kMaxDrainIov)
    return error(E2BIG, "task {}: {} pieces in one drain (at most {})", leader_->tid(), pieces.size(),
                 abi::kMaxDrainIov);
  // The daemon drains into the last pipe it took: this one, from now on.
  TRY(send({abi::kParasiteTakePipe, 0}, pipe_w));
  TRY(receive());
  pipe_r_.reset();
  for (size_t i = 0; i < pieces.size(); i++) args()->iov[i] = pieces[i];
  TRY(call(abi::kParasiteDrain, static_cast<uint32_t>(pieces.size())));
  return {};
}

// Splices what the daemon puts into the pipe into `out` (a stream: file
// position, socket or pipe) until it has all `total` bytes and the daemon's
// reply.
Result<void> Parasite::move_drained(uint64_t total, int out, Progress* progress) {
  bool replied = false;
  for (uint64_t moved = 0; moved < total || !replied;) {
    pollfd pfd[2] = {{pipe_r_.get(), POLLIN, 0}, {sock_.get(), POLLIN, 0}};
    TRY(poll_while_running({pfd, replied ? 1u : 2u}, *leader_));
    if (pfd[0].revents & (POLLIN | POLLHUP)) {
      ssize_t got = splice(pipe_r_.get(), nullptr, out, nullptr, total - moved, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
      if (got < 0 && errno != EAGAIN) return sys_error("splice task {}'s memory into the pages image", leader_->tid());
      if (got == 0) return error(EPIPE, "task {}: the parasite's pipe closed mid-drain", leader_->tid());
      if (got > 0) {
        moved += static_cast<uint64_t>(got);
        if (progress) progress->add(static_cast<uint64_t>(got));
      }
      if (moved < total) TRY(faults_->at("drain", leader_->tid()));
    }
    if (!replied && (pfd[1].revents & (POLLIN | POLLHUP))) {
      TRY(receive());
      replied = true;
    }
  }
  return {};
}

Result<unsigned> Parasite::cure() {
  if (!in_) return 0u;
  Tracee& t = *leader_;
  // Never started, or stopped where it cannot finish by itself: rescue().
  if (!running_) return error(ESRCH, "task {}: the parasite does not run", t.tid());
  TRY(check_running(t));  // a SIGSTOP taken meanwhile is kept; a crash ends here
  if (mode_ == CompletionMode::SyscallTrace) return cure_from_outside();
  CompletionTask task{&t, {orig_.regs, orig_.xsave, orig_.sigmask}};
  task.running = mode_ == CompletionMode::Breakpoint;
  const CompletionSite site{base_ + pie::parasite::k_rst_sigreturn, base_ + pie::parasite::k_rst_syscall, base_,
                            local_.size(), false, site_};
  auto release = [&]() { return send({abi::kParasiteFinish, 0}); };
  running_ = false;
  TRY(complete({&task, 1}, mode_, site, release, [&](Tracee& tr, const Stop& s) { return explain(tr, s); }));
  drop();
  return task.stops;
}

// Without a breakpoint, 5 stops instead of tracing the daemon's way out
// syscall by syscall (~12):
//   1. the daemon closes all its fds but its socket, and waits there for
//      the next command: ckpt interrupts that wait;
//   2. ckpt loads the task's own state, as rt_sigreturn would;
//   3-4. from that state, a kill-safe remote close of the daemon's socket;
//   5-6. and a remote munmap of the parasite.
// Killed before 2, ckpt closes its end of the socket and the daemon returns
// through its frame (parasite_selfcure); after 2, the task runs its own code
// and the next dump removes what is left (src/parasite/leftovers.h).
Result<unsigned> Parasite::cure_from_outside() {
  Tracee& t = *leader_;
  const unsigned before = t.stops();
  TRY(call(abi::kParasiteCloseExtras));
  TRY(t.interrupt());
  Stop s = TRY(t.wait_past_sigstop(false));
  running_ = false;
  if (s.gone()) return error(ESRCH, "task {} {} before the parasite's cure", t.tid(), s.describe());
  TRY(load_final_state(t, {orig_.regs, orig_.xsave, orig_.sigmask},
                       [&] { return faults_->at("cure-state", t.tid()); }));
  {
    RemoteSyscalls rs = TRY(RemoteSyscalls::begin(t, site_));
    int32_t& sock = args()->sock[abi::kTaskEnd];
    TRY(rs.must(fmt::format("close of the parasite's socket (fd {})", sock), SYS_close, {static_cast<uint64_t>(sock)}));
    sock = -1;
    TRY(rs.must(fmt::format("munmap of the parasite at {:#x}-{:#x}", base_, base_ + local_.size()), SYS_munmap,
                {base_.raw(), local_.size()}));
    TRY(rs.end());
  }
  drop();
  return t.stops() - before;
}

void Parasite::park() {
  pipe_r_.reset();
  visit_sock_.reset();
}

void Parasite::drop() {
  in_ = false;
  local_.reset();
  sock_.reset();
  visit_sock_.reset();
  pipe_r_.reset();
}

// The daemon crashed, hangs or cannot be reached: stop the main thread
// wherever it is, close the daemon's fds and unmap it from outside, and
// load the task's own state.
Result<void> Parasite::rescue() {
  in_ = false;
  Tracee& t = *leader_;
  if (!t.regs()) {  // PTRACE_GETREGS works on a stopped tracee only
    TRY(t.interrupt());
    Stop s = TRY(t.wait());
    if (s.gone()) return error(ESRCH, "task {} {} while ckpt took its parasite out", t.tid(), s.describe());
  }
  running_ = false;
  TRY(disarm_breakpoint_if_supported(t));  // armed only where breakpoints work
  {
    RemoteSyscalls rs = TRY(RemoteSyscalls::begin(t, site_));
    // EBADF: the daemon closed it itself, and was stopped before it wrote
    // -1 in the record (no other thread runs to take the number meanwhile).
    for (int fd : parasite_fds(*args()))
      if (const long r = TRY(rs.call(SYS_close, {static_cast<uint64_t>(fd)})); r < 0 && r != -EBADF)
        return error(static_cast<int>(-r), "task {}: remote close of the parasite's fd {}", t.tid(), fd);
    TRY(rs.must(fmt::format("munmap of the parasite at {:#x}-{:#x}", base_, base_ + local_.size()), SYS_munmap,
                {base_.raw(), local_.size()}));
    TRY(rs.end());
  }
  TRY(load_final_state(t, {orig_.regs, orig_.xsave, orig_.sigmask}));
  drop();
  return {};
}

}  // namespace ckpt
