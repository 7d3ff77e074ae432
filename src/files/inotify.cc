// inotify: the watches. /proc/PID/fdinfo of an inotify lists each as
//   "inotify wd:2 ino:2dd sdev:fe00000 mask:2 ignored_mask:0 fhandle-bytes:8
//    fhandle-type:1 f_handle:dd02000000000000"
// Dump opens each watched file by its handle (open_by_handle_at, on a
// mount of its device) to learn its path; restore adds a watch on that path
// again, in wd order, so that each gets its old wd (the kernel hands wds out
// cyclically upwards: a gap is made by adding and removing a watch on a file
// of ckpt's own). Events queued and not yet read can't be put back: a dump
// of an inotify holding some is refused. The path is looked up again at
// restore: on another machine, the file at the same path is watched.
#include <fcntl.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <ranges>
#include <sstream>

#include "base/fs.h"
#include "files/fhandle.h"
#include "files/kind.h"

namespace ckpt::files {

namespace {

struct Watch {
  int wd;
  uint32_t mask;
  FileHandle file;
};

Result<std::vector<Watch>> parse_watches(std::string_view fdinfo) {
  std::vector<Watch> out;
  for (auto r : std::views::split(fdinfo, '\n')) {
    const std::string line(r.begin(), r.end());
    if (!line.starts_with("inotify ")) continue;
    Watch w{};
    int tail = 0;
    if (sscanf(line.c_str(), "inotify wd:%x ino:%" SCNx64 " sdev:%x mask:%x ignored_mask:%*x %n", &w.wd, &w.file.ino,
               &w.file.sdev, &w.mask, &tail) != 4 || tail == 0)
      return error(EINVAL, "cannot parse \"{}\" of its fdinfo", line);
    TRY_CTX(parse_fhandle(std::string_view(line).substr(tail), &w.file), "its fdinfo");
    out.push_back(std::move(w));
  }
  std::ranges::sort(out, {}, &Watch::wd);
  return out;
}

class InotifyKind final : public Kind {
 public:
  std::string_view name() const override { return "inotify"; }
  img::FileDesc::KindCase tag() const override { return img::FileDesc::kInotify; }

  bool claims(const FdProbe& p, const DumpFlags&) const override { return p.link == "anon_inode:inotify"; }

  Result<void> collect(const FdProbe& p, img::FileDesc* d) const override {
    TRY(refuse_unread_events(p));
    img::Inotify* in = d->mutable_inotify();
    for (const Watch& w : TRY(parse_watches(p.fdinfo))) {
      img::InotifyWatch* iw = in->add_watches();
      iw->set_wd(w.wd);
      iw->set_mask(w.mask);
      iw->set_inode(w.file.ino);
      iw->set_path(TRY_CTX(path_of(w.file), "watch {}", w.wd));
    }
    return {};
  }

  Result<UniqueFd> open(const img::FileDesc& d, OpenState&) const override {
    int fd = inotify_init1(IN_CLOEXEC);
    if (fd < 0) return sys_error("inotify_init1");
    UniqueFd out(fd);
    // A file of ckpt's own, which no watch is on, to take the wds of the gaps with.
    UniqueFd spare;
    int next = 1;
    for (const img::InotifyWatch& w : d.inotify().watches()) {
      while (next < w.wd()) {
        if (!spare) {
          int m = memfd_create("ckpt-inotify-gap", MFD_CLOEXEC);
          if (m < 0) return sys_error("memfd_create");
          spare = UniqueFd(m);
        }
        int gap = inotify_add_watch(fd, fmt::format("/proc/self/fd/{}", spare.get()).c_str(), IN_ATTRIB);
        if (gap < 0) return sys_error("inotify: take wd {}", next);
        if (inotify_rm_watch(fd, gap) < 0) return sys_error("inotify: give back wd {}", gap);
        next = gap + 1;
      }
      const int wd = inotify_add_watch(fd, w.path().c_str(), w.mask() & ~IN_MASK_CREATE);
      if (wd < 0) return sys_error("inotify: watch {}", w.path());
      if (wd != w.wd()) return error(EEXIST, "inotify: watch {} got wd {}, not {}", w.path(), wd, w.wd());
      next = wd + 1;
    }
    return out;
  }
};

}  // namespace

const Kind& inotify_kind() {
  static const InotifyKind k;
  return k;
}

}  // namespace ckpt::files
