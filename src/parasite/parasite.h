// The parasite, host side: puts the blob of src/pie/parasite.cc into a
// seized task, talks to it, and cures the task of it.
//
// Injection (the main thread stopped, through remote syscalls): the task
// creates a memfd and maps it; ckpt takes the same memfd with pidfd_getfd
// and maps it too, so the blob, its arguments and results live in memory
// both see (sized by ckpt, on its copy). The task creates a unix socket
// pair, straight into the fd record at the start of that memory, and ckpt
// takes one end. The main thread then runs the daemon on the parasite's own
// stack, every signal blocked; the other threads stay stopped and are sent,
// kVisitSlots at a time, through a short visit that collects their own
// state, over a second socket pair the daemon makes for them.
//
// Cure with a breakpoint is restore's completion, the same code
// (src/ptrace/completion.h): the daemon, told to finish, closes its fds and
// calls rst_sigreturn with a frame of the task's own registers; ckpt catches
// it there, unmaps the parasite and loads those registers. Without one (as
// every dump cures: see dump.cc), ckpt stops the daemon in its wait for a
// command, loads the task's own state and takes the rest out from there
// with kill-safe remote syscalls (cure_from_outside: 5 stops). A dump that
// ends in a kill cures no task: park() it, and dismiss() once it is killed.
//
// If ckpt dies, the socket closes and the daemon returns into the same frame
// on its own (parasite_selfcure): the task goes on, the inert mapping stays.
// If ckpt dies before the daemon starts, the task goes on with the mapping
// and the sockets: the next dump takes both out (src/parasite/leftovers.h).
// If anything else goes wrong, rescue() undoes it all from outside.
#pragma once

#include <poll.h>

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "base/fault.h"
#include "base/log.h"
#include "base/mapping.h"
#include "base/owed.h"
#include "base/progress.h"
#include "base/result.h"
#include "base/unique_fd.h"
#include "pie/parasite_abi.h"
#include "ptrace/completion.h"
#include "ptrace/remote_syscall.h"
#include "ptrace/tracee.h"

namespace ckpt {

// The parasite's fds still open in the task, as its shared record says.
std::vector<int> parasite_fds(const abi::ParasiteRecord& a);

class Parasite {
 public:
  // How its mapping shows in /proc/PID/maps.
  static constexpr std::string_view kMemfdPath = "/memfd:ckpt-parasite";

  // `leader` is the stopped main thread; `site` where it runs the remote
  // syscalls that map the parasite in, and later take it out.
  static Result<Parasite> inject(Tracee& leader, const SyscallSite& site, CompletionMode mode, Log& log,
                                 const Faults& faults);
  Parasite(Parasite&& o) noexcept = default;
  Parasite& operator=(Parasite&&) = delete;
  // Cures the task if cure() was not called (or failed): never leaves it
  // with the parasite in it.
  ~Parasite();

  Result<const abi::ProcessState*> process_state();
  // What ckpt already read of a thread: a visit builds the frame the thread
  // would return through, were ckpt gone, from it instead of asking again.
  struct KnownState {
    std::span<const uint8_t> xsave;
    uint64_t sigmask;
  };
  // A thread's state as the parasite read it, valid until the next call.
  // The main thread's, from the daemon.
  Result<const abi::ThreadState*> main_thread_state();
  // The other stopped threads', kVisitSlots at a time, each visiting the
  // blob on its own stack: `take(i, state)` for threads[i].
  Result<void> visit(std::span<Tracee* const> threads, std::span<const KnownState> known,
                     const std::function<Result<void>(size_t, const abi::ThreadState&)>& take);
  // timer_gettime and timer_getoverrun of each id.
  Result<std::vector<abi::TimerState>> timers(std::span<const int32_t> ids);
  // The NUMA memory policy of the VMA at each policies[i].start, filled in.
  Result<void> policies(std::span<abi::MemPolicyArg> policies);
  // F_GETFD of each fds[i].fd, filled in.
  Result<void> fd_flags(std::span<abi::FdFlagsArg> fds);
  // Duplicates of the task's `task_fds`, sent over the socket.
  Result<std::vector<UniqueFd>> fds(std::span<const int32_t> task_fds);
  // Moves the pieces (at most kMaxDrainIov) of the task's memory into the
  // stream `out` (image/page_sink.h), zero-copy up to the page cache; fills
  // in their crc32c.
  Result<void> drain(std::span<abi::DrainIov> pieces, int out, Progress* progress = nullptr);
  // Moves the pieces into ckpt's pipe `pipe_w`, whose free room must hold
  // them all: the pages stay there, referenced and not copied, for ckpt to
  // write out once the task runs again (pre-dump). Their crc32c are of no
  // use then: the task may change a page before it is read from the pipe.
  Result<void> hold(std::span<abi::DrainIov> pieces, int pipe_w);
  // Takes the parasite out; returns the main thread's ptrace stops for it.
  Result<unsigned> cure();
  // No command follows but the cure: ckpt closes its ends of the page pipe
  // and the visit socket, and keeps the daemon's socket alone (a tree parked
  // for its kill holds one fd in ckpt per task).
  void park();
  // The task is killed with the parasite in it (a dump that ends in a kill
  // takes none out): nothing to cure; ckpt drops its side. On a task that
  // lives, the daemon would return into its frame as its socket closes.
  void dismiss() { drop(); }

  CompletionMode mode() const { return mode_; }
  // Where its mapping starts in the task.
  RemoteAddr base() const { return base_; }
  size_t size() const { return local_.size(); }
  // The task's mlockall(MCL_FUTURE) locked the parasite's mapping too.
  bool mapped_locked() const { return mapped_locked_; }

 private:
  struct Original {
    arch::Regs regs;  // to go on with: an interrupted syscall rewound
    std::vector<uint8_t> xsave;
    uint64_t sigmask;
  };
  Parasite(Tracee& leader, CompletionMode mode, Log& log, const Faults& faults)
      : leader_(&leader), mode_(mode), log_(&log), faults_(&faults) {}
  abi::ParasiteArgs* args() const;
  Result<void> map_into_task();
  Result<void> start();
  Result<void> send(abi::ParasiteMsg msg, int fd = -1);
  // Waits for the daemon's reply (and fds sent with it), watching that the
  // main thread neither dies nor stops meanwhile.
  Result<abi::ParasiteReply> receive(std::vector<UniqueFd>* fds = nullptr);
  Result<abi::ParasiteReply> call(abi::ParasiteCmd cmd, uint32_t count = 0);
  Result<void> move_drained(uint64_t total, int out, Progress* progress);
  Result<void> check_running(Tracee& t);
  Result<void> poll_while_running(std::span<pollfd> fds, Tracee& t);
  Result<void> poll_while_running(std::span<pollfd> fds, std::span<Tracee* const> running,
                                  std::vector<bool>* stopped = nullptr);
  Result<void> put_frame(size_t offset, size_t room, const arch::Regs& regs, std::span<const uint8_t> xsave,
                         uint64_t sigmask);
  Result<void> run_blob(Tracee& t, const arch::Regs& from, uint64_t entry, size_t stack_top, RemoteAddr arg2 = {});
  Result<void> visit_batch(std::span<Tracee* const> threads, std::span<const KnownState> known);
  Result<void> visits_done(std::span<Tracee* const> threads, std::vector<bool>* stopped);
  Error explain(Tracee& t, const Stop& s) const;
  Result<void> rescue();
  Result<unsigned> cure_from_outside();
  Result<void> visit_socket();
  // The parasite is out of the task: drop ckpt's side of it.
  void drop();

  Tracee* leader_;
  CompletionMode mode_;
  Log* log_;
  // Tests only, each of the task (point@PID): "inject" (mapped, not
  // started), "remote", "visit", "drain", "cure-state".
  const Faults* faults_;
  SyscallSite site_;
  RemoteAddr base_;  // in the task
  Mapping local_;      // the same memory in ckpt
  UniqueFd sock_;
  UniqueFd visit_sock_;
  UniqueFd pipe_r_;
  Original orig_;
  Owed in_;               // mapped in the task: cure or rescue owed
  bool running_ = false;  // the main thread runs the daemon (not in a ptrace stop)
  uint64_t locked_before_kib_ = 0;  // the task's VmLck before the parasite's mapping
  bool mapped_locked_ = false;
};

}  // namespace ckpt
