// Regular files unlinked while open: their contents are stored (up to
// --ghost-limit) and restore creates the file again in the directory it was
// in, under its old name if that is free (so /proc/PID/fd shows the same
// "PATH (deleted)"), and unlinks it at once; where another user could
// replace that name meanwhile (a directory others may write that is not
// sticky), or the name is taken, as an O_TMPFILE that never has one.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/fs.h"
#include "files/contents.h"
#include "files/kind.h"

namespace ckpt::files {

namespace {

// A new file in `dir` without a name: by `path`, unlinked at once, or as an
// O_TMPFILE.
Result<UniqueFd> create_nameless(const std::string& path) {
  const std::string dir = path.substr(0, path.rfind('/') + 1);
  struct stat ds;
  if (::stat(dir.c_str(), &ds) < 0) return sys_error("the directory {} it was in", dir);
  const bool safe_name = !(ds.st_mode & S_IWOTH) || (ds.st_mode & S_ISVTX);
  if (safe_name) {
    int fd = ::open(path.c_str(), O_CREAT | O_EXCL | O_NOFOLLOW | O_RDWR | O_CLOEXEC, 0600);
    if (fd >= 0) {
      UniqueFd out(fd);
      if (unlink(path.c_str()) < 0) return sys_error("unlink {}", path);
      return out;
    }
    if (errno != EEXIST) return sys_error("create {}", path);
  }
  int fd = ::open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (fd < 0) return sys_error("create a file without a name in {}", dir);
  return UniqueFd(fd);
}

class DeletedKind final : public Kind {
 public:
  std::string_view name() const override { return "deleted file"; }
  img::FileDesc::KindCase tag() const override { return img::FileDesc::kDeleted; }

  bool claims(const FdProbe& p, const DumpFlags&) const override {
    return S_ISREG(p.st.st_mode) && p.st.st_nlink == 0 && p.link.starts_with("/") &&
           p.link.ends_with(kDeletedSuffix) &&
           !(p.info.flags & O_PATH);
  }

  Result<void> collect(const FdProbe& p, img::FileDesc* d) const override {
    img::DeletedFile* f = d->mutable_deleted();
    f->set_path(p.link.substr(0, p.link.size() - kDeletedSuffix.size()));
    f->set_dev(p.st.st_dev);
    f->set_inode(p.st.st_ino);
    // Read through a description of ckpt's own: the task's may be write-only.
    UniqueFd own = TRY(open_file(fmt::format("/proc/{}/fd/{}", p.pid, p.fd), O_RDONLY));
    return read_contents(own.get(), p.ctx->ghost_limit, f->mutable_contents());
  }

  Result<UniqueFd> open(const img::FileDesc& d, OpenState& state) const override {
    const img::DeletedFile& f = d.deleted();
    // The first description of the file creates it; the others open it again.
    int file = state.kept(tag(), f.inode());
    if (file < 0) {
      UniqueFd made = TRY(create_nameless(f.path()));
      TRY_CTX(write_contents(made.get(), f.contents()), "{}", f.path());
      file = made.get();
      state.keep(tag(), f.inode(), std::move(made));
    }
    UniqueFd out = TRY_CTX(reopen(file, d.flags()), "{}", f.path());
    if (lseek(out.get(), static_cast<off_t>(d.pos()), SEEK_SET) < 0) return sys_error("{}: seek to {}", f.path(), d.pos());
    return out;
  }
};

}  // namespace

const Kind& deleted_kind() {
  static const DeletedKind k;
  return k;
}

}  // namespace ckpt::files
