// The previous round of an iterative dump (--prev-images-dir): its images
// directory, the page map of the task there, and the dirty tracking its
// keeper held since.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>

#include "base/log.h"
#include "base/result.h"
#include "ckpt.pb.h"
#include "dump/dirty.h"
#include "dump/uffd_tracker.h"
#include "image/image_dir.h"

namespace ckpt::dump {

struct PrevRound {
  std::string rel;  // as given: relative to the new images directory, or absolute
  image::ImageDir dir;
  img::PageMap pagemap;  // of the task
  std::optional<ParentCover> cover;
  // Empty when the keeper was gone: this round can tell no written page.
  std::optional<UffdTracker> tracker;
};

// Opens `rel` (relative to `dir`, the new round's directory) and takes the
// tracking of `pid` from its keeper; a missing keeper is a warning (every
// page is stored), a missing or damaged checkpoint an error naming it.
Result<PrevRound> open_prev_round(const image::ImageDir& dir, const std::string& rel, pid_t pid, Log& log);

// The path of `rel` seen from the directory `from`.
std::string resolve_from(const std::string& from, const std::string& rel);

}  // namespace ckpt::dump
