#include "restore/lazy.h"

#include <sys/socket.h>
#include <sys/un.h>

#include <algorithm>
#include <cstring>

#include "lazy/protocol.h"
#include "restore/lazy_watcher.h"

namespace ckpt::restore {

Result<LazyLink> LazyLink::connect(const image::ImageDir& dir) {
  const std::string path = dir.file(lazy::kSocketName);
  UniqueFd conn(socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
  if (!conn) return sys_error("lazy pages: socket");
  sockaddr_un a = lazy::socket_address(dir.fd());
  if (::connect(conn.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) < 0)
    return sys_error("lazy pages: no ckpt lazy-pages daemon listens on {} (start `ckpt lazy-pages -D DIR` first)",
                     path);
  // The daemon gets power over the tree's memory: it must be root's or ours.
  ucred cred{};
  socklen_t len = sizeof cred;
  if (getsockopt(conn.get(), SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
    return sys_error("lazy pages: credentials of the daemon at {}", path);
  if (cred.uid != 0 && cred.uid != geteuid())
    return error(EPERM, "lazy pages: the daemon at {} (pid {}) runs as uid {}, neither root nor us", path, cred.pid,
                 cred.uid);
  int pair[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) < 0) return sys_error("lazy pages: socketpair");
  return LazyLink(std::move(conn), UniqueFd(pair[0]), UniqueFd(pair[1]), path);
}

LazyLink::~LazyLink() {
  if (!conn_ || running_) return;
  const lazy::Control c{lazy::Control::kMagic, lazy::Control::kFailed};
  (void)!send(conn_.get(), &c, sizeof c, MSG_NOSIGNAL);  // best effort: a daemon gone needs no word
}

Result<void> LazyLink::start_watcher(pid_t root, const image::ImageDir& dir, bool detached) {
  UniqueFd log;
  if (detached) log = TRY_CTX(dir.dir().open_append_own("lazy-watch.log", 0600), "lazy pages");
  TRY_CTX(fork_lazy_watcher(conn_.get(), std::move(watch_recv_), root, path_, std::move(log)), "lazy pages");
  return {};
}

Result<void> LazyLink::running() {
  const lazy::Control c{lazy::Control::kMagic, lazy::Control::kRunning};
  if (send(conn_.get(), &c, sizeof c, MSG_NOSIGNAL) != static_cast<ssize_t>(sizeof c))
    return sys_error("lazy pages: tell the daemon at {} that every task runs", path_);
  running_ = true;
  return {};
}

void mark_lazy(const TaskImages& ti, BootRegion& boot, int daemon_fd, int watch_fd) {
  const lazy::LazyVmas lazy(ti.mm);
  abi::RestorerArgs* a = boot.args();
  auto* vmas = reinterpret_cast<abi::VmaArg*>(boot.staged(a->vmas));
  bool any = false;
  for (uint32_t i = 0; i < a->nr_vmas; i++) {
    vmas[i].lazy = vmas[i].has_pages && lazy.contains(vmas[i].start);
    any |= vmas[i].lazy;
  }
  if (!any) return;
  auto* runs = reinterpret_cast<abi::PageRunArg*>(boot.staged(a->runs));
  for (uint32_t i = 0; i < a->nr_runs; i++) runs[i].skip |= lazy.contains(runs[i].vaddr);
  auto* inh = reinterpret_cast<abi::InheritedRunArg*>(boot.staged(a->inherited));
  a->nr_inherited = static_cast<uint32_t>(
      std::remove_if(inh, inh + a->nr_inherited, [&](const abi::InheritedRunArg& r) { return lazy.contains(r.vaddr); }) -
      inh);
  a->lazy = 1;
  a->lazy_daemon_fd = daemon_fd;
  a->lazy_watch_fd = watch_fd;
}

}  // namespace ckpt::restore
