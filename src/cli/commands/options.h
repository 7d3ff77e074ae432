// The command line, parsed into a value (no global options object). Long
// options are spelled as CRIU spells them, so that scripts written for CRIU
// work unchanged.
#pragma once

#include <string>
#include <vector>

#include "base/result.h"
#include "dump/dump.h"
#include "lazy/remote_pages.h"
#include "migrate/migrate.h"
#include "restore/restore.h"

namespace ckpt::cli {

enum class Verb { Check, Dump, PreDump, PageServer, Restore, Show, Verify, MigrateOut, MigrateIn, LazyPages };

struct Command {
  Verb verb = Verb::Check;
  int verbosity = 2;
  std::string log_file;  // relative to the images directory
  // --allow-shared-images-dir: use an images directory that another user
  // owns or can write (image/image_dir.h: SharedDir).
  bool allow_shared_dir = false;
  bool stats = false;
  bool breakpoints = true;
  dump::DumpOptions dump;
  // page-server: -D, --address, --port, --psk-file, --lazy-pages.
  std::string server_dir, server_address, server_psk_file;
  uint16_t server_port = 0;
  bool server_lazy = false, server_tls = false;
  // lazy-pages --page-server --address --port --psk-file (the key is loaded
  // when the command runs).
  bool lazy_remote = false;
  lazy::RemoteSource lazy_source;
  std::string lazy_psk_file;
  bool lazy_tls = false;
  restore::RestoreOptions restore;
  migrate::SourceOptions migrate_out;
  migrate::DestinationOptions migrate_in;
  std::string show_target;
  bool json = false;
  std::string verify_dir;
  bool verify_files = true;  // false: verify --skip-file-check
};

// Either a Command to run, or text to print (help) with an exit status.
struct Parsed {
  std::optional<Command> command;
  std::string text;
  int exit_code = 0;
};

Parsed parse_command_line(const std::vector<std::string>& args);

}  // namespace ckpt::cli
