// ckpt dump and ckpt restore: run the step, report errors and --stats.
#include <sys/wait.h>

#include <map>

#include "base/keep_until_exit.h"
#include "cli/commands/commands.h"
#include "cli/commands/options.h"
#include "dump/pre_dump.h"
#include "ptrace/completion.h"

namespace ckpt::cli {

namespace {

double ms(uint64_t ns) { return ns / 1e6; }

void print_stats(const img::Stats& s) {
  if (s.dump_ns()) {
    fmt::print(stderr, "dump stats:\n  freeze time     {:10.3f} ms\n  frozen time     {:10.3f} ms\n"
               "  memory dump     {:10.3f} ms\n  dump time       {:10.3f} ms\n  pages written   {:10}\n"
               "  bytes written   {:10}\n",
               ms(s.freeze_ns()), ms(s.frozen_ns()), ms(s.memory_dump_ns()), ms(s.dump_ns()), s.pages_written(),
               s.bytes_written());
  }
  if (s.restore_ns()) {
    fmt::print(stderr, "restore stats:\n  restore time    {:10.3f} ms\n  pages read      {:10}\n  bytes read      {:10}\n",
               ms(s.restore_ns()), s.pages_read(), s.bytes_read());
  }
  // The split: phases in the order they run (bench/ prints it too).
  const std::pair<const char*, uint64_t> phases[] = {
      {"start-up", s.startup_ns()}, {"load", s.load_ns()},         {"prepare", s.prepare_ns()},
      {"spawn", s.spawn_ns()},       {"proc", s.proc_ns()},         {"parasite", s.parasite_ns()},
      {"memory", s.memory_dump_ns()}, {"cure", s.cure_ns()},        {"files", s.files_ns()},
      {"completion", s.completion_ns()}, {"images", s.images_ns()}, {"finish", s.finish_ns()}};
  for (const auto& [name, ns] : phases)
    if (ns) fmt::print(stderr, "  phase {:<10}{:10.3f} ms\n", name, ms(ns));
  // Restore completion, or the parasite's cure at dump: a line per thread,
  // and for a process of several threads the sum of its own.
  std::map<int32_t, std::pair<uint64_t, size_t>> per_process;  // pid -> stops, threads
  for (const img::TaskStops& t : s.completion()) {
    fmt::print(stderr, "  ptrace stops    {:10}  (task {}, {})\n", t.stops(), t.tid(),
               t.breakpoint() ? "breakpoint" : "syscall tracing");
    auto& [stops, threads] = per_process[t.pid() ? t.pid() : t.tid()];
    stops += t.stops();
    threads++;
  }
  for (const auto& [pid, sum] : per_process)
    if (sum.second > 1)
      fmt::print(stderr, "  ptrace stops    {:10}  (pid {}: {} threads)\n", sum.first, pid, sum.second);
}

}  // namespace

image::SharedDir shared(const Command& c) {
  return c.allow_shared_dir ? image::SharedDir::Allow : image::SharedDir::Refuse;
}

int run_dump(const Command& c, Log& log) {
  const dump::DumpOptions& o = c.dump;
  // A process that can't be dumped is refused before a directory is made for it.
  if (auto ok = dump::check_dumpable(o.pid); !ok) {
    log.error("dump: {}", ok.error().str());
    return 1;
  }
  auto dir = image::ImageDir::create(o.dir, shared(c));
  if (!dir) {
    log.error("dump pid {}: {}", o.pid, dir.error().str());
    return 1;
  }
  if (auto l = open_log_file(c.log_file, &dir->dir(), log); !l) {
    log.error("dump pid {}: {}", o.pid, l.error().str());
    return 1;
  }
  sweep_network_locks(false, log);
  auto r = dump::dump(o, *dir, log);
  if (!r) {
    log.error("{}", r.error().str());
    return 1;
  }
  if (c.stats) print_stats(*r);
  return 0;
}

int run_pre_dump(const Command& c, Log& log) {
  const dump::DumpOptions& o = c.dump;
  if (auto ok = dump::check_dumpable(o.pid); !ok) {
    log.error("pre-dump: {}", ok.error().str());
    return 1;
  }
  auto dir = image::ImageDir::create(o.dir, shared(c));
  if (!dir) {
    log.error("pre-dump pid {}: {}", o.pid, dir.error().str());
    return 1;
  }
  if (auto l = open_log_file(c.log_file, &dir->dir(), log); !l) {
    log.error("pre-dump pid {}: {}", o.pid, l.error().str());
    return 1;
  }
  auto r = dump::pre_dump(o, *dir, log);
  if (!r) {
    log.error("{}", r.error().str());
    return 1;
  }
  if (c.stats) print_stats(*r);
  return 0;
}

int run_restore(const Command& c, Log& log) {
  auto dir = image::ImageDir::open(c.restore.dir, shared(c));
  if (!dir) {
    log.error("restore: {}", dir.error().str());
    return 1;
  }
  if (auto l = open_log_file(c.log_file, &dir->dir(), log); !l) {
    log.error("restore: {}", l.error().str());
    return 1;
  }
  // The probe's child (a clone and a breakpoint hit) is started now and
  // asked for its answer by restore() once the tree is spawned and parked.
  sweep_network_locks(false, log);
  std::optional<BreakpointProbe> probe;
  if (c.restore.breakpoints) probe.emplace();
  auto r = restore::restore(c.restore, *dir, [&] { return probe->result_unless_waiting(); }, log);
  if (!r) {
    log.error("{}", r.error().str());
    return 1;
  }
  if (c.stats) print_stats(r->stats);
  keep_until_exit(std::move(r->loaded));
  if (!r->wait_status) return 0;
  int st = *r->wait_status;
  if (WIFEXITED(st)) return WEXITSTATUS(st);
  return 128 + WTERMSIG(st);
}

}  // namespace ckpt::cli
