#include "dump/uffd_tracker.h"

#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "arch/x86_64/uapi.h"
#include "base/fs.h"
#include "proc/status.h"

namespace ckpt::dump {

namespace {

// Async write-protection, and protection of pages not populated yet:
// PAGEMAP_SCAN's write-protecting walk needs both on anonymous memory
// (the kernel's userfaultfd_wp_use_markers()).
constexpr uint64_t kFeatures = uapi::kUffdFeatureWpAsync | uapi::kUffdFeatureWpUnpopulated;

// UFFD_USER_MODE_ONLY: allowed to any task (vm.unprivileged_userfaultfd
// aside); async write faults never reach the fd, from user or kernel mode.
constexpr long kUffdFlags = O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY;

Result<void> enable(int fd, pid_t pid) {
  uffdio_api api{};
  api.api = UFFD_API;
  api.features = kFeatures;
  if (ioctl(fd, UFFDIO_API, &api) < 0)
    return sys_error("task {}: userfaultfd API with async write-protection (features {:#x})", pid, kFeatures);
  return {};
}

}  // namespace

Result<void> UffdTracker::supported() {
  UniqueFd fd(static_cast<int>(syscall(SYS_userfaultfd, kUffdFlags)));
  if (!fd) return sys_error("userfaultfd");
  uffdio_api api{};
  api.api = UFFD_API;
  if (ioctl(fd.get(), UFFDIO_API, &api) < 0) return sys_error("userfaultfd: UFFDIO_API");
  if ((api.features & kFeatures) != kFeatures)
    return error(EOPNOTSUPP, "userfaultfd offers features {:#x}, without async write-protection (Linux 6.7)",
                 api.features);
  return {};
}

Result<UffdTracker> UffdTracker::create(Tracee& leader, const SyscallSite& site) {
  const pid_t pid = leader.tid();
  UniqueFd pidfd(static_cast<int>(syscall(SYS_pidfd_open, pid, 0)));
  if (!pidfd) return sys_error("pidfd_open of task {}", pid);
  RemoteSyscalls rs = TRY(RemoteSyscalls::begin(leader, site));
  const uint64_t task_fd = TRY_CTX(rs.must("userfaultfd", SYS_userfaultfd, {static_cast<uint64_t>(kUffdFlags)}),
                                   "task {}", pid);
  // Taken out and closed there before anything else can fail: the task's fd
  // table is as it was whatever comes next.
  UniqueFd fd(static_cast<int>(syscall(SYS_pidfd_getfd, pidfd.get(), static_cast<int>(task_fd), 0)));
  const int getfd_errno = errno;
  TRY_CTX(rs.must("close", SYS_close, {task_fd}), "task {}: close its new userfaultfd {}", pid, task_fd);
  TRY(rs.end());
  if (!fd) return error(getfd_errno, "task {}: take its userfaultfd {} (pidfd_getfd)", pid, task_fd);
  TRY(enable(fd.get(), pid));
  return UffdTracker(pid, std::move(fd));
}

Result<std::vector<bool>> UffdTracker::track(const img::MmImage& mm,
                                             const std::function<bool(const img::Vma&)>& wanted, Log& log) {
  std::vector<bool> tracked(mm.vmas_size(), false);
  for (int i = 0; i < mm.vmas_size(); i++) {
    const img::Vma& v = mm.vmas(i);
    if (!wanted(v)) continue;
    uffdio_register reg{};
    reg.range.start = v.start();
    reg.range.len = v.end() - v.start();
    reg.mode = UFFDIO_REGISTER_MODE_WP;
    if (ioctl(fd_.get(), UFFDIO_REGISTER, &reg) == 0) {
      tracked[i] = true;
      continue;
    }
    // EBUSY: another userfaultfd has it; the task's own, or one it was
    // handed: its registration is not ckpt's to take.
    if (errno == EBUSY)
      return sys_error("task {}: VMA {:#x}-{:#x} is registered with another userfaultfd", pid_, v.start(), v.end());
    if (errno == ESRCH || errno == ENOMEM)  // the mm is gone
      return sys_error("task {}: register VMA {:#x}-{:#x} for write-protection", pid_, v.start(), v.end());
    log.debug("task {}: VMA {:#x}-{:#x} ({}) can't be write-protected ({}): all its pages are stored every round",
              pid_, v.start(), v.end(), v.path().empty() ? "anonymous" : v.path(), errno_name(errno));
  }
  return tracked;
}

Result<int> own_userfaultfd(pid_t pid) {
  const std::string dir = fmt::format("/proc/{}/fd", pid);
  for (int fd : TRY(proc::list_numeric_dir(dir))) {
    auto target = read_link(fmt::format("{}/{}", dir, fd));
    if (target && *target == "anon_inode:[userfaultfd]") return fd;
  }
  return -1;
}

}  // namespace ckpt::dump
