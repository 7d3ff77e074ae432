// --shell-job: a terminal on an fd is not restored from the image; the
// terminal ckpt restore runs in takes its place, as CRIU's --shell-job does.
// Pty pairs of the tree's own are pty.cc's (a slave of the caller's terminal
// becomes one of these there). Without --shell-job every other terminal
// (/dev/tty, /dev/console, a virtual console, a serial line) is refused here
// with what it is.
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

  bool claims(const FdProbe& p, const DumpFlags&) const override {
    return S_ISCHR(p.st.st_mode) && is_tty_dev(p.st.st_rdev);
  }

  Result<void> collect(const FdProbe& p, img::FileDesc* d) const override {
    const bool dev_tty = p.st.st_rdev == makedev(5, 0), console = p.st.st_rdev == makedev(5, 1);
    if (!p.ctx->shell_job)
      return error(EOPNOTSUPP, "{}: not supported{}", dev_tty   ? "/dev/tty (the task's controlling terminal)"
                                                      : console ? "/dev/console (the system console)"
                                                                : "a terminal of the outside",
                   dev_tty ? "" : " (if the tree runs on it from a shell, dump with --shell-job: restore gives it "
                                  "ckpt's terminal)");
    // /dev/tty is whatever the task's controlling terminal is: ckpt's one at
    // restore only if that is the terminal the tree runs on.
    if (dev_tty) {
      const proc::Stat st = TRY(proc::read_stat(p.pid));
      if (!p.ctx->shell_ttys.contains(st.tty_nr))
        return error(EOPNOTSUPP, "/dev/tty, on a controlling terminal ({}:{}) that is not the one the tree runs on: "
                     "not supported", major(st.tty_nr), minor(st.tty_nr));
    }
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
