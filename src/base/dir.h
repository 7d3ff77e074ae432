// Dir: a directory opened once, and the files in it opened through that
// handle without ever following a symbolic link. TempFile: a file created
// exclusively under a temporary name, renamed into place when complete and
// unlinked otherwise.
//
// Why: ckpt runs as root and writes into directories that someone else may
// be able to write (an images directory shared on purpose, /tmp). Anyone who
// can write there can plant `.pages-PID.img.tmp -> /etc/shadow` and wait for
// root to open, truncate, write and chmod "its" file. So, for every file in
// such a directory:
//   1. the directory itself is opened with O_NOFOLLOW: a symlinked -D is refused;
//   2. names are resolved by openat2(2) with RESOLVE_BENEATH |
//      RESOLVE_NO_SYMLINKS (where the kernel lacks openat2, openat with
//      O_NOFOLLOW, for single-component names only): no symlink is followed,
//      at the end or on the way, and nothing outside the directory is reached;
//   3. new files are created with O_CREAT | O_EXCL, which fails on any
//      existing name, a dangling symlink included, so what we write into is
//      always an inode we just made;
//   4. files are put in place with renameat2(RENAME_NOREPLACE): a rename
//      never follows a link either, and NOREPLACE keeps us from replacing a
//      name we did not create in this run;
//   5. unlinkat() removes a name, never what a link points to.
// Opening a file to read also refuses anything but a regular file (a FIFO
// planted under an image's name would hang an open without O_NONBLOCK).
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <string>

#include "base/result.h"
#include "base/unique_fd.h"

namespace ckpt {

class Dir {
 public:
  Dir() = default;
  // Refuses a path whose last component is a symbolic link, or not a directory.
  static Result<Dir> open(const std::string& path);
  // The directory holding `file`, wherever links on its path lead (the
  // user's choice: a pidfile in /var/run is in /run).
  static Result<Dir> open_parent_of(const std::string& file);

  const std::string& path() const { return path_; }
  int fd() const { return fd_.get(); }
  bool valid() const { return fd_.valid(); }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

  // An existing regular file beneath the directory, read-only; its stat
  // in `st`, if given.
  Result<UniqueFd> open_read(const std::string& name, struct stat* st = nullptr) const;
  // A new file: fails with EEXIST if `name` exists in any form.
  Result<UniqueFd> create_exclusive(const std::string& name, int flags, mode_t mode) const;
  // A log: appends to a regular file owned by us, or creates it with `mode`.
  Result<UniqueFd> open_append_own(const std::string& name, mode_t mode) const;
  // Whether `name` exists, a symlink (dangling or not) included.
  bool exists(const std::string& name) const;
  // Removes the name `name`; ENOENT is no error.
  Result<void> remove(const std::string& name) const;
  Result<struct stat> stat() const;

 private:
  Dir(std::string path, UniqueFd fd) : path_(std::move(path)), fd_(std::move(fd)) {}
  Result<UniqueFd> open_beneath(const std::string& name, int flags, mode_t mode) const;
  std::string path_;
  UniqueFd fd_;
};

// A log or pidfile path that may lie anywhere (not beneath an images
// directory): appends to a regular file owned by us, or creates it with
// `mode`; a symlink is refused.
Result<UniqueFd> open_append_own(const std::string& path, mode_t mode);

// Writes `content` to `path` as a whole: into a new temporary beside it,
// renamed over the name (a symlink there is replaced, never followed).
Result<void> replace_file(const std::string& path, std::string_view content, mode_t mode);

// `.NAME.tmp` in `dir`, created exclusively (a stale one, of an earlier ckpt
// killed mid-write, is unlinked first: unlinking never touches what a link
// points to, and O_EXCL then fails if anyone raced a new name in). Until
// commit() succeeds, the destructor unlinks the temporary name, so no error
// path leaves a temp behind.
class TempFile {
 public:
  enum class Replace { No, Yes };

  static Result<TempFile> create(const Dir& dir, std::string name, mode_t mode = 0600);
  TempFile(TempFile&& o) noexcept;
  TempFile& operator=(TempFile&&) = delete;
  TempFile(const TempFile&) = delete;
  ~TempFile();

  int fd() const { return fd_.get(); }
  const std::string& name() const { return name_; }
  std::string temp_name() const { return "." + name_ + ".tmp"; }
  // fsync first when `sync`, then rename to `name`. Replace::No refuses an
  // existing name (EEXIST); Replace::Yes replaces the name, never what a
  // link there points to. The fd stays open.
  Result<void> commit(bool sync, Replace replace = Replace::No);

 private:
  TempFile(const Dir& dir, std::string name, UniqueFd fd)
      : dirfd_(dir.fd()), dir_path_(dir.path()), name_(std::move(name)), fd_(std::move(fd)) {}
  std::string file(const std::string& n) const { return dir_path_ + "/" + n; }
  int dirfd_;  // borrowed: the Dir outlives its temps
  std::string dir_path_;
  std::string name_;
  UniqueFd fd_;
  bool committed_ = false;
};

}  // namespace ckpt
