// eventfd(2): a 64-bit counter. Its count and EFD_SEMAPHORE come from
// fdinfo (a read would consume the count); EFD_NONBLOCK is a status flag,
// which files.cc sets.
#include <sys/eventfd.h>
#include <unistd.h>

#include <limits>

#include "files/kind.h"
#include "proc/anon_fdinfo.h"

namespace ckpt::files {

namespace {

// The kernel refuses a write of 2^64 - 1 and never holds it.
constexpr uint64_t kMaxCount = std::numeric_limits<uint64_t>::max() - 1;

class EventFd final : public Kind {
 public:
  std::string_view name() const override { return "eventfd"; }
  img::FileDesc::KindCase tag() const override { return img::FileDesc::kEventfd; }

  bool claims(const FdProbe& p, const DumpFlags&) const override { return p.link == "anon_inode:[eventfd]"; }

  Result<void> collect(const FdProbe& p, img::FileDesc* d) const override {
    const proc::EventFdInfo info = TRY(proc::parse_eventfd_fdinfo(p.fdinfo));
    if (!info.shows_semaphore)
      return error(EOPNOTSUPP, "this kernel does not show whether an eventfd is EFD_SEMAPHORE (fdinfo's "
                   "eventfd-semaphore line, Linux 6.2): not supported");
    d->mutable_eventfd()->set_count(info.count);
    d->mutable_eventfd()->set_semaphore(info.semaphore);
    return {};
  }

  Result<void> verify(const img::FileDesc& d) const override {
    if (d.eventfd().count() > kMaxCount) return error(EINVAL, "an eventfd count of {:#x}", d.eventfd().count());
    return {};
  }

  Result<UniqueFd> open(const img::FileDesc& d, OpenState&) const override {
    const img::EventFd& e = d.eventfd();
    int fd = eventfd(0, EFD_CLOEXEC | (e.semaphore() ? EFD_SEMAPHORE : 0));
    if (fd < 0) return sys_error("eventfd");
    UniqueFd out(fd);
    // eventfd() takes an unsigned int; a write adds all 64 bits (and does
    // not block: the new count is below 2^64 - 1).
    const uint64_t count = e.count();
    if (count != 0 && write(fd, &count, sizeof count) != sizeof count) return sys_error("eventfd: add {}", count);
    return out;
  }
};

}  // namespace

const Kind& eventfd_kind() {
  static const EventFd k;
  return k;
}

}  // namespace ckpt::files
