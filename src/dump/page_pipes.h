// A pre-dump's pages, held in pipes while the task runs on. The parasite
// vmsplices them in while the task is frozen: the pipes reference the
// task's pages, nothing is copied, so the freeze lasts as long as the
// handing over. Once the task runs again ckpt reads them out into the
// pages stream, checksumming what it writes. A page the task writes after
// that reaches the pipe newer than at the freeze: harmless, since the write
// also marked it for the next round, which stores it again.
#pragma once

#include <sys/types.h>

#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"
#include "ckpt.pb.h"
#include "image/page_sink.h"
#include "parasite/parasite.h"

namespace ckpt::dump {

class PagePipes {
 public:
  // The stored runs of `map` (readable: per run, the task can read it;
  // runs it can't are copied now through /proc/PID/mem, fd `mem`).
  static Result<PagePipes> fill(Parasite& p, pid_t tid, int mem, const img::PageMap& map,
                                const std::vector<bool>& readable);
  // Everything held, in run order, into `sink` (begun); sets each run's crc32c.
  Result<void> write_out(image::PageSink& sink, img::PageMap* map);
  uint64_t bytes() const { return bytes_; }

 private:
  struct Piece {
    int run;         // index in the page map
    uint64_t len;
    int pipe;        // index in pipes_, or -1: in copy
    std::vector<char> copy;
  };
  PagePipes() = default;
  Result<int> new_pipe(pid_t tid);
  std::vector<UniqueFd> pipes_;    // read ends
  std::vector<UniqueFd> pipes_w_;  // write ends, while filling
  std::vector<Piece> pieces_;
  uint64_t bytes_ = 0;
};

}  // namespace ckpt::dump
