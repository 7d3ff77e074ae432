#include "files/files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>

#include "base/fs.h"
#include "proc/status.h"

namespace ckpt::files {

namespace {

bool is_tty_dev(dev_t rdev) {
  unsigned maj = major(rdev);
  return maj == 136 /* pts */ || maj == 4 /* tty */ || maj == 5 /* console, ptmx */;
}

// Do fds a and b of pid refer to one open file description?
bool same_description(pid_t pid, int a, int b) {
  constexpr int kKcmpFile = 0;
  return syscall(SYS_kcmp, pid, pid, kKcmpFile, a, b) == 0;
}

}  // namespace

Result<img::Files> dump_fds(pid_t pid, const DumpFlags& flags) {
  img::Files out;
  std::string dir = fmt::format("/proc/{}/fd", pid);
  for (int fd : TRY(proc::list_numeric_dir(dir))) {
    std::string link = fmt::format("{}/{}", dir, fd);
    std::string path = TRY(read_link(link));
    struct stat st;
    if (::stat(link.c_str(), &st) < 0) return sys_error("stat {} ({})", link, path);
    img::FdEntry e;
    if (S_ISREG(st.st_mode) || S_ISDIR(st.st_mode)) {
      e = TRY(dump_regular(pid, fd, path));
    } else if (S_ISCHR(st.st_mode) && path == "/dev/null") {
      e = TRY(dump_regular(pid, fd, path));
      e.set_kind(img::FdEntry::DEV_NULL);
    } else if (S_ISCHR(st.st_mode) && is_tty_dev(st.st_rdev) && flags.shell_job) {
      e = TRY(dump_tty(pid, fd, path));
    } else {
      std::string hint = S_ISCHR(st.st_mode) && is_tty_dev(st.st_rdev) ? " (a terminal: use --shell-job)" : "";
      return error(EOPNOTSUPP, "fd {} is {}: this kind of file is not supported yet{}", fd, path, hint);
    }
    for (const img::FdEntry& prior : out.fds())
      if (prior.dev() == e.dev() && prior.inode() == e.inode() && same_description(pid, fd, prior.fd())) {
        e.set_shares_with_fd(prior.has_shares_with_fd() ? prior.shares_with_fd() : prior.fd());
        break;
      }
    *out.add_fds() = std::move(e);
  }
  return out;
}

Result<std::vector<PreparedFd>> prepare_fds(const img::Files& files) {
  std::vector<PreparedFd> out;
  for (const img::FdEntry& e : files.fds()) {
    UniqueFd fd;
    if (e.has_shares_with_fd()) {
      auto it = std::find_if(out.begin(), out.end(), [&](const PreparedFd& p) { return p.target == e.shares_with_fd(); });
      if (it == out.end())
        return error(EINVAL, "fd {}: shares a file with fd {}, which the files image lacks", e.fd(), e.shares_with_fd());
      int dup = fcntl(it->fd.get(), F_DUPFD_CLOEXEC, 3);
      if (dup < 0) return sys_error("fd {}: dup of fd {}", e.fd(), e.shares_with_fd());
      out.push_back({e.fd(), (e.flags() & O_CLOEXEC) != 0, UniqueFd(dup)});
      continue;
    }
    switch (e.kind()) {
      case img::FdEntry::REGULAR:
      case img::FdEntry::DEV_NULL:
        fd = TRY_CTX(open_regular(e), "fd {}", e.fd());
        break;
      case img::FdEntry::INHERITED_TTY:
        fd = TRY_CTX(open_tty(e), "fd {}", e.fd());
        break;
      default:
        return error(EINVAL, "fd {}: unknown kind {} in the files image", e.fd(), static_cast<int>(e.kind()));
    }
    out.push_back({e.fd(), (e.flags() & O_CLOEXEC) != 0, std::move(fd)});
  }
  return out;
}

}  // namespace ckpt::files
