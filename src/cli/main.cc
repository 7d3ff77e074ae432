// ckpt: parse the command line, set up logging, run one subcommand.
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "base/log.h"
#include "cli/commands/commands.h"
#include "cli/commands/options.h"
#include "ptrace/tracee.h"

int main(int argc, char** argv) {
  using namespace ckpt::cli;
  const auto started = std::chrono::steady_clock::now();
  // Tracees' stops and deaths wake ckpt's waits through SIGCHLD
  // (ptrace/tracee.h, ChildEvents): held pending from here on, and not
  // ignored (a SIGCHLD ignored by whoever started ckpt would not be sent).
  std::signal(SIGCHLD, SIG_DFL);
  ckpt::ChildEvents child_events;
  Parsed p = parse_command_line(std::vector<std::string>(argv + 1, argv + argc));
  if (!p.command) {
    std::fputs(p.text.c_str(), p.exit_code ? stderr : stdout);
    return p.exit_code;
  }
  Command& c = *p.command;
  c.dump.started = c.restore.started = started;
  // Tests only: make a dump or restore fail at a named point (base/fault.h).
  if (const char* fault = std::getenv("CKPT_FAULT")) c.dump.faults.point = c.restore.faults.point = fault;
  ckpt::Log log(c.verbosity);
  switch (c.verb) {
    // dump, restore and verify open the log in their images directory.
    case Verb::Dump: return run_dump(c, log);
    case Verb::PreDump: return run_pre_dump(c, log);
    case Verb::PageServer: return run_page_server(c, log);
    case Verb::MigrateOut: return run_migrate_out(c, log);
    case Verb::MigrateIn: return run_migrate_in(c, log);
    case Verb::Restore: return run_restore(c, log);
    case Verb::LazyPages: return run_lazy_pages(c, log);
    case Verb::Verify: return run_verify(c, log);
    case Verb::Show: return exec_show(argv, log);
    case Verb::Check:
      if (auto r = open_log_file(c.log_file, nullptr, log); !r) {
        log.error("{}", r.error().str());
        return 1;
      }
      return run_check(log);
  }
  return 2;
}
