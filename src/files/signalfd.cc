// signalfd(2): reads the reading task's own pending signals, of a mask. The
// mask comes from fdinfo; the signals are the task's (restored with it), so
// one queued before the dump is read through the signalfd after restore.
// SFD_NONBLOCK is a status flag, which files.cc sets.
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "files/kind.h"
#include "proc/anon_fdinfo.h"

namespace ckpt::files {

namespace {

constexpr uint64_t bit(int sig) { return uint64_t{1} << (sig - 1); }

class SignalFd final : public Kind {
 public:
  std::string_view name() const override { return "signalfd"; }
  img::FileDesc::KindCase tag() const override { return img::FileDesc::kSignalfd; }

  bool claims(const FdProbe& p, const DumpFlags&) const override { return p.link == "anon_inode:[signalfd]"; }

  Result<void> collect(const FdProbe& p, img::FileDesc* d) const override {
    const proc::SignalFdInfo info = TRY(proc::parse_signalfd_fdinfo(p.fdinfo));
    d->mutable_signalfd()->set_mask(info.sigmask);
    return {};
  }

  Result<void> verify(const img::FileDesc& d) const override {
    // The kernel drops both from every signalfd mask.
    if (d.signalfd().mask() & (bit(SIGKILL) | bit(SIGSTOP)))
      return error(EINVAL, "a signalfd mask {:#x} with SIGKILL or SIGSTOP", d.signalfd().mask());
    return {};
  }

  Result<UniqueFd> open(const img::FileDesc& d, OpenState&) const override {
    // The kernel's 64-bit sigset, as is: glibc's sigaddset refuses the
    // signals it keeps for itself (32, 33), which a task may still read.
    const uint64_t mask = d.signalfd().mask();
    int fd = static_cast<int>(syscall(SYS_signalfd4, -1, &mask, sizeof mask, SFD_CLOEXEC));
    if (fd < 0) return sys_error("signalfd of mask {:#x}", mask);
    return UniqueFd(fd);
  }
};

}  // namespace

const Kind& signalfd_kind() {
  static const SignalFd k;
  return k;
}

}  // namespace ckpt::files
