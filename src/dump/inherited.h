// Memory a child inherited through fork and never changed: the same
// physical page at the same address as in its parent (a pre-fork server's
// workers share most of the master's memory that way). Its content is in the
// parent's images already, so the child's page map says so
// (PageRun.inherited) instead of storing it again; restore reads it from
// the parent's pages file.
#pragma once

#include <sys/types.h>

#include <vector>

#include "base/result.h"
#include "ckpt.pb.h"

namespace ckpt::dump {

// The parent's dumped page map, its tree still frozen.
struct ParentPages {
  pid_t pid;
  const img::PageMap* pagemap;
};

// Splits the runs of `map` (the child `pid`'s, in address order, `readable`
// one per run) into inherited stretches and the rest. Only pages the
// parent's runs cover (stored or inherited in turn) and whose frame
// (/proc/PID/pagemap, CAP_SYS_ADMIN) is the parent's at the same address
// count as inherited.
Result<void> mark_inherited(pid_t pid, const ParentPages& parent, img::PageMap* map, std::vector<bool>* readable);

}  // namespace ckpt::dump
