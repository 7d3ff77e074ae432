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
#include "files/kind.h"

namespace ckpt::files {

namespace {

struct Watch {
  int wd;
  uint32_t mask;
  uint64_t ino;
  unsigned sdev;
  int handle_type;
  std::string handle;  // bytes
};

Result<std::vector<Watch>> parse_watches(std::string_view fdinfo) {
  std::vector<Watch> out;
  for (auto r : std::views::split(fdinfo, '\n')) {
    const std::string line(r.begin(), r.end());
    if (!line.starts_with("inotify ")) continue;
    Watch w{};
    unsigned bytes = 0;
    char hex[2 * MAX_HANDLE_SZ + 1] = "";
    if (sscanf(line.c_str(), "inotify wd:%x ino:%" SCNx64 " sdev:%x mask:%x ignored_mask:%*x fhandle-bytes:%x "
               "fhandle-type:%x f_handle:%256s", &w.wd, &w.ino, &w.sdev, &w.mask, &bytes, &w.handle_type, hex) != 7 ||
        bytes > MAX_HANDLE_SZ || strlen(hex) != 2 * bytes)
      return error(EINVAL, "cannot parse \"{}\" of its fdinfo", line);
    for (unsigned i = 0; i < bytes; i++) w.handle.push_back(static_cast<char>(std::stoul(std::string(hex + 2 * i, 2), nullptr, 16)));
    out.push_back(std::move(w));
  }
  std::ranges::sort(out, {}, &Watch::wd);
  return out;
}

// The path of the file a watch is on, through its handle.
Result<std::string> path_of(const Watch& w) {
  // Any mount of its device does for open_by_handle_at.
  const unsigned maj = w.sdev >> 20, min = w.sdev & 0xfffff;
  const std::string info = TRY(read_file("/proc/self/mountinfo"));
  const std::string dev = fmt::format(" {}:{} ", maj, min);
  for (auto r : std::views::split(info, '\n')) {
    const std::string line(r.begin(), r.end());
    const size_t at = line.find(dev);
    if (at == std::string::npos) continue;
    // "36 25 0:32 / /mnt/x rw,... ": the mount point is the fifth field.
    std::string root, point;
    std::istringstream f(line.substr(at + dev.size()));
    f >> root >> point;
    UniqueFd mnt = TRY(open_file(point, O_RDONLY | O_DIRECTORY));
    std::string buf(sizeof(file_handle) + w.handle.size(), '\0');
    auto* fh = reinterpret_cast<file_handle*>(buf.data());
    fh->handle_bytes = static_cast<unsigned>(w.handle.size());
    fh->handle_type = w.handle_type;
    std::memcpy(fh->f_handle, w.handle.data(), w.handle.size());
    int fd = open_by_handle_at(mnt.get(), fh, O_PATH);
    if (fd < 0) return sys_error("open the file of watch {} by its handle", w.wd);
    UniqueFd file(fd);
    std::string path = TRY(read_link(fmt::format("/proc/self/fd/{}", fd)));
    struct stat st;
    if (path.empty() || path[0] != '/' || ::stat(path.c_str(), &st) < 0 || st.st_ino != w.ino)
      return error(EOPNOTSUPP, "watch {} is on a file restore could not find again by its path ({})", w.wd, path);
    return path;
  }
  return error(ENOENT, "watch {}: no mount of device {}:{}", w.wd, maj, min);
}

class InotifyKind final : public Kind {
 public:
  std::string_view name() const override { return "inotify"; }
  img::FileDesc::KindCase tag() const override { return img::FileDesc::kInotify; }

  bool claims(const FdProbe& p, const DumpFlags&) const override { return p.link == "anon_inode:inotify"; }

  Result<void> collect(const FdProbe& p, img::FileDesc* d) const override {
    UniqueFd own = TRY(take_file(p));
    int queued = 0;
    if (ioctl(own.get(), FIONREAD, &queued) < 0) return sys_error("FIONREAD");
    if (queued > 0)
      return error(EOPNOTSUPP, "{} bytes of events not yet read, which restore could not queue again: not supported",
                   queued);
    img::Inotify* in = d->mutable_inotify();
    for (const Watch& w : TRY(parse_watches(p.fdinfo))) {
      img::InotifyWatch* iw = in->add_watches();
      iw->set_wd(w.wd);
      iw->set_mask(w.mask);
      iw->set_inode(w.ino);
      iw->set_path(TRY(path_of(w)));
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
