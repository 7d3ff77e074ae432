// Files of /proc, opened again by their path, with their flags and offset.
// One of a task (/proc/PID/..., and /proc/self/... and /proc/thread-self/...,
// whose links read so) is the task's own, not a path's: restore recreates
// the tree's tasks with their PIDs, so it opens the same path once they
// exist (needs_tasks), and the file then shows the restored task. A PID
// outside the tree is refused at dump, as is a thread other than a main
// one (/proc/PID/task/TID: threads come later). Other files of /proc
// (/proc/sys/..., /proc/meminfo) are opened by path like any file, at the
// same time. A read of a seq_file starts over from its offset with what the
// file shows then.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <charconv>

#include "files/kind.h"
#include "files/tree_pid.h"

namespace ckpt::files {

namespace {

constexpr long kProcSuperMagic = 0x9fa0;  // linux/magic.h
constexpr std::string_view kProc = "/proc/";

// The PID of "/proc/PID/...", or 0; `rest` is what follows "/proc/PID".
pid_t pid_of(std::string_view path, std::string_view* rest) {
  std::string_view s = path.substr(kProc.size());
  const size_t end = std::min(s.find('/'), s.size());
  pid_t pid = 0;
  auto [at, ec] = std::from_chars(s.data(), s.data() + end, pid);
  if (ec != std::errc() || at != s.data() + end || pid <= 0) return 0;
  *rest = s.substr(end);
  return pid;
}

class ProcFile final : public Kind {
 public:
  std::string_view name() const override { return "file of /proc"; }
  img::FileDesc::KindCase tag() const override { return img::FileDesc::kProcFile; }
  bool needs_tasks() const override { return true; }

  bool claims(const FdProbe& p, const DumpFlags&) const override {
    if (!p.link.starts_with(kProc)) return false;
    struct statfs fs;
    const std::string fd_link = fmt::format("/proc/{}/fd/{}", p.pid, p.fd);
    return statfs(fd_link.c_str(), &fs) == 0 && fs.f_type == kProcSuperMagic;
  }

  Result<void> collect(const FdProbe& p, img::FileDesc* d) const override {
    const std::string& path = p.link;
    if (path.ends_with(kDeletedSuffix))
      return error(EOPNOTSUPP, "a file of /proc whose process is gone: restore could not open it");
    if (!S_ISREG(p.st.st_mode) && !S_ISDIR(p.st.st_mode))
      return error(EOPNOTSUPP, "a file of /proc of mode {:o}: not supported yet", p.st.st_mode & S_IFMT);
    img::ProcFile* out = d->mutable_proc_file();
    std::string_view rest;
    if (const pid_t pid = pid_of(path, &rest)) {
      TRY(tree_task(pid, *p.ctx, "a file of /proc of"));
      // /proc/PID/task/TID/...: the thread must exist when it is opened,
      // and restore creates threads after that.
      std::string_view after_tid;
      const pid_t tid = rest.starts_with("/task/") ? pid_of(fmt::format("{}{}", kProc, rest.substr(6)), &after_tid) : 0;
      if (tid != 0 && tid != pid)
        return error(EOPNOTSUPP, "a file of /proc of thread {} of pid {}, not its main one: not supported yet", tid,
                     pid);
      out->set_pid(pid);
    } else {
      // Opened by its path: it must lead to this very file.
      struct stat at;
      if (::stat(path.c_str(), &at) < 0 || at.st_dev != p.st.st_dev || at.st_ino != p.st.st_ino)
        return error(EOPNOTSUPP, "restore could not open it again by its path: not supported yet");
    }
    out->set_path(path);
    out->set_mode(p.st.st_mode & S_IFMT);
    return {};
  }

  Result<void> verify(const img::FileDesc& d) const override {
    const img::ProcFile& f = d.proc_file();
    std::string_view rest;
    if (!f.path().starts_with(kProc) || f.path().find("/..") != std::string::npos)
      return error(EINVAL, "a file of /proc at \"{:.200}\"", f.path());
    if (f.pid() != 0 && pid_of(f.path(), &rest) != f.pid())
      return error(EINVAL, "a file of /proc at \"{:.200}\" said to be of pid {}", f.path(), f.pid());
    if (f.mode() != S_IFREG && f.mode() != S_IFDIR) return error(EINVAL, "a file of /proc of mode {:o}", f.mode());
    return {};
  }

  Result<UniqueFd> open(const img::FileDesc& d, OpenState&) const override {
    const img::ProcFile& f = d.proc_file();
    // As regular.cc: creation flags did their work; O_CLOEXEC is the fd's.
    const int flags = static_cast<int>(d.flags()) & ~(O_CREAT | O_EXCL | O_TRUNC | O_NOCTTY | O_CLOEXEC);
    int fd = ::open(f.path().c_str(), flags | O_CLOEXEC);
    if (fd < 0) return sys_error("open {}", f.path());
    UniqueFd out(fd);
    struct stat st;
    if (fstat(fd, &st) < 0) return sys_error("stat {}", f.path());
    if ((st.st_mode & S_IFMT) != f.mode())
      return error(ESTALE, "{} is not the file that was dumped (a {:o} then, a {:o} now)", f.path(), f.mode(),
                   st.st_mode & S_IFMT);
    if (d.pos() == 0 || (d.flags() & O_PATH)) return out;
    if (::lseek(fd, static_cast<off_t>(d.pos()), SEEK_SET) < 0) return sys_error("seek {} to {}", f.path(), d.pos());
    // A seq_file (most of /proc/PID) keeps the text a seek made to find the
    // offset, and the next read goes on in it: made now, while the task is
    // still ckpt's copy, that would be what the task reads. A read at
    // another offset (pread, which leaves the file's) drops it; the task's
    // next read then finds its offset in text made anew, of itself as it is
    // then (seq_read_iter: "Don't assume ki_pos is where we left it").
    char c[2];
    if (::pread(fd, c, d.pos() == 1 ? 2 : 1, 0) < 0) return sys_error("read {}", f.path());
    return out;
  }
};

}  // namespace

const Kind& proc_file_kind() {
  static const ProcFile k;
  return k;
}

}  // namespace ckpt::files
