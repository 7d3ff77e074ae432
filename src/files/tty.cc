// --shell-job: a terminal on an fd is not restored from the image; the
// terminal ckpt restore runs in takes its place, as CRIU's --shell-job does.
#include <fcntl.h>
#include <unistd.h>

#include "files/files.h"
#include "proc/status.h"

namespace ckpt::files {

Result<img::FdEntry> dump_tty(pid_t pid, int fd, const std::string& path) {
  proc::FdInfo info = TRY(proc::read_fdinfo(pid, fd));
  img::FdEntry e;
  e.set_fd(fd);
  e.set_kind(img::FdEntry::INHERITED_TTY);
  e.set_path(path);
  e.set_flags(info.flags);
  return e;
}

Result<UniqueFd> open_tty(const img::FdEntry& e) {
  // The same fd of ckpt if it is a terminal, else whichever stdio one is.
  for (int cand : {e.fd(), 0, 1, 2}) {
    if (cand < 0 || cand > 2 || !isatty(cand)) continue;
    int fd = fcntl(cand, F_DUPFD_CLOEXEC, 3);
    if (fd < 0) return sys_error("dup terminal fd {}", cand);
    return UniqueFd(fd);
  }
  return error(ENOTTY, "the image expects a terminal on fd {} (--shell-job) but ckpt has none on its stdio",
               e.fd());
}

}  // namespace ckpt::files
