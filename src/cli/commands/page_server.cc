// ckpt page-server -D DIR --port N [--address A]: one session of pages files
// from a dump or pre-dump --page-server (image/page_server.h); with
// --lazy-pages, DIR's pages served to a lazy-pages daemon (lazy/remote_pages.h).
#include "cli/commands/commands.h"
#include "cli/commands/options.h"
#include "image/page_server.h"
#include "lazy/remote_pages.h"

namespace ckpt::cli {

int run_page_server(const Command& c, Log& log) {
  auto key = image::load_wire_key(c.server_psk_file, c.server_tls);
  if (!key) {
    log.error("page-server: {}", key.error().str());
    return 1;
  }
  if (c.server_lazy) {
    auto dir = image::ImageDir::open(c.server_dir, c.allow_shared_dir ? image::SharedDir::Allow : image::SharedDir::Refuse);
    if (!dir) {
      log.error("page-server: {}", dir.error().str());
      return 1;
    }
    auto r = lazy::serve_page_reads(*dir, c.server_address, c.server_port, *key, log);
    if (!r) {
      log.error("page-server: {}", r.error().str());
      return 1;
    }
    log.info("page-server: the lazy-pages daemon has every page: {} reads, {} bytes", r->requests, r->bytes);
    return 0;
  }
  // The dump may write its other images into the same directory: one that
  // exists is fine as long as it holds no checkpoint yet.
  auto dir = image::ImageDir::create(c.server_dir, c.allow_shared_dir ? image::SharedDir::Allow : image::SharedDir::Refuse);
  if (!dir) {
    log.error("page-server: {}", dir.error().str());
    return 1;
  }
  auto r = image::serve_pages(*dir, c.server_address, c.server_port, *key, log);
  if (!r) {
    log.error("page-server: {}", r.error().str());
    return 1;
  }
  log.info("page-server: {} files, {} bytes", r->files, r->bytes);
  return 0;
}

}  // namespace ckpt::cli
