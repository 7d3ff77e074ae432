// ckpt dump: seize a task, write its images, then kill, resume or leave it
// stopped. A dump that fails leaves the task running as it was.
#pragma once

#include <sys/types.h>

#include <string>

#include "base/fault.h"
#include "base/log.h"
#include "base/result.h"
#include "ckpt.pb.h"

namespace ckpt::dump {

enum class After { Kill, Run, Stop };
// How memory leaves the task (bench/ measures both).
enum class PageTransfer { Splice, Readv };

struct DumpOptions {
  pid_t pid = 0;
  std::string dir;
  After after = After::Kill;
  bool shell_job = false;
  unsigned timeout_s = 10;  // give up seizing after this long
  bool fsync = false;       // images durable on disk before the task goes
  PageTransfer pages = PageTransfer::Splice;
  Faults faults;            // tests only: seize, parasite, visit, memory, cure, images
};

Result<img::Stats> dump(const DumpOptions& o, Log& log);

}  // namespace ckpt::dump
