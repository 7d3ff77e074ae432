// ckpt verify DIR: every image's framing and checksum, every page run's
// checksum and the images' cross-references (image/verify.h), without
// restoring anything, and (unless --skip-file-check) that the files the
// images map are still the ones that were dumped. Exit 0 and one line when all is well; otherwise the
// first problem, naming the file and the offset or entry.
#include "cli/commands/commands.h"
#include "image/verify.h"

namespace ckpt::cli {

int run_verify(const std::string& dir_path, bool check_files, Log& log) {
  auto dir = image::ImageDir::open(dir_path);
  if (!dir) {
    log.error("verify: {}", dir.error().str());
    return 1;
  }
  auto r = image::verify_dir(*dir, check_files);
  if (!r) {
    log.error("verify: {}", r.error().str());
    return 1;
  }
  fmt::print("ok: {} images, {} pages verified\n", r->images, r->pages);
  return 0;
}

}  // namespace ckpt::cli
