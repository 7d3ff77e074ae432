// pidfd_open(2): a handle on a process, which polls readable once it has
// exited and which waitid(P_PIDFD) takes. fdinfo names the process (Pid:).
// Restore recreates the tree's tasks with their PIDs, so a pidfd of a task
// of the tree is pidfd_open of the same PID once the tasks exist
// (needs_tasks); a zombie of the tree waits for that before it dies again.
// A pidfd of a process outside the tree, or of one reaped since (Pid: -1),
// names nothing restore can bring back: refused at dump.
// PIDFD_NONBLOCK is O_NONBLOCK, a status flag files.cc sets;
// PIDFD_THREAD is O_EXCL in the flags.
#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "files/kind.h"
#include "files/tree_pid.h"
#include "proc/anon_fdinfo.h"

namespace ckpt::files {

namespace {

constexpr unsigned kPidfdThread = O_EXCL;  // linux/pidfd.h

class Pidfd final : public Kind {
 public:
  std::string_view name() const override { return "pidfd"; }
  img::FileDesc::KindCase tag() const override { return img::FileDesc::kPidfd; }
  bool needs_tasks() const override { return true; }

  bool claims(const FdProbe& p, const DumpFlags&) const override { return p.link == "anon_inode:[pidfd]"; }

  Result<void> collect(const FdProbe& p, img::FileDesc* d) const override {
    const proc::PidFdInfo info = TRY(proc::parse_pidfd_fdinfo(p.fdinfo));
    if (info.pid <= 0)
      return error(EOPNOTSUPP, "a pidfd of a process that has exited and was reaped (Pid: {}): restore could "
                   "not open one", info.pid);
    TRY(tree_task(info.pid, *p.ctx, "a pidfd of"));
    img::Pidfd* out = d->mutable_pidfd();
    out->set_pid(info.pid);
    out->set_thread((p.info.flags & kPidfdThread) != 0);
    return {};
  }

  Result<void> verify(const img::FileDesc& d) const override {
    if (d.pidfd().pid() <= 0) return error(EINVAL, "a pidfd of pid {}", d.pidfd().pid());
    return {};
  }

  Result<UniqueFd> open(const img::FileDesc& d, OpenState&) const override {
    const img::Pidfd& p = d.pidfd();
    int fd = static_cast<int>(syscall(SYS_pidfd_open, p.pid(), p.thread() ? kPidfdThread : 0));
    if (fd < 0) return sys_error("pidfd_open of pid {}", p.pid());
    return UniqueFd(fd);  // close-on-exec: pidfd_open always sets it
  }
};

}  // namespace

const Kind& pidfd_kind() {
  static const Pidfd k;
  return k;
}

}  // namespace ckpt::files
