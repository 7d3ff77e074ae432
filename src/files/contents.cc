#include "files/contents.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/fs.h"

namespace ckpt::files {

Result<void> read_contents(int fd, uint64_t limit, img::FileContents* out) {
  struct stat st;
  if (fstat(fd, &st) < 0) return sys_error("fstat");
  out->set_size(st.st_size);
  out->set_mode(st.st_mode & 07777);
  out->set_uid(st.st_uid);
  out->set_gid(st.st_gid);
  uint64_t stored = 0;
  for (off_t at = 0; at < st.st_size;) {
    off_t data = lseek(fd, at, SEEK_DATA);
    if (data < 0 && errno == ENXIO) break;  // a hole to the end
    if (data < 0) return sys_error("SEEK_DATA at {}", at);
    off_t hole = lseek(fd, data, SEEK_HOLE);
    if (hole < 0) return sys_error("SEEK_HOLE at {}", data);
    stored += hole - data;
    if (stored > limit)
      return error(EFBIG, "it holds more than {} bytes of data, the most stored for a file without a name "
                   "(--ghost-limit)", limit);
    img::Extent* e = out->add_extents();
    e->set_offset(data);
    std::string* bytes = e->mutable_data();
    bytes->resize(hole - data);
    for (size_t done = 0; done < bytes->size();) {
      ssize_t n = pread(fd, bytes->data() + done, bytes->size() - done, data + static_cast<off_t>(done));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return sys_error("read at {}", data + static_cast<off_t>(done));
      if (n == 0) return error(EIO, "it shrank while being read (at {})", data + static_cast<off_t>(done));
      done += n;
    }
    at = hole;
  }
  return {};
}

Result<void> write_contents(int fd, const img::FileContents& c) {
  for (const img::Extent& e : c.extents()) {
    for (size_t done = 0; done < e.data().size();) {
      ssize_t n = pwrite(fd, e.data().data() + done, e.data().size() - done, static_cast<off_t>(e.offset() + done));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return sys_error("write {} bytes at {}", e.data().size(), e.offset());
      done += n;
    }
  }
  if (ftruncate(fd, static_cast<off_t>(c.size())) < 0) return sys_error("truncate to {}", c.size());
  if (fchown(fd, c.uid(), c.gid()) < 0) return sys_error("chown to {}:{}", c.uid(), c.gid());
  if (fchmod(fd, c.mode() & 07777) < 0) return sys_error("chmod {:o}", c.mode());
  return {};
}

}  // namespace ckpt::files

namespace ckpt::files {

Result<UniqueFd> reopen(int fd, uint32_t flags) {
  const int f = static_cast<int>(flags) & ~(O_CREAT | O_EXCL | O_TRUNC | O_NOCTTY | O_CLOEXEC | O_TMPFILE);
  const std::string path = fmt::format("/proc/self/fd/{}", fd);
  int out = ::open(path.c_str(), f | O_CLOEXEC);
  if (out < 0) return sys_error("reopen with flags {:#o}", f);
  return UniqueFd(out);
}

}  // namespace ckpt::files
