#include "proc/fds.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include <fmt/format.h>

#include "base/fs.h"
#include "proc/record.h"
#include "proc/status.h"

namespace ckpt::proc {

Result<ProcFds> ProcFds::open(pid_t pid) {
  UniqueFd fd_dir = TRY(open_file(fmt::format("/proc/{}/fd", pid), O_RDONLY | O_DIRECTORY));
  UniqueFd info_dir = TRY(open_file(fmt::format("/proc/{}/fdinfo", pid), O_RDONLY | O_DIRECTORY));
  return ProcFds(pid, std::move(fd_dir), std::move(info_dir));
}

// One path walk a listing, not a fd: the listing's own open.
Result<std::vector<int>> ProcFds::list() const { return list_numeric_dir(fmt::format("/proc/{}/fd", pid_)); }

Result<size_t> ProcFds::count() const {
  struct stat st;
  if (::fstat(fd_dir_.get(), &st) < 0) return sys_error("stat /proc/{}/fd", pid_);
  return static_cast<size_t>(st.st_size);
}

Result<std::string> ProcFds::link(int fd) const {
  return read_link_at(fd_dir_.get(), std::to_string(fd), fmt::format("/proc/{}/fd/{}", pid_, fd));
}

Result<std::string> ProcFds::fdinfo(int fd) const {
  return read_record_at(info_dir_.get(), std::to_string(fd), fmt::format("/proc/{}/fdinfo/{}", pid_, fd));
}

Result<std::vector<FdLink>> read_fd_links(pid_t pid) {
  const ProcFds fds = TRY(ProcFds::open(pid));
  std::vector<FdLink> out;
  for (int fd : TRY(fds.list())) {
    auto link = fds.link(fd);
    if (!link && link.error().err == ENOENT) continue;  // closed meanwhile (a live task, not a frozen one)
    out.push_back({fd, TRY(std::move(link))});
  }
  return out;
}

}  // namespace ckpt::proc
