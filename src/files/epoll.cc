// epoll: the watch list. /proc/PID/fdinfo of an epoll lists each target as
//   "tfd:        5 events:       19 data:                5  pos:0 ino:81e sdev:d"
// (fd number, event mask and data in hex). The kernel keys a target by its
// file and that fd number, so restore adds it again under the same number,
// in the task that holds the epoll once its fds are at their numbers. A
// target whose fd was closed or reused since it was added (its file lives
// on, watched: closing an fd does not remove a target, only the file's last
// reference does) is found at another fd of the task with kcmp; restore
// puts that file at the old number for the time of the epoll_ctl, then
// closes the number again (or puts back the file that holds it now). One
// that no fd of the task holds (another task's, or in flight) is refused.
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <ranges>

#include "files/kind.h"
#include "proc/status.h"

namespace ckpt::files {

namespace {

// kcmp(2)'s KCMP_EPOLL_TFD: is the file at `fd` the target `tfd` of `epfd`?
constexpr int kKcmpEpollTfd = 7;
struct KcmpEpollSlot {
  uint32_t efd, tfd, toff;
};

// The fd the task holds the target at now.
int held_at(const img::EpollTarget& t) { return t.held_at() ? t.held_at() - 1 : t.fd(); }

class EpollKind final : public Kind {
 public:
  std::string_view name() const override { return "epoll"; }
  img::FileDesc::KindCase tag() const override { return img::FileDesc::kEpoll; }

  bool claims(const FdProbe& p, const DumpFlags&) const override { return p.link == "anon_inode:[eventpoll]"; }

  Result<void> collect(const FdProbe& p, img::FileDesc* d) const override {
    img::Epoll* ep = d->mutable_epoll();
    for (auto r : std::views::split(p.fdinfo, '\n')) {
      const std::string line(r.begin(), r.end());
      if (!line.starts_with("tfd:")) continue;
      int tfd = -1;
      unsigned events = 0;
      uint64_t data = 0;
      if (sscanf(line.c_str(), "tfd: %d events: %x data: %" SCNx64, &tfd, &events, &data) != 3 || tfd < 0)
        return error(EINVAL, "cannot parse \"{}\" of its fdinfo", line);
      // The n-th target under this number (another file may have been added
      // under it before that fd was reused).
      uint32_t toff = 0;
      for (const img::EpollTarget& t : ep->targets()) toff += t.fd() == tfd;
      KcmpEpollSlot slot{static_cast<uint32_t>(p.fd), static_cast<uint32_t>(tfd), toff};
      int held_at = tfd;
      if (syscall(SYS_kcmp, p.pid, p.pid, kKcmpEpollTfd, tfd, &slot) != 0) {
        held_at = -1;
        for (int fd : TRY_CTX(proc::list_numeric_dir(fmt::format("/proc/{}/fd", p.pid)), "list its fds"))
          if (syscall(SYS_kcmp, p.pid, p.pid, kKcmpEpollTfd, fd, &slot) == 0) {
            held_at = fd;
            break;
          }
        if (held_at < 0)
          return error(EOPNOTSUPP, "it watches a file added under fd {} that is no longer at that fd (closed or "
                       "replaced since) and that no other fd of the task holds: not supported", tfd);
      }
      img::EpollTarget* t = ep->add_targets();
      t->set_fd(tfd);
      if (held_at != tfd) t->set_held_at(held_at + 1);
      t->set_events(events);
      t->set_data(data);
    }
    return {};
  }

  Result<void> link(const FdProbe& p, const FdIndex& index, img::FileDesc* d) const override {
    for (img::EpollTarget& t : *d->mutable_epoll()->mutable_targets()) {
      const int at = held_at(t);
      const uint32_t desc = index.desc_of(p.pid, at);
      if (desc == 0) return error(EINVAL, "its target fd {} is not one of the task's fds", at);
      t.set_desc(desc);
    }
    return {};
  }

  Result<UniqueFd> open(const img::FileDesc&, OpenState&) const override {
    int fd = epoll_create1(EPOLL_CLOEXEC);
    if (fd < 0) return sys_error("epoll_create1");
    return UniqueFd(fd);
  }

  Result<void> in_task(const img::FileDesc& d, int fd, const img::Files& table,
                       std::vector<InTaskStep>* steps) const override {
    for (const img::EpollTarget& t : d.epoll().targets()) {
      const int at = held_at(t);
      auto it = std::ranges::find_if(table.fds(), [&](const img::FdEntry& e) { return e.fd() == at; });
      if (it == table.fds().end() || it->desc() != t.desc())
        return error(EINVAL, "epoll: target fd {} is not file description {} in this task", at, t.desc());
      steps->push_back({.op = InTaskStep::Op::EpollAdd, .fd = fd, .target = t.fd(),
                        .source = at == t.fd() ? -1 : at, .events = t.events(), .data = t.data()});
    }
    return {};
  }
};

}  // namespace

const Kind& epoll_kind() {
  static const EpollKind k;
  return k;
}

}  // namespace ckpt::files
