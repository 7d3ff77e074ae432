// Planning a restore: where the boot region goes, how the kernel's special
// mappings move, and the RestorerArgs that tell the blob everything, with
// fds numbered as ckpt's child will have them.
#pragma once

#include <sys/mman.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "arch/x86_64/regs.h"
#include "base/result.h"
#include "base/unique_fd.h"
#include "proc/maps.h"
#include "proc/status.h"
#include "restore/boot_region.h"
#include "restore/images.h"
#include "restore/premap.h"
#include "restore/shmem.h"

namespace ckpt::restore {

// (path, read-write): a file as the tasks map it.
using FileKey = std::pair<std::string, bool>;

// The files the tree's tasks map (and their executables), each opened once
// for the whole tree: every task takes the same fd, mmap doesn't mind whose
// description it maps, and every task starts with all of ckpt's fds (a copy
// of ckpt, closed by each), so fewer is cheaper for each.
class TreeFiles {
 public:
  // `key`'s fd, opening `path` with `flags` the first time.
  Result<int> open(const FileKey& key, const std::string& path, int flags);

 private:
  std::map<FileKey, UniqueFd> fds_;
};

// A task's mapped files, one per distinct path and mode (TreeFiles' fds).
struct MappingFiles {
  std::vector<int> fds;
  std::map<FileKey, size_t> index;  // -> fds[i]
};
// A shared mapping that is, or may become, writable needs its file read-write.
inline bool opened_rw(const img::Vma& v) {
  return v.kind() == img::Vma::FILE_SHARED && ((v.prot() & PROT_WRITE) || v.may_write());
}
// MappingFiles::index's key for the file `v` maps: its path, or its shared
// memory object (restore/shmem.h).
inline FileKey mapping_key(const img::Vma& v) {
  return {v.shmem_id() ? fmt::format("shmem object {}", v.shmem_id()) : v.path(), opened_rw(v)};
}
// A VMA that attaches a System V segment (restore/sysv_shm.h) has no file:
// the restorer attaches it by id.
bool attaches_sysv(const img::Vma& v, const img::ShmemImage& shmem);
// Such a VMA's whole attach (the segment from its base), as shmat maps it
// before the task's unmapped parts go again.
Range sysv_attach(const img::Vma& v, const img::ShmemImage& shmem);
Result<MappingFiles> open_mapping_files(const img::MmImage& mm, const img::ShmemImage& shmem, const ShmemFds& fds,
                                        TreeFiles& files);

// fd numbers in the child (all >= the temp base, closed by the restorer).
struct TempFds {
  int base;
  int pages;
  int exe;
  int first_mapping;
};

// ckpt's credentials, which its children start with: a thread whose dumped
// ones are the same needs no change. Read once per restore.
struct OwnCreds {
  proc::Status status;
  uint32_t securebits;
  uint32_t last_cap;
  std::optional<uint32_t> loginuid;  // none without CONFIG_AUDIT
};

Result<OwnCreds> read_own_creds();

struct ThreadPlan {
  pid_t tid;
  arch::Regs regs;   // the dumped registers (restart rewound at dump)
  uint64_t sigmask;
  uint64_t arg;      // its ThreadArg in the boot region
  uint64_t stack_top;
};

// The kernel's mappings a task has from birth ([vdso], [vvar],
// [vvar_vclock]), which each restorer moves to where its task had them.
inline bool kernel_special(const proc::MapEntry& m) {
  return m.path == "[vdso]" || m.path == "[vvar]" || m.path == "[vvar_vclock]";
}

struct Plan {
  BootRegion boot;
  std::vector<ThreadPlan> threads;  // [0] the main thread
};

// `own` is ckpt's /proc/self/maps: the child starts with exactly that.
// `inherited`: where the pages the task inherited unchanged are (fds
// numbered as in the child).
// `premap`: the VMAs it laid out before it forked, and where.
// `shmem`: the checkpoint's shared memory objects. The boot region's data is
// staged in `pool`.
Result<Plan> build_plan(const TaskImages& ti, const img::ShmemImage& shmem, const std::vector<proc::MapEntry>& own,
                        const MappingFiles& mf,
                        const TempFds& fds, const std::vector<abi::InheritedRunArg>& inherited,
                        const TaskPremap& premap, const OwnCreds& own_creds, BootDataPool& pool);

}  // namespace ckpt::restore
