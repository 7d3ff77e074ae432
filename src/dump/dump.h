// ckpt dump: seize a task, write its images, then kill, resume or leave it
// stopped. A dump that fails leaves the task running as it was.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>

#include "base/fault.h"
#include "files/contents.h"
#include "base/log.h"
#include "base/result.h"
#include "ckpt.pb.h"
#include "image/image_dir.h"
#include "net/netlock.h"

namespace ckpt::dump {

enum class After { Kill, Run, Stop };
// How memory leaves the task (bench/ measures both): Auto copies a task
// that stores little (PageSource::readv_up_to) and splices the others.
enum class PageTransfer { Auto, Splice, Readv };

struct DumpOptions {
  pid_t pid = 0;
  std::string dir;          // opened by the caller: ImageDir::create
  std::chrono::steady_clock::time_point started{};  // main()'s start, for Stats.startup_ns
  After after = After::Kill;
  bool shell_job = false;
  uint64_t ghost_limit = files::kDefaultGhostLimit;  // --ghost-limit
  bool ext_unix_sk = false;  // datagram unix sockets may have a peer outside the tree
  bool tcp_established = false;  // --tcp-established: TCP connections through TCP_REPAIR
  bool skip_in_flight = false;   // --skip-in-flight: drop connections from outside not yet accepted
  unsigned timeout_s = 10;  // give up seizing after this long
  bool fsync = false;       // images durable on disk before the task goes
  PageTransfer pages = PageTransfer::Auto;
  // The previous round of an iterative dump (pre-dump --prev-images-dir,
  // dump --prev-images-dir --track-mem), relative to `dir`: only pages
  // written since are stored (docs/migration.md).
  std::string prev_dir;
  bool track_mem = false;
  // --page-server: pages files go to `ckpt page-server` at address:port
  // (image/page_wire.h) instead of the images directory.
  bool page_server = false;
  std::string address;
  uint16_t port = 0;
  std::string psk_file;  // --psk-file: the key the page server must hold (image/wire_auth.h)
  bool tls = false;      // --tls: the pages go under TLS keyed by it (image/wire_tls.h)
  // --network-lock: how the tree's TCP connections are locked from the
  // freeze on (net/netlock.h).
  net::LockChoice network_lock = net::LockChoice::Auto;
  Faults faults;            // tests only: seize, netlock, parasite, visit, memory, cure, images
};

// What ckpt can't dump yet, said before anything is touched: a caller asks
// before it creates the images directory.
Result<void> check_dumpable(pid_t pid);

// `o.pid` has passed check_dumpable, asked once (it reads the root's stat
// and status and every ancestor's stat). `dir`: the images directory,
// created and checked by ImageDir::create; a failed dump removes what it
// wrote there.
Result<img::Stats> dump(const DumpOptions& o, image::ImageDir& dir, Log& log);

}  // namespace ckpt::dump
