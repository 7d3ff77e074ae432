#include "base/dir.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "base/fs.h"

namespace ckpt {

namespace {

// openat2(2) where the kernel has it (5.6+); openat with O_NOFOLLOW, for a
// single-component name, where it does not. -1 with errno on failure.
int openat_nofollow(int dirfd, const std::string& name, int flags, mode_t mode) {
  open_how how{};
  how.flags = static_cast<uint64_t>(flags | O_NOFOLLOW | O_CLOEXEC);
  how.mode = (flags & O_CREAT) ? mode : 0;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS;
  long fd = syscall(SYS_openat2, dirfd, name.c_str(), &how, sizeof how);
  if (fd >= 0 || errno != ENOSYS) return static_cast<int>(fd);
  // Without openat2, O_NOFOLLOW guards the last component only: refuse
  // names with more than one.
  if (name.empty() || name.find('/') != std::string::npos || name == "." || name == "..") {
    errno = EXDEV;
    return -1;
  }
  return openat(dirfd, name.c_str(), flags | O_NOFOLLOW | O_CLOEXEC, mode);
}

// The error of a failed openat_nofollow, naming the file and what was refused.
std::unexpected<Error> open_error(const char* what, const std::string& file) {
  int e = errno;
  if (e == ELOOP)
    return error(e, "{} {}: refusing a symbolic link (ckpt follows none where it writes or reads images)", what,
                 file);
  if (e == EXDEV) return error(e, "{} {}: refusing a path that leads outside its directory", what, file);
  return error(e, "{} {}", what, file);
}

Result<UniqueFd> check_own_regular(UniqueFd fd, const std::string& file) {
  struct stat st;
  if (fstat(fd.get(), &st) < 0) return sys_error("stat {}", file);
  if (!S_ISREG(st.st_mode)) return error(EINVAL, "open {}: not a regular file, refused", file);
  if (st.st_uid != geteuid())
    return error(EPERM, "open {}: owned by uid {}, not by us (uid {}): refused", file, st.st_uid, geteuid());
  // A hard link to someone else's file would let us append to it.
  if (st.st_nlink != 1) return error(EPERM, "open {}: has {} hard links: refused", file, st.st_nlink);
  if (fcntl(fd.get(), F_SETFL, O_APPEND) < 0) return sys_error("clear O_NONBLOCK of {}", file);
  return fd;
}

// A rename never follows a link at either end; without `replace` it also
// never replaces a name (RENAME_NOREPLACE, or link() where the file system
// lacks it).
Result<void> rename_at(int dirfd, const std::string& dir, const std::string& from, const std::string& to,
                       bool replace) {
  const char* f = from.c_str();
  const char* t = to.c_str();
  if (replace ? renameat(dirfd, f, dirfd, t) == 0 : renameat2(dirfd, f, dirfd, t, RENAME_NOREPLACE) == 0) return {};
  if (!replace && errno == EINVAL) {
    if (linkat(dirfd, f, dirfd, t, 0) == 0) {
      unlinkat(dirfd, f, 0);
      return {};
    }
  }
  if (errno == EEXIST)
    return error(EEXIST, "rename {}/{} into place: {}/{} exists and ckpt did not write it in this run; remove it "
                 "or choose another directory", dir, from, dir, to);
  return sys_error("rename {}/{} to {}", dir, from, to);
}

std::string strip_trailing_slashes(std::string p) {
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  return p;
}

}  // namespace

Result<Dir> Dir::open(const std::string& path_in) {
  // "link/" would resolve the link, whatever O_NOFOLLOW says.
  std::string path = strip_trailing_slashes(path_in);
  int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    struct stat st;
    if ((e == ELOOP || e == ENOTDIR) && lstat(path.c_str(), &st) == 0 && S_ISLNK(st.st_mode))
      return error(ELOOP, "open directory {}: it is a symbolic link; name the directory itself", path);
    return error(e, "open directory {}", path);
  }
  return Dir(path, UniqueFd(fd));
}

Result<Dir> Dir::open_parent_of(const std::string& file) {
  const size_t slash = file.find_last_of('/');
  std::string parent = slash == std::string::npos ? "." : slash == 0 ? "/" : file.substr(0, slash);
  int fd = ::open(parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return sys_error("open directory {}", parent);
  return Dir(parent, UniqueFd(fd));
}

Result<UniqueFd> Dir::open_beneath(const std::string& name, int flags, mode_t mode) const {
  int fd = openat_nofollow(fd_.get(), name, flags, mode);
  if (fd < 0) return open_error((flags & O_CREAT) ? "create" : "open", file(name));
  return UniqueFd(fd);
}

Result<UniqueFd> Dir::open_read(const std::string& name, struct stat* st_out) const {
  // O_NONBLOCK: a FIFO under this name must not hang the open.
  UniqueFd fd = TRY(open_beneath(name, O_RDONLY | O_NONBLOCK, 0));
  struct stat own;
  struct stat& st = st_out ? *st_out : own;
  if (fstat(fd.get(), &st) < 0) return sys_error("stat {}", file(name));
  if (!S_ISREG(st.st_mode)) return error(EINVAL, "open {}: not a regular file, refused", file(name));
  if (fcntl(fd.get(), F_SETFL, 0) < 0) return sys_error("clear O_NONBLOCK of {}", file(name));
  return fd;
}

Result<UniqueFd> Dir::create_exclusive(const std::string& name, int flags, mode_t mode) const {
  return open_beneath(name, flags | O_CREAT | O_EXCL, mode);
}

Result<UniqueFd> Dir::open_append_own(const std::string& name, mode_t mode) const {
  UniqueFd fd = TRY(open_beneath(name, O_WRONLY | O_APPEND | O_CREAT | O_NONBLOCK, mode));
  return check_own_regular(std::move(fd), file(name));
}

Result<UniqueFd> open_append_own(const std::string& path, mode_t mode) {
  int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC, mode);
  if (fd < 0) return open_error("open", path);
  return check_own_regular(UniqueFd(fd), path);
}

bool Dir::exists(const std::string& name) const {
  struct stat st;
  return fstatat(fd_.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0;
}

Result<void> Dir::remove(const std::string& name) const {
  if (unlinkat(fd_.get(), name.c_str(), 0) < 0 && errno != ENOENT) return sys_error("remove {}", file(name));
  return {};
}

Result<struct stat> Dir::stat() const {
  struct stat st;
  if (fstat(fd_.get(), &st) < 0) return sys_error("stat directory {}", path_);
  return st;
}

Result<void> replace_file(const std::string& path, std::string_view content, mode_t mode) {
  Dir dir = TRY(Dir::open_parent_of(path));
  const size_t slash = path.find_last_of('/');
  TempFile tmp = TRY(TempFile::create(dir, slash == std::string::npos ? path : path.substr(slash + 1), mode));
  TRY_CTX(write_all(tmp.fd(), content.data(), content.size()), "write {}", dir.file(tmp.temp_name()));
  return tmp.commit(false, TempFile::Replace::Yes);
}

Result<TempFile> TempFile::create(const Dir& dir, std::string name, mode_t mode) {
  const std::string tmp = "." + name + ".tmp";
  // One left by a run that died (or planted) goes; a fresh name costs no unlink.
  auto fd = dir.create_exclusive(tmp, O_WRONLY, mode);
  if (!fd && fd.error().err == EEXIST) {
    TRY(dir.remove(tmp));
    fd = dir.create_exclusive(tmp, O_WRONLY, mode);
  }
  return TempFile(dir, std::move(name), TRY(std::move(fd)));
}

TempFile::TempFile(TempFile&& o) noexcept
    : dirfd_(o.dirfd_), dir_path_(std::move(o.dir_path_)), name_(std::move(o.name_)), fd_(std::move(o.fd_)),
      committed_(std::exchange(o.committed_, true)) {}

TempFile::~TempFile() {
  if (!committed_) unlinkat(dirfd_, temp_name().c_str(), 0);
}

Result<void> TempFile::commit(bool sync, Replace replace) {
  const std::string tmp = temp_name();
  // fsync through the fd flushes the file's data and size (fsync(2)).
  if (sync && fsync(fd_.get()) < 0) return sys_error("sync {}", file(tmp));
  TRY(rename_at(dirfd_, dir_path_, tmp, name_, replace == Replace::Yes));
  committed_ = true;
  return {};
}

}  // namespace ckpt
