// ckpt show runs ckpt-show, the program built beside ckpt that holds the
// full protobuf runtime (CMakeLists.txt says why), with the same arguments.
#include <unistd.h>

#include <string>

#include "base/fs.h"
#include "cli/commands/commands.h"

namespace ckpt::cli {

int exec_show(char** argv, Log& log) {
  auto self = read_link("/proc/self/exe");
  if (!self) {
    log.error("show: {}", self.error().str());
    return 1;
  }
  const std::string program = self->substr(0, self->rfind('/') + 1) + "ckpt-show";
  ::execv(program.c_str(), argv);
  log.error("{}", sys_error("show: run {} (built and installed beside ckpt)", program).error().str());
  return 1;
}

}  // namespace ckpt::cli
