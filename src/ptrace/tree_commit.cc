#include "ptrace/tree_commit.h"

#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/fs.h"
#include "base/mapping.h"
#include "base/unique_fd.h"
#include "pie/sys.h"

namespace ckpt {

struct TreeCommit::Watcher {
  std::vector<UniqueFd> pidfds;
  UniqueFd ckpt_end, watcher_end;
  // What the watcher reads, set before it starts and never changed while it
  // may run (ckpt resets its UniqueFds before it reaps the watcher).
  int watcher_fd = -1;
  std::optional<KillIf> kill_if;
  // Every fd of its copy of ckpt's table but its own: a copy would keep
  // ckpt's files (a stand-in bound at a socket's port, a pipe's end) alive
  // after ckpt closes them.
  std::vector<std::pair<unsigned, unsigned>> closes;
  Mapping stack;
  pid_t pid = 0;
};

namespace {

constexpr size_t kStackSize = 64 * 1024;

// Runs in the watcher, on its own stack, in ckpt's memory and with the TLS
// of ckpt's thread: raw syscalls only, not even libc's syscall(), whose
// errno is that thread's.
int watch_tree(void* arg) {
  const auto* w = static_cast<const TreeCommit::Watcher*>(arg);
  for (auto [lo, hi] : w->closes) pie::sys(SYS_close_range, lo, hi, 0);
  const char ready = 'R';
  pie::sys(SYS_sendto, w->watcher_fd, &ready, 1, MSG_NOSIGNAL, nullptr, 0);
  char byte;
  long n;
  do n = pie::sys(SYS_recvfrom, w->watcher_fd, &byte, 1, 0, nullptr, nullptr);
  while (n == -EINTR);
  const bool kill = n == 0 &&  // end-of-file: no commit
                    (!w->kill_if || pie::sys(SYS_faccessat, w->kill_if->dir_fd, w->kill_if->name.c_str(), F_OK) == 0);
  if (kill)
    for (const UniqueFd& fd : w->pidfds) pie::sys(SYS_pidfd_send_signal, fd.get(), SIGKILL, nullptr, 0);
  pie::sys(SYS_exit, 0);
  return 0;
}

}  // namespace

Result<TreeCommit> TreeCommit::watch(const std::vector<pid_t>& tasks, std::optional<KillIf> kill_if) {
  auto w = std::make_unique<Watcher>();
  w->kill_if = std::move(kill_if);
  for (pid_t p : tasks) {
    UniqueFd fd(static_cast<int>(syscall(SYS_pidfd_open, p, 0)));
    if (fd) w->pidfds.push_back(std::move(fd));
    else if (errno != ESRCH) return sys_error("pidfd_open of pid {}", p);
  }
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) return sys_error("socketpair for the commit");
  w->ckpt_end = UniqueFd(sv[0]);
  w->watcher_end = UniqueFd(sv[1]);
  w->watcher_fd = sv[1];
  std::vector<int> keep{w->watcher_fd};
  for (const UniqueFd& fd : w->pidfds) keep.push_back(fd.get());
  if (w->kill_if) keep.push_back(w->kill_if->dir_fd);
  w->closes = fd_ranges_but(std::move(keep));
  w->stack = TRY_CTX(Mapping::anonymous(kStackSize), "the commit watcher's stack");
  // Blocked here, inherited by the watcher, unblocked again for ckpt.
  sigset_t terminal, old;
  sigemptyset(&terminal);
  for (int s : {SIGINT, SIGQUIT, SIGTERM, SIGHUP, SIGPIPE, SIGTSTP}) sigaddset(&terminal, s);
  pthread_sigmask(SIG_BLOCK, &terminal, &old);
  w->pid = clone(watch_tree, w->stack.data() + kStackSize, CLONE_VM | SIGCHLD, w.get());
  const int err = errno;
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  if (w->pid < 0) return error(err, "clone the commit watcher");
  // A process group of its own: a SIGKILL to ckpt's group (timeout(1) sends
  // its signal to its whole group) must not take the watcher with ckpt.
  // Killed together before this, nothing was let go yet (nor, at dump, was
  // the inventory written).
  const pid_t pid = w->pid;
  TreeCommit c(std::move(w));
  if (setpgid(pid, pid) < 0) return sys_error("put the commit watcher {} in a process group of its own", pid);
  // Returned once the watcher holds no file of ckpt's but its own.
  char ready;
  ssize_t n;
  do n = recv(c.w_->ckpt_end.get(), &ready, 1, 0);
  while (n < 0 && errno == EINTR);
  if (n < 0) return sys_error("wait for the commit watcher {}", pid);
  if (n == 0) return error(ECHILD, "the commit watcher {} ended before it was ready", pid);
  return c;
}

TreeCommit::TreeCommit(std::unique_ptr<Watcher> w) : w_(std::move(w)) {}
TreeCommit::TreeCommit(TreeCommit&&) noexcept = default;

TreeCommit::~TreeCommit() { kill(); }

void TreeCommit::commit() {
  if (!w_) return;
  // MSG_NOSIGNAL: a watcher killed by someone else is no reason for ckpt to die.
  (void)send(w_->ckpt_end.get(), "C", 1, MSG_NOSIGNAL);
  kill();
}

// End-of-file, unless the commit byte came first; the watcher is reaped
// before anything it reads is freed.
void TreeCommit::kill() {
  if (!w_) return;
  w_->ckpt_end.reset();
  while (waitpid(w_->pid, nullptr, __WALL) < 0 && errno == EINTR) {
  }
  w_.reset();
}

}  // namespace ckpt
