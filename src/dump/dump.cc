#include "dump/dump.h"

#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <future>
#include <map>
#include <mutex>
#include <optional>
#include <utility>

#include "arch/x86_64/page.h"
#include "arch/x86_64/xsave.h"
#include "base/fs.h"
#include "base/parallel.h"
#include "dump/core.h"
#include "dump/cpu_pins.h"
#include "dump/memory.h"
#include "dump/prev_round.h"
#include "image/socket_sink.h"
#include "dump/uffd_tracker.h"
#include "dump/seize.h"
#include "dump/sharing.h"
#include "dump/shmem.h"
#include "files/file_id.h"
#include "files/files.h"
#include "files/inet_socket.h"
#include "files/locks.h"
#include "files/pty.h"
#include "image/cpu.h"
#include "image/image_dir.h"
#include "image/inventory.h"
#include "net/tree_connections.h"
#include "proc/fds.h"
#include "proc/maps.h"
#include "proc/numa_maps.h"
#include "proc/status.h"
#include "parasite/leftovers.h"
#include "parasite/parasite.h"
#include "ptrace/remote_syscall.h"
#include "ptrace/tracee.h"
#include "ptrace/tracer_pool.h"
#include "ptrace/tree_commit.h"

namespace ckpt::dump {

namespace {

using Clock = std::chrono::steady_clock;
uint64_t ns_since(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t).count();
}

constexpr uint64_t kPfKthread = 0x00200000;

// Tracer threads for a tree's dump: one per CPU ckpt may run on, up to 4.
// Here (2 CPUs) two dumps of half a tree each, side by side, took 50 ms
// where one of the whole tree took 82, and three thirds no less than two
// halves; more than 4 was never measured.
size_t tracer_threads() { return std::min<size_t>(usable_cpus(), 4); }

// One task's share of the dump's stats. With several tracers the per-task
// phases (proc, parasite, memory, cure) add up across them, to more than the
// dump's wall time.
void add_task_stats(img::Stats& to, const img::Stats& from) {
  to.set_proc_ns(to.proc_ns() + from.proc_ns());
  to.set_parasite_ns(to.parasite_ns() + from.parasite_ns());
  to.set_memory_dump_ns(to.memory_dump_ns() + from.memory_dump_ns());
  to.set_cure_ns(to.cure_ns() + from.cure_ns());
  to.set_pages_written(to.pages_written() + from.pages_written());
  to.set_bytes_written(to.bytes_written() + from.bytes_written());
  for (const img::TaskStops& s : from.completion()) *to.add_completion() = s;
}

// Has the process died, or is it dying: its main thread a zombie and every
// other thread a zombie too or with SIGKILL pending (a group kill queues it to
// each). A process killed during a dump makes some step fail in its own terms
// (a closed socket, empty maps): the user must hear that it died.
bool process_died(pid_t pid) {
  auto st = proc::read_thread_stat(pid);
  if (!st) return true;
  if (st->state != 'Z' && st->state != 'X') return false;
  auto tids = proc::list_numeric_dir(fmt::format("/proc/{}/task", pid));
  if (!tids) return true;
  for (int tid : *tids) {
    auto t = proc::read_status(tid);
    if (t && t->state != 'Z' && t->state != 'X' && !(t->sig_pnd & (1ULL << (SIGKILL - 1)))) return false;
  }
  return true;
}

// Removes what a failed dump wrote, so that nothing half-written lingers
// (temporaries remove themselves: base/dir.h).
struct Scratch {
  image::ImageDir& dir;
  bool keep = false;
  ~Scratch() {
    if (!keep) dir.remove_written();
  }
};

// The parasite opens fds in the task (its memfd, two socket pairs, a pipe
// for page drains): a task whose fds fill its soft RLIMIT_NOFILE gets room
// for them (below its hard limit) while the parasite is in, and its own soft
// limit back afterwards, in the task and in the image (the parasite reads the
// raised one). A ckpt killed meanwhile leaves it raised by kParasiteFds.
class NofileRoom {
 public:
  static Result<NofileRoom> make(pid_t pid, const img::Files& files) {
    NofileRoom r;
    const files::NofileLimit now = TRY(files::read_nofile_limit(pid));
    r.old_ = {static_cast<rlim_t>(now.soft), static_cast<rlim_t>(now.hard)};
    rlim_t used = 0;
    for (const img::FdEntry& e : files.fds()) used += static_cast<rlim_t>(e.fd()) < r.old_.rlim_cur;
    if (r.old_.rlim_cur == RLIM_INFINITY || r.old_.rlim_cur >= used + kParasiteFds) return r;
    rlimit more = r.old_;
    more.rlim_cur = std::min<rlim_t>(r.old_.rlim_max, used + kParasiteFds);
    if (more.rlim_cur <= r.old_.rlim_cur) return r;
    if (prlimit(pid, RLIMIT_NOFILE, &more, nullptr) < 0)
      return sys_error("pid {}: raise RLIMIT_NOFILE to {} for the parasite's fds", pid, more.rlim_cur);
    r.pid_ = pid;
    return r;
  }
  NofileRoom(NofileRoom&& o) noexcept : pid_(std::exchange(o.pid_, 0)), old_(o.old_) {}
  NofileRoom& operator=(NofileRoom&&) = delete;
  ~NofileRoom() {
    if (pid_) (void)prlimit(pid_, RLIMIT_NOFILE, &old_, nullptr);
  }
  // The task is dead: its pid may soon be another's.
  void dismiss() { pid_ = 0; }
  void fix_image(img::TaskCore* core) const {
    if (!pid_) return;
    for (img::RLimit& rl : *core->mutable_rlimits())
      if (rl.resource() == RLIMIT_NOFILE) rl.set_cur(old_.rlim_cur);
  }

 private:
  static constexpr rlim_t kParasiteFds = 8;
  NofileRoom() = default;
  pid_t pid_ = 0;
  rlimit old_{};
};

// A dump that ends in a kill takes no parasite out of the tasks it dumped:
// each daemon waits for a command, its task frozen, until the tree is
// killed with it in (the cure is 5 stops a task: a 50-task dump is 9%
// faster without). Should the dump fail first, each task is cured by its
// tracer as this goes, and the tree runs on as it was; should ckpt die,
// each daemon returns into its task's own state as its socket closes
// (parasite.h).
struct Parked {
  pid_t pid;
  NofileRoom room;  // the task's own soft limit back once the parasite is out
  Parasite parasite;
};

class ParkedParasites {
 public:
  // `tracer_of[j]`: the tracer of the task parked at j.
  ParkedParasites(TracerPool& tracers, std::vector<size_t> tracer_of)
      : tracers_(tracers), tracer_of_(std::move(tracer_of)), parked_(tracer_of_.size()) {}
  ParkedParasites(const ParkedParasites&) = delete;
  ParkedParasites& operator=(const ParkedParasites&) = delete;
  ~ParkedParasites() {
    if (std::ranges::none_of(parked_, [](const std::optional<Parked>& p) { return p.has_value(); })) return;
    (void)tracers_.on_each([&](size_t tracer) -> Result<void> {
      for (size_t j = 0; j < parked_.size(); j++) {
        if (tracer_of_[j] != tracer || !parked_[j]) continue;
        if (process_died(parked_[j]->pid)) dismiss(*parked_[j]);  // killed meanwhile: nothing left to cure
        parked_[j].reset();  // ~Parasite cures it, here on its tracer
      }
      return {};
    });
  }
  std::optional<Parked>* slot(size_t j) { return &parked_[j]; }
  // The tree is killed: no task is left to cure.
  void killed() {
    for (std::optional<Parked>& p : parked_)
      if (p) {
        dismiss(*p);
        p.reset();
      }
  }

 private:
  static void dismiss(Parked& p) {
    p.parasite.dismiss();
    p.room.dismiss();
  }
  TracerPool& tracers_;
  std::vector<size_t> tracer_of_;
  std::vector<std::optional<Parked>> parked_;
};

// Kill, resume or stop every task, as asked, once the images are complete.
// `killer`: the watcher made before the inventory (ptrace/tree_commit.h),
// for After::Kill. Each tracer lets its own tasks go.
Result<void> let_go(std::vector<TaskTracees>& tasks, After after, std::optional<TreeCommit>& killer,
                    ParkedParasites& parked, const Faults& faults, TracerPool& tracers) {
  auto each_own = [&](const std::function<Result<void>(std::vector<Tracee>&)>& f) {
    return tracers.on_each([&](size_t tracer) -> Result<void> {
      for (TaskTracees& t : tasks)
        if (t.tracer() == tracer && !t.empty()) TRY(f(t.threads()));
      return {};
    });
  };
  switch (after) {
    case After::Kill:
      // All at once, by the watcher. One that died on its own since is as
      // good as killed.
      TRY(faults.at("kill"));
      killer->kill();
      parked.killed();  // dead, or dying without a return to user space
      // Collect every thread's death as its tracer, so the parent hears of
      // it; the main thread's is reported only after all the others'.
      return each_own([](std::vector<Tracee>& threads) -> Result<void> {
        for (auto t = threads.rbegin(); t != threads.rend(); ++t)
          for (auto s = t->wait(); s && !s->gone(); s = t->wait()) (void)t->cont();
        return {};
      });
    case After::Stop:
      // Queued while traced: each thread enters the group stop as it is let go.
      for (TaskTracees& t : tasks)
        if (!t.empty() && kill(t.threads()[0].tid(), SIGSTOP) < 0) return sys_error("stop pid {}", t.threads()[0].tid());
      [[fallthrough]];
    case After::Run:
      return each_own([](std::vector<Tracee>& threads) -> Result<void> {
        for (Tracee& t : threads) TRY_CTX(t.detach(), "resume thread {}", t.tid());
        return {};
      });
  }
  return {};
}

// The images of one task.
struct TaskDump {
  pid_t pid = 0;
  img::TaskCore core;
  img::MmImage mm;
  img::PageMap pagemap;
  files::TaskFds fds;  // its table names descriptions once all tasks are in
  uint64_t xfeatures = 0;  // the xsave components its threads use
  // The core image of a task of many threads is written on a thread of its
  // own while ckpt dumps the memory and cures the task (10,000 threads:
  // 27 MB, ~60 ms), and renamed into place with the others; `core` is then
  // empty.
  std::future<Result<TempFile>> core_written;
  // Its pages file, complete, renamed into place with the other images (a
  // page server's are the server's).
  std::optional<TempFile> pages;
};

// From how many threads a core image is written ahead (~170 KB of it).
constexpr size_t kCoreAheadThreads = 64;

// What /proc shows of a frozen task. Made on the helper thread for the next
// tasks while this one injects, drains and cures the task before: nothing one
// task's parasite does shows in another's /proc files, as tasks that share
// an address space, fd table or working directory are refused first.
struct Outside {
  img::TaskCore core;  // its process-wide part (collect_core_proc)
  img::MmImage mm;
  std::vector<proc::MapEntry> maps;  // what mm was made of
  files::TaskFds fds;
  proc::Status status;
  bool default_policies = false;  // no VMA has a NUMA policy to keep: the parasite need not be asked
};

// Is /proc/PID/numa_maps, which tells whether every VMA runs under the
// default policy, cheaper to read than the parasite's answer? The file walks
// the page tables of each VMA (~1 us a VMA, 11 us a MiB resident, on the PVM
// guest: 20,000 VMAs with 84 MiB resident in 20 ms), read ahead on a helper;
// the parasite answers on the tracer with a reply (0.14 ms) and a
// get_mempolicy a VMA (~2.9 us: the same 20,000 VMAs in 57 ms).
bool numa_maps_cheaper(size_t vmas, uint64_t resident_kib) {
  return 11 * (resident_kib >> 10) < 140 + 19 * vmas / 10;
}

Result<Outside> collect_outside(pid_t pid, const DumpOptions& o, const Self& self, bool tracked,
                                files::FileIdCache& ids) {
  TRY(check_namespaces(pid, self));
  Outside out;
  out.core = TRY(collect_core_proc(pid, self, ids));
  out.mm = TRY(collect_vmas(pid, tracked, ids, &out.maps));
  out.fds = TRY(files::scan_fds(pid, {.shell_job = o.shell_job}));
  out.status = TRY(proc::read_status(pid));
  if (!out.maps.empty() && numa_maps_cheaper(out.maps.size(), out.status.rss_kib))
    out.default_policies = TRY(proc::all_default_policies(pid)).value_or(false);
  TRY(files::check_restore_fits(pid, out.fds.table, out.mm));
  TRY_CTX(files::check_locks_survive(out.fds.probes, out.fds.table, out.mm), "pid {}", pid);
  return out;
}

// FD_CLOEXEC, the fd's own flag, of the fds whose fdinfo was not read
// (files/probe.h): only the task can tell it without that file.
Result<void> collect_cloexec(Parasite& parasite, files::TaskFds* fds) {
  std::vector<abi::FdFlagsArg> flags;
  std::vector<int> at;
  for (size_t i = 0; i < fds->probes.size(); i++)
    if (!fds->probes[i].cloexec) {
      flags.push_back({.fd = fds->probes[i].fd, .flags = 0});
      at.push_back(static_cast<int>(i));
    }
  if (flags.empty()) return {};
  TRY_CTX(parasite.fd_flags(flags), "read the close-on-exec flags of {} fds", flags.size());
  for (size_t i = 0; i < flags.size(); i++)
    fds->table.mutable_fds(at[i])->set_cloexec((flags[i].flags & FD_CLOEXEC) != 0);
  return {};
}

// What every task's dump shares: the tracers dump tasks side by side, so
// what one changes for all (the shared memory objects) is locked.
struct TreeDump {
  const DumpOptions& o;
  image::ImageDir& dir;
  Log& log;
  const Self& self;
  PrevRound* prev;
  image::PageServerConn* server;
  ShmemCollector& shmem;
  std::mutex& shmem_mu;
  CpuPins& pins;
  files::FileIdCache& file_ids;  // of the files the tasks map
  Progress* progress;  // one line for a tree's tasks, or null: each its own
};

// Everything of one live task of the frozen tree: collected from outside,
// then from inside through the parasite (its pages written to the images
// directory on the way), then cured, or parked in `park` if given.
Result<TaskDump> dump_task(const TreeDump& c, size_t tracer, std::vector<Tracee>& threads, Result<Outside> outside,
                           const ParentPages* parent, OwnCode& own_code, img::Stats& stats,
                           std::optional<Parked>* park) {
  const DumpOptions& o = c.o;
  image::ImageDir& dir = c.dir;
  Log& log = c.log;
  PrevRound* prev = c.prev;
  image::PageServerConn* server = c.server;
  const Self& self = c.self;
  TaskDump d;
  const pid_t pid = d.pid = threads[0].tid();
  const auto task_start = Clock::now();
  // Stopped (SIGSTOP and kin) when seized: restored stopped. A stop or
  // continue that comes later is the kernel's to apply when ckpt lets go.
  const bool group_stopped = threads[0].group_stopped();
  if (group_stopped) log.info("pid {} is stopped: it is dumped stopped", pid);

  // What a ckpt killed mid-dump left goes first; then what /proc showed
  // with it is shown again without it.
  // The VMAs and fds as the reads made ahead found them: the task has been
  // stopped since.
  const std::vector<proc::MapEntry> maps = outside ? std::move(outside->maps) : TRY(proc::read_maps(pid));
  const SyscallSite site = TRY(find_syscall_site(threads[0], own_code, maps));
  std::vector<proc::FdLink> fds;
  if (outside)
    for (const files::FdProbe& p : outside->fds.probes) fds.push_back({p.fd, p.link});
  else
    fds = TRY(proc::read_fd_links(pid));
  Leftovers left = TRY(find_leftovers(threads[0], maps, fds));
  UffdTracker* tracker = prev && prev->tracker ? &*prev->tracker : nullptr;
  if (!left.empty()) {
    log.info("pid {}: removing the parasite a killed ckpt left ({} mappings, {} fds)", pid, left.maps.size(),
             left.fds.size());
    TRY_CTX(remove_leftovers(threads, left, site), "remove what a killed ckpt left");
    outside = collect_outside(pid, o, self, tracker != nullptr, c.file_ids);
  }
  // An iterative dump's last round: only what was written since the
  // previous one is stored (dump/dirty.h).
  if (tracker) {
    if (const int fd = TRY(own_userfaultfd(pid)); fd >= 0)
      return error(EOPNOTSUPP, "pid {} uses userfaultfd itself (fd {}): its memory can't be tracked", pid, fd);
  }
  if (!outside) return std::unexpected(outside.error());
  const bool default_policies = outside->default_policies;
  d.core = std::move(outside->core);
  d.mm = std::move(outside->mm);
  d.fds = std::move(outside->fds);
  DirtyPages dirty;
  if (tracker) {
    dirty.tracked = TRY(tracker->track(d.mm, [](const img::Vma& v) {
      return v.kind() == img::Vma::ANON_PRIVATE || v.kind() == img::Vma::FILE_PRIVATE;
    }, log));
    dirty.parent = &*prev->cover;
  }
  {
    std::lock_guard lock(c.shmem_mu);
    TRY(c.shmem.collect(pid, &d.mm, dir));
    for (const files::FdProbe& p : d.fds.probes) TRY(c.shmem.collect_hugetlb_memfd(pid, p.fd, p.link, p.st, dir));
  }
  NofileRoom room = TRY(NofileRoom::make(pid, d.fds.table));
  const proc::Status& status = outside->status;
  TRY(collect_core_outside(threads, status, &d.core));
  d.core.set_group_stopped(group_stopped);
  for (size_t i = 0; i < threads.size(); i++)
    if (d.core.threads(i).seccomp_mode() != 0 && !threads[i].seccomp_suspended())
      return error(EPERM, "thread {} runs under seccomp and ckpt cannot suspend its filters (that needs "
                   "CAP_SYS_ADMIN): they would judge, and could kill it for, the parasite's syscalls", threads[i].tid());

  // The round trips of the injection and the state, on its tracer's CPU
  // (dump/cpu_pins.h): its affinity is in the core image already. A task of
  // many threads loses by it (10,000 threads: 720-830 -> 880-920 ms): its
  // other threads' visits and the tracer then share one CPU. Pinned through
  // the memory too where one fill of the parasite's pipe (1 MiB) holds it
  // all: ckpt and the parasite then have nothing to do side by side.
  const bool one_cpu = threads.size() == 1;
  const bool small = one_cpu && status.rss_anon_kib <= 1024;
  std::optional<CpuPins::Pin> pinned;
  if (one_cpu) pinned.emplace(c.pins.pin(pid, tracer));

  // The parasite: what only the task can tell, and its memory.
  // Cured without a breakpoint: a breakpoint that fires after a killed ckpt
  // detached sends a SIGTRAP that kills the task (1 kill in ~200 landed in
  // that window). From outside instead, 5 stops (Parasite::cure_from_outside).
  const img::Rseq rseq = d.core.threads(0).rseq();  // of threads[0], where the parasite runs
  Parasite parasite = TRY_CTX(Parasite::inject(threads[0], site, CompletionMode::SyscallTrace, log, o.faults),
                              "inject the parasite");
  TRY(o.faults.at("parasite", pid));
  TRY(collect_core_inside(parasite, threads, &d.core));
  if (!default_policies) TRY(collect_vma_policies(parasite, &d.mm));
  TRY(collect_cloexec(parasite, &d.fds));
  room.fix_image(&d.core);
  for (const img::ThreadCore& th : d.core.threads())
    d.xfeatures |= arch::xsave_state_bv({reinterpret_cast<const uint8_t*>(th.xsave().data()), th.xsave().size()});
  if (threads.size() >= kCoreAheadThreads)
    d.core_written = std::async(std::launch::async, [&dir, pid, core = std::move(d.core)] {
      return dir.write_temp(image::core_name(pid), image::ImageKind::Core, core);
    });
  if (!small) pinned.reset();
  const auto mem_start = Clock::now();
  stats.set_parasite_ns(stats.parasite_ns() + ns_since(task_start));
  PageSource src{threads[0], o.pages == PageTransfer::Readv ? nullptr : &parasite, parent,
                 tracker ? &dirty : nullptr, rseq, o.pages == PageTransfer::Auto ? kReadvUpTo : 0, c.progress};
  std::unique_ptr<image::PageSink> sink;
  image::FilePageSink* file = nullptr;
  if (server) {
    sink = server->sink(image::pages_name(pid));
  } else {
    auto f = TRY(image::FilePageSink::create(dir, image::pages_name(pid), image::FilePageSink::Publish::Held));
    file = f.get();
    sink = std::move(f);
  }
  PageStats ps = TRY(dump_pages(src, d.mm, *sink, &d.pagemap, o.faults));
  if (file) d.pages.emplace(file->take());
  stats.set_memory_dump_ns(stats.memory_dump_ns() + ns_since(mem_start));
  stats.set_pages_written(stats.pages_written() + ps.pages);
  stats.set_bytes_written(stats.bytes_written() + ps.bytes);

  // Cure: the task is as it was before the parasite; or, for a kill, later
  // only if the dump fails.
  TRY(o.faults.at("cure", pid));
  if (park) {
    parasite.park();
    park->emplace(Parked{pid, std::move(room), std::move(parasite)});
    return d;
  }
  img::TaskStops* cure = stats.add_completion();
  cure->set_tid(pid);
  cure->set_breakpoint(parasite.mode() == CompletionMode::Breakpoint);
  const auto cure_start = Clock::now();
  if (one_cpu && !pinned) pinned.emplace(c.pins.pin(pid, tracer));
  cure->set_stops(TRY_CTX(parasite.cure(), "cure"));
  stats.set_cure_ns(stats.cure_ns() + ns_since(cure_start));
  return d;
}

Result<void> write_images(const DumpOptions& o, image::ImageDir& dir, const tree::ProcessTree& tree,
                          std::vector<TaskDump>& tasks, const img::FileDescs& descs,
                          ShmemCollector& shmem, bool has_parent, const net::NetLock* netlock) {
  // Each task's images on both cores: creating a file and checking that
  // its image reads back cost about a millisecond a task.
  std::vector<Result<void>> written(tasks.size());
  share_with_helper(tasks.size(), 4, [&](size_t i) {
    written[i] = [&, &d = tasks[i]]() -> Result<void> {
      if (d.pages) TRY(dir.commit(*d.pages));
      if (d.core_written.valid()) {
        TempFile core = TRY(d.core_written.get());
        TRY(dir.commit(core));
      } else {
        TRY(dir.write(image::core_name(d.pid), image::ImageKind::Core, d.core));
      }
      TRY(dir.write(image::mm_name(d.pid), image::ImageKind::Mm, d.mm));
      TRY(dir.write(image::pagemap_name(d.pid), image::ImageKind::PageMap, d.pagemap));
      return dir.write(image::files_name(d.pid), image::ImageKind::Files, d.fds.table);
    }();
  });
  for (size_t i = 0; i < tasks.size(); i++) TRY_CTX(written[i], "pid {}", tasks[i].pid);
  TRY(dir.write(image::kFileDescsName, image::ImageKind::FileDescs, descs));
  TRY(dir.write(image::kTreeName, image::ImageKind::Tree, tree.to_image()));
  TRY(shmem.commit_pages(dir));
  if (!shmem.empty()) TRY(dir.write(image::kShmemName, image::ImageKind::Shmem, shmem.image()));
  TRY_CTX(o.faults.at("images"), "write images");

  img::Inventory inv = image::new_inventory(tree.root().pid, tree.alive());
  if (has_parent) inv.set_parent_dir(o.prev_dir);
  uint64_t xfeatures = 0;
  for (const TaskDump& d : tasks) xfeatures |= d.xfeatures;
  *inv.mutable_cpu() = image::record_cpu(xfeatures);
  if (netlock) *inv.mutable_network_lock() = netlock->image();
  return dir.write(image::kInventoryName, image::ImageKind::Inventory, inv);
}

// The frozen tree's TCP connections, locked (net/netlock.h) before their
// sockets are collected: from here until the tree runs again, or until
// restore, no packet of theirs passes. `inet`: the machine's inet sockets,
// if the tree holds any.
Result<net::NetLock> lock_connections(const DumpOptions& o, const std::vector<TaskDump>& dumps,
                                      const std::optional<files::InetSockets>& inet, Log& log) {
  if (o.network_lock == net::LockChoice::Skip || !inet) return net::NetLock{};
  std::set<uint32_t> sockets;
  for (const TaskDump& d : dumps)
    for (const files::FdProbe& p : d.fds.probes)
      if (S_ISSOCK(p.st.st_mode)) sockets.insert(static_cast<uint32_t>(p.st.st_ino));
  return net::NetLock::lock(o.network_lock, net::tree_tcp_connections(sockets, *inet), log);
}

}  // namespace

Result<void> check_dumpable(pid_t pid) {
  if (pid <= 0) return error(EINVAL, "{} is not a valid pid", pid);
  if (pid == getpid()) return error(EINVAL, "pid {} is ckpt itself", pid);
  // The main thread's own stat and, only if it is a zombie, its threads:
  // with 10,000 threads, /proc/PID/stat sums over all of them (0.9 ms) and
  // listing /proc/PID/task takes 12 ms.
  auto st = proc::read_thread_stat(pid);
  if (!st) return error(ESRCH, "no process with pid {}", pid);
  if (st->flags & kPfKthread) return error(EPERM, "pid {} ({}) is a kernel thread", pid, st->comm);
  auto status = proc::read_status(pid);
  if (!status) return error(ESRCH, "no process with pid {}", pid);
  // A zombie main thread may still lead live threads.
  size_t nthreads = 0;
  if (st->state == 'Z' || st->state == 'X') {
    auto tasks = proc::list_numeric_dir(fmt::format("/proc/{}/task", pid));
    nthreads = tasks ? tasks->size() : 0;
    if (nthreads <= 1) return error(ESRCH, "pid {} ({}) is a zombie", pid, st->comm);
  }
  if (process_died(pid)) return error(ESRCH, "pid {} ({}) is exiting", pid, st->comm);
  if (status->tgid != pid)
    return error(EINVAL, "pid {} is a thread of process {}; dump the process", pid, status->tgid);
  // The tree is pid and its descendants: it holds ckpt if pid is one of
  // ckpt's ancestors, and ckpt can't freeze itself.
  for (pid_t a = getppid(); a > 0;) {
    if (a == pid)
      return error(EINVAL, "pid {} ({}) is an ancestor of ckpt (pid {}): its tree holds ckpt itself, which cannot "
                   "be frozen", pid, st->comm, getpid());
    auto up = proc::read_stat(a);
    if (!up || up->ppid == a) break;
    a = up->ppid;
  }
  if (status->tracer_pid != 0)
    return error(EBUSY, "pid {} ({}) is already traced by pid {}", pid, st->comm, status->tracer_pid);
  if (st->state == 'Z')
    return error(EOPNOTSUPP, "pid {} ({}): its main thread has exited while {} threads live on; such processes are "
                 "not supported yet", pid, st->comm, nthreads - 1);
  return {};
}

namespace {

// Every step of a dump, once the root is known to be dumpable.
Result<img::Stats> dump_dumpable(const DumpOptions& o, image::ImageDir& dir, Log& log, Clock::time_point start) {
  img::Stats stats;
  if (o.started != Clock::time_point{})
    stats.set_startup_ns(std::chrono::duration_cast<std::chrono::nanoseconds>(start - o.started).count());
  const pid_t root = o.pid;
  dir.set_durable(o.fsync);
  Scratch scratch{dir};
  // The previous round, its tracking taken from its keeper: this dump ends
  // it (the fd closes when the dump is over, and the kernel clears every
  // mark), whatever the outcome.
  std::optional<PrevRound> prev;
  if (!o.prev_dir.empty()) prev = TRY_CTX(open_prev_round(dir, o.prev_dir, root, log), "dump pid {}", root);
  // Connected before anything is touched: a server that is not there fails
  // the dump at once.
  std::optional<image::PageServerConn> server;
  if (o.page_server) {
    const auto key = TRY_CTX(image::load_wire_key(o.psk_file, o.tls), "dump pid {}", root);
    server = TRY_CTX(image::PageServerConn::connect(o.address, o.port, key), "dump pid {}", root);
  }

  // What every task is checked against, read before the tree stops.
  const Self self = TRY_CTX(Self::read(), "dump pid {}", root);
  OwnCode own_code = TRY_CTX(OwnCode::read(), "dump pid {}", root);

  // 1. Seize and stop every thread of every task, each task by one tracer.
  //    A page server's connection and a previous round's tracking serve
  //    one task at a time: one tracer then.
  TracerPool tracers(server || prev ? 1 : tracer_threads());
  const auto freeze_start = Clock::now();
  SeizedTree seized = TRY_CTX(seize_tree(root, freeze_start + std::chrono::seconds(o.timeout_s), tracers),
                              "dump pid {}: seize", root);
  stats.set_freeze_ns(ns_since(freeze_start));
  const tree::ProcessTree& tree = seized.tree;
  log.debug("tree of pid {}: {} tasks stopped in {} us", root, tree.tasks().size(), stats.freeze_ns() / 1000);
  TRY_CTX(check_nothing_shared(tree.alive()), "dump pid {}", root);
  // Sessions and groups restore could not recreate: refused now.
  TRY_CTX(tree.plan_joins(o.shell_job), "dump pid {}", root);
  TRY_CTX(o.faults.at("seize"), "dump pid {}", root);
  if (prev && tree.alive().size() != 1)
    return error(EOPNOTSUPP, "dump pid {}: --prev-images-dir with a tree of {} live processes is not supported yet",
                 root, tree.alive().size());

  // 2-4. Each live task, parents first, by its tracer; the tracers' tasks
  //      side by side. A child waits for its parent's pagemap (what it
  //      inherited is stored once, in the parent's pages).
  std::vector<size_t> live;
  std::map<pid_t, size_t> live_index;
  for (size_t i = 0; i < tree.tasks().size(); i++)
    if (!tree.tasks()[i].zombie) {
      live_index[tree.tasks()[i].pid] = live.size();
      live.push_back(i);
    }
  std::vector<std::optional<TaskDump>> slots(live.size());
  std::vector<img::Stats> task_stats(live.size());
  std::vector<std::optional<Error>> failed(live.size());
  std::vector<std::promise<bool>> dumped(live.size());  // true: slots[j] holds the task's images
  std::vector<std::shared_future<bool>> dumped_f;
  for (auto& d : dumped) dumped_f.push_back(d.get_future().share());
  std::atomic<bool> any_failed{false};
  ShmemCollector shmem;
  std::mutex shmem_mu;
  CpuPins pins = TRY_CTX(CpuPins::make(2 * live.size()), "dump pid {}", root);  // two a task
  files::FileIdCache file_ids;
  // A tree's tasks, each of which may take less than the second after which
  // a line shows, make one line, sized by their resident private memory.
  std::optional<Progress> progress;
  if (live.size() > 1 && Progress::shown()) {
    uint64_t resident = 0;
    for (size_t i : live)
      if (auto st = proc::read_status(tree.tasks()[i].pid)) resident += st->rss_anon_kib << 10;
    progress.emplace(fmt::format("dump pid {}", root), resident);
  }
  const TreeDump c{o,     dir,      log,  self,     prev ? &*prev : nullptr, server ? &*server : nullptr,
                   shmem, shmem_mu, pins, file_ids, progress ? &*progress : nullptr};
  const bool tracked = prev && prev->tracker;
  std::vector<size_t> tracer_of;
  for (size_t i : live) tracer_of.push_back(seized.tasks[i].tracer());
  ParkedParasites parked(tracers, std::move(tracer_of));
  Ahead<Result<Outside>> outside(live.size(), 2, [&](size_t j) {
    return collect_outside(tree.tasks()[live[j]].pid, o, self, tracked, file_ids);
  });
  (void)tracers.on_each([&](size_t tracer) -> Result<void> {
    OwnCode own = own_code;  // a cache: each tracer its own
    ChildEvents events;      // one signal mask and signalfd for all its waits
    for (size_t j = 0; j < live.size(); j++) {
      if (seized.tasks[live[j]].tracer() != tracer) continue;
      const tree::Task& k = tree.tasks()[live[j]];
      std::optional<ParentPages> parent;
      bool go = !any_failed.load();
      if (auto p = live_index.find(k.ppid); go && p != live_index.end()) {
        go = dumped_f[p->second].get();
        if (go) parent = ParentPages{k.ppid, &slots[p->second]->pagemap};
      }
      if (!go) {
        dumped[j].set_value(false);
        continue;
      }
      const auto proc_start = Clock::now();
      Result<Outside> seen = outside.take(j);
      task_stats[j].set_proc_ns(ns_since(proc_start));
      auto d = dump_task(c, tracer, seized.tasks[live[j]].threads(), std::move(seen), parent ? &*parent : nullptr, own,
                         task_stats[j], o.after == After::Kill ? parked.slot(j) : nullptr);
      if (d) slots[j].emplace(std::move(*d));
      else failed[j] = d.error().context(fmt::format("dump pid {}", k.pid));
      any_failed = any_failed || !d;
      dumped[j].set_value(d.has_value());
    }
    return {};
  });
  // The first failure in the tree's order, as one tracer alone would have met it.
  for (const std::optional<Error>& e : failed)
    if (e) return std::unexpected(*e);
  std::vector<TaskDump> dumps;
  for (size_t j = 0; j < live.size(); j++) {
    add_task_stats(stats, task_stats[j]);
    dumps.push_back(std::move(*slots[j]));
  }
  // A task killed once it was dumped: a checkpoint of a tree that no longer
  // exists. An error like any other: the rest of the tree runs on.
  for (const TaskDump& d : dumps)
    if (process_died(d.pid)) return error(ESRCH, "dump pid {}: pid {} died during the dump", root, d.pid);
  TRY_CTX(shmem.check_sysv(), "dump pid {}", root);
  std::vector<files::TaskFds*> fds;
  for (TaskDump& d : dumps) fds.push_back(&d.fds);
  // Connections put in repair mode while collected: out of it again when
  // this goes (before `seized` lets the tasks go, on any error), or closed
  // in it once the tree is killed.
  files::TcpRepairs repairs;
  files::FsIds fsids;
  files::CollectContext fctx{
      .ghost_limit = o.ghost_limit, .fsids = &fsids, .shmem_objects = shmem.objects(), .ext_unix_sk = o.ext_unix_sk,
      .tcp_established = o.tcp_established, .skip_in_flight = o.skip_in_flight, .tcp_repairs = &repairs};
  // Unix sockets, all in one sock_diag dump, if the tree has any.
  auto has_unix_socket = [](const TaskDump& d) {
    return std::ranges::find(d.fds.kinds, &files::unix_socket_kind()) != d.fds.kinds.end();
  };
  if (std::ranges::any_of(dumps, has_unix_socket))
    fctx.unix_sockets = TRY_CTX(files::unix_diag_all(), "dump pid {}", root);
  // Terminals: which pty ends the tree holds, and the one it runs on.
  const files::PtyHolders ptys = files::pty_holders(fds);
  TRY_CTX(files::check_session_terminals(tree, ptys), "dump pid {}", root);
  fctx.pty_masters = ptys.masters;
  fctx.pty_slaves = ptys.slaves;
  fctx.shell_job = o.shell_job;
  fctx.tree = &tree;
  for (pid_t who : {root, getpid()})
    if (auto st = proc::read_stat(who); st && st->tty_nr != 0) fctx.shell_ttys.insert(st->tty_nr);
  // Inet sockets: the machine's, in one inet_diag dump (its TCP hash
  // tables' walk is a millisecond or more), if the tree has any.
  auto has_inet_socket = [](const TaskDump& d) {
    return std::ranges::find(d.fds.kinds, &files::inet_socket_kind()) != d.fds.kinds.end();
  };
  std::optional<files::InetSockets> inet;
  if (std::ranges::any_of(dumps, has_inet_socket)) inet = TRY_CTX(files::inet_diag_all(), "dump pid {}", root);
  net::NetLock netlock = TRY_CTX(lock_connections(o, dumps, inet, log), "dump pid {}", root);
  TRY_CTX(o.faults.at("netlock"), "dump pid {}", root);
  // Read again once locked: a peer's FIN may have moved a state meanwhile.
  if (netlock.locked()) inet = TRY_CTX(files::inet_diag_all(), "dump pid {}", root);
  if (inet) fctx.inet_sockets = std::move(*inet);
  const auto files_start = Clock::now();
  const img::FileDescs descs = TRY_CTX(files::collect_descriptions(fds, fctx), "dump pid {}", root);
  stats.set_files_ns(ns_since(files_start));

  // 5. Images: metadata, inventory last; the page server has every pages
  // file in place first.
  const auto images_start = Clock::now();
  if (server) TRY_CTX(server->done(), "dump pid {}", root);
  // The tree goes (or stays stopped): the checkpoint holds the lock from
  // the moment its inventory exists (net/lock_records.h).
  const bool keep_lock = o.after != After::Run && netlock.locked();
  if (keep_lock) {
    const std::string abs_dir = TRY_CTX(read_link(fmt::format("/proc/self/fd/{}", dir.fd())), "dump pid {}", root);
    TRY_CTX(netlock.hand_over(abs_dir), "dump pid {}", root);
  }
  // Whoever kills the tree once its inventory exists, ckpt or, should ckpt
  // die from here on, its watcher.
  std::optional<TreeCommit> killer;
  if (o.after == After::Kill) {
    std::vector<pid_t> pids;
    for (const TaskTracees& t : seized.tasks)
      if (!t.empty()) pids.push_back(t.threads()[0].tid());
    killer.emplace(
        TRY_CTX(TreeCommit::watch(pids, TreeCommit::KillIf{dir.fd(), image::kInventoryName}), "dump pid {}", root));
  }
  TRY_CTX(write_images(o, dir, tree, dumps, descs, shmem, prev && prev->tracker, keep_lock ? &netlock : nullptr),
          "dump pid {}", root);
  stats.set_images_ns(ns_since(images_start));
  scratch.keep = true;
  if (keep_lock) netlock.release();

  // 6. The images are complete: now the tree may go.
  stats.set_frozen_ns(ns_since(freeze_start));
  // A tree that goes on needs its connections out of repair mode first (a
  // send in repair mode fails); a killed one closes them in it.
  if (o.after != After::Kill) TRY_CTX(repairs.leave(), "dump pid {}", root);
  TRY_CTX(let_go(seized.tasks, o.after, killer, parked, o.faults, tracers), "dump pid {}", root);
  if (o.after == After::Kill) repairs.close_silently();
  if (o.after == After::Kill)
    if (auto r = shmem.remove_sysv(); !r) log.error("dump pid {}: {} (ipcrm it before a restore)", root, r.error().str());
  // --leave-running: the connections are the running tree's again.
  if (auto r = netlock.unlock(); !r) log.error("dump pid {}: {} (the next ckpt run removes it)", root, r.error().str());
  stats.set_dump_ns(ns_since(start));
  (void)dir.write("stats-dump.img", image::ImageKind::Stats, stats);
  return stats;
}

}  // namespace

Result<img::Stats> dump(const DumpOptions& o, image::ImageDir& dir, Log& log) {
  const auto start = Clock::now();
  auto stats = dump_dumpable(o, dir, log, start);
  if (!stats && process_died(o.pid)) {
    // Say it first; what failed follows, without the repeated "dump pid P: ".
    const Error& e = stats.error();
    std::string_view what = e.msg;
    if (const std::string prefix = fmt::format("dump pid {}: ", o.pid); what.starts_with(prefix))
      what.remove_prefix(prefix.size());
    return error(ESRCH, "dump pid {}: the process died during the dump ({}{}{})", o.pid, what, e.err ? ": " : "",
                 e.err ? errno_name(e.err) : "");
  }
  return stats;
}

}  // namespace ckpt::dump
