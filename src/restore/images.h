// Reading and checking every image of a checkpoint before anything is touched.
#pragma once

#include <memory>
#include <vector>

#include <google/protobuf/arena.h>

#include "base/result.h"
#include "base/unique_fd.h"
#include "ckpt.pb.h"
#include "image/image_dir.h"
#include "restore/parent_pages.h"
#include "tree/tree.h"

namespace ckpt::restore {

// The images of one live task: messages in its tree's arena (TreeImages).
struct TaskImages {
  TaskImages(pid_t pid, google::protobuf::Arena& arena);
  pid_t pid;
  img::TaskCore& core;
  img::MmImage& mm;
  img::PageMap& pagemap;
  img::Files& files;
  UniqueFd pages;  // pages-PID.img, header checked
  std::string pages_path;
};

// An arena whose memory no process forked from ckpt inherits
// (MADV_DONTFORK). The root of a restored tree, forked from ckpt, needs none
// of ckpt's copy of the images, and each page of it it inherited cost its
// fork and the unmapping of ckpt (a 50-task restore, when every task was
// forked from ckpt: 23.1 -> 21.6 ms).
// Strings and bytes keep their buffers outside it (protobuf 3.21).
std::unique_ptr<google::protobuf::Arena> not_inherited_arena();

struct TreeImages {
  std::unique_ptr<google::protobuf::Arena> arena;  // the tasks' images; outlives them
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
