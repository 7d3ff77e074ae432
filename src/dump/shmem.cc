#include "dump/shmem.h"

#include <fcntl.h>
#include <sys/shm.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <bit>
#include <charconv>
#include <vector>

#include "arch/x86_64/page.h"
#include "base/fs.h"
#include "image/crc32c.h"
#include "image/page_sink.h"
#include "image/page_store.h"
#include "proc/sysvipc.h"

namespace ckpt::dump {

namespace {

constexpr std::string_view kDeleted = " (deleted)";
constexpr std::string_view kSysv = "/SYSV";  // then the creation key, "%08x"

// The segment's entry in /proc/sysvipc/shm: its id is the inode number.
Result<img::SysvShm> sysv_segment(const img::Vma& v, const std::vector<proc::SysvShm>& all) {
  img::SysvShm out;
  const auto s = proc::find_shm(all, static_cast<int32_t>(v.inode()));
  if (!s || v.inode() > INT32_MAX)
    return error(ENOENT, "System V shared memory segment {} is not in /proc/sysvipc/shm: not of ckpt's IPC namespace",
                 v.inode());
  std::string_view hex = v.path();
  hex.remove_prefix(kSysv.size());
  hex.remove_suffix(kDeleted.size());
  uint32_t name_key = 0;
  if (auto [end, ec] = std::from_chars(hex.data(), hex.data() + hex.size(), name_key, 16);
      ec != std::errc() || end != hex.data() + hex.size())
    return error(EINVAL, "System V shared memory segment {}: no key in its name {}", s->shmid, v.path());
  out.set_key(s->key);
  out.set_name_key(static_cast<int32_t>(name_key));
  out.set_shmid(s->shmid);
  out.set_mode(s->mode);
  out.set_uid(s->uid);
  out.set_gid(s->gid);
  out.set_cuid(s->cuid);
  out.set_cgid(s->cgid);
  return out;
}

std::string sysv_name(const img::SysvShm& s) {
  return fmt::format("System V shared memory segment {} (key {:#x}{})", s.shmid(), static_cast<uint32_t>(s.name_key()),
                     s.mode() & proc::kShmDest ? ", destroyed" : "");
}
constexpr size_t kChunk = 1 << 20;

// The object's present pages (SEEK_DATA/SEEK_HOLE: shmem knows which pages
// it has) streamed into a pages file, one run per extent, each with its
// checksum: the extents first, so that the stream's header says how much
// follows. The file is complete, not yet in place.
Result<TempFile> write_content(int obj, uint64_t size, image::ImageDir& dir, img::ShmemObject* o) {
  uint64_t bytes = 0;
  for (off_t at = 0; static_cast<uint64_t>(at) < size;) {
    off_t data = lseek(obj, at, SEEK_DATA);
    if (data < 0 && errno == ENXIO) break;  // nothing more
    if (data < 0) return sys_error("seek data in shared memory object {}", o->id());
    off_t hole = lseek(obj, data, SEEK_HOLE);
    if (hole < 0) return sys_error("seek hole in shared memory object {}", o->id());
    const uint64_t start = arch::page_down(data);
    const uint64_t end = std::min<uint64_t>(arch::page_up(hole), size);
    img::PageRun* run = o->mutable_pages()->add_runs();
    run->set_vaddr(start);
    run->set_nr_pages((end - start) / arch::kPageSize);
    bytes += end - start;
    at = static_cast<off_t>(end);
  }
  o->mutable_pages()->set_total_pages(bytes / arch::kPageSize);

  auto sink = TRY(image::FilePageSink::create(dir, image::shmem_pages_name(o->id()),
                                              image::FilePageSink::Publish::Held));
  TRY(sink->begin(bytes));
  std::vector<char> buf(kChunk);
  for (img::PageRun& run : *o->mutable_pages()->mutable_runs()) {
    const uint64_t end = run.vaddr() + run.nr_pages() * arch::kPageSize;
    for (uint64_t off = run.vaddr(); off < end;) {
      const size_t n = std::min<uint64_t>(kChunk, end - off);
      size_t got = TRY_CTX(pread_full(obj, buf.data(), n, static_cast<off_t>(off)), "read shared memory object {}",
                           o->id());
      if (got != n) return error(EIO, "read shared memory object {}: short read at {:#x}", o->id(), off);
      run.set_crc32c(crc32c(run.crc32c(), buf.data(), n));
      TRY(sink->write(buf.data(), n));
      off += n;
    }
  }
  TRY(sink->commit());
  return sink->take();
}

}  // namespace

std::optional<img::ShmemObject::Kind> shmem_kind(const proc::MapEntry& m) {
  if (m.shared && (m.path.starts_with("/dev/zero") || m.path == "/anon_hugepage (deleted)"))
    return img::ShmemObject::ANON;
  if (m.path.starts_with("/memfd:") && m.path.ends_with(kDeleted)) return img::ShmemObject::MEMFD;
  if (m.shared && m.path.starts_with(kSysv) && m.path.ends_with(kDeleted)) return img::ShmemObject::SYSV;
  return std::nullopt;
}

Result<void> ShmemCollector::collect(pid_t pid, img::MmImage* mm, image::ImageDir& dir) {
  std::optional<std::vector<proc::SysvShm>> segments;  // read at the first segment
  for (img::Vma& v : *mm->mutable_vmas()) {
    proc::MapEntry m;
    m.shared = v.kind() == img::Vma::FILE_SHARED;
    m.path = v.path();
    const auto kind = (v.kind() == img::Vma::FILE_SHARED || v.kind() == img::Vma::FILE_PRIVATE)
                          ? shmem_kind(m) : std::nullopt;
    if (!kind) continue;
    auto [it, fresh] = ids_.try_emplace({v.dev(), v.inode()}, image_.objects_size() + 1);
    v.set_shmem_id(it->second);
    if (*kind == img::ShmemObject::SYSV) sysv_vmas_[it->second]++;
    if (!fresh) continue;
    const std::string what = fmt::format("VMA {:#x}-{:#x} ({})", v.start(), v.end(), v.path());
    UniqueFd obj = TRY_CTX(open_file(fmt::format("/proc/{}/map_files/{:x}-{:x}", pid, v.start(), v.end()), O_RDONLY),
                           "{}", what);
    struct stat st;
    if (fstat(obj.get(), &st) < 0) return sys_error("{}: stat its object", what);
    img::ShmemObject* o = image_.add_objects();
    o->set_id(it->second);
    o->set_kind(*kind);
    if (*kind == img::ShmemObject::MEMFD) {
      std::string_view name = v.path();
      name.remove_prefix(std::string_view("/memfd:").size());
      name.remove_suffix(kDeleted.size());
      o->set_name(std::string(name));
    }
    if (*kind == img::ShmemObject::SYSV) {
      if (!segments) segments = TRY_CTX(proc::read_sysvipc_shm(), "{}", what);
      *o->mutable_sysv() = TRY_CTX(sysv_segment(v, *segments), "{}", what);
    }
    o->set_size(st.st_size);
    o->set_hugetlb_page_size(v.hugetlb_page_size());
    o->set_dev(v.dev());
    o->set_inode(v.inode());
    pages_.push_back(TRY_CTX(write_content(obj.get(), st.st_size, dir, o), "{}", what));
  }
  return {};
}

Result<void> ShmemCollector::collect_hugetlb_memfd(pid_t pid, int fd, std::string_view link, const struct stat& st,
                                                   image::ImageDir& dir) {
  constexpr std::string_view kMemfd = "/memfd:";
  if (!S_ISREG(st.st_mode) || !link.starts_with(kMemfd) || !link.ends_with(kDeleted)) return {};
  const std::pair<uint64_t, uint64_t> key{static_cast<uint64_t>(major(st.st_dev)) << 32 | minor(st.st_dev),
                                          st.st_ino};
  if (ids_.contains(key)) return {};
  const std::string what = fmt::format("fd {} of pid {} ({})", fd, pid, link);
  UniqueFd obj = TRY_CTX(open_file(fmt::format("/proc/{}/fd/{}", pid, fd), O_RDONLY), "{}", what);
  struct statfs fs;
  if (fstatfs(obj.get(), &fs) < 0) return sys_error("{}: statfs", what);
  if (fs.f_type != HUGETLBFS_MAGIC) return {};  // a memfd of its own (files/memfd.cc)
  // hugetlbfs gives its page size as the block size.
  const uint64_t page = static_cast<uint64_t>(fs.f_bsize);
  if (!std::has_single_bit(page) || page <= arch::kPageSize || st.st_size % page)
    return error(EINVAL, "{}: a memfd of huge pages of {} bytes with a page size of {} bytes", what, st.st_size, page);
  img::ShmemObject* o = image_.add_objects();
  o->set_id(static_cast<uint32_t>(image_.objects_size()));
  ids_[key] = o->id();
  o->set_kind(img::ShmemObject::MEMFD);
  std::string_view name = link;
  name.remove_prefix(kMemfd.size());
  name.remove_suffix(kDeleted.size());
  o->set_name(std::string(name));
  o->set_size(static_cast<uint64_t>(st.st_size));
  o->set_hugetlb_page_size(page);
  o->set_dev(key.first);
  o->set_inode(key.second);
  pages_.push_back(TRY_CTX(write_content(obj.get(), o->size(), dir, o), "{}", what));
  return {};
}

Result<void> ShmemCollector::commit_pages(image::ImageDir& dir) {
  for (TempFile& f : pages_) TRY(dir.commit(f));
  return {};
}

Result<void> ShmemCollector::check_sysv() const {
  if (sysv_vmas_.empty()) return {};
  const std::vector<proc::SysvShm> all = TRY(proc::read_sysvipc_shm());
  for (const auto& [id, vmas] : sysv_vmas_) {
    const img::SysvShm& s = image_.objects(static_cast<int>(id) - 1).sysv();
    const auto now = proc::find_shm(all, s.shmid());
    if (!now) return error(EIDRM, "{}: gone during the dump", sysv_name(s));
    if (now->nattch > vmas)
      return error(EBUSY, "{} is attached outside the tree too ({} attached VMAs, {} of the tree's; creator pid {}, "
                   "last attach or detach by pid {}): restore could not give it back to both",
                   sysv_name(s), now->nattch, vmas, now->cpid, now->lpid);
  }
  return {};
}

Result<void> ShmemCollector::remove_sysv() const {
  for (const auto& [id, vmas] : sysv_vmas_) {
    const img::SysvShm& s = image_.objects(static_cast<int>(id) - 1).sysv();
    // Destroyed already (SHM_DEST): it goes with the tree's last attach.
    if (s.mode() & proc::kShmDest) continue;
    if (shmctl(s.shmid(), IPC_RMID, nullptr) < 0 && errno != EINVAL && errno != EIDRM)
      return sys_error("remove {} of the killed tree (IPC_RMID)", sysv_name(s));
  }
  return {};
}

}  // namespace ckpt::dump
