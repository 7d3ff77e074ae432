// Pages a task's restorer reads from another pages file than its own: a
// parent task's (inherited through fork, restore/inherited.h) or a parent
// checkpoint's (restore/parent_pages.h).
#pragma once

#include <cstdint>

namespace ckpt::restore {

struct InheritedPages {
  int fd;  // ckpt's fd of the pages file that holds them (a task's of the tree, or a parent checkpoint's)
  uint64_t vaddr, len, off;  // off: in that pages file
};

}  // namespace ckpt::restore
