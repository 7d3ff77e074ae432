#include "restore/shmem.h"

#include <fcntl.h>
#include <linux/memfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <bit>
#include <vector>

#include "arch/x86_64/page.h"
#include "base/fs.h"
#include "base/mapping.h"
#include "image/crc32c.h"
#include "image/page_store.h"

namespace ckpt::restore {

Result<void> fill_object(const image::ImageDir& dir, const img::ShmemObject& o, char* dst) {
  const std::string name = image::shmem_pages_name(o.id());
  UniqueFd pages = TRY(dir.open_read(name));
  const uint64_t bytes = TRY(image::check_pages_file(dir.file(name), pages.get()));
  if (bytes != o.pages().total_pages() * arch::kPageSize)
    return error(EINVAL, "{}: holds {} bytes of pages, object {} needs {}", dir.file(name), bytes, o.id(),
                 o.pages().total_pages() * arch::kPageSize);
  uint64_t off = image::kPagesDataOffset;
  for (const img::PageRun& r : o.pages().runs()) {
    // The last run may reach past the object's end, to its last page's end.
    const uint64_t len = r.nr_pages() * arch::kPageSize;
    size_t got = TRY_CTX(pread_full(pages.get(), dst + r.vaddr(), len, static_cast<off_t>(off)), "{}", dir.file(name));
    if (got != len) return error(EINVAL, "{}: truncated at offset {}", dir.file(name), off + got);
    if (crc32c(0, dst + r.vaddr(), len) != r.crc32c())
      return error(EINVAL, "{}: checksum mismatch in the run at {:#x} ({} pages) at offset {}", dir.file(name),
                   r.vaddr(), r.nr_pages(), off);
    off += len;
  }
  return {};
}

namespace {

Result<UniqueFd> create(const image::ImageDir& dir, const img::ShmemObject& o) {
  // Hugetlb objects come in pages of their own size: the kernel rounds the
  // object's mapping up to it.
  const uint64_t page = o.hugetlb_page_size() ? o.hugetlb_page_size() : arch::kPageSize;
  const uint64_t span = (o.size() + page - 1) & ~(page - 1);
  const int huge = o.hugetlb_page_size() ? std::countr_zero(o.hugetlb_page_size()) : 0;
  if (o.kind() == img::ShmemObject::ANON) {
    // The kernel's own object for MAP_SHARED|MAP_ANONYMOUS, kept through an
    // fd on it once ckpt's mapping goes.
    const int hugetlb = huge ? MAP_HUGETLB | huge << MAP_HUGE_SHIFT : 0;
    Mapping m = TRY(Mapping::map(span, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | hugetlb));
    TRY(fill_object(dir, o, m.data()));
    const uint64_t at = reinterpret_cast<uint64_t>(m.data());
    return open_file(fmt::format("/proc/self/map_files/{:x}-{:x}", at, at + span), O_RDWR);
  }
  const unsigned hugetlb = huge ? MFD_HUGETLB | static_cast<unsigned>(huge) << MFD_HUGE_SHIFT : 0;
  int fd = memfd_create(o.name().c_str(), MFD_CLOEXEC | hugetlb);
  if (fd < 0) return sys_error("memfd_create {}", o.name());
  UniqueFd memfd(fd);
  if (ftruncate(fd, static_cast<off_t>(o.size())) < 0) return sys_error("size memfd {}", o.name());
  Mapping m = TRY(Mapping::map(span, PROT_READ | PROT_WRITE, MAP_SHARED, fd));
  TRY(fill_object(dir, o, m.data()));
  return memfd;
}

}  // namespace

Result<ShmemObjects> create_shmem(const image::ImageDir& dir, const img::ShmemImage& image, Log& log) {
  ShmemObjects out;
  out.sysv = TRY(SysvSegments::create(dir, image, log));
  for (const img::ShmemObject& o : image.objects()) {
    if (o.kind() == img::ShmemObject::SYSV) continue;
    // Huge pages come from a pool of the machine's, per page size: say
    // which one ran out (the mmap fails with ENOMEM).
    const uint64_t kb = o.hugetlb_page_size() / 1024;
    const std::string huge =
        kb ? fmt::format(", hugetlb memory of {} kB pages: /sys/kernel/mm/hugepages/hugepages-{}kB/free_hugepages "
                         "must have {} free",
                         kb, kb, o.size() / o.hugetlb_page_size())
           : "";
    out.fds[o.id()] = TRY_CTX(create(dir, o), "shared memory object {} ({} bytes{})", o.id(), o.size(), huge);
  }
  return out;
}

}  // namespace ckpt::restore
