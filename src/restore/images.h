// Reading and checking every image of a checkpoint before anything is touched.
#pragma once

#include "base/result.h"
#include "base/unique_fd.h"
#include "ckpt.pb.h"
#include "image/image_dir.h"

namespace ckpt::restore {

struct TaskImages {
  img::Inventory inventory;
  img::TaskCore core;
  img::MmImage mm;
  img::PageMap pagemap;
  img::Files files;
  UniqueFd pages;  // pages-PID.img, header checked
  std::string pages_path;
};

// Loads the images of the root task and checks that they agree with each
// other (sorted, non-overlapping VMAs; page runs inside them; sizes; fds) and
// that every page run's checksum matches its data (image/verify.h).
Result<TaskImages> load_task_images(const image::ImageDir& dir);

}  // namespace ckpt::restore
