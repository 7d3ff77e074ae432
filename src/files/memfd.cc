// memfd_create(2) files held as fds: name, seals, contents. One that some
// task also maps is a shared memory object (dump/shmem.h) whose contents are
// stored there: the fd is restored on that very object, so that what is
// written through the fd shows in the mapping, as before.
#include <fcntl.h>
#include <linux/magic.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "base/fs.h"
#include "files/contents.h"
#include "files/kind.h"

namespace ckpt::files {

namespace {

constexpr std::string_view kPrefix = "/memfd:";

class MemfdKind final : public Kind {
 public:
  std::string_view name() const override { return "memfd"; }
  img::FileDesc::KindCase tag() const override { return img::FileDesc::kMemfd; }

  bool claims(const FdProbe& p, const DumpFlags&) const override {
    return S_ISREG(p.st.st_mode) && p.link.starts_with(kPrefix) && p.link.ends_with(kDeletedSuffix);
  }

  Result<void> collect(const FdProbe& p, img::FileDesc* d) const override {
    img::Memfd* m = d->mutable_memfd();
    std::string_view name = p.link;
    name.remove_prefix(kPrefix.size());
    name.remove_suffix(kDeletedSuffix.size());
    m->set_name(std::string(name));
    // Read through a description of ckpt's own: the task's may be write-only.
    UniqueFd f = TRY(open_file(fmt::format("/proc/{}/fd/{}", p.pid, p.fd), O_RDONLY));
    struct statfs fs;
    if (fstatfs(f.get(), &fs) < 0) return sys_error("statfs");
    const int seals = fcntl(f.get(), F_GET_SEALS);
    if (seals < 0) return sys_error("F_GET_SEALS");
    m->set_seals(seals);
    m->set_dev(static_cast<uint64_t>(major(p.st.st_dev)) << 32 | minor(p.st.st_dev));
    m->set_inode(p.st.st_ino);
    if (auto it = p.ctx->shmem_objects.find({m->dev(), m->inode()}); it != p.ctx->shmem_objects.end()) {
      m->set_shmem_id(it->second);
      return {};
    }
    // Restore writes the contents of one no task maps, and hugetlbfs files
    // can't be written, only mapped: a memfd of huge pages is always a shared
    // memory object (dump/shmem.h, ShmemCollector::collect_hugetlb_memfd).
    if (fs.f_type == HUGETLBFS_MAGIC)
      return error(EINVAL, "a memfd of huge pages (MFD_HUGETLB) that is not among the shared memory objects");
    return read_contents(f.get(), p.ctx->ghost_limit, m->mutable_contents());
  }

  Result<UniqueFd> open(const img::FileDesc& d, OpenState& state) const override {
    const img::Memfd& m = d.memfd();
    if (m.shmem_id() != 0) {
      const int obj = state.shmem(m.shmem_id());
      if (obj < 0) return error(EINVAL, "memfd {}: shared memory object {} is not in the checkpoint", m.name(), m.shmem_id());
      return reopen_at(obj, d);
    }
    if (int kept = state.kept(tag(), m.inode()); kept >= 0) return reopen_at(kept, d);
    // F_SEAL_SEAL alone: made without MFD_ALLOW_SEALING, or sealed so at once
    // (the same for whoever holds it).
    const bool sealable = m.seals() != F_SEAL_SEAL;
    int fd = memfd_create(m.name().c_str(), MFD_CLOEXEC | (sealable ? MFD_ALLOW_SEALING : 0));
    if (fd < 0) return sys_error("memfd_create {}", m.name());
    UniqueFd made(fd);
    TRY_CTX(write_contents(fd, m.contents()), "memfd {}", m.name());
    if (m.seals() && sealable && fcntl(fd, F_ADD_SEALS, m.seals()) < 0)
      return sys_error("memfd {}: add seals {:#x}", m.name(), m.seals());
    UniqueFd out = TRY(reopen_at(fd, d));
    state.keep(tag(), m.inode(), std::move(made));
    return out;
  }

 private:
  // The task's own description: its access mode and offset.
  static Result<UniqueFd> reopen_at(int fd, const img::FileDesc& d) {
    UniqueFd out = TRY(reopen(fd, d.flags()));
    if (lseek(out.get(), static_cast<off_t>(d.pos()), SEEK_SET) < 0) return sys_error("seek to {}", d.pos());
    return out;
  }
};

}  // namespace

const Kind& memfd_kind() {
  static const MemfdKind k;
  return k;
}

}  // namespace ckpt::files
