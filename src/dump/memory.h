// The address space of a task: its VMAs from /proc/PID/maps, and the present
// pages of those whose content is not in a file, streamed to pages-PID.img.
#pragma once

#include <sys/types.h>

#include <cstdint>

#include "base/fault.h"
#include "base/result.h"
#include "ckpt.pb.h"
#include "dump/inherited.h"
#include "image/image_dir.h"
#include "parasite/parasite.h"
#include "ptrace/tracee.h"

namespace ckpt::dump {

// VMAs of `pid`, classified; an Error names the first one ckpt can't restore.
Result<img::MmImage> collect_vmas(pid_t pid);

struct PageStats {
  uint64_t pages = 0;
  uint64_t bytes = 0;
};

// Where pages come from: the parasite's vmsplice when there is one, else
// process_vm_readv from the stopped task.
struct PageSource {
  Tracee& task;
  Parasite* parasite = nullptr;
  // The task's parent, dumped already: what was inherited from it unchanged
  // is not stored again (dump/inherited.h).
  const ParentPages* parent = nullptr;
};

// Writes pages-PID.img (under a temporary name, committed on success) and
// fills `map` with its runs.
Result<PageStats> dump_pages(const PageSource& src, const img::MmImage& mm, image::ImageDir& dir,
                             img::PageMap* map, const Faults& faults);

}  // namespace ckpt::dump
