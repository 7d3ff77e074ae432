#include "lazy/daemon.h"

#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <future>
#include <cstring>
#include <map>
#include <optional>
#include <vector>

#include "arch/x86_64/page.h"
#include "base/fs.h"
#include "base/mapping.h"
#include "base/scm.h"
#include "image/page_store.h"
#include "lazy/checked_pages.h"
#include "lazy/protocol.h"
#include "lazy/ranges.h"
#include "lazy/remote_pages.h"
#include "pie/abi.h"
#include "restore/images.h"
#include "restore/inherited.h"

namespace ckpt::lazy {

namespace {

constexpr uint64_t kPage = arch::kPageSize;
constexpr uint64_t kFaultWindow = 64 << 10;  // served around a fault
constexpr uint64_t kPushChunk = 1 << 20;     // pushed at a time when nothing waits

struct Task {
  pid_t pid = 0;
  PendingRanges pending;  // from the images, before any fd comes
  UniqueFd uffd;          // once its restorer sent it
  bool gone = false;      // its mm is gone: nothing left to serve
  bool done() const { return gone || pending.empty(); }
};

// Pieces of pages files the restorers read themselves inside runs the
// daemon serves (a child's inherited memory that is not lazy in the child):
// fetched before restores come when the pages are remote.
using FilePiece = std::pair<int, std::pair<uint64_t, uint64_t>>;  // fd, (offset, length)

// Each task's lazy memory and where its bytes are, and the checksum of
// every run that holds some.
Result<std::vector<Task>> plan_tasks(const restore::TreeImages& t, CheckedPages* checked,
                                     std::vector<FilePiece>* restorers_read) {
  auto inherited = TRY(restore::resolve_inherited(t));
  if (!t.parents.empty()) {
    auto in_parent = TRY(restore::resolve_in_parent(t.parents, t.tasks[0].pagemap, t.tasks[0].pid));
    inherited[0].insert(inherited[0].end(), in_parent.begin(), in_parent.end());
  }
  // The runs of lazy VMAs: those the daemon may serve.
  auto add_runs = [&](int fd, const img::PageMap& pm, const LazyVmas& lazy, const std::string& name) {
    uint64_t off = image::kPagesDataOffset;
    for (int i = 0; i < pm.runs_size(); i++) {
      const img::PageRun& r = pm.runs(i);
      if (!image::stored(r)) continue;
      const uint64_t len = r.nr_pages() * kPage;
      if (lazy.contains(r.vaddr()))
        checked->add(fd, off, len, r.crc32c(),
                     fmt::format("{}: run {} ({:#x}, {} pages) at offset {}", name, i, r.vaddr(), r.nr_pages(), off));
      off += len;
    }
  };
  for (const restore::ParentLevel& l : t.parents)
    add_runs(l.pages.get(), l.pagemap, LazyVmas(t.tasks[0].mm), l.pages_path);
  std::vector<Task> tasks(t.tasks.size());
  for (size_t i = 0; i < t.tasks.size(); i++) {
    const restore::TaskImages& ti = t.tasks[i];
    const LazyVmas lazy(ti.mm);
    add_runs(ti.pages.get(), ti.pagemap, lazy, ti.pages_path);
    tasks[i].pid = ti.pid;
    uint64_t off = image::kPagesDataOffset;
    for (const img::PageRun& r : ti.pagemap.runs()) {
      if (!image::stored(r)) continue;
      const uint64_t len = r.nr_pages() * kPage;
      if (lazy.contains(r.vaddr())) tasks[i].pending.add(r.vaddr(), len, {ti.pages.get(), off});
      off += len;
    }
    for (const restore::InheritedPages& ip : inherited[i])
      if (lazy.contains(ip.vaddr)) tasks[i].pending.add(ip.vaddr, ip.len, {ip.fd, ip.off});
      else restorers_read->push_back({ip.fd, {ip.off, ip.len}});
  }
  return tasks;
}

// DIR/lazy-pages.sock, listening.
Result<UniqueFd> listen_for_restore(const image::ImageDir& dir, Log& log) {
  UniqueFd listener(socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
  if (!listener) return sys_error("socket");
  (void)dir.dir().remove(kSocketName);  // a dead daemon's; the name is ours
  sockaddr_un a = socket_address(dir.fd());
  const mode_t old = umask(0077);
  const int b = bind(listener.get(), reinterpret_cast<sockaddr*>(&a), sizeof a);
  umask(old);
  if (b < 0) return sys_error("bind {}", dir.file(kSocketName));
  if (listen(listener.get(), 1) < 0) return sys_error("listen on {}", dir.file(kSocketName));
  log.info("lazy-pages: waiting for ckpt restore --lazy-pages on {}", dir.file(kSocketName));
  return listener;
}

// One restore, accepted on the listener; the socket's name goes once it came.
Result<UniqueFd> accept_restore(const UniqueFd& listener, const image::ImageDir& dir, Log& log) {
  for (;;) {
    UniqueFd conn(accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (!conn) {
      if (errno == EINTR) continue;
      return sys_error("accept on {}", dir.file(kSocketName));
    }
    ucred cred{};
    socklen_t len = sizeof cred;
    if (getsockopt(conn.get(), SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 || (cred.uid != 0 && cred.uid != geteuid())) {
      log.warn("lazy-pages: refused a connection of uid {} (pid {})", cred.uid, cred.pid);
      continue;
    }
    (void)dir.dir().remove(kSocketName);
    return conn;
  }
}

enum class Copied { Done, Later };

class Server {
 public:
  Server(std::vector<Task> tasks, CheckedPages& checked, std::future<Result<void>>& checker, Mapping buf,
         UniqueFd conn, const Faults& faults, Log& log)
      : tasks_(std::move(tasks)), checked_(checked), checker_(checker), buf_(std::move(buf)), conn_(std::move(conn)),
        faults_(faults), log_(log) {}

  Result<LazyStats> run() {
    for (;;) {
      if (checker_.valid() && checker_.wait_for(std::chrono::seconds(0)) == std::future_status::ready)
        TRY(checker_.get());
      if (running_ && deferred_.empty() &&
          std::all_of(tasks_.begin(), tasks_.end(), [](const Task& t) { return !t.uffd || t.done(); }))
        return stats_;
      std::vector<pollfd> fds;
      std::vector<size_t> which;
      if (conn_open_) fds.push_back({conn_.get(), POLLIN, 0}), which.push_back(~size_t{0});
      for (size_t i = 0; i < tasks_.size(); i++)
        if (tasks_[i].uffd && !tasks_[i].gone) fds.push_back({tasks_[i].uffd.get(), POLLIN, 0}), which.push_back(i);
      // Pushing waits until every restorer is through: its copies would
      // compete with them for the tasks' mmap locks and the CPUs, and
      // delay the moment the tree runs (faults are served at once anyway).
      const bool work = deferred_.size() || (running_ && std::any_of(tasks_.begin(), tasks_.end(), [](const Task& t) {
                                               return t.uffd && !t.done();
                                             }));
      // Tests: with CKPT_FAULT=slow:lazy-push a MiB is pushed only after
      // 300 ms without an event (faults are served as ever).
      const int idle = faults_.point == "slow:lazy-push" && deferred_.empty() ? 300 : 0;
      if (poll(fds.data(), fds.size(), work ? idle : -1) < 0) {
        if (errno == EINTR) continue;
        return sys_error("poll");
      }
      bool events = false;
      for (size_t k = 0; k < fds.size(); k++) {
        if (!fds[k].revents) continue;
        events = true;
        if (which[k] == ~size_t{0}) TRY(from_restore());
        else TRY(read_events(tasks_[which[k]]));
      }
      TRY(retry_deferred());
      if (!events && running_) TRY(push_some());
    }
  }

  // To the watcher; with the userfaultfd of a child refused, so that it
  // holds that too until it has killed the tree.
  void report(Report::Kind kind, const std::string& why) {
    Report r{Report::kMagic, kind, {}};
    std::snprintf(r.why, sizeof r.why, "%s", why.c_str());
    (void)send_with_fd(conn_.get(), &r, sizeof r, forked_.get());  // the watcher may be gone too
  }

 private:
  // A task's userfaultfd, or ckpt restore's word.
  Result<void> from_restore() {
    union {
      abi::LazyUffdMsg uffd;
      Control control;
    } m{};
    std::vector<UniqueFd> fds;
    const ssize_t n = recv_with_fds(conn_.get(), &m, sizeof m, &fds, 1);
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) return {};
      return sys_error("read from ckpt restore");
    }
    if (n == 0) {
      // The watcher holds the connection until we say kDone: a hang-up
      // means ckpt restore died mid-way, or the watcher did, once the tree runs.
      if (!running_) return error(ECONNRESET, "ckpt restore hung up before the tree ran");
      log_.warn("lazy-pages: the restore's watcher is gone; serving the pages anyway");
      conn_open_ = false;
      return {};
    }
    if (n == sizeof(abi::LazyUffdMsg) && m.uffd.magic == abi::kLazyUffdMagic && fds.size() == 1) {
      auto t = std::find_if(tasks_.begin(), tasks_.end(), [&](const Task& t) { return t.pid == m.uffd.pid; });
      if (t == tasks_.end() || t->uffd)
        return error(EPROTO, "a userfaultfd for pid {}, which is {}", m.uffd.pid,
                     t == tasks_.end() ? "no task of the checkpoint" : "sent twice");
      t->uffd = std::move(fds[0]);
      stats_.tasks++;
      log_.debug("lazy-pages: pid {}: {} KiB to serve", t->pid, t->pending.bytes() >> 10);
      return {};
    }
    if (n == sizeof(Control) && m.control.magic == Control::kMagic) {
      if (m.control.kind == Control::kFailed) return error(ECANCELED, "the restore failed: nothing to serve");
      running_ = true;
      // (Tests: slow:lazy-push keeps pages pending, unchecked and, from a
      // page server, unfetched, until pushed or faulted.)
      if (faults_.point != "slow:lazy-push")
        checker_ = std::async(std::launch::async, [&checked = checked_] { return checked.check_all(); });
      return {};
    }
    return error(EPROTO, "a message of {} bytes from ckpt restore that is none of the protocol's", n);
  }

  Result<void> read_events(Task& t) {
    uffd_msg msgs[32];
    for (;;) {
      const ssize_t n = read(t.uffd.get(), msgs, sizeof msgs);
      if (n < 0) {
        if (errno == EAGAIN) return {};
        if (errno == EINTR) continue;
        return sys_error("pid {}: read its userfaultfd", t.pid);
      }
      if (n == 0) return {};
      for (size_t i = 0; i < n / sizeof(uffd_msg); i++) TRY(handle(t, msgs[i]));
    }
  }

  Result<void> handle(Task& t, const uffd_msg& m) {
    switch (m.event) {
      case UFFD_EVENT_PAGEFAULT: {
        stats_.faults++;
        const uint64_t page = m.arg.pagefault.address & ~(kPage - 1);
        if (TRY(serve_fault(t, page)) == Copied::Later) deferred_.push_back({&t, page});
        return {};
      }
      case UFFD_EVENT_REMOVE:  // madvise(MADV_DONTNEED, MADV_REMOVE): reads zeros from now on
      case UFFD_EVENT_UNMAP:
        t.pending.erase(m.arg.remove.start, m.arg.remove.end);
        return {};
      case UFFD_EVENT_REMAP:
        t.pending.move(m.arg.remap.from, m.arg.remap.to, m.arg.remap.len);
        return {};
      case UFFD_EVENT_FORK: {
        // The child's memory is registered with this new fd: closed, it
        // would read zeros where pages are missing until the watcher kills it.
        forked_ = UniqueFd(static_cast<int>(m.arg.fork.ufd));
        return error(EOPNOTSUPP, "pid {} forked with {} KiB of its memory not yet in: lazy restore does not follow "
                     "a fork (restore without --lazy-pages)", t.pid, t.pending.bytes() >> 10);
      }
      default:
        return error(EPROTO, "pid {}: unknown userfaultfd event {}", t.pid, m.event);
    }
  }

  Result<Copied> serve_fault(Task& t, uint64_t page) {
    const uint64_t lo = page & ~(kFaultWindow - 1);
    if (auto p = t.pending.find(page, lo, lo + kFaultWindow)) {
      if (TRY(copy(t, *p, &stats_.fault_bytes)) == Copied::Later) return Copied::Later;
      // The copy woke the fault, unless the page came in another way (EEXIST).
      uffdio_range r{page, kPage};
      (void)ioctl(t.uffd.get(), UFFDIO_WAKE, &r);
      return Copied::Done;
    }
    // Nothing dumped there, or dropped by the task since: a zero page.
    uffdio_zeropage z{{page, kPage}, 0, 0};
    if (ioctl(t.uffd.get(), UFFDIO_ZEROPAGE, &z) == 0) {
      stats_.zero_pages++;
      return Copied::Done;
    }
    if (errno == EAGAIN) return Copied::Later;
    if (errno == ESRCH) return t.gone = true, Copied::Done;
    if (errno == EEXIST || errno == ENOENT) {  // in already (a copy that raced), or unmapped since
      uffdio_range r{page, kPage};
      (void)ioctl(t.uffd.get(), UFFDIO_WAKE, &r);
      return Copied::Done;
    }
    return sys_error("pid {}: zero page at {:#x}", t.pid, page);
  }

  // Copies `p` into the task, checked first; what is in leaves the pending set.
  Result<Copied> copy(Task& t, Piece p, uint64_t* counter) {
    TRY_CTX(checked_.check(p.src.fd, p.src.off, p.len), "pid {}", t.pid);
    while (p.len) {
      const uint64_t len = std::min<uint64_t>(p.len, buf_.size());
      const size_t got = TRY_CTX(pread_full(p.src.fd, buf_.data(), len, p.src.off), "pid {}: read pages for {:#x}",
                                 t.pid, p.addr);
      if (got != len) return error(EIO, "pid {}: the pages file ends before {:#x}", t.pid, p.addr + got);
      uffdio_copy c{p.addr, reinterpret_cast<uint64_t>(buf_.data()), len, 0, 0};
      const int r = ioctl(t.uffd.get(), UFFDIO_COPY, &c);
      const uint64_t done = c.copy > 0 ? static_cast<uint64_t>(c.copy) : 0;
      t.pending.erase(p.addr, p.addr + done);
      *counter += done;
      uint64_t step = done;
      if (r < 0) {
        if (errno == EAGAIN) return Copied::Later;  // the mm changes (an event waits): after it
        if (errno == ESRCH) {                       // the task exited
          t.gone = true;
          return Copied::Done;
        }
        // EEXIST: the task has the page already; ENOENT: no VMA there now. Neither is ours to fill.
        if (errno != EEXIST && errno != ENOENT) return sys_error("pid {}: UFFDIO_COPY at {:#x}", t.pid, p.addr + done);
        t.pending.erase(p.addr + done, p.addr + done + kPage);
        step += kPage;
      }
      step = std::min(step, p.len);
      p.addr += step;
      p.src.off += step;
      p.len -= step;
    }
    return Copied::Done;
  }

  Result<void> retry_deferred() {
    std::vector<std::pair<Task*, uint64_t>> again;
    for (auto [t, page] : std::exchange(deferred_, {}))
      if (!t->gone && TRY(serve_fault(*t, page)) == Copied::Later) again.push_back({t, page});
    deferred_ = std::move(again);
    return {};
  }

  // The next MiB of the next task with something pending.
  Result<void> push_some() {
    for (size_t k = 0; k < tasks_.size(); k++) {
      Task& t = tasks_[(next_ + k) % tasks_.size()];
      if (!t.uffd || t.done()) continue;
      next_ = (next_ + k + 1) % tasks_.size();
      if (auto p = t.pending.first(kPushChunk)) (void)TRY(copy(t, *p, &stats_.pushed_bytes));
      return {};
    }
    return {};
  }

  std::vector<Task> tasks_;
  CheckedPages& checked_;
  std::future<Result<void>>& checker_;  // check_all(): a damaged run ends the service at once
  Mapping buf_;
  UniqueFd conn_;
  const Faults& faults_;
  Log& log_;
  bool conn_open_ = true;
  bool running_ = false;  // ckpt restore said every task runs
  std::vector<std::pair<Task*, uint64_t>> deferred_;  // faults to serve once the mm settles
  UniqueFd forked_;  // a child's userfaultfd (UFFD_EVENT_FORK), refused
  size_t next_ = 0;
  LazyStats stats_;
};

}  // namespace

Result<LazyStats> serve_lazy_pages(const image::ImageDir& dir, const std::optional<RemoteSource>& remote,
                                   const Faults& faults, Log& log, const std::function<void()>& listening) {
  struct Unname {
    const image::ImageDir& dir;
    ~Unname() { (void)dir.dir().remove(kSocketName); }
  } unname{dir};
  // Local pages: listening first, so that a restore may connect at once and
  // load its images while the daemon loads the same (a restore that
  // connected to a daemon that fails then fails too, on its first word to
  // it). Remote pages: only once what the restorers read is here.
  UniqueFd listener;
  auto listen = [&]() -> Result<void> {
    listener = TRY(listen_for_restore(dir, log));
    if (listening) listening();
    return {};
  };
  std::optional<RemotePages> pages;
  if (remote) pages.emplace(TRY(RemotePages::open(dir, *remote, log)));
  else TRY(listen());
  restore::TreeImages t = TRY(restore::load_images(dir));
  CheckedPages checked;
  std::vector<FilePiece> restorers_read;
  std::vector<Task> tasks = TRY(plan_tasks(t, &checked, &restorers_read));
  if (pages) {
    if (!t.parents.empty())
      return error(EOPNOTSUPP, "{} continues a parent checkpoint: lazy-pages --page-server serves one checkpoint's "
                   "pages (ckpt migrate --lazy-pages moves a chain)", dir.path());
    for (const restore::TaskImages& ti : t.tasks) TRY(pages->bind(ti.pages.get(), image::pages_name(ti.pid)));
    TRY(pages->fetch_all_but(checked.runs(), restorers_read));
    checked.set_fetch([&p = *pages](int fd, uint64_t off, uint64_t len) { return p.fetch(fd, off, len); });
    TRY(listen());
  }
  Mapping buf = TRY(Mapping::anonymous(kPushChunk));
  // Started once the tree runs (Server): a large run is then checked before
  // a fault needs it, and not while the restorers need the CPUs.
  std::future<Result<void>> checker;
  UniqueFd conn = TRY(accept_restore(listener, dir, log));
  listener.reset();
  Server server(std::move(tasks), checked, checker, std::move(buf), std::move(conn), faults, log);
  auto r = server.run();
  checked.stop();  // runs nobody needs any more are neither checked nor fetched
  if (!r) {
    server.report(Report::kError, r.error().str());
    return r;
  }
  if (checker.valid()) (void)checker.get();
  server.report(Report::kDone, "");
  if (pages) {
    // Every page is in: a page server gone now harms nobody.
    if (auto d = pages->done(); !d) log.warn("lazy-pages: {}", d.error().str());
  }
  return r;
}

}  // namespace ckpt::lazy
