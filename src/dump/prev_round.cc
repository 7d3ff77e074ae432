#include "dump/prev_round.h"

#include <algorithm>
#include <filesystem>

#include "dump/uffd_keeper.h"
#include "image/verify.h"

namespace ckpt::dump {

// Lexically: every directory of a chain is an images directory, which is
// never a symbolic link (image/image_dir.h), so ".." is its parent.
std::string resolve_from(const std::string& from, const std::string& rel) {
  return std::filesystem::path(rel.starts_with('/') ? rel : from + "/" + rel).lexically_normal().string();
}

Result<PrevRound> open_prev_round(const image::ImageDir& dir, const std::string& rel, pid_t pid, Log& log) {
  const std::string path = resolve_from(dir.path(), rel);
  auto ctx = [&] { return fmt::format("previous checkpoint {} ({})", rel, path); };
  image::ImageDir prev = TRY_CTX(image::ImageDir::open(path, image::SharedDir::Refuse), "{}", ctx());
  if (!prev.exists(image::kInventoryName))
    return error(ENOENT, "{}: holds no checkpoint ({} is missing)", ctx(), image::kInventoryName);
  img::Inventory inv;
  TRY_CTX(prev.read(image::kInventoryName, image::ImageKind::Inventory, &inv), "{}", ctx());
  if (std::find(inv.pids().begin(), inv.pids().end(), pid) == inv.pids().end())
    return error(ESRCH, "{}: is not a checkpoint of pid {}", ctx(), pid);
  PrevRound r{rel, std::move(prev), {}, {}, {}};
  TRY_CTX(r.dir.read(image::pagemap_name(pid), image::ImageKind::PageMap, &r.pagemap), "{}", ctx());
  r.cover.emplace(r.pagemap);
  auto fd = take_from_keeper(r.dir, pid);
  if (fd) {
    r.tracker = UffdTracker::adopt(pid, std::move(*fd));
  } else {
    log.warn("pid {}: no dirty tracking since {} ({}): this round stores every page", pid, ctx(),
             fd.error().str());
  }
  return r;
}

}  // namespace ckpt::dump
