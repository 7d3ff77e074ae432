// ckpt migrate: the source (-t PID --to A:P) and the destination (--listen P)
// of a live migration (migrate/migrate.h).
#include <sys/wait.h>

#include "cli/commands/commands.h"
#include "cli/commands/options.h"

namespace ckpt::cli {

int run_migrate_out(const Command& c, Log& log) {
  auto r = migrate::migrate_out(c.migrate_out, log);
  if (!r) {
    log.error("{}", r.error().str());
    return 1;
  }
  fmt::print(stderr, "migrated pid {} to {}:{} (pid {} there): {} pre-dump rounds, final dump {} pages, "
             "{} bytes sent, downtime {:.1f} ms\n", c.migrate_out.pid, c.migrate_out.address, c.migrate_out.port,
             r->remote_pid, r->rounds, r->final_pages, r->bytes_sent, r->downtime.count() / 1e6);
  return 0;
}

int run_migrate_in(const Command& c, Log& log) {
  auto r = migrate::migrate_in(c.migrate_in, log);
  if (!r) {
    log.error("{}", r.error().str());
    return 1;
  }
  if (!*r) return 0;
  const int st = **r;
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

}  // namespace ckpt::cli
