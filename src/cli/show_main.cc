// ckpt-show: `ckpt show`, which ckpt runs (exec_show) with its own command
// line. It holds the full protobuf runtime, which ckpt does without.
#include <cstdio>
#include <string>
#include <vector>

#include "base/log.h"
#include "cli/commands/commands.h"
#include "cli/commands/options.h"

int main(int argc, char** argv) {
  using namespace ckpt::cli;
  Parsed p = parse_command_line(std::vector<std::string>(argv + 1, argv + argc));
  if (!p.command) {
    std::fputs(p.text.c_str(), p.exit_code ? stderr : stdout);
    return p.exit_code;
  }
  Command& c = *p.command;
  ckpt::Log log(c.verbosity);
  if (c.verb != Verb::Show) {
    log.error("ckpt-show runs `ckpt show` only: run ckpt");
    return 2;
  }
  if (auto r = open_log_file(c.log_file, nullptr, log); !r) {
    log.error("{}", r.error().str());
    return 1;
  }
  return run_show(c.show_target, c.json, log);
}
