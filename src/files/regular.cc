// Regular files, directories and /dev/null: path, open flags and offset.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "files/files.h"
#include "proc/status.h"

namespace ckpt::files {

namespace {
constexpr std::string_view kDeleted = " (deleted)";
}

Result<img::FdEntry> dump_regular(pid_t pid, int fd, const std::string& path, const struct stat& st) {
  if (path.size() > kDeleted.size() && path.ends_with(kDeleted))
    return error(EOPNOTSUPP, "fd {} is the deleted file {}: deleted files are not supported yet", fd, path);
  // A file of /proc (of this task, often) does not exist while restore
  // opens the task's files, and would be another task's if it did.
  if (path.starts_with("/proc/"))
    return error(EOPNOTSUPP, "fd {} is {}, a file of /proc: not supported yet", fd, path);
  // Restore opens the path: it must lead to this very file (not so for a
  // namespace file, "net:[4026531840]", or a file moved or covered since).
  struct stat at;
  if (path.empty() || path[0] != '/' || ::stat(path.c_str(), &at) < 0 || at.st_dev != st.st_dev ||
      at.st_ino != st.st_ino)
    return error(EOPNOTSUPP, "fd {} is {}, which restore could not open again by its path: not supported yet", fd,
                 path);
  proc::FdInfo info = TRY(proc::read_fdinfo(pid, fd));
  img::FdEntry e;
  e.set_fd(fd);
  e.set_kind(img::FdEntry::REGULAR);
  e.set_path(path);
  e.set_flags(info.flags);
  e.set_pos(info.pos);
  e.set_dev(st.st_dev);
  e.set_inode(st.st_ino);
  return e;
}

Result<UniqueFd> open_regular(const img::FdEntry& e) {
  // Creation flags did their work at the original open; O_CLOEXEC is applied
  // when the fd is installed at its number.
  int flags = static_cast<int>(e.flags()) & ~(O_CREAT | O_EXCL | O_TRUNC | O_NOCTTY | O_CLOEXEC);
  int fd = ::open(e.path().c_str(), flags | O_CLOEXEC);
  if (fd < 0) return sys_error("open {}", e.path());
  UniqueFd out(fd);
  // An O_PATH fd has no offset (lseek: EBADF).
  if (e.kind() == img::FdEntry::REGULAR && !(e.flags() & O_PATH) && ::lseek(fd, static_cast<off_t>(e.pos()), SEEK_SET) < 0)
    return sys_error("seek {} to {}", e.path(), e.pos());
  return out;
}

}  // namespace ckpt::files
