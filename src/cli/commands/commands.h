// The subcommands of ckpt, each in its own file. main.cc parses the command
// line into Command (options.h) and calls one of these; each returns the
// process exit status.
#pragma once

#include <string>

#include "base/log.h"

namespace ckpt::cli {

struct Command;

int run_check(Log& log);
int run_dump(const Command& c, Log& log);
int run_restore(const Command& c, Log& log);
int run_show(const std::string& target, bool json, Log& log);
int run_verify(const std::string& dir, bool check_files, Log& log);

}  // namespace ckpt::cli
