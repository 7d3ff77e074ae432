// ckpt lazy-pages -D DIR [--page-server ...]: serve the memory of one
// restore --lazy-pages of DIR's checkpoint on demand (lazy/daemon.h), its
// pages from DIR or from a page server (lazy/remote_pages.h).
#include "cli/commands/commands.h"
#include "cli/commands/options.h"
#include "lazy/daemon.h"

namespace ckpt::cli {

int run_lazy_pages(const Command& c, Log& log) {
  auto dir = image::ImageDir::open(c.restore.dir, c.allow_shared_dir ? image::SharedDir::Allow : image::SharedDir::Refuse);
  if (!dir) {
    log.error("lazy-pages: {}", dir.error().str());
    return 1;
  }
  if (auto l = open_log_file(c.log_file, &dir->dir(), log); !l) {
    log.error("lazy-pages: {}", l.error().str());
    return 1;
  }
  std::optional<lazy::RemoteSource> remote;
  if (c.lazy_remote) {
    auto key = image::load_wire_key(c.lazy_psk_file, c.lazy_tls);
    if (!key) {
      log.error("lazy-pages: {}", key.error().str());
      return 1;
    }
    remote = c.lazy_source;
    remote->key = *key;
  }
  auto r = lazy::serve_lazy_pages(*dir, remote, c.restore.faults, log);
  if (!r) {
    log.error("lazy-pages {}: {}", dir->path(), r.error().str());
    return 1;
  }
  log.info("lazy-pages: every page is in: {} tasks, {} faults ({} KiB copied for them, {} zero pages), {} KiB pushed",
           r->tasks, r->faults, r->fault_bytes >> 10, r->zero_pages, r->pushed_bytes >> 10);
  return 0;
}

}  // namespace ckpt::cli
