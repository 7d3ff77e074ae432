// Reading and checking every image of a checkpoint before anything is touched.
#pragma once

#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"
#include "ckpt.pb.h"
#include "image/image_dir.h"
#include "restore/parent_pages.h"
#include "tree/tree.h"

namespace ckpt::restore {

// The images of one live task.
struct TaskImages {
  pid_t pid = 0;
  img::TaskCore core;
  img::MmImage mm;
  img::PageMap pagemap;
  img::Files files;
  UniqueFd pages;  // pages-PID.img, header checked
  std::string pages_path;
};

struct TreeImages {
  img::Inventory inventory;
  tree::ProcessTree tree;
  std::vector<TaskImages> tasks;  // the live tasks, in the tree's order
  img::ShmemImage shmem;          // shared memory objects they map
  img::FileDescs descs;           // open file descriptions their fds refer to
  // The parent checkpoints of a dump --prev-images-dir (one task only).
  std::vector<ParentLevel> parents;
};

// Loads the inventory, the tree and the images of every live task, and
// checks that they agree with each other (sorted, non-overlapping VMAs; page
// runs inside them; sizes; fds). Page data is checked by restore() while the
// restorer reads it, before any task runs its own code.
Result<TreeImages> load_images(const image::ImageDir& dir);

}  // namespace ckpt::restore
