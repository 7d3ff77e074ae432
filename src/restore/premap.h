// Memory a child inherited through fork and never changed shares its pages
// with its parent again after restore, as it did before the dump: a
// pre-fork server's 50 workers need the master's memory once, not 51 times.
//
// A task lays such a VMA out before it forks its children, in a slot of a
// window that ckpt reserves in its own address space (so that no boot
// region lands on it; the root keeps it when it unmaps the rest of ckpt):
//   - the task the VMA comes from maps the slot and fills it, from its pages
//     file and from the files holding what it inherited in turn;
//   - a child whose VMA is exactly the same has the slot already, copy on
//     write: it writes only the pages it changed and drops those it lacks,
//     so the pages it inherited stay the parent's frames (and its own
//     children see its version when they fork);
//   - each restorer moves its slots into place (mremap) and unmaps the
//     window; its page runs there are not read again.
// Anything else (another kind of VMA, a child whose VMA grew, a child
// forked by a session's helper, a lazy restore) is read by the restorer as
// before: correct, only not shared.
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "base/mapping.h"
#include "base/result.h"
#include "proc/maps.h"
#include "restore/boot_region.h"
#include "restore/images.h"
#include "restore/page_origin.h"

namespace ckpt::restore {

// Bytes to pread into a slot: the task's own stored pages (checked against
// their run's crc32c) or a piece it inherited (checked by its owner).
struct PremapRead {
  int fd;                    // ckpt's
  const std::string* file;   // its path, for errors (TreeImages')
  uint64_t vaddr, len, off;
  bool check;
  uint32_t crc32c;
};

struct PremapSlot {
  uint64_t at;          // in the window: the same address in every task that holds it
  uint64_t start, end;  // the VMA
  bool create;          // map it (else the parent's, inherited through fork)
  uint32_t map_flags;   // create: MAP_NORESERVE or 0
  std::vector<PremapRead> reads;
  std::vector<Range> drop;  // not create: pages of the parent the task lacks
};

struct TaskPremap {
  Range window;  // empty: the task holds no slot
  std::vector<PremapSlot> slots;
  // Whether [vaddr, vaddr + len) lies in one of its slots' VMAs.
  bool covers(uint64_t vaddr, uint64_t len) const;
};

struct Premaps {
  Mapping window;                 // ckpt's reservation, until every task is forked
  std::vector<TaskPremap> tasks;  // per live task (TreeImages::tasks order)
};

// `inherited`: resolve_inherited()'s. `adopted`: the tree's tasks a
// session's helper forks (not their parent). `own`: ckpt's maps now. With
// no VMA to share, the window is empty and nothing is reserved.
Result<Premaps> plan_premaps(const TreeImages& t, const std::vector<std::vector<InheritedPages>>& inherited,
                             const std::set<int>& adopted, const std::vector<proc::MapEntry>& own);

}  // namespace ckpt::restore
