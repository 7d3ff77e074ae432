#include "files/locks.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/sysmacros.h>

#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <ranges>
#include <string>

namespace ckpt::files {

Result<std::vector<img::FileLock>> parse_locks(std::string_view fdinfo) {
  std::vector<img::FileLock> out;
  for (auto r : std::views::split(fdinfo, '\n')) {
    const std::string line(r.begin(), r.end());
    if (!line.starts_with("lock:")) continue;
    if (line.find("->") != std::string::npos) continue;  // a waiter, not a holder
    char kind[16] = "", mode[16] = "", access[16] = "", end[32] = "";
    int pid = 0;
    unsigned maj = 0, min = 0;
    uint64_t ino = 0, start = 0;
    if (sscanf(line.c_str(), "lock: %*d: %15s %15s %15s %d %x:%x:%" SCNu64 " %" SCNu64 " %31s", kind, mode, access,
               &pid, &maj, &min, &ino, &start, end) != 9)
      return error(EINVAL, "cannot parse \"{}\" of its fdinfo", line);
    img::FileLock l;
    if (!strcmp(kind, "POSIX")) l.set_kind(img::FileLock::POSIX);
    else if (!strcmp(kind, "FLOCK")) l.set_kind(img::FileLock::FLOCK);
    else if (!strcmp(kind, "OFDLCK")) l.set_kind(img::FileLock::OFD);
    else return error(EOPNOTSUPP, "it holds a {} (\"{}\"): not supported yet", kind, line);
    if (strcmp(access, "READ") && strcmp(access, "WRITE"))
      return error(EOPNOTSUPP, "it holds a lock ckpt can't take again (\"{}\")", line);
    l.set_write(!strcmp(access, "WRITE"));
    l.set_start(start);
    if (strcmp(end, "EOF") != 0) {
      const uint64_t last = strtoull(end, nullptr, 10);
      if (last < start) return error(EINVAL, "a lock that ends before it starts (\"{}\")", line);
      l.set_len(last - start + 1);
    }
    out.push_back(std::move(l));
  }
  return out;
}

struct flock flock_of(bool write, uint64_t start, uint64_t len) {
  struct flock fl {};
  fl.l_type = write ? F_WRLCK : F_RDLCK;
  fl.l_whence = SEEK_SET;
  fl.l_start = static_cast<off_t>(start);
  fl.l_len = static_cast<off_t>(len);
  return fl;
}

Result<void> take_lock(int fd, const img::FileLock& l) {
  if (l.kind() == img::FileLock::FLOCK) {
    if (flock(fd, (l.write() ? LOCK_EX : LOCK_SH) | LOCK_NB) < 0)
      return sys_error("flock {}", l.write() ? "LOCK_EX" : "LOCK_SH");
    return {};
  }
  struct flock fl = flock_of(l.write(), l.start(), l.len());
  if (fcntl(fd, F_OFD_SETLK, &fl) < 0)
    return sys_error("OFD lock {} of {} bytes at {}", l.write() ? "write" : "read", l.len(), l.start());
  return {};
}

Result<void> check_locks_survive(std::span<const FdProbe> probes, const img::Files& table, const img::MmImage& mm) {
  for (size_t i = 0; i < probes.size(); i++) {
    if (table.fds(static_cast<int>(i)).locks().empty()) continue;
    const FdProbe& p = probes[i];
    const uint64_t dev = static_cast<uint64_t>(major(p.st.st_dev)) << 32 | minor(p.st.st_dev);
    for (const img::Vma& v : mm.vmas())
      if (v.dev() == dev && v.inode() == p.st.st_ino && !v.path().empty())
        return error(EOPNOTSUPP, "fd {} ({}): a POSIX lock on a file the task also maps (at {:#x}): not supported yet",
                     p.fd, p.link, v.start());
  }
  return {};
}

}  // namespace ckpt::files
