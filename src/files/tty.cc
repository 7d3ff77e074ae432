// --shell-job: a terminal on an fd is not restored from the image; the
// terminal ckpt restore runs in takes its place, as CRIU's --shell-job does.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "files/kind.h"

namespace ckpt::files {

namespace {

class InheritedTerminal final : public Kind {
 public:
  std::string_view name() const override { return "terminal"; }
  img::FileDesc::KindCase tag() const override { return img::FileDesc::kTerminal; }

  bool claims(const FdProbe& p, const DumpFlags& flags) const override {
    return flags.shell_job && S_ISCHR(p.st.st_mode) && is_tty_dev(p.st.st_rdev);
  }

  Result<void> collect(const FdProbe& p, img::FileDesc* d) const override {
    d->mutable_terminal()->set_path(p.link);
    d->mutable_terminal()->set_fd(p.fd);
    return {};
  }

  Result<UniqueFd> open(const img::FileDesc& d, OpenState&) const override {
    // The same fd of ckpt if it is a terminal, else whichever stdio one is.
    const int want = d.terminal().fd();
    for (int cand : {want, 0, 1, 2}) {
      if (cand < 0 || cand > 2 || !isatty(cand)) continue;
      int fd = fcntl(cand, F_DUPFD_CLOEXEC, 3);
      if (fd < 0) return sys_error("dup terminal fd {}", cand);
      return UniqueFd(fd);
    }
    return error(ENOTTY, "the image expects a terminal on fd {} (--shell-job) but ckpt has none on its stdio", want);
  }
};

}  // namespace

bool is_tty_dev(dev_t rdev) {
  const unsigned maj = major(rdev);
  return maj == 136 /* pts */ || maj == 4 /* tty */ || maj == 5 /* console, ptmx */;
}

const Kind& terminal_kind() {
  static const InheritedTerminal k;
  return k;
}

}  // namespace ckpt::files
