#include "dump/uffd_keeper.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "base/fs.h"
#include "base/scm.h"

namespace ckpt::dump {

namespace {

// The socket's path through the directory's fd: short whatever the
// directory's own path (sun_path holds 108 bytes).
sockaddr_un address_in(int dirfd) {
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::snprintf(a.sun_path, sizeof a.sun_path, "/proc/self/fd/%d/%s", dirfd, kKeeperSocket);
  return a;
}

struct Request {
  int32_t pid;
};
struct Reply {
  int32_t err;  // 0: the fd comes with it
};

Result<void> send_fd(int sock, int32_t err, int fd) {
  const Reply r{err};
  if (send_with_fd(sock, &r, sizeof r, fd) < 0) return sys_error("send the userfaultfd");
  return {};
}

// The keeper's life: until the fd is handed over or the task is gone.
[[noreturn]] void keep(int dirfd, int listener, int pidfd, int uffd, pid_t pid) {
  for (;;) {
    pollfd p[2] = {{listener, POLLIN, 0}, {pidfd, POLLIN, 0}};
    if (poll(p, 2, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (p[1].revents) break;  // the task exited: nothing left to track
    if (!(p[0].revents & POLLIN)) continue;
    UniqueFd conn(accept4(listener, nullptr, nullptr, SOCK_CLOEXEC));
    if (!conn) continue;
    // Only ckpt (root, or the user the keeper runs as) gets the fd: it
    // gives power over the task's memory.
    ucred cred{};
    socklen_t len = sizeof cred;
    if (getsockopt(conn.get(), SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 || (cred.uid != 0 && cred.uid != geteuid()))
      continue;
    Request req{};
    if (recv(conn.get(), &req, sizeof req, 0) != static_cast<ssize_t>(sizeof req)) continue;
    if (req.pid != pid) {
      (void)send_fd(conn.get(), ESRCH, -1);
      continue;
    }
    if (send_fd(conn.get(), 0, uffd)) break;
  }
  unlinkat(dirfd, kKeeperSocket, 0);
  _exit(0);
}

}  // namespace

Result<pid_t> start_keeper(const image::ImageDir& dir, pid_t pid, UniqueFd uffd) {
  UniqueFd pidfd(static_cast<int>(syscall(SYS_pidfd_open, pid, 0)));
  if (!pidfd) return sys_error("pidfd_open of task {}", pid);
  UniqueFd listener(socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
  if (!listener) return sys_error("keeper socket");
  // A socket a dead keeper left is removed first (its name is ours).
  (void)dir.dir().remove(kKeeperSocket);
  sockaddr_un a = address_in(dir.fd());
  const mode_t old = umask(0077);
  const int b = bind(listener.get(), reinterpret_cast<sockaddr*>(&a), sizeof a);
  umask(old);
  if (b < 0) return sys_error("bind {}", dir.file(kKeeperSocket));
  if (listen(listener.get(), 4) < 0) return sys_error("listen on {}", dir.file(kKeeperSocket));

  const pid_t child = fork();
  if (child < 0) {
    (void)dir.dir().remove(kKeeperSocket);
    return sys_error("fork the userfaultfd keeper");
  }
  if (child == 0) {
    // Its own session: the terminal's signals and ckpt's exit leave it.
    setsid();
    prctl(PR_SET_NAME, "ckpt-uffd-keep");  // how ps names it
    signal(SIGPIPE, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    close_all_but({dir.fd(), listener.get(), pidfd.get(), uffd.get()});
    keep(dir.fd(), listener.get(), pidfd.get(), uffd.get(), pid);
  }
  return child;
}

Result<UniqueFd> take_from_keeper(const image::ImageDir& prev, pid_t pid) {
  UniqueFd sock(socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
  if (!sock) return sys_error("socket");
  sockaddr_un a = address_in(prev.fd());
  if (connect(sock.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) < 0)
    return sys_error("connect to the userfaultfd keeper at {}", prev.file(kKeeperSocket));
  Request req{pid};
  if (send(sock.get(), &req, sizeof req, MSG_NOSIGNAL) != static_cast<ssize_t>(sizeof req))
    return sys_error("ask the userfaultfd keeper at {}", prev.file(kKeeperSocket));
  Reply r{};
  std::vector<UniqueFd> fds;
  ssize_t n = recv_with_fds(sock.get(), &r, sizeof r, &fds, 1);
  if (n < 0) return sys_error("hear from the userfaultfd keeper at {}", prev.file(kKeeperSocket));
  if (n != static_cast<ssize_t>(sizeof r))
    return error(ECONNREFUSED, "the userfaultfd keeper at {} hung up", prev.file(kKeeperSocket));
  if (r.err) return error(r.err, "the userfaultfd keeper at {} keeps no fd for pid {}", prev.file(kKeeperSocket), pid);
  if (fds.size() != 1) return error(EPROTO, "the userfaultfd keeper at {} sent no fd", prev.file(kKeeperSocket));
  return std::move(fds[0]);
}

}  // namespace ckpt::dump
