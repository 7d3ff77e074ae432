#include "restore/lazy_watcher.h"

#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "lazy/protocol.h"
#include "base/fs.h"
#include "base/scm.h"
#include "proc/status.h"

namespace ckpt::restore {

namespace {

// The root, then its descendants, parents first; all killed.
void kill_tree(int root_pidfd, pid_t root) {
  std::vector<pid_t> tasks = {root};
  for (size_t i = 0; i < tasks.size(); i++)
    if (auto kids = proc::children(tasks[i])) tasks.insert(tasks.end(), kids->begin(), kids->end());
  // Through the pidfd: the root's PID can't have been reused.
  syscall(SYS_pidfd_send_signal, root_pidfd, SIGKILL, nullptr, 0);
  for (size_t i = 1; i < tasks.size(); i++) kill(tasks[i], SIGKILL);
}

[[noreturn]] void watch(int conn, int root_pidfd, pid_t root, const std::string& path) {
  std::string why = "the lazy-pages daemon died";
  std::vector<UniqueFd> held;  // a forked child's userfaultfd: held until it is killed
  for (;;) {
    pollfd p = {conn, POLLIN, 0};
    if (poll(&p, 1, -1) < 0) {
      if (errno == EINTR) continue;
      why = fmt::format("poll the connection to the lazy-pages daemon: {}", strerror(errno));
      break;
    }
    lazy::Report r{};
    const ssize_t n = recv_with_fds(conn, &r, sizeof r, &held, 1);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
    if (n <= 0) break;  // hung up
    if (n != sizeof r || r.magic != lazy::Report::kMagic) continue;
    if (r.kind == lazy::Report::kDone) _exit(0);
    r.why[sizeof r.why - 1] = 0;
    why = fmt::format("the lazy-pages daemon gave up: {}", r.why);
  }
  // Said first: ckpt restore exits as soon as the root dies.
  const std::string msg =
      fmt::format("ckpt restore --lazy-pages: {} ({}) before every page of the restored tree was in: killed pid {} "
                  "and its descendants\n",
                  why, path, root);
  (void)!write(STDERR_FILENO, msg.data(), msg.size());
  kill_tree(root_pidfd, root);
  _exit(1);
}

}  // namespace

Result<void> fork_lazy_watcher(int conn, UniqueFd fds, pid_t root, const std::string& socket_path, UniqueFd log) {
  UniqueFd pidfd(static_cast<int>(syscall(SYS_pidfd_open, root, 0)));
  if (!pidfd) return sys_error("pidfd_open of pid {}", root);
  // Twice, so that the watcher is nobody's child in the tree's way (ckpt
  // restore waits for its root only) and nobody's zombie.
  const pid_t mid = fork();
  if (mid < 0) return sys_error("fork the lazy-pages watcher");
  if (mid == 0) {
    setsid();
    if (fork() != 0) _exit(0);
    prctl(PR_SET_NAME, "ckpt-lazy-watch");
    signal(SIGPIPE, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    if (log) dup2(log.get(), STDERR_FILENO);
    close_all_but({STDERR_FILENO, conn, fds.get(), pidfd.get()});
    watch(conn, pidfd.get(), root, socket_path);
  }
  int st;
  while (waitpid(mid, &st, 0) < 0)
    if (errno != EINTR) return sys_error("wait for the lazy-pages watcher's parent");
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) return error(ECHILD, "the lazy-pages watcher could not start");
  return {};
}

}  // namespace ckpt::restore
