// restore --lazy-pages, ckpt restore's side: the tree starts with its
// private anonymous memory left to `ckpt lazy-pages` (lazy/daemon.h).
//
//   1. Before any task exists, connect to the daemon at DIR/lazy-pages.sock:
//      no daemon, no restore.
//   2. Each task's plan marks its lazy VMAs (lazy/protocol.h: lazy_vma) and
//      their page runs; its restorer maps them empty, registers them with a
//      userfaultfd (missing mode) and sends that fd to the daemon and to the
//      watcher before it goes on (pie/restorer.cc, register_lazy).
//   3. Once the tree exists, the watcher (restore/lazy_watcher.h) takes over
//      the guard against a daemon that dies.
//   4. Once every restorer is through, the daemon hears that no more fds
//      come (Control::kRunning); if the restore fails, that it is over
//      (kFailed).
#pragma once

#include <sys/types.h>

#include "base/result.h"
#include "base/unique_fd.h"
#include "image/image_dir.h"
#include "restore/boot_region.h"
#include "restore/images.h"

namespace ckpt::restore {

class LazyLink {
 public:
  static Result<LazyLink> connect(const image::ImageDir& dir);
  LazyLink(LazyLink&&) = default;
  LazyLink& operator=(LazyLink&&) = default;
  ~LazyLink();

  // What the restorers send their userfaultfd on (ckpt's fds: passed to
  // each task as temporary fds).
  int daemon_fd() const { return conn_.get(); }
  int watch_fd() const { return watch_send_.get(); }

  // Forks the watcher of the tree whose root (or --pidns init) is `root`,
  // as ckpt sees it. It says why it killed the tree on ckpt's stderr, or
  // with -d (`detached`: ckpt is gone, and a pipe on its stderr must close)
  // in DIR/lazy-watch.log.
  Result<void> start_watcher(pid_t root, const image::ImageDir& dir, bool detached);
  // Every restorer is through: the daemon has every fd it will get.
  Result<void> running();

 private:
  LazyLink(UniqueFd conn, UniqueFd send, UniqueFd recv, std::string path)
      : conn_(std::move(conn)), watch_send_(std::move(send)), watch_recv_(std::move(recv)), path_(std::move(path)) {}
  UniqueFd conn_, watch_send_, watch_recv_;
  std::string path_;  // of the socket, for errors
  bool running_ = false;
};

// Marks the lazy VMAs of the task and their page runs in its boot region
// (the restorer skips their bytes) and drops its inherited runs that lie in
// them (the daemon serves those too); `daemon_fd` and `watch_fd` are the
// task's numbers of LazyLink's fds.
void mark_lazy(const TaskImages& ti, BootRegion& boot, int daemon_fd, int watch_fd);

}  // namespace ckpt::restore
