#include "dump/pre_dump.h"

#include <fcntl.h>

#include <chrono>
#include <optional>

#include "arch/x86_64/page.h"
#include "base/fs.h"
#include "dump/memory.h"
#include "dump/page_pipes.h"
#include "dump/prev_round.h"
#include "dump/seize.h"
#include "dump/uffd_keeper.h"
#include "dump/uffd_tracker.h"
#include "image/inventory.h"
#include "image/page_sink.h"
#include "image/socket_sink.h"
#include "parasite/leftovers.h"
#include "parasite/parasite.h"
#include "proc/fds.h"
#include "ptrace/remote_syscall.h"

namespace ckpt::dump {

namespace {

using Clock = std::chrono::steady_clock;
uint64_t ns_since(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t).count();
}

bool stored_kind(const img::Vma& v) { return v.kind() == img::Vma::ANON_PRIVATE || v.kind() == img::Vma::FILE_PRIVATE; }

// What a failed round wrote goes (base/dir.h's temporaries go by themselves).
struct Scratch {
  image::ImageDir& dir;
  bool keep = false;
  ~Scratch() {
    if (!keep) dir.remove_written();
  }
};

// The frozen part of a round: the pages handed over and tracking re-armed.
struct Frozen {
  img::MmImage mm;
  img::PageMap map;
  std::optional<PagePipes> held;
};

Result<Frozen> hand_over(const DumpOptions& o, std::vector<Tracee>& threads, std::optional<UffdTracker>& tracker,
                         bool track, const ParentCover* cover, Log& log) {
  Frozen f;
  const pid_t pid = threads[0].tid();
  const std::vector<proc::MapEntry> maps = TRY(proc::read_maps(pid));
  OwnCode own = TRY(OwnCode::read());
  const SyscallSite site = TRY(find_syscall_site(threads[0], own, maps));
  Leftovers left = TRY(find_leftovers(threads[0], maps, TRY(proc::read_fd_links(pid))));
  if (!left.empty()) TRY_CTX(remove_leftovers(threads, left, site), "remove what a killed ckpt left");
  // A task that uses userfaultfd itself: ckpt's registration would take its
  // VMAs from it (or fail on them), so it is refused.
  if (const int fd = TRY(own_userfaultfd(pid)); fd >= 0)
    return error(EOPNOTSUPP, "pid {} uses userfaultfd itself (fd {}): pre-dump can't track its memory without "
                 "taking it from its own", pid, fd);
  files::FileIdCache ids;  // one task: a look per file
  f.mm = TRY(collect_vmas(pid, tracker.has_value(), ids));
  if (track && !tracker) tracker = TRY_CTX(UffdTracker::create(threads[0], site), "arm dirty tracking");
  DirtyPages dirty;
  if (tracker) {
    dirty.tracked = TRY(tracker->track(f.mm, stored_kind, log));
    dirty.protect = true;
    dirty.parent = cover;
  }
  Parasite parasite = TRY_CTX(Parasite::inject(threads[0], site, CompletionMode::SyscallTrace, log, o.faults),
                              "inject the parasite");
  PageSource src{threads[0], &parasite, nullptr, tracker ? &dirty : nullptr};
  const std::vector<bool> readable = TRY(plan_runs(src, f.mm, &f.map));
  UniqueFd mem = TRY(open_file(fmt::format("/proc/{}/mem", pid), O_RDONLY));
  f.held = TRY_CTX(PagePipes::fill(parasite, pid, mem.get(), f.map, readable), "hand over the pages");
  TRY(o.faults.at("memory", pid));
  TRY_CTX(parasite.cure(), "cure");
  return f;
}

Result<img::Stats> round(const DumpOptions& o, image::ImageDir& dir, Log& log) {
  img::Stats stats;
  const auto start = Clock::now();
  const pid_t pid = o.pid;
  Scratch scratch{dir};

  std::optional<PrevRound> prev;
  if (!o.prev_dir.empty()) prev = TRY(open_prev_round(dir, o.prev_dir, pid, log));
  std::optional<UffdTracker> tracker;
  if (prev && prev->tracker) tracker = std::move(prev->tracker);
  bool track = true;
  if (!tracker) {
    if (auto ok = UffdTracker::supported(); !ok) {
      log.warn("pid {}: this kernel has no dirty-page tracking ckpt can use (no soft-dirty, {}): every round "
               "stores every page", pid, ok.error().str());
      track = false;
    }
  }
  // Pages the previous round covers may be left to it only when the
  // tracking ran since.
  const ParentCover* cover = prev && tracker ? &*prev->cover : nullptr;

  std::optional<image::PageServerConn> server;
  if (o.page_server) server = TRY(image::PageServerConn::connect(o.address, o.port, TRY(image::load_wire_key(o.psk_file, o.tls))));

  const auto freeze_start = Clock::now();
  TracerPool tracers(1);
  SeizedTree seized = TRY_CTX(seize_tree(pid, freeze_start + std::chrono::seconds(o.timeout_s), tracers), "seize");
  size_t live = 0;
  for (const TaskTracees& t : seized.tasks) live += !t.empty();
  if (live != 1)
    return error(EOPNOTSUPP, "pid {} leads a tree of {} live processes: pre-dump of a tree is not supported yet "
                 "(pre-dump a single process)", pid, live);
  std::vector<Tracee>& threads = seized.tasks[0].threads();
  const auto mem_start = Clock::now();
  Frozen f = TRY(hand_over(o, threads, tracker, track, cover, log));
  stats.set_memory_dump_ns(ns_since(mem_start));
  // The task goes on: what is left is ckpt's own work.
  for (Tracee& t : threads) TRY_CTX(t.detach(), "resume thread {}", t.tid());
  stats.set_freeze_ns(ns_since(freeze_start));
  stats.set_frozen_ns(ns_since(freeze_start));

  std::unique_ptr<image::PageSink> sink;
  if (server) sink = server->sink(image::pages_name(pid));
  else sink = TRY(image::FilePageSink::create(dir, image::pages_name(pid)));
  TRY(sink->begin(f.held->bytes()));
  TRY_CTX(f.held->write_out(*sink, &f.map), "{}", sink->name());
  TRY(sink->commit());
  if (server) TRY(server->done());
  f.map.set_total_pages(f.held->bytes() / arch::kPageSize);
  stats.set_pages_written(f.map.total_pages());
  stats.set_bytes_written(f.held->bytes());
  TRY(dir.write(image::mm_name(pid), image::ImageKind::Mm, f.mm));
  TRY(dir.write(image::pagemap_name(pid), image::ImageKind::PageMap, f.map));

  img::Inventory inv = image::new_inventory(pid, {pid});
  inv.set_pre_dump(true);
  if (cover) inv.set_parent_dir(o.prev_dir);
  TRY(dir.write(image::kInventoryName, image::ImageKind::Inventory, inv));
  scratch.keep = true;

  // The tracking outlives this ckpt in a keeper, for the next round.
  if (tracker) {
    const pid_t keeper = TRY(start_keeper(dir, pid, std::move(*tracker).release()));
    log.info("pid {}: dirty tracking kept by pid {} for the next round ({})", pid, keeper,
             dir.file(kKeeperSocket));
  }
  stats.set_dump_ns(ns_since(start));
  (void)dir.write("stats-dump.img", image::ImageKind::Stats, stats);
  return stats;
}

}  // namespace

Result<img::Stats> pre_dump(const DumpOptions& o, image::ImageDir& dir, Log& log) {
  return TRY_CTX(round(o, dir, log), "pre-dump pid {}", o.pid);
}

}  // namespace ckpt::dump
