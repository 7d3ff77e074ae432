// ckpt verify DIR: every image's framing and checksum, every page run's
// checksum and the images' cross-references (image/verify.h), without
// restoring anything, and (unless --skip-file-check) that the files the
// images map are still the ones that were dumped. Exit 0 and one line when all is well; otherwise the
// first problem, naming the file and the offset or entry.
#include "cli/commands/commands.h"
#include "cli/commands/options.h"
#include "image/verify.h"

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
  auto r = image::verify_dir(*dir, c.verify_files);
  if (!r) {
    log.error("verify: {}", r.error().str());
    return 1;
  }
  fmt::print("ok: {} images, {} pages verified\n", r->images, r->pages);
  return 0;
}

}  // namespace ckpt::cli
