#include "restore/images.h"

#include <fcntl.h>

#include "base/fs.h"
#include "image/page_store.h"

namespace ckpt::restore {

namespace {

constexpr uint64_t kPage = 4096;
constexpr uint64_t kTaskSize = 1ULL << 47;

Result<void> check_mm(const std::string& name, const img::MmImage& mm) {
  uint64_t prev_end = 0;
  for (int i = 0; i < mm.vmas_size(); i++) {
    const img::Vma& v = mm.vmas(i);
    if (v.start() % kPage || v.end() % kPage || v.start() >= v.end() || v.end() > kTaskSize)
      return error(EINVAL, "{}: VMA {} has a bad range {:#x}-{:#x}", name, i, v.start(), v.end());
    if (v.start() < prev_end) return error(EINVAL, "{}: VMA {} at {:#x} overlaps the one before", name, i, v.start());
    if (!img::Vma::Kind_IsValid(v.kind())) return error(EINVAL, "{}: VMA {} has unknown kind {}", name, i, v.kind());
    prev_end = v.end();
  }
  return {};
}

// Every run must lie inside one VMA whose content ckpt keeps, in order.
Result<uint64_t> check_pagemap(const std::string& name, const img::PageMap& pm, const img::MmImage& mm) {
  uint64_t pages = 0, prev_end = 0;
  int v = 0;
  for (int i = 0; i < pm.runs_size(); i++) {
    const img::PageRun& r = pm.runs(i);
    uint64_t end = r.vaddr() + r.nr_pages() * kPage;
    if (r.vaddr() % kPage || r.nr_pages() == 0 || r.nr_pages() > kTaskSize / kPage || end > kTaskSize ||
        r.vaddr() < prev_end)
      return error(EINVAL, "{}: run {} ({:#x}, {} pages) is out of order or out of range", name, i, r.vaddr(),
                   r.nr_pages());
    while (v < mm.vmas_size() && mm.vmas(v).end() <= r.vaddr()) v++;
    if (v == mm.vmas_size() || mm.vmas(v).start() > r.vaddr() || mm.vmas(v).end() < end ||
        (mm.vmas(v).kind() != img::Vma::ANON_PRIVATE && mm.vmas(v).kind() != img::Vma::FILE_PRIVATE))
      return error(EINVAL, "{}: run {} ({:#x}, {} pages) is not inside a private VMA", name, i, r.vaddr(),
                   r.nr_pages());
    pages += r.nr_pages();
    prev_end = end;
  }
  return pages;
}

}  // namespace

Result<TaskImages> load_task_images(const image::ImageDir& dir) {
  TaskImages t;
  if (faccessat(dir.fd(), image::kInventoryName, F_OK, 0) < 0)
    return error(ENOENT, "{} holds no checkpoint: {} is missing", dir.path(), image::kInventoryName);
  TRY(dir.read(image::kInventoryName, image::ImageKind::Inventory, &t.inventory));
  if (t.inventory.pids_size() != 1 || t.inventory.pids(0) != t.inventory.root_pid())
    return error(EINVAL, "{}: expected exactly one task, found {}", dir.file(image::kInventoryName),
                 t.inventory.pids_size());
  const pid_t pid = t.inventory.root_pid();
  if (pid <= 0) return error(EINVAL, "{}: bad root pid {}", dir.file(image::kInventoryName), pid);

  TRY(dir.read(image::core_name(pid), image::ImageKind::Core, &t.core));
  TRY(dir.read(image::mm_name(pid), image::ImageKind::Mm, &t.mm));
  TRY(dir.read(image::pagemap_name(pid), image::ImageKind::PageMap, &t.pagemap));
  TRY(dir.read(image::files_name(pid), image::ImageKind::Files, &t.files));

  const std::string core = dir.file(image::core_name(pid));
  if (t.core.pid() != pid) return error(EINVAL, "{}: holds pid {}, inventory says {}", core, t.core.pid(), pid);
  if (t.core.threads_size() != 1)
    return error(EINVAL, "{}: {} threads; this ckpt restores single-threaded tasks", core, t.core.threads_size());
  if (t.core.threads(0).xsave().size() < 576) return error(EINVAL, "{}: xsave area too small", core);

  TRY(check_mm(dir.file(image::mm_name(pid)), t.mm));
  uint64_t pages = TRY(check_pagemap(dir.file(image::pagemap_name(pid)), t.pagemap, t.mm));

  t.pages_path = dir.file(image::pages_name(pid));
  t.pages = TRY(open_file(t.pages_path, O_RDONLY));
  uint64_t bytes = TRY(image::check_pages_file(t.pages_path, t.pages.get()));
  if (bytes != pages * kPage)
    return error(EINVAL, "{}: holds {} bytes of pages, the page map needs {}", t.pages_path, bytes, pages * kPage);
  return t;
}

}  // namespace ckpt::restore
