#include "migrate/migrate.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <optional>
#include <vector>

#include "base/fs.h"

#include "dump/dump.h"
#include "dump/pre_dump.h"
#include "image/crc32c.h"
#include "image/image_dir.h"
#include "image/page_wire.h"
#include "image/page_server.h"
#include "image/socket_sink.h"
#include "lazy/daemon.h"
#include "ptrace/completion.h"
#include "restore/restore.h"

namespace ckpt::migrate {

namespace {

using Clock = std::chrono::steady_clock;

// A round is dirty enough to stop iterating once it stores more than this
// share of the round before it: another round would save little.
constexpr double kStillShrinking = 0.8;
// Or so little that the final dump's downtime can't get much shorter.
constexpr uint64_t kFewPages = 256;

// Sends every image of `dir` as round `name`.
Result<uint64_t> send_round(image::PageServerConn& conn, const image::ImageDir& dir, const std::string& name) {
  TRY(conn.begin_round(name));
  uint64_t bytes = 0;
  for (const std::string& f : TRY(dir.list_images())) bytes += TRY(conn.send_file(dir, f));
  return bytes;
}

// Round names on the wire: r1, r2, ... and final; never a path.
bool round_name(const std::string& n) {
  if (n == "final") return true;
  return n.size() >= 2 && n.size() <= 4 && n[0] == 'r' && n.find_first_not_of("0123456789", 1) == std::string::npos;
}

}  // namespace

Result<SourceReport> migrate_out(const SourceOptions& o, Log& log) {
  TRY(dump::check_dumpable(o.pid));
  if (mkdir(o.work_dir.c_str(), 0700) < 0 && errno != EEXIST) return sys_error("migrate: {}", o.work_dir);
  const auto key = TRY_CTX(image::load_wire_key(o.psk_file, o.tls), "migrate pid {}", o.pid);
  image::PageServerConn conn =
      TRY_CTX(image::PageServerConn::connect(o.address, o.port, key), "migrate pid {}", o.pid);
  SourceReport rep;
  dump::DumpOptions d;
  d.pid = o.pid;
  d.timeout_s = o.timeout_s;
  d.after = dump::After::Run;
  d.track_mem = true;
  std::string prev;
  uint64_t last = UINT64_MAX;
  for (unsigned i = 1; i <= o.max_rounds; i++) {
    const std::string name = fmt::format("r{}", i);
    d.dir = o.work_dir + "/" + name;
    d.prev_dir = prev.empty() ? "" : "../" + prev;
    image::ImageDir dir = TRY_CTX(image::ImageDir::create(d.dir, image::SharedDir::Refuse), "migrate pid {}", o.pid);
    const img::Stats s = TRY_CTX(dump::pre_dump(d, dir, log), "migrate pid {}: round {}", o.pid, i);
    rep.bytes_sent += TRY_CTX(send_round(conn, dir, name), "migrate pid {}: round {}", o.pid, i);
    rep.rounds = i;
    prev = name;
    log.info("migrate pid {}: round {}: {} pages", o.pid, i, s.pages_written());
    if (s.pages_written() <= kFewPages || s.pages_written() > last * kStillShrinking) break;
    last = s.pages_written();
  }

  // The final dump leaves the process stopped here: it runs again here on
  // any failure, or is killed once it runs there.
  const auto frozen = Clock::now();
  d.dir = o.work_dir + "/final";
  d.prev_dir = "../" + prev;
  d.after = dump::After::Stop;
  TRY_CTX(dump::check_dumpable(o.pid), "migrate pid {}: final dump", o.pid);
  image::ImageDir dir = TRY_CTX(image::ImageDir::create(d.dir, image::SharedDir::Refuse), "migrate pid {}", o.pid);
  const img::Stats s = TRY_CTX(dump::dump(d, dir, log), "migrate pid {}: final dump", o.pid);
  rep.final_pages = s.pages_written();
  auto handed = [&]() -> Result<pid_t> {
    const auto dumped = Clock::now();
    rep.bytes_sent += TRY(send_round(conn, dir, "final"));
    const auto sent = Clock::now();
    const pid_t there = TRY(conn.restore("final"));
    const auto restored = Clock::now();
    TRY(conn.done());  // "go": the destination lets it run, then answers
    const auto ms = [](auto d) { return std::chrono::duration<double, std::milli>(d).count(); };
    log.debug("migrate pid {}: downtime: final dump {:.1f} ms, sent {:.1f} ms, restored there {:.1f} ms, go {:.1f} ms",
              o.pid, ms(dumped - frozen), ms(sent - dumped), ms(restored - sent), ms(Clock::now() - restored));
    return there;
  }();
  if (!handed) {
    if (kill(o.pid, SIGCONT) < 0) log.error("migrate pid {}: resume it here: {}", o.pid, strerror(errno));
    return error(handed.error().err, "migrate pid {}: {}; it runs on here", o.pid, handed.error().msg);
  }
  rep.remote_pid = *handed;
  rep.downtime = Clock::now() - frozen;
  if (kill(o.pid, SIGKILL) < 0) return sys_error("migrate pid {}: it runs on {}:{} now, but kill it here", o.pid,
                                                  o.address, o.port);
  return rep;
}

namespace {

// The lazy-pages daemon of a post-copy migration: a child of ours serving
// the restore of `dir` (and its chain of rounds) from here. Returns once it
// listens, so that the restore finds it.
Result<pid_t> start_lazy_daemon(const image::ImageDir& dir, Log& log) {
  int p[2];
  if (pipe2(p, O_CLOEXEC) < 0) return sys_error("pipe for the lazy-pages daemon");
  UniqueFd ready(p[0]), listening(p[1]);
  const pid_t d = fork();
  if (d < 0) return sys_error("fork the lazy-pages daemon");
  if (d == 0) {
    ready.reset();
    auto r = lazy::serve_lazy_pages(dir, std::nullopt, Faults{}, log, [&] { (void)!write(listening.get(), "", 1); listening.reset(); });
    if (!r) {
      log.error("migrate: lazy-pages {}: {}", dir.path(), r.error().str());
      _exit(1);
    }
    log.info("migrate: lazy-pages: every page is in: {} faults, {} KiB pushed", r->faults, r->pushed_bytes >> 10);
    _exit(0);
  }
  listening.reset();
  char c;
  ssize_t n;
  while ((n = read(ready.get(), &c, 1)) < 0 && errno == EINTR) {
  }
  if (n != 1) {
    waitpid(d, nullptr, 0);
    return error(EIO, "the lazy-pages daemon for {} did not start (its error is above)", dir.path());
  }
  return d;
}

// The receiving side's session; `restored` is the root once restored.
class Session {
 public:
  Session(const DestinationOptions& o, int conn, Log& log) : o_(o), conn_(conn), log_(log) {}
  ~Session() {
    if (!ok_) {
      if (lazy_ > 0) kill(lazy_, SIGKILL), waitpid(lazy_, nullptr, 0);
      for (image::ImageDir& d : rounds_) d.remove_written();
      // With --pidns, the init's death takes its namespace with it.
      const pid_t mine = waited();
      if (mine > 0) kill(mine, SIGKILL), waitpid(mine, nullptr, 0);
    }
  }

  // Returns the pid to wait for: the root's, or with --pidns its init's.
  Result<pid_t> run() {
    for (;;) {
      image::WireHeader h;
      TRY(image::read_exact(conn_, &h, sizeof h, "a frame header"));
      if (std::memcmp(h.magic, image::kWireMagic, sizeof h.magic) != 0 ||
          crc32c(&h, offsetof(image::WireHeader, crc)) != h.crc || h.name_len > image::kWireMaxName)
        return error(EPROTO, "not a ckpt migration stream (bad frame header)");
      const std::string name(h.name, h.name_len);
      switch (h.kind) {
        case image::kWireRound: TRY(reply(begin_round(name))); break;
        case image::kWireFile: {
          if (rounds_.empty()) return error(EPROTO, "a file before any round");
          auto got = image::receive_file(rounds_.back(), conn_, h, image::Accept::Images);
          TRY(reply(got ? Result<void>{} : std::unexpected(got.error())));
          break;
        }
        case image::kWireRestore: TRY(restore(name)); break;
        case image::kWireDone: {
          if (restored_ <= 0) return error(EPROTO, "the session ended before a restore");
          // Go: the source kills its copy once it hears this.
          if (kill(restored_, SIGCONT) < 0) return sys_error("migrate: resume pid {}", restored_);
          ok_ = true;
          (void)reply({});
          return waited();
        }
        default: return error(EPROTO, "unknown frame kind {}", h.kind);
      }
    }
  }

  pid_t lazy_daemon() const { return lazy_; }

 private:
  Result<void> reply(Result<void> r) {
    image::WireStatus st{r ? 0 : (r.error().err ? r.error().err : EIO)};
    TRY(write_all(conn_, &st, sizeof st));
    return r;
  }
  Result<void> begin_round(const std::string& name) {
    if (!round_name(name)) return error(EPERM, "'{}' is not a round's name", name);
    rounds_.push_back(TRY(image::ImageDir::create(o_.dir + "/" + name, shared())));
    return {};
  }
  image::SharedDir shared() const { return o_.allow_shared_dir ? image::SharedDir::Allow : image::SharedDir::Refuse; }
  // Restores round `name` stopped, and says how it went.
  Result<void> restore(const std::string& name) {
    auto r = [&]() -> Result<pid_t> {
      if (!round_name(name)) return error(EPERM, "'{}' is not a round's name", name);
      image::ImageDir dir = TRY(image::ImageDir::open(o_.dir + "/" + name, shared()));
      restore::RestoreOptions ro;
      ro.dir = dir.path();
      ro.detach = true;
      ro.leave_stopped = true;
      ro.breakpoints = o_.breakpoints;
      ro.pidns = o_.pidns;
      ro.lazy_pages = o_.lazy_pages;
      if (o_.lazy_pages) lazy_ = TRY(start_lazy_daemon(dir, log_));
      std::optional<BreakpointProbe> probe;
      if (ro.breakpoints) probe.emplace();
      auto out = TRY(restore::restore(ro, dir, [&] { return probe->result_unless_waiting(); }, log_));
      restored_ = out.pid_outside;
      init_ = out.init;
      return out.pid;
    }();
    image::WireRestored w{};
    if (r) {
      w.pid = *r;  // in its namespace
    } else {
      w.err = r.error().err ? r.error().err : EIO;
      fmt::format_to_n(w.message, sizeof w.message - 1, "{}", r.error().msg);
      log_.error("migrate: {}", r.error().str());
    }
    TRY(write_all(conn_, &w, sizeof w));
    if (!r) return std::unexpected(r.error());
    return {};
  }

  const DestinationOptions& o_;
  int conn_;
  Log& log_;
  std::vector<image::ImageDir> rounds_;
  pid_t waited() const { return init_ > 0 ? init_ : restored_; }

  pid_t restored_ = 0;  // the root, in ckpt's PID namespace
  pid_t init_ = 0;      // --pidns: the namespace's init
  pid_t lazy_ = 0;      // --lazy-pages: the daemon serving its memory
  bool ok_ = false;
};

}  // namespace

Result<std::optional<int>> migrate_in(const DestinationOptions& o, Log& log) {
  signal(SIGPIPE, SIG_IGN);
  if (mkdir(o.dir.c_str(), 0700) < 0 && errno != EEXIST) return sys_error("migrate: {}", o.dir);
  const auto key = TRY_CTX(image::load_wire_key(o.psk_file, o.tls), "migrate");
  UniqueFd listener = TRY_CTX(image::listen_on(o.address, o.port), "migrate");
  log.info("migrate: listening on {}:{}, images into {}", o.address.empty() ? "0.0.0.0" : o.address, o.port, o.dir);
  image::WireConn conn = TRY_CTX(image::accept_session(std::move(listener), key), "migrate");
  pid_t pid, lazy;
  {
    Session s(o, conn.get(), log);
    pid = TRY_CTX(s.run(), "migrate");
    lazy = s.lazy_daemon();
  }
  log.info("migrate: pid {} runs here{}", pid, o.pidns ? " (the init of its PID namespace)" : "");
  if (o.detach) return std::nullopt;
  int status;
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) return sys_error("migrate: wait for pid {}", pid);
  if (lazy > 0) waitpid(lazy, nullptr, 0);  // it said why, if it failed
  return status;
}

}  // namespace ckpt::migrate
