// ckpt restore: bring a dumped task back with its PID, memory, registers,
// signals and files; then detach, leave it stopped, or wait for it. A restore
// that fails leaves no task behind.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "base/fault.h"
#include "base/log.h"
#include "base/result.h"
#include "ckpt.pb.h"
#include "image/image_dir.h"
#include "net/netlock.h"
#include "ptrace/completion.h"

namespace ckpt::restore {

struct RestoreOptions {
  std::string dir;             // opened by the caller: ImageDir::open
  std::chrono::steady_clock::time_point started{};  // main()'s start, for Stats.startup_ns
  bool detach = false;         // -d: return once the task runs
  bool leave_stopped = false;  // leave the task stopped (SIGSTOP) after completion
  bool sibling = false;        // --restore-sibling: child of ckpt's parent (CLONE_PARENT)
  // --pidns: into a new PID namespace, under an init of ckpt's (pidns.h).
  bool pidns = false;
  // Written to a temporary beside it, renamed over the name; the root's PID
  // in ckpt's namespace (with --pidns too).
  std::string pidfile;
  bool breakpoints = true;     // false: --no-breakpoints
  // false: --skip-file-check, map files that differ from the dumped ones
  // (size, mtime, inode, device, build-id) anyway.
  bool check_files = true;
  // false: --skip-cpu-check, restore on a CPU that lacks features the
  // dumping one had.
  bool check_cpu = true;
  bool tcp_close = false;      // --tcp-close: TCP connections come back closed
  // --lazy-pages: private anonymous memory is left to ckpt lazy-pages
  // (restore/lazy.h), which must listen on DIR/lazy-pages.sock.
  bool lazy_pages = false;
  // --network-lock: how a lock is made for the dumped connections where the
  // dump's own is not in place (another machine); skip: none.
  net::LockChoice network_lock = net::LockChoice::Auto;
  Faults faults;  // tests only (base/fault.h)
};

struct RestoreOutcome {
  pid_t pid = 0;           // the root's, as dumped
  pid_t pid_outside = 0;   // the same in ckpt's PID namespace (--pidns: another)
  pid_t init = 0;          // --pidns: the namespace's init (pidns.h), ckpt's child unless --restore-sibling
  img::Stats stats;
  // Set when ckpt waited for the task: its wait status.
  std::optional<int> wait_status;
  // What the restore loaded and built (the images, the plans, ckpt's copies
  // of the files), handed over rather than freed on the way out: a caller
  // about to exit leaves it to the exit (base/keep_until_exit.h).
  std::shared_ptr<void> loaded;
};

// `dir`: the images directory, opened and checked by ImageDir::open.
// `breakpoints` says whether hardware breakpoints work here (a probe that
// may run while the images load and the tree spawns), or nothing while the
// kernel keeps it waiting (BreakpointProbe::result_unless_waiting); asked
// once, once the tree is parked, and only without --no-breakpoints.
Result<RestoreOutcome> restore(const RestoreOptions& o, image::ImageDir& dir,
                               const std::function<std::optional<BreakpointSupport>()>& breakpoints, Log& log);

}  // namespace ckpt::restore
