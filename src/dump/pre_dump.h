// ckpt pre-dump: one round of an iterative dump. The task's memory only,
// frozen just while its pages are handed over into pipes (dump/page_pipes.h),
// running again while they are written; dirty tracking armed for the next
// round (dump/uffd_tracker.h, kept by dump/uffd_keeper.h). A later round
// (pre-dump or dump --prev-images-dir) stores only the pages written since.
// docs/migration.md has the whole picture.
#pragma once

#include "base/log.h"
#include "base/result.h"
#include "ckpt.pb.h"
#include "dump/dump.h"
#include "image/image_dir.h"

namespace ckpt::dump {

// `o.pid`, `o.timeout_s`, `o.prev_dir`, `o.faults` ("memory") are used;
// `o.pid` has passed check_dumpable, as for dump(). A failed round leaves
// the task running, untouched: no tracking either.
Result<img::Stats> pre_dump(const DumpOptions& o, image::ImageDir& dir, Log& log);

}  // namespace ckpt::dump
