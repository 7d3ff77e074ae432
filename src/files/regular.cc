// Files restore opens again by their path: regular files, directories, O_PATH
// fds, and the memory devices (/dev/null, /dev/zero, /dev/full, /dev/random,
// /dev/urandom), whose state is only their open flags.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "files/file_id.h"
#include "files/kind.h"

namespace ckpt::files {

namespace {

bool is_memory_device(const struct stat& st) {
  if (!S_ISCHR(st.st_mode) || major(st.st_rdev) != 1) return false;
  const unsigned m = minor(st.st_rdev);
  return m == 3 || m == 5 || m == 7 || m == 8 || m == 9;
}

class Regular final : public Kind {
 public:
  std::string_view name() const override { return "file"; }
  img::FileDesc::KindCase tag() const override { return img::FileDesc::kRegular; }

  bool claims(const FdProbe& p, const DumpFlags&) const override {
    return S_ISREG(p.st.st_mode) || S_ISDIR(p.st.st_mode) || is_memory_device(p.st) ||
           (p.info.flags & O_PATH) != 0;
  }

  Result<void> collect(const FdProbe& p, img::FileDesc* d) const override {
    const std::string& path = p.link;
    if (path.size() > kDeletedSuffix.size() && path.ends_with(kDeletedSuffix))
      return error(EOPNOTSUPP, "the deleted file {}: deleted files are not supported yet", path);
    // A file of /proc (of this task, often) does not exist while restore
    // opens the task's files, and would be another task's if it did.
    if (path.starts_with("/proc/")) return error(EOPNOTSUPP, "a file of /proc: not supported yet");
    // Restore opens the path: it must lead to this very file (not so for a
    // namespace file, "net:[4026531840]", or a file moved or covered since).
    struct stat at;
    if (path.empty() || path[0] != '/' || ::stat(path.c_str(), &at) < 0 || at.st_dev != p.st.st_dev ||
        at.st_ino != p.st.st_ino)
      return error(EOPNOTSUPP, "restore could not open it again by its path: not supported yet");
    img::RegularFile* r = d->mutable_regular();
    r->set_path(path);
    r->set_dev(p.st.st_dev);
    r->set_inode(p.st.st_ino);
    r->set_mode(p.st.st_mode & S_IFMT);
    r->set_rdev(p.st.st_rdev);
    if (S_ISREG(p.st.st_mode)) r->set_size(p.st.st_size);
    r->set_fsid(TRY_CTX(p.ctx && p.ctx->fsids ? p.ctx->fsids->of(p.info.mnt_id, p.st.st_dev, path)
                                              : filesystem_id(path), "{}", path));
    return {};
  }

  Result<UniqueFd> open(const img::FileDesc& d, OpenState& state) const override {
    const img::RegularFile& r = d.regular();
    // Creation flags did their work at the original open; O_CLOEXEC is the
    // fd's, applied when it is installed at its number.
    const int flags = static_cast<int>(d.flags()) & ~(O_CREAT | O_EXCL | O_TRUNC | O_NOCTTY | O_CLOEXEC);
    int fd = ::open(r.path().c_str(), flags | O_CLOEXEC);
    if (fd < 0) return sys_error("open {}", r.path());
    UniqueFd out(fd);
    // Another size: another file, or this one changed since (a task would
    // read or write at offsets that mean something else now).
    struct stat st;
    if (fstat(fd, &st) < 0) return sys_error("stat {}", r.path());
    if ((st.st_mode & S_IFMT) != r.mode())
      return error(ESTALE, "{} is not the file that was dumped (a {:o} then, a {:o} now)", r.path(), r.mode(),
                   st.st_mode & S_IFMT);
    // Another inode at the path: the file was replaced or moved since (an
    // editor's save, a rotated log), whatever its size.
    if (state.check_files() && same_filesystem(r.fsid(), TRY_CTX(filesystem_id(fd), "{}", r.path())) &&
        (st.st_ino != r.inode() || st.st_dev != r.dev()))
      return error(ESTALE, "{} is not the file that was dumped: inode {} on device {}:{} then, inode {} on {}:{} now "
                   "(replaced or moved since; --skip-file-check opens the one there now)", r.path(), r.inode(),
                   major(r.dev()), minor(r.dev()), st.st_ino, major(st.st_dev), minor(st.st_dev));
    if (state.check_files() && S_ISREG(r.mode()) && static_cast<uint64_t>(st.st_size) != r.size())
      return error(ESTALE, "{} is not as it was dumped: {} bytes then, {} now (--skip-file-check restores "
                   "anyway)", r.path(), r.size(), st.st_size);
    // An O_PATH fd has no offset (lseek: EBADF), nor has a device.
    if (S_ISREG(r.mode()) && !(d.flags() & O_PATH) && ::lseek(fd, static_cast<off_t>(d.pos()), SEEK_SET) < 0)
      return sys_error("seek {} to {}", r.path(), d.pos());
    return out;
  }
};

}  // namespace

const Kind& regular_kind() {
  static const Regular k;
  return k;
}

}  // namespace ckpt::files
