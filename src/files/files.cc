#include "files/files.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <optional>
#include <ranges>
#include <set>
#include <unordered_map>

#include "base/fs.h"
#include "proc/status.h"

namespace ckpt::files {

namespace {

bool is_tty_dev(dev_t rdev) {
  unsigned maj = major(rdev);
  return maj == 136 /* pts */ || maj == 4 /* tty */ || maj == 5 /* console, ptmx */;
}

// An fd of a task, in the order kcmp(KCMP_FILE) gives open file
// descriptions: the kernel compares their (obfuscated, bijectively) struct
// file pointers and answers 0 (same), 1 (less) or 2 (greater), a total order
// that is the same whichever tasks hold them. Sorting by (device, inode,
// offset, flags, that order) puts the fds that share a description next to
// each other: O(N log N) kcmp calls at most, and only between fds on one
// inode at one offset with the same flags.
struct FdRef {
  pid_t pid;
  const img::FdEntry* e;
};

class ByDescription {
 public:
  // Negative, zero or positive, as the descriptions of a and b compare.
  int compare(const FdRef& a, const FdRef& b) {
    if (a.e->dev() != b.e->dev()) return a.e->dev() < b.e->dev() ? -1 : 1;
    if (a.e->inode() != b.e->inode()) return a.e->inode() < b.e->inode() ? -1 : 1;
    // One description has one offset and one set of status flags (the task
    // is frozen): fds that differ in them differ, without asking the kernel.
    // O_CLOEXEC in fdinfo's flags is the fd's own.
    if (a.e->pos() != b.e->pos()) return a.e->pos() < b.e->pos() ? -1 : 1;
    const uint32_t fa = a.e->flags() & ~O_CLOEXEC, fb = b.e->flags() & ~O_CLOEXEC;
    if (fa != fb) return fa < fb ? -1 : 1;
    constexpr int kKcmpFile = 0;
    long r = syscall(SYS_kcmp, a.pid, b.pid, kKcmpFile, a.e->fd(), b.e->fd());
    if (r < 0 && !failed_)
      failed_ = Error{errno, fmt::format("kcmp of fd {} of pid {} and fd {} of pid {}", a.e->fd(), a.pid,
                                         b.e->fd(), b.pid)};
    if (r < 0) return 0;  // the sort goes on safely (a merge); its result is thrown away
    return r == 0 ? 0 : r == 1 ? -1 : 1;
  }

  // Stable (equal descriptions keep their order: the first fd of a run is the
  // lowest one of the earliest task) and memory-safe whatever the kernel
  // answers: a bottom-up merge sort.
  Result<void> sort(std::vector<FdRef>& v) {
    std::vector<FdRef> tmp(v.size());
    for (size_t w = 1; w < v.size(); w *= 2) {
      for (size_t lo = 0; lo < v.size(); lo += 2 * w) {
        const size_t mid = std::min(lo + w, v.size()), hi = std::min(lo + 2 * w, v.size());
        std::merge(v.begin() + lo, v.begin() + mid, v.begin() + mid, v.begin() + hi, tmp.begin() + lo,
                   [this](const FdRef& a, const FdRef& b) { return compare(a, b) < 0; });
      }
      v.swap(tmp);
    }
    if (failed_) return std::unexpected(*failed_);
    return {};
  }

  // Calls `run(first, last)` for each run of fds on one description, of more than one fd.
  template <typename Run>
  Result<void> for_each_shared(const std::vector<FdRef>& v, Run&& run) {
    for (size_t i = 0; i < v.size();) {
      size_t j = i + 1;
      while (j < v.size() && compare(v[i], v[j]) == 0) j++;
      if (failed_) return std::unexpected(*failed_);
      if (j - i > 1) run(i, j);
      i = j;
    }
    return {};
  }

 private:
  std::optional<Error> failed_;
};

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
      e = TRY(dump_regular(pid, fd, path, st));
    } else if (S_ISCHR(st.st_mode) && path == "/dev/null") {
      e = TRY(dump_regular(pid, fd, path, st));
      e.set_kind(img::FdEntry::DEV_NULL);
    } else if (S_ISCHR(st.st_mode) && is_tty_dev(st.st_rdev) && flags.shell_job) {
      e = TRY(dump_tty(pid, fd, path));
    } else {
      std::string hint = S_ISCHR(st.st_mode) && is_tty_dev(st.st_rdev) ? " (a terminal: use --shell-job)" : "";
      return error(EOPNOTSUPP, "fd {} is {}: this kind of file is not supported yet{}", fd, path, hint);
    }
    *out.add_fds() = std::move(e);
  }
  // Each fd that shares its description with a lower fd names the lowest.
  std::vector<FdRef> refs;
  refs.reserve(out.fds_size());
  for (const img::FdEntry& e : out.fds()) refs.push_back({pid, &e});
  ByDescription by;
  TRY_CTX(by.sort(refs), "pid {}: find the fds that share a file", pid);
  std::vector<std::pair<int, int>> shares;  // (fd, lowest fd on its description)
  TRY_CTX(by.for_each_shared(refs, [&](size_t first, size_t last) {
            for (size_t k = first + 1; k < last; k++) shares.emplace_back(refs[k].e->fd(), refs[first].e->fd());
          }), "pid {}: find the fds that share a file", pid);
  std::sort(shares.begin(), shares.end());
  // Entries are in fd order, as are `shares`.
  size_t k = 0;
  for (img::FdEntry& e : *out.mutable_fds())
    if (k < shares.size() && shares[k].first == e.fd()) e.set_shares_with_fd(shares[k++].second);
  return out;
}

Result<void> link_shared_across(std::span<const std::pair<pid_t, img::Files*>> tasks) {
  // The first fd of each description in each task, tasks in order: the
  // first of a run is the earliest task's.
  std::vector<FdRef> refs;
  for (const auto& [pid, files] : tasks)
    for (const img::FdEntry& e : files->fds())
      if (!e.has_shares_with_fd()) refs.push_back({pid, &e});
  ByDescription by;
  TRY_CTX(by.sort(refs), "find the files the tasks share");
  std::vector<std::pair<FdRef, FdRef>> links;  // (an fd of a later task, the earliest task's fd)
  TRY_CTX(by.for_each_shared(refs, [&](size_t first, size_t last) {
            for (size_t k = first + 1; k < last; k++) links.emplace_back(refs[k], refs[first]);
          }), "find the files the tasks share");
  for (auto& [later, owner] : links) {
    auto* e = const_cast<img::FdEntry*>(later.e);  // an entry of tasks[i].second, which is ours to change
    e->set_shares_with_pid(owner.pid);
    e->set_shares_with_fd(owner.e->fd());
  }
  // A task's other fds on the same description follow its first one.
  for (const auto& [pid, files] : tasks) {
    std::unordered_map<int, const img::FdEntry*> firsts;
    for (const img::FdEntry& e : files->fds())
      if (!e.has_shares_with_fd() || e.has_shares_with_pid()) firsts.emplace(e.fd(), &e);
    for (img::FdEntry& e : *files->mutable_fds()) {
      if (!e.has_shares_with_fd() || e.has_shares_with_pid()) continue;
      auto it = firsts.find(e.shares_with_fd());
      if (it == firsts.end() || !it->second->has_shares_with_pid()) continue;
      e.set_shares_with_pid(it->second->shares_with_pid());
      e.set_shares_with_fd(it->second->shares_with_fd());
    }
  }
  return {};
}

namespace {

// ckpt's own fds while it restores (stdio, log, images directory, each
// task's pipe ends): the slack above what the task itself needs.
constexpr int kCkptOwnFds = 24;
// Per task: status and go pipes (both ends in ckpt), pages image, executable.
constexpr int kTempFdsPerTask = 6;

}  // namespace

int restore_fd_slots(const img::Files& files, const img::MmImage& mm) {
  int top = -1;
  for (const img::FdEntry& e : files.fds()) top = std::max(top, e.fd());
  std::set<std::pair<std::string, bool>> mapped;  // as restore opens them: one per file and mode
  for (const img::Vma& v : mm.vmas())
    if (v.kind() == img::Vma::FILE_PRIVATE || v.kind() == img::Vma::FILE_SHARED)
      mapped.emplace(v.path(), v.kind() == img::Vma::FILE_SHARED);
  return top + 1 + kTempFdsPerTask + static_cast<int>(mapped.size()) + kCkptOwnFds;
}

Result<NofileLimit> read_nofile_limit(pid_t pid) {
  const std::string path = fmt::format("/proc/{}/limits", pid);
  const std::string text = TRY(read_file(path));
  for (std::string_view line : std::views::split(text, '\n') | std::views::transform([](auto r) {
                                 return std::string_view(r.begin(), r.end());
                               })) {
    if (!line.starts_with("Max open files")) continue;
    // "Max open files            1024                 524288               files"
    char soft[32] = "", hard[32] = "";
    if (sscanf(std::string(line.substr(14)).c_str(), "%31s %31s", soft, hard) != 2)
      return error(EINVAL, "{}: cannot parse \"{}\"", path, line);
    auto value = [](std::string_view v) { return v == "unlimited" ? RLIM_INFINITY : strtoull(v.data(), nullptr, 10); };
    return NofileLimit{value(soft), value(hard)};
  }
  return error(EINVAL, "{}: no \"Max open files\" line", path);
}

Result<void> check_restore_fits(pid_t pid, const img::Files& files, const img::MmImage& mm) {
  const NofileLimit limit = TRY(read_nofile_limit(pid));
  const int need = restore_fd_slots(files, mm);
  const int top = files.fds_size() ? files.fds(files.fds_size() - 1).fd() : -1;
  if (limit.hard != RLIM_INFINITY && limit.hard < static_cast<uint64_t>(need))
    return error(EMFILE, "pid {}: its restore needs {} fd slots (its fds up to {}, then {} for ckpt's temporary "
                 "fds) but its RLIMIT_NOFILE hard limit is {}: raise it (prlimit --nofile) and dump again",
                 pid, need, top, need - top - 1, limit.hard);
  return {};
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

Result<PreparedFds> prepare_fds(std::span<const std::pair<pid_t, const img::Files*>> tasks) {
  PreparedFds out;
  out.tasks.resize(tasks.size());
  // Per task: fd number -> ckpt's fd for its description.
  std::vector<std::unordered_map<int, int>> opened(tasks.size());
  std::unordered_map<pid_t, size_t> index;
  for (size_t j = 0; j < tasks.size(); j++) {
    const auto& [pid, files] = tasks[j];
    index.emplace(pid, j);
    out.tasks[j].reserve(files->fds_size());
    for (const img::FdEntry& e : files->fds()) {
      int fd;
      if (!e.has_shares_with_fd()) {
        out.open.push_back(TRY_CTX(open_entry(e), "pid {} fd {}", pid, e.fd()));
        fd = out.open.back().get();
      } else {
        const pid_t owner = e.has_shares_with_pid() ? e.shares_with_pid() : pid;
        auto i = index.find(owner);
        auto it = i != index.end() ? opened[i->second].find(e.shares_with_fd()) : opened[j].end();
        if (i == index.end() || it == opened[i->second].end())
          return error(EINVAL, "pid {} fd {}: shares a file with fd {} of pid {}, which the images lack", pid, e.fd(),
                       e.shares_with_fd(), owner);
        fd = it->second;
      }
      opened[j].emplace(e.fd(), fd);
      out.tasks[j].push_back({e.fd(), (e.flags() & O_CLOEXEC) != 0, fd});
    }
  }
  return out;
}

}  // namespace ckpt::files
