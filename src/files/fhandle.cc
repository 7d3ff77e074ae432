#include "files/fhandle.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <ranges>
#include <sstream>

#include "base/fs.h"
#include "base/unique_fd.h"

namespace ckpt::files {

Result<void> parse_fhandle(std::string_view text, FileHandle* h) {
  unsigned bytes = 0;
  char hex[2 * MAX_HANDLE_SZ + 1] = "";
  const std::string s(text);
  if (sscanf(s.c_str(), "fhandle-bytes:%x fhandle-type:%x f_handle:%256s", &bytes, &h->type, hex) != 3 ||
      bytes > MAX_HANDLE_SZ || strlen(hex) != 2 * bytes)
    return error(EINVAL, "cannot parse the file handle \"{}\"", s);
  h->bytes.clear();
  for (unsigned i = 0; i < bytes; i++) {
    unsigned b = 0;
    if (sscanf(hex + 2 * i, "%2x", &b) != 1) return error(EINVAL, "cannot parse the file handle \"{}\"", s);
    h->bytes.push_back(static_cast<char>(b));
  }
  return {};
}

Result<std::string> mount_point_of_dev(unsigned sdev) {
  const unsigned maj = sdev >> 20, min = sdev & 0xfffff;
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
    if (point.find('\\') != std::string::npos) continue;  // escaped (a blank in it): another will do
    return point;
  }
  return error(ENOENT, "no mount of device {}:{}", maj, min);
}

Result<std::string> path_of(const FileHandle& h) {
  // Any mount of its device does for open_by_handle_at.
  const std::string point = TRY(mount_point_of_dev(h.sdev));
  UniqueFd mnt = TRY(open_file(point, O_RDONLY | O_DIRECTORY));
  std::string buf(sizeof(file_handle) + h.bytes.size(), '\0');
  auto* fh = reinterpret_cast<file_handle*>(buf.data());
  fh->handle_bytes = static_cast<unsigned>(h.bytes.size());
  fh->handle_type = h.type;
  std::memcpy(fh->f_handle, h.bytes.data(), h.bytes.size());
  int fd = open_by_handle_at(mnt.get(), fh, O_PATH);
  if (fd < 0) return sys_error("open inode {:#x} by its handle", h.ino);
  UniqueFd file(fd);
  std::string path = TRY(read_link(fmt::format("/proc/self/fd/{}", fd)));
  struct stat st;
  if (path.empty() || path[0] != '/' || ::lstat(path.c_str(), &st) < 0 || st.st_ino != h.ino)
    return error(EOPNOTSUPP, "inode {:#x} is a file restore could not find again by its path ({})", h.ino, path);
  return path;
}

}  // namespace ckpt::files
