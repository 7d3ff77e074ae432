// ckpt migrate: move a live process to another host (docs/migration.md).
//
// The source (`ckpt migrate -t PID --to A:P -D WORK`) runs pre-dump rounds
// while the process runs, each sent to the destination as it is written,
// until the set of pages written between rounds stops shrinking; then the
// final dump (only what changed since), which leaves the process stopped.
// The destination (`ckpt migrate --listen P -D DIR`) restores it stopped and
// says so; the source then tells it to go, and kills its own copy only once
// the destination confirms the process runs there. Any failure before that
// resumes the process on the source.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include "base/log.h"
#include "base/result.h"

namespace ckpt::migrate {

struct SourceOptions {
  pid_t pid = 0;
  std::string work_dir;  // the rounds' images on this side: WORK/r1, WORK/r2, ..., WORK/final
  std::string address;
  uint16_t port = 0;
  std::string psk_file;     // the key the destination must hold (image/wire_auth.h)
  bool tls = false;         // and everything under TLS keyed by it (image/wire_tls.h)
  unsigned max_rounds = 6;  // pre-dump rounds at most
  unsigned timeout_s = 10;
};

struct SourceReport {
  unsigned rounds = 0;          // pre-dump rounds
  uint64_t bytes_sent = 0;      // every image, framing included
  uint64_t final_pages = 0;     // pages the final dump stored
  pid_t remote_pid = 0;         // the process's pid on the destination
  std::chrono::nanoseconds downtime{};  // frozen here until running there
};

Result<SourceReport> migrate_out(const SourceOptions& o, Log& log);

struct DestinationOptions {
  std::string dir;
  std::string address;  // empty: every address
  uint16_t port = 0;
  std::string psk_file;  // the key the source must hold (image/wire_auth.h)
  bool tls = false;      // and everything under TLS keyed by it (image/wire_tls.h)
  bool detach = false;  // return once the process runs (else wait for it, as restore does)
  bool breakpoints = true;
  bool allow_shared_dir = false;
  bool pidns = false;  // restore into a new PID namespace (restore --pidns)
  // Post-copy: the process runs before its memory is in; a lazy-pages
  // daemon of ours serves it from the rounds received (restore --lazy-pages).
  bool lazy_pages = false;
};

// Serves one migration. Returns the restored process's wait status, or
// nothing when detached.
Result<std::optional<int>> migrate_in(const DestinationOptions& o, Log& log);

}  // namespace ckpt::migrate
