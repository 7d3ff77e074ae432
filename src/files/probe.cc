#include "files/probe.h"

#include <fcntl.h>
#include <sys/syscall.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <charconv>
#include <future>
#include <optional>
#include <ranges>
#include <string>

#include "base/fs.h"
#include "proc/fds.h"
#include "proc/status.h"

namespace ckpt::files {

namespace {

// The pid namespace every other one descends from (PROC_PID_INIT_INO).
constexpr std::string_view kInitPidNs = "pid:[4026531836]";

// "MAJ:MIN:INO", a lock's file in /proc/locks: its inode number.
std::optional<uint64_t> lock_inode(std::string_view field) {
  const size_t first = field.find(':'), last = field.rfind(':');
  if (first == std::string_view::npos || first == last) return std::nullopt;
  uint64_t ino = 0;
  const std::string_view digits = field.substr(last + 1);
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), ino);
  if (ec != std::errc() || end != digits.data() + digits.size() || digits.empty()) return std::nullopt;
  return ino;
}

}  // namespace

Result<LockedInodes> LockedInodes::parse(std::string_view locks, std::string_view pid_ns) {
  LockedInodes out;
  out.unknown_ = pid_ns != kInitPidNs;
  // "1: POSIX  ADVISORY  WRITE 3131 00:1a:12345 0 EOF", a waiter with "->"
  // before its kind: the file is the first field with two colons. A line
  // without one says nothing certain: every file's fdinfo is read.
  for (auto r : std::views::split(locks, '\n')) {
    const std::string_view line(r.begin(), r.end());
    if (line.empty()) continue;
    std::optional<uint64_t> ino;
    for (auto f : std::views::split(line, ' ')) {
      const std::string_view field(f.begin(), f.end());
      if (field.empty() || field.back() == ':') continue;  // "1:" is the lock's number
      if ((ino = lock_inode(field))) break;
    }
    if (!ino) out.unknown_ = true;
    else out.inodes_.insert(*ino);
  }
  return out;
}

Result<LockedInodes> LockedInodes::read() {
  const std::string locks = TRY(read_file("/proc/locks"));
  const std::string ns = TRY(read_link("/proc/self/ns/pid"));
  return parse(locks, ns);
}

Result<bool> LockedInodes::may_hold(const FdProbe& p) const {
  if (unknown_ || inodes_.contains(p.st.st_ino)) return true;
  if (inodes_.empty()) return false;
  // An overlayfs file's stat gives the inode number of the file below it;
  // its locks are on the overlay's own inode.
  const UniqueFd copy = TRY(take_file(p));
  struct statfs fs;
  if (fstatfs(copy.get(), &fs) < 0) return sys_error("statfs");
  return fs.f_type == OVERLAYFS_SUPER_MAGIC;
}

namespace {

// The struct stat fstat gives, from statx (which tells the mount too).
struct stat stat_of(const struct statx& x) {
  struct stat st {};
  st.st_dev = makedev(x.stx_dev_major, x.stx_dev_minor);
  st.st_ino = x.stx_ino;
  st.st_mode = x.stx_mode;
  st.st_nlink = x.stx_nlink;
  st.st_uid = x.stx_uid;
  st.st_gid = x.stx_gid;
  st.st_rdev = makedev(x.stx_rdev_major, x.stx_rdev_minor);
  st.st_size = static_cast<off_t>(x.stx_size);
  st.st_blksize = x.stx_blksize;
  st.st_blocks = static_cast<blkcnt_t>(x.stx_blocks);
  st.st_atim = {x.stx_atime.tv_sec, x.stx_atime.tv_nsec};
  st.st_mtim = {x.stx_mtime.tv_sec, x.stx_mtime.tv_nsec};
  st.st_ctim = {x.stx_ctime.tv_sec, x.stx_ctime.tv_nsec};
  return st;
}

// ckpt's copy of fd `fd` of the task, or none if no fd has that number.
Result<UniqueFd> take_fd(pid_t pid, int pidfd, int fd) {
  Result<UniqueFd> got = take_task_fd(pidfd, pid, fd);
  if (!got && got.error().err == EBADF) return UniqueFd();
  return got;
}

struct Sources {
  const proc::ProcFds& fds;
  int self_fds;  // ckpt's /proc/self/fd
  pid_t pid;
  int pidfd;
};

Result<void> read_fdinfo(const Sources& src, FdProbe& p) {
  p.fdinfo = TRY(src.fds.fdinfo(p.fd));
  p.info = TRY_CTX(proc::parse_fdinfo(p.fdinfo), "/proc/{}/fdinfo/{}", src.pid, p.fd);
  p.cloexec = (p.info.flags & O_CLOEXEC) != 0;  // the fd's, not the description's
  p.info.flags &= ~O_CLOEXEC;
  return {};
}

Result<FdProbe> probe_fd(const Sources& src, int fd, const UniqueFd& copy) {
  FdProbe p;
  p.pid = src.pid;
  p.fd = fd;
  p.pidfd = src.pidfd;
  auto where = [&] { return fmt::format("pid {}: fd {}", src.pid, fd); };
  p.link = TRY_CTX(read_link_at(src.self_fds, std::to_string(copy.get()), "of ckpt's copy"), "{}", where());
  struct statx sx;
  if (statx(copy.get(), "", AT_EMPTY_PATH, STATX_BASIC_STATS | STATX_MNT_ID, &sx) < 0)
    return sys_error("{} ({}): statx", where(), p.link);
  p.st = stat_of(sx);
  if (sx.stx_mask & STATX_MNT_ID) p.info.mnt_id = static_cast<int>(sx.stx_mnt_id);
  const int flags = fcntl(copy.get(), F_GETFL);
  if (flags < 0) return sys_error("{} ({}): F_GETFL", where(), p.link);
  // A regular file, a pipe or a socket has nothing in fdinfo a kind reads
  // but its lock lines (read later: probe_fds); an O_PATH fd has no offset
  // to ask for.
  const mode_t type = p.st.st_mode & S_IFMT;
  bool plain = (type == S_IFREG || type == S_IFIFO || type == S_IFSOCK) && !(flags & O_PATH);
  if (plain && type == S_IFREG) {
    const off_t pos = lseek(copy.get(), 0, SEEK_CUR);  // the description's f_pos, as fdinfo shows it
    if (pos < 0) plain = false;
    else p.info.pos = static_cast<uint64_t>(pos);
  }
  if (plain) {
    p.info.flags = static_cast<uint32_t>(flags);
    p.info.ino = p.st.st_ino;
    return p;
  }
  TRY(read_fdinfo(src, p));
  return p;
}

// From how many fds /proc/locks is read to spare the plain fds' fdinfo
// files (~2 us each): reading it write-locks a per-CPU semaphore, which
// waits for an RCU grace period (10-20 ms here), so it is read on a thread
// of its own while the fds are probed.
constexpr size_t kLocksFrom = 4096;

}  // namespace

Result<std::vector<FdProbe>> probe_fds(pid_t pid, int pidfd) {
  const proc::ProcFds fds = TRY(proc::ProcFds::open(pid));
  const UniqueFd self_fds = TRY(open_file("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  const Sources src{fds, self_fds.get(), pid, pidfd};
  // Which fds are open: the kernel counts them (/proc/PID/fd's size, from
  // 6.2), and the table is walked slot by slot with pidfd_getfd, which
  // finds each fd with the copy its probe needs, until all are found.
  // /proc/PID/fd's listing makes a dentry and an inode a fd (20 ms at
  // 10,000) that nothing looks up afterwards: it only finds the fds beyond
  // the slots walked, where they lie far apart. One thread: a second one
  // gained nothing (both queue on the same locks of the two fd tables).
  const size_t open = TRY(fds.count());
  std::future<Result<LockedInodes>> locks;
  if (open >= kLocksFrom) locks = std::async(std::launch::async, LockedInodes::read);
  const size_t walked = open ? 2 * open + 64 : 0;
  std::vector<FdProbe> out;
  out.reserve(open);
  for (size_t slot = 0; slot < walked && out.size() < open; slot++) {
    const UniqueFd copy = TRY(take_fd(pid, pidfd, static_cast<int>(slot)));
    if (copy) out.push_back(TRY(probe_fd(src, static_cast<int>(slot), copy)));
  }
  if (out.size() < open || open == 0) {
    for (int fd : TRY(fds.list())) {
      if (static_cast<size_t>(fd) < walked) continue;
      const UniqueFd copy = TRY(take_fd(pid, pidfd, fd));
      if (copy) out.push_back(TRY(probe_fd(src, fd, copy)));
    }
  }
  // The lock lines of the plain fds (no fdinfo yet): of every one, or of
  // those /proc/locks may list a lock on.
  std::optional<LockedInodes> locked;
  if (locks.valid()) locked = TRY(locks.get());
  for (FdProbe& p : out)
    if (p.fdinfo.empty() && (!locked || TRY_CTX(locked->may_hold(p), "pid {}: fd {} ({})", pid, p.fd, p.link)))
      TRY(read_fdinfo(src, p));
  return out;
}

}  // namespace ckpt::files
