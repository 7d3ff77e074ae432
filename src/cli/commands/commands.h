// The subcommands of ckpt, each in its own file. main.cc parses the command
// line into Command (options.h) and calls one of these; each returns the
// process exit status.
#pragma once

#include <string>

#include "base/dir.h"
#include "base/log.h"
#include "base/result.h"

namespace ckpt::cli {

struct Command;

// -o FILE, opened for appending (created 0600): relative to `images` when
// there is one, through that handle (no link followed: base/dir.h), else
// to the working directory; a symlink, or a file not ours, is refused.
Result<void> open_log_file(const std::string& file, const Dir* images, Log& log);

int run_check(Log& log);
int run_dump(const Command& c, Log& log);
int run_pre_dump(const Command& c, Log& log);
int run_page_server(const Command& c, Log& log);
int run_migrate_out(const Command& c, Log& log);
int run_migrate_in(const Command& c, Log& log);
int run_restore(const Command& c, Log& log);
int run_lazy_pages(const Command& c, Log& log);
// ckpt-show's (show.cc, a program of its own: CMakeLists.txt says why).
int run_show(const std::string& target, bool json, Log& log);
// ckpt's `show`: runs ckpt-show, from ckpt's own directory, with `argv`.
int exec_show(char** argv, Log& log);
int run_verify(const Command& c, Log& log);

// Removes the network locks of ckpts that died (network_lock.cc);
// `everywhere`: also those found only in the ruleset (check).
void sweep_network_locks(bool everywhere, Log& log);

}  // namespace ckpt::cli
