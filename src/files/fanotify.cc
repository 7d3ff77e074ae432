// fanotify(7): a group and its marks, all in /proc/PID/fdinfo:
//   fanotify flags:2 event-flags:8000
//   fanotify ino:a88427 sdev:fe00000 mflags:0 mask:a ignored_mask:0 fhandle-bytes:8 fhandle-type:1 f_handle:2784...
//   fanotify mnt_id:1b mflags:0 mask:20 ignored_mask:0
//   fanotify sdev:fe00000 mflags:0 mask:100 ignored_mask:0
// (an inode mark, a mount mark, a filesystem mark; numbers in hex). Dump
// finds the path of each: an inode by its handle (fhandle.h), a mount by
// its id in the holder's mountinfo, a filesystem by a mount of its device;
// restore calls fanotify_init with the same flags and fanotify_mark on
// each path again (the file at that path then). Refused at dump: events
// queued and not yet read (they can't be queued again), a group of a
// permission class (an event read and not yet answered would be lost),
// and a mark of another kind or flag than these.
#include <fcntl.h>
#include <sys/fanotify.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cinttypes>
#include <cstdio>
#include <ranges>
#include <sstream>

#include "base/fs.h"
#include "files/fhandle.h"
#include "files/kind.h"

namespace ckpt::files {

namespace {

// What a mark keeps that restore can set again.
constexpr uint32_t kMarkFlags = FAN_MARK_IGNORED_SURV_MODIFY | FAN_MARK_EVICTABLE | FAN_MARK_IGNORE;
constexpr uint32_t kPermissionClasses = FAN_CLASS_CONTENT | FAN_CLASS_PRE_CONTENT;

// The mount point of mount `id` in the mount namespace of `pid`.
Result<std::string> mount_point_of(pid_t pid, int id) {
  const std::string info = TRY(read_file(fmt::format("/proc/{}/mountinfo", pid)));
  for (auto r : std::views::split(info, '\n')) {
    std::istringstream f(std::string(r.begin(), r.end()));
    int mnt_id = 0, parent = 0;
    std::string dev, root, point;
    if (!(f >> mnt_id >> parent >> dev >> root >> point) || mnt_id != id) continue;
    if (point.find('\\') != std::string::npos)
      return error(EOPNOTSUPP, "mount {} is at {}, a path with blanks: not supported yet", id, point);
    return point;
  }
  return error(ENOENT, "no mount {} in /proc/{}/mountinfo", id, pid);
}

Result<img::FanotifyMark> parse_mark(const FdProbe& p, const std::string& line) {
  img::FanotifyMark m;
  unsigned mflags = 0, mask = 0, ignored = 0, sdev = 0, mnt_id = 0;
  uint64_t ino = 0;
  int tail = 0;
  if (sscanf(line.c_str(), "fanotify ino:%" SCNx64 " sdev:%x mflags:%x mask:%x ignored_mask:%x %n", &ino, &sdev,
             &mflags, &mask, &ignored, &tail) == 5 && tail > 0) {
    FileHandle h{.ino = ino, .sdev = sdev};
    TRY(parse_fhandle(std::string_view(line).substr(tail), &h));
    m.set_type(img::FanotifyMark::INODE);
    m.set_path(TRY_CTX(path_of(h), "a mark"));
    struct stat st;
    if (::lstat(m.path().c_str(), &st) < 0) return sys_error("stat {}", m.path());
    m.set_dev(st.st_dev);
    m.set_inode(st.st_ino);
  } else if (sscanf(line.c_str(), "fanotify mnt_id:%x mflags:%x mask:%x ignored_mask:%x", &mnt_id, &mflags, &mask,
                    &ignored) == 4) {
    m.set_type(img::FanotifyMark::MOUNT);
    m.set_path(TRY(mount_point_of(p.pid, static_cast<int>(mnt_id))));
  } else if (sscanf(line.c_str(), "fanotify sdev:%x mflags:%x mask:%x ignored_mask:%x", &sdev, &mflags, &mask,
                    &ignored) == 4) {
    m.set_type(img::FanotifyMark::FILESYSTEM);
    m.set_path(TRY(mount_point_of_dev(sdev)));
  } else {
    return error(EOPNOTSUPP, "a mark restore does not know (\"{}\"): not supported yet", line);
  }
  if (mflags & ~kMarkFlags) return error(EOPNOTSUPP, "a mark with flags {:#x}: not supported yet", mflags);
  m.set_mflags(mflags);
  m.set_mask(mask);
  m.set_ignored_mask(ignored);
  return m;
}

// FAN_MARK_* of a mark's kind, for fanotify_mark.
unsigned type_flags(const img::FanotifyMark& m) {
  switch (m.type()) {
    case img::FanotifyMark::MOUNT: return FAN_MARK_MOUNT;
    case img::FanotifyMark::FILESYSTEM: return FAN_MARK_FILESYSTEM;
    default: return FAN_MARK_DONT_FOLLOW;  // the path is the marked file's own
  }
}

class Fanotify final : public Kind {
 public:
  std::string_view name() const override { return "fanotify"; }
  img::FileDesc::KindCase tag() const override { return img::FileDesc::kFanotify; }

  bool claims(const FdProbe& p, const DumpFlags&) const override { return p.link == "anon_inode:[fanotify]"; }

  Result<void> collect(const FdProbe& p, img::FileDesc* d) const override {
    TRY(refuse_unread_events(p));
    img::Fanotify* out = d->mutable_fanotify();
    bool group = false;
    for (auto r : std::views::split(std::string_view(p.fdinfo), '\n')) {
      const std::string line(r.begin(), r.end());
      if (!line.starts_with("fanotify ")) continue;
      unsigned flags = 0, event_flags = 0;
      if (sscanf(line.c_str(), "fanotify flags:%x event-flags:%x", &flags, &event_flags) == 2) {
        if (flags & kPermissionClasses)
          return error(EOPNOTSUPP, "a group of a permission class (fanotify_init flags {:#x}): not supported yet",
                       flags);
        out->set_flags(flags);
        out->set_event_flags(event_flags);
        group = true;
        continue;
      }
      *out->add_marks() = TRY(parse_mark(p, line));
    }
    if (!group) return error(EINVAL, "no \"fanotify flags:\" line in its fdinfo");
    return {};
  }

  Result<void> verify(const img::FileDesc& d) const override {
    const img::Fanotify& f = d.fanotify();
    if (f.flags() & kPermissionClasses) return error(EINVAL, "a fanotify group of flags {:#x}", f.flags());
    for (const img::FanotifyMark& m : f.marks())
      if (m.path().empty() || m.path()[0] != '/' || (m.mflags() & ~kMarkFlags) ||
          !img::FanotifyMark::Type_IsValid(m.type()))
        return error(EINVAL, "a fanotify mark on \"{:.200}\" with flags {:#x}", m.path(), m.mflags());
    return {};
  }

  Result<UniqueFd> open(const img::FileDesc& d, OpenState&) const override {
    const img::Fanotify& f = d.fanotify();
    // The group keeps FAN_CLOEXEC as given (fdinfo shows it); ckpt's own fd
    // is close-on-exec all the same, the task's as it was (files.cc).
    int fd = fanotify_init(f.flags(), f.event_flags());
    if (fd < 0) return sys_error("fanotify_init({:#x}, {:#x})", f.flags(), f.event_flags());
    UniqueFd out(fd);
    if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) return sys_error("fanotify: FD_CLOEXEC");
    // fdinfo lists the newest mark first (the group's list takes each at
    // its head): added oldest first, they list as they did.
    for (const img::FanotifyMark& m : f.marks() | std::views::reverse) {
      if (m.type() == img::FanotifyMark::INODE) {
        struct stat st;
        if (::lstat(m.path().c_str(), &st) < 0) return sys_error("fanotify: mark {}", m.path());
        if (st.st_dev != m.dev() || st.st_ino != m.inode())
          return error(ESTALE, "fanotify: {} is not the file that was marked", m.path());
      }
      const unsigned base = FAN_MARK_ADD | type_flags(m) | (m.mflags() & FAN_MARK_EVICTABLE);
      if (m.mask() && fanotify_mark(fd, base, m.mask(), AT_FDCWD, m.path().c_str()) < 0)
        return sys_error("fanotify: mark {} with mask {:#x}", m.path(), m.mask());
      const unsigned ignore = (m.mflags() & FAN_MARK_IGNORE ? FAN_MARK_IGNORE : FAN_MARK_IGNORED_MASK) |
                              (m.mflags() & FAN_MARK_IGNORED_SURV_MODIFY);
      if (m.ignored_mask() && fanotify_mark(fd, base | ignore, m.ignored_mask(), AT_FDCWD, m.path().c_str()) < 0)
        return sys_error("fanotify: mark {} with ignored mask {:#x}", m.path(), m.ignored_mask());
    }
    return out;
  }
};

}  // namespace

const Kind& fanotify_kind() {
  static const Fanotify k;
  return k;
}

}  // namespace ckpt::files
