// ckpt lazy-pages -D DIR: the daemon that fills a restore --lazy-pages
// tree's private anonymous memory from the images of DIR, on demand.
//
// It listens on DIR/lazy-pages.sock (lazy/protocol.h), loads and checks the
// images (a restore may connect meanwhile, and load them too) and serves
// one restore: each task's restorer sends the userfaultfd its lazy VMAs are
// registered with. Then, from one poll loop:
//
//   - a fault is served at once: the 64 KiB around it (within what is
//     pending) with UFFDIO_COPY, or a zero page where nothing was dumped
//     or the task dropped the memory since (UFFDIO_ZEROPAGE);
//   - when no event waits, the lowest pending MiB of some task is pushed;
//   - munmap and madvise(MADV_DONTNEED) (UFFD_EVENT_UNMAP, _REMOVE) drop
//     what they cover, mremap (UFFD_EVENT_REMAP) moves it;
//   - a fork (UFFD_EVENT_FORK) before every page is in is refused: the
//     daemon gives up, and the restore's watcher kills the tree.
//
// Every byte is checked against its run's checksum before it is served
// (lazy/checked_pages.h). It tells the watcher kDone and exits once ckpt
// restore said every task runs and nothing is pending; on any error it
// tells it why (kError) and exits non-zero.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>

#include "base/fault.h"
#include "base/log.h"
#include "base/result.h"
#include "image/image_dir.h"
#include "lazy/remote_pages.h"

namespace ckpt::lazy {

struct LazyStats {
  uint64_t tasks = 0;
  uint64_t faults = 0;        // page faults read
  uint64_t fault_bytes = 0;   // copied to answer them
  uint64_t pushed_bytes = 0;  // copied in the background
  uint64_t zero_pages = 0;
};

// `faults`: tests only; "slow:lazy-push" pushes a MiB only after 300 ms
// without an event, and checks runs only as they are needed, so that a
// test can act while most pages are pending.
// `listening` is called once DIR/lazy-pages.sock takes connections: a
// restore started from then on finds the daemon.
// `remote`: the pages files are with ckpt page-server --lazy-pages there
// (lazy/remote_pages.h); `dir` holds the checkpoint's other images.
Result<LazyStats> serve_lazy_pages(const image::ImageDir& dir, const std::optional<RemoteSource>& remote,
                                   const Faults& faults, Log& log, const std::function<void()>& listening = {});

}  // namespace ckpt::lazy
