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

// Do fd a of pid1 and fd b of pid2 refer to one open file description?
bool same_description(pid_t pid1, int a, pid_t pid2, int b) {
  constexpr int kKcmpFile = 0;
  return syscall(SYS_kcmp, pid1, pid2, kKcmpFile, a, b) == 0;
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
      if (prior.dev() == e.dev() && prior.inode() == e.inode() && same_description(pid, fd, pid, prior.fd())) {
        e.set_shares_with_fd(prior.has_shares_with_fd() ? prior.shares_with_fd() : prior.fd());
        break;
      }
    *out.add_fds() = std::move(e);
  }
  return out;
}

void link_shared_across(std::span<const std::pair<pid_t, img::Files*>> tasks) {
  for (size_t j = 1; j < tasks.size(); j++) {
    const auto& [pid, files] = tasks[j];
    for (img::FdEntry& e : *files->mutable_fds()) {
      if (e.has_shares_with_fd()) continue;  // its first fd in this task is the one compared
      for (size_t i = 0; i < j && !e.has_shares_with_pid(); i++) {
        const auto& [earlier, theirs] = tasks[i];
        for (const img::FdEntry& p : theirs->fds()) {
          if (p.has_shares_with_fd() || p.dev() != e.dev() || p.inode() != e.inode() ||
              !same_description(earlier, p.fd(), pid, e.fd()))
            continue;
          e.set_shares_with_pid(earlier);
          e.set_shares_with_fd(p.fd());
          break;
        }
      }
    }
    // The task's other fds on the same description follow its first one.
    for (img::FdEntry& e : *files->mutable_fds()) {
      if (!e.has_shares_with_fd() || e.has_shares_with_pid()) continue;
      for (const img::FdEntry& first : files->fds())
        if (first.fd() == e.shares_with_fd() && first.has_shares_with_pid()) {
          e.set_shares_with_pid(first.shares_with_pid());
          e.set_shares_with_fd(first.shares_with_fd());
        }
    }
  }
}

namespace {

Result<UniqueFd> open_entry(const img::FdEntry& e) {
  switch (e.kind()) {
    case img::FdEntry::REGULAR:
    case img::FdEntry::DEV_NULL:
      return open_regular(e);
    case img::FdEntry::INHERITED_TTY:
      return open_tty(e);
    default:
      return error(EINVAL, "unknown kind {} in the files image", static_cast<int>(e.kind()));
  }
}

}  // namespace

Result<std::vector<std::vector<PreparedFd>>> prepare_fds(std::span<const std::pair<pid_t, const img::Files*>> tasks) {
  std::vector<std::vector<PreparedFd>> out(tasks.size());
  for (size_t j = 0; j < tasks.size(); j++) {
    const auto& [pid, files] = tasks[j];
    for (const img::FdEntry& e : files->fds()) {
      if (!e.has_shares_with_fd()) {
        UniqueFd fd = TRY_CTX(open_entry(e), "pid {} fd {}", pid, e.fd());
        out[j].push_back({e.fd(), (e.flags() & O_CLOEXEC) != 0, std::move(fd)});
        continue;
      }
      const pid_t owner = e.has_shares_with_pid() ? e.shares_with_pid() : pid;
      size_t i = 0;
      while (i <= j && tasks[i].first != owner) i++;
      const std::vector<PreparedFd>* theirs = i <= j ? &out[i] : nullptr;
      auto it = theirs ? std::find_if(theirs->begin(), theirs->end(),
                                      [&](const PreparedFd& p) { return p.target == e.shares_with_fd(); })
                       : std::vector<PreparedFd>::const_iterator{};
      if (!theirs || it == theirs->end())
        return error(EINVAL, "pid {} fd {}: shares a file with fd {} of pid {}, which the images lack", pid, e.fd(),
                     e.shares_with_fd(), owner);
      int dup = fcntl(it->fd.get(), F_DUPFD_CLOEXEC, 3);
      if (dup < 0) return sys_error("pid {} fd {}: dup of fd {} of pid {}", pid, e.fd(), e.shares_with_fd(), owner);
      out[j].push_back({e.fd(), (e.flags() & O_CLOEXEC) != 0, UniqueFd(dup)});
    }
  }
  return out;
}

}  // namespace ckpt::files
