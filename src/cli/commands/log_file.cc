// -o FILE: where the log goes (commands.h).
#include "cli/commands/commands.h"

namespace ckpt::cli {

Result<void> open_log_file(const std::string& file, const Dir* images, Log& log) {
  if (file.empty()) return {};
  constexpr mode_t kMode = 0600;  // a log tells what the process holds
  UniqueFd fd = file[0] != '/' && images ? TRY_CTX(images->open_append_own(file, kMode), "log file")
                                         : TRY_CTX(open_append_own(file, kMode), "log file");
  log.attach(std::move(fd));
  return {};
}

}  // namespace ckpt::cli
