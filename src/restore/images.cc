#include "restore/images.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#endif
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <new>
#include <optional>
#include <set>
#include <thread>

#include "arch/x86_64/page.h"
#include "arch/x86_64/xsave.h"
#include "base/fs.h"
#include "image/page_store.h"
#include "image/verify.h"

namespace ckpt::restore {

namespace {

// Blocks of the images' arena.
void* not_inherited_block(size_t n) {
  void* p = mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw std::bad_alloc();
  (void)madvise(p, n, MADV_DONTFORK);  // else only slower
#if defined(__SANITIZE_ADDRESS__)
  __lsan_register_root_region(p, n);  // its strings' buffers are in the heap
#endif
  return p;
}
void free_not_inherited_block(void* p, size_t n) {
#if defined(__SANITIZE_ADDRESS__)
  __lsan_unregister_root_region(p, n);
#endif
  munmap(p, n);
}

Result<TaskImages> load_task(const image::ImageDir& dir, pid_t pid, google::protobuf::Arena& arena) {
  TaskImages t(pid, arena);
  TRY(dir.read(image::core_name(pid), image::ImageKind::Core, &t.core));
  TRY(dir.read(image::mm_name(pid), image::ImageKind::Mm, &t.mm));
  TRY(dir.read(image::pagemap_name(pid), image::ImageKind::PageMap, &t.pagemap));
  TRY(dir.read(image::files_name(pid), image::ImageKind::Files, &t.files));

  const std::string core = dir.file(image::core_name(pid));
  if (t.core.pid() != pid) return error(EINVAL, "{}: holds pid {}, inventory says {}", core, t.core.pid(), pid);
  if (t.core.threads_size() < 1 || t.core.threads(0).tid() != pid)
    return error(EINVAL, "{}: the first thread must be the main thread {}", core, pid);
  std::set<int32_t> tids;
  for (const img::ThreadCore& th : t.core.threads()) {
    if (th.tid() <= 0 || !tids.insert(th.tid()).second)
      return error(EINVAL, "{}: thread id {} is invalid or repeated", core, th.tid());
    if (th.xsave().size() < arch::kXsaveMinSize) return error(EINVAL, "{}: xsave area of thread {} is too small", core, th.tid());
  }

  TRY(image::check_core(core, t.core, pid));
  TRY(image::check_mm(dir.file(image::mm_name(pid)), t.mm));
  uint64_t pages = TRY(image::check_pagemap(dir.file(image::pagemap_name(pid)), t.pagemap, t.mm));
  TRY(image::check_files(dir.file(image::files_name(pid)), t.files));

  t.pages_path = dir.file(image::pages_name(pid));
  struct stat st;
  t.pages = TRY(dir.open_read(image::pages_name(pid), &st));
  uint64_t bytes = TRY(image::check_pages_file(t.pages_path, t.pages.get(), &st));
  if (bytes != pages * arch::kPageSize)
    return error(EINVAL, "{}: holds {} bytes of pages, the page map needs {}", t.pages_path, bytes, pages * arch::kPageSize);
  return t;
}

}  // namespace

TaskImages::TaskImages(pid_t p, google::protobuf::Arena& a)
    : pid(p),
      core(*google::protobuf::Arena::CreateMessage<img::TaskCore>(&a)),
      mm(*google::protobuf::Arena::CreateMessage<img::MmImage>(&a)),
      pagemap(*google::protobuf::Arena::CreateMessage<img::PageMap>(&a)),
      files(*google::protobuf::Arena::CreateMessage<img::Files>(&a)) {}

std::unique_ptr<google::protobuf::Arena> not_inherited_arena() {
  google::protobuf::ArenaOptions o;
  o.start_block_size = 64 << 10;
  o.max_block_size = 1 << 20;
  o.block_alloc = not_inherited_block;
  o.block_dealloc = free_not_inherited_block;
  return std::make_unique<google::protobuf::Arena>(o);
}

Result<TreeImages> load_images(const image::ImageDir& dir) {
  if (!dir.exists(image::kInventoryName))
    return error(ENOENT, "{} holds no checkpoint: {} is missing", dir.path(), image::kInventoryName);
  img::Inventory inv;
  TRY(dir.read(image::kInventoryName, image::ImageKind::Inventory, &inv));
  TRY(image::check_inventory(dir.file(image::kInventoryName), inv));
  if (inv.pre_dump())
    return error(EINVAL, "{} is a pre-dump (memory only): restore the dump --prev-images-dir that follows it",
                 dir.path());
  // Before the braces (TRY, base/result.h).
  tree::ProcessTree tree = TRY(image::load_tree(dir, inv));
  TreeImages t{not_inherited_arena(), inv, std::move(tree), {}, {}, {}, {}};
  // Each task's images are its own: half of them load on a second thread
  // (the other core), joined before anything else happens.
  const std::vector<pid_t> alive = t.tree.alive();
  std::vector<std::optional<Result<TaskImages>>> loaded(alive.size());
  const size_t mine = (alive.size() + 1) / 2;
  {
    std::jthread other;
    if (alive.size() > 1)
      other = std::jthread([&] {
        for (size_t i = mine; i < alive.size(); i++) loaded[i].emplace(load_task(dir, alive[i], *t.arena));
      });
    for (size_t i = 0; i < mine; i++) loaded[i].emplace(load_task(dir, alive[i], *t.arena));
  }
  std::set<int32_t> tids;
  for (size_t i = 0; i < alive.size(); i++) {
    const pid_t pid = alive[i];
    t.tasks.push_back(TRY(std::move(*loaded[i])));
    for (const img::ThreadCore& th : t.tasks.back().core.threads())
      if (!tids.insert(th.tid()).second || (th.tid() != pid && t.tree.find(th.tid())))
        return error(EINVAL, "{}: thread id {} is also another task's", dir.file(image::core_name(pid)), th.tid());
  }
  std::vector<std::pair<pid_t, const img::Files*>> files;
  for (const TaskImages& ti : t.tasks) files.emplace_back(ti.pid, &ti.files);
  t.descs = TRY(image::load_file_descs(dir, files));
  std::vector<const img::MmImage*> mms;
  for (const TaskImages& ti : t.tasks) mms.push_back(&ti.mm);
  t.shmem = TRY(image::load_shmem(dir, mms));
  if (!inv.parent_dir().empty()) {
    if (t.tasks.size() != 1)
      return error(EINVAL, "{}: a checkpoint of {} processes with a parent checkpoint", dir.path(), t.tasks.size());
    t.parents = TRY(load_parent_chain(dir, inv, t.tasks[0].pid));
  }
  return t;
}

}  // namespace ckpt::restore
