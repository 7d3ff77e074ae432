#include "ptrace/watcher.h"

#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/fs.h"
#include "pie/sys.h"
#include "ptrace/on_cpu.h"

namespace ckpt {

struct Watcher::State {
  // What the watcher reads, set before it starts and never changed while it
  // may run (ckpt closes its end before it reaps the watcher).
  Act act = nullptr;
  const void* arg = nullptr;
  int watcher_fd = -1;
  // Every fd of its copy of ckpt's table but its own: a copy would keep
  // ckpt's files (a stand-in bound at a socket's port, a pipe's end) alive
  // after ckpt closes them.
  std::vector<std::pair<unsigned, unsigned>> closes;
  UniqueFd ckpt_end, watcher_end;
  Mapping stack;
  pid_t pid = 0;
};

namespace {

constexpr size_t kStackSize = 64 * 1024;

int watch(void* arg) {
  const auto* s = static_cast<const Watcher::State*>(arg);
  for (auto [lo, hi] : s->closes) pie::sys(SYS_close_range, lo, hi, 0);
  const char ready = 'R';
  pie::sys(SYS_sendto, s->watcher_fd, &ready, 1, MSG_NOSIGNAL, nullptr, 0);
  char byte;
  long n;
  do n = pie::sys(SYS_recvfrom, s->watcher_fd, &byte, 1, 0, nullptr, nullptr);
  while (n == -EINTR);
  if (n == 0) s->act(s->arg);  // end-of-file: no commit
  pie::sys(SYS_exit, 0);
  return 0;
}

}  // namespace

Result<Watcher> Watcher::start(Act act, const void* arg, std::vector<int> keep, std::string what) {
  auto s = std::make_unique<State>();
  s->act = act;
  s->arg = arg;
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) return sys_error("socketpair for the {}", what);
  s->ckpt_end = UniqueFd(sv[0]);
  s->watcher_end = UniqueFd(sv[1]);
  s->watcher_fd = sv[1];
  keep.push_back(s->watcher_fd);
  s->closes = fd_ranges_but(std::move(keep));
  s->stack = TRY_CTX(Mapping::anonymous(kStackSize), "the {}'s stack", what);
  // Blocked here, inherited by the watcher, unblocked again for ckpt.
  sigset_t terminal, old;
  sigemptyset(&terminal);
  for (int sig : {SIGINT, SIGQUIT, SIGTERM, SIGHUP, SIGPIPE, SIGTSTP}) sigaddset(&terminal, sig);
  pthread_sigmask(SIG_BLOCK, &terminal, &old);
  int err = 0;
  {
    // On ckpt's CPU (watcher.h): it inherits the pin, ckpt gets its own
    // affinity back. Waking the other CPU from idle is a VM exit here: 0.1
    // ms more a tiny dump, whose kill the watcher makes.
    OnCpu here;
    if (!here.cpus().empty()) here.go(here.cpus()[0]);
    s->pid = clone(watch, s->stack.data() + kStackSize, CLONE_VM | SIGCHLD, s.get());
    err = errno;
  }
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  if (s->pid < 0) return error(err, "clone the {}", what);
  // A process group of its own: a SIGKILL to ckpt's group (timeout(1) sends
  // its signal to its whole group) must not take the watcher with ckpt.
  const pid_t pid = s->pid;
  Watcher w(std::move(s));
  if (setpgid(pid, pid) < 0) return sys_error("put the {} {} in a process group of its own", what, pid);
  char ready;
  ssize_t n;
  do n = recv(w.s_->ckpt_end.get(), &ready, 1, 0);
  while (n < 0 && errno == EINTR);
  if (n < 0) return sys_error("wait for the {} {}", what, pid);
  if (n == 0) return error(ECHILD, "the {} {} ended before it was ready", what, pid);
  return w;
}

Watcher::Watcher(std::unique_ptr<State> s) : s_(std::move(s)) {}
Watcher::Watcher(Watcher&&) noexcept = default;

Watcher::~Watcher() { end(); }

void Watcher::commit() {
  if (!s_) return;
  // MSG_NOSIGNAL: a watcher killed by someone else is no reason for ckpt to die.
  (void)send(s_->ckpt_end.get(), "C", 1, MSG_NOSIGNAL);
  end();
}

// End-of-file, unless the commit byte came first; the watcher is reaped
// before anything it reads is freed.
void Watcher::end() {
  if (!s_) return;
  s_->ckpt_end.reset();
  while (waitpid(s_->pid, nullptr, __WALL) < 0 && errno == EINTR) {
  }
  s_.reset();
}

}  // namespace ckpt
