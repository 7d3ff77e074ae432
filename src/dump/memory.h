// The address space of a task: its VMAs from /proc/PID/maps, and the present
// pages of those whose content is not in a file, streamed to pages-PID.img.
#pragma once

#include <sys/types.h>

#include <cstdint>

#include "base/fault.h"
#include "base/progress.h"
#include "base/result.h"
#include "ckpt.pb.h"
#include "dump/dirty.h"
#include "dump/inherited.h"
#include "files/file_id.h"
#include "image/page_sink.h"
#include "image/image_dir.h"
#include "parasite/parasite.h"
#include "proc/maps.h"
#include "ptrace/tracee.h"

namespace ckpt::dump {

// VMAs of `pid`, classified; an Error names the first one ckpt can't restore.
// `ckpt_tracks`: the uffd-wp registration ("uw") VMAs may have is ckpt's
// own dirty tracking (dump/uffd_tracker.h), not the task's. `maps`, if
// given, gets every VMA as /proc/PID/maps shows it, from the same read.
// `ids`: the identities of mapped files this dump has taken already.
Result<img::MmImage> collect_vmas(pid_t pid, bool ckpt_tracks, files::FileIdCache& ids,
                                  std::vector<proc::MapEntry>* maps = nullptr);

struct PageStats {
  uint64_t pages = 0;
  uint64_t bytes = 0;
};

// Where pages come from: the parasite's vmsplice when there is one and the
// task stores more than `readv_up_to` bytes, else process_vm_readv from the
// stopped task.
struct PageSource {
  Tracee& task;
  Parasite* parasite = nullptr;
  // The task's parent, dumped already: what was inherited from it unchanged
  // is not stored again (dump/inherited.h).
  const ParentPages* parent = nullptr;
  // An iterative dump's round: pages not written since the previous
  // checkpoint are left to it (dump/dirty.h).
  const DirtyPages* dirty = nullptr;
  // The rseq area of the thread the parasite runs in (memory.cc says why), as
  // its core image has it.
  img::Rseq rseq;
  uint64_t readv_up_to = 0;
  // The tree's progress line (its dump's), or null: the task's own.
  Progress* progress = nullptr;
};

// The most a task may store and still be copied, parasite or not
// (PageTransfer::Auto). Splicing costs a pipe handed to the parasite and a
// reply for each drain, about 0.3 ms on a PVM guest; copying, one
// process_vm_readv and a fault for each page of ckpt's buffer the first
// time (10-15 us there). A 50-task tree of 9 pages a task: its memory
// phase 25 -> 14 ms; a process of 26 pages and a buffer new to it: 0.47
// -> 0.99 ms (bench/README.md, stop 41).
constexpr uint64_t kReadvUpTo = 64 << 10;

// Fills `map` with the runs of the task's pages (their data not yet read);
// returns, per run, whether the task itself can read it.
Result<std::vector<bool>> plan_runs(const PageSource& src, const img::MmImage& mm, img::PageMap* map);
// Bytes of the runs whose data the checkpoint stores.
uint64_t stored_bytes(const img::PageMap& map);

// Streams the task's pages into `sink` (committed on success) and fills
// `map` with its runs.
Result<PageStats> dump_pages(const PageSource& src, const img::MmImage& mm, image::PageSink& sink,
                             img::PageMap* map, const Faults& faults);

}  // namespace ckpt::dump
