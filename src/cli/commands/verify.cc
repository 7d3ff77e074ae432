// ckpt verify DIR: every image's framing and checksum, every page run's
// checksum and the images' cross-references (image/verify.h), without
// restoring anything, and (unless --skip-file-check) that the files the
// images map are still the ones that were dumped. Exit 0 and one line when all is well; otherwise the
// first problem, naming the file and the offset or entry.
#include "cli/commands/commands.h"
#include "cli/commands/options.h"
#include "image/verify.h"
#include "restore/parent_pages.h"

namespace ckpt::cli {

int run_verify(const Command& c, Log& log) {
  // Read only: a shared directory is fine, its files are still never
  // reached through a link.
  auto dir = image::ImageDir::open(c.verify_dir, image::SharedDir::Allow);
  if (!dir) {
    log.error("verify: {}", dir.error().str());
    return 1;
  }
  if (auto l = open_log_file(c.log_file, &dir->dir(), log); !l) {
    log.error("verify: {}", l.error().str());
    return 1;
  }
  img::Inventory inv;
  if (dir->exists(image::kInventoryName)) {
    if (auto rd = dir->read(image::kInventoryName, image::ImageKind::Inventory, &inv); !rd) {
      log.error("verify: {}", rd.error().str());
      return 1;
    }
  }
  // A round of an iterative dump: its parents' pages too, and that every
  // in_parent run is found in them (docs/migration.md).
  auto chain_of = [&](bool itself) -> Result<uint64_t> {
    if (inv.pids_size() != 1) return error(EINVAL, "{}: a chain of checkpoints of {} processes", dir->path(), inv.pids_size());
    const pid_t pid = inv.pids(0);
    std::vector<restore::ParentLevel> chain =
        itself ? TRY(restore::load_round_and_parents(dir->path(), pid)) : TRY(restore::load_parent_chain(*dir, inv, pid));
    uint64_t pages = 0;
    if (itself) {
      TRY(restore::resolve_in_parent(std::span(chain).subspan(1), chain[0].pagemap, pid));
    } else {
      img::PageMap own;
      TRY(dir->read(image::pagemap_name(pid), image::ImageKind::PageMap, &own));
      TRY(restore::resolve_in_parent(chain, own, pid));
    }
    TRY(restore::verify_parent_pages(chain));
    for (const restore::ParentLevel& l : chain) pages += l.pagemap.total_pages();
    return pages;
  };
  if (inv.pre_dump()) {
    // Memory only: no task images to check.
    auto pages = chain_of(true);
    if (!pages) {
      log.error("verify: {}", pages.error().str());
      return 1;
    }
    fmt::print("ok: pre-dump, {} pages verified with its parents\n", *pages);
    return 0;
  }
  auto r = image::verify_dir(*dir, c.verify_files);
  if (!r) {
    log.error("verify: {}", r.error().str());
    return 1;
  }
  if (!inv.parent_dir().empty()) {
    auto pages = chain_of(false);
    if (!pages) {
      log.error("verify: {}", pages.error().str());
      return 1;
    }
    r->pages += *pages;
  }
  fmt::print("ok: {} images, {} pages verified\n", r->images, r->pages);
  return 0;
}

}  // namespace ckpt::cli
