// Runs a system tool (iptables-restore and kin) with some input and takes
// what it prints: for the iptables lock, which has no stable library.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace ckpt::net {

struct ToolOutput {
  int status = 0;    // exit status (128+N: killed by signal N)
  std::string out;   // stdout and stderr, as they came
};

// `argv[0]` is looked up in /usr/sbin, /sbin, /usr/bin, /bin (ckpt may run
// with a PATH without the sbin directories). Its stdin holds `input`; it
// runs with an empty signal mask and default dispositions (ckpt holds
// SIGCHLD blocked). Fails only if it can't be started.
Result<ToolOutput> run_tool(const std::vector<std::string>& argv, std::string_view input = {});
// Where `name` is, if anywhere.
std::string find_tool(const std::string& name);

}  // namespace ckpt::net
