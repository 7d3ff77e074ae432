// What identifies the content of a mapped file (img::FileId): size, mtime,
// inode and device from fstat, and the ELF build-id where the file has one.
// Taken at dump from the file the task maps; compared at restore and by
// `ckpt verify` with the file found at the same path, so that a replaced
// executable or library is refused before anything is created, instead of
// mapped under the dumped registers (where the task dies of SIGSEGV right
// after a restore that reported success).
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <map>
#include <mutex>
#include <string>
#include <utility>

#include "base/result.h"
#include "ckpt.pb.h"

namespace ckpt::files {

// The identity of the file open at `fd` (`what` names it in errors). The
// build-id is read from regular files only: opening a device to read its
// "ELF header" could have effects.
Result<img::FileId> identify_file(int fd, const std::string& what);
// Same, for a path (stat follows /proc/PID/map_files links to the mapped
// file; only a regular file is opened, for its build-id).
Result<img::FileId> identify_path(const std::string& path);

// The identities one dump has taken, by device and inode: the tasks of a
// tree map the same few files (their binary, libc, the loader), and a look
// at one already known costs a stat instead of six syscalls (open, fstat,
// fstatfs, the build-id read, close). A file whose size, mtime or ctime
// changed since is looked at again. Safe to share between threads.
class FileIdCache {
 public:
  Result<img::FileId> identify_path(const std::string& path);

 private:
  struct Known {
    img::FileId id;
    struct timespec ctime;  // as the stat before the look saw it
  };
  std::mutex mu_;
  std::map<std::pair<uint64_t, uint64_t>, Known> known_;
};

// `st` is the file `id` names, as stat sees it now: the same inode on the
// same device, with the same size and mtime.
bool same_inode(const img::FileId& id, const struct stat& st);

// NT_GNU_BUILD_ID of the 64-bit little-endian ELF file open at `fd`, from its
// PT_NOTE segments; empty when the file is not such an ELF file or has none.
// Every offset and size read from the file is bounds-checked; an error comes
// only from a failing read.
Result<std::string> read_build_id(int fd, const std::string& what);

// The identity of a filesystem (statfs f_fsid: ext4, xfs and btrfs derive it
// from their UUID, tmpfs makes one per mount). Inode and device numbers
// name a file only within one filesystem: on another (another host, a tmpfs
// mounted again, a disk restored from backup) the file at the path is
// judged by its content (size, mtime, build-id), as a migration needs.
Result<uint64_t> filesystem_id(int fd);
Result<uint64_t> filesystem_id(const std::string& path);
// Filesystem ids by (mount id, device), each asked of the kernel once: a
// dump of 5,000 files on one tmpfs made 5,000 statfs calls. The device
// too, since a btrfs subvolume has one, and an fsid, of its own.
class FsIds {
 public:
  // The fsid of `path`, a file of mount `mnt_id` (0: unknown, not kept)
  // on device `dev`.
  Result<uint64_t> of(int mnt_id, dev_t dev, const std::string& path);

 private:
  std::map<std::pair<int, dev_t>, uint64_t> ids_;
};
// Whether inode and device numbers taken on `dumped` mean anything on `now`
// (0: not recorded, an older image: they are compared as before).
inline bool same_filesystem(uint64_t dumped, uint64_t now) { return dumped == 0 || dumped == now; }

// How much of a FileId must agree. A file the task maps shared may be
// written through that mapping, by the task itself (and by it still, after a
// dump with --leave-running): its size, mtime and content may change, it
// must only be the same file.
enum class Compare { Content, SameFile };
// Shared mappings of a VMA's kind say SameFile.
Compare compare_for(const img::Vma& v);

// What differs between the identity recorded at dump and the one found now,
// as "size 1234 -> 5678, build-id 89ab.. -> cdef.."; empty when they agree.
std::string file_id_difference(const img::FileId& dumped, const img::FileId& now, Compare how = Compare::Content);

// Refuses the file open at `fd` (found at `path`, which `use` describes, e.g.
// "mapped at 0x400000-0x401000") if it differs from `dumped`:
//   "/usr/bin/x (mapped at ...) is not the file that was dumped: size 1 -> 2, ...: ESTALE"
Result<void> check_file_id(const std::string& path, std::string_view use, int fd, const img::FileId& dumped,
                           Compare how = Compare::Content);
// The same with the identity found now already taken (identify_file).
Result<void> check_file_id(const std::string& path, std::string_view use, const img::FileId& now,
                           const img::FileId& dumped, Compare how = Compare::Content);

}  // namespace ckpt::files
