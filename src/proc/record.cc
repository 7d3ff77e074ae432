#include "proc/record.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include "base/unique_fd.h"

namespace ckpt::proc {

namespace {

Result<std::string> read_whole(const UniqueFd& f, const std::string& path) {
  std::string out;
  for (size_t got = 0, size = 4096;; size *= 4) {
    out.resize(size);
    ssize_t n;
    do n = ::read(f.get(), out.data() + got, size - got);
    while (n < 0 && errno == EINTR);
    if (n < 0) return sys_error("read {}", path);
    got += static_cast<size_t>(n);
    if (got < size) {
      out.resize(got);
      return out;
    }
  }
}

}  // namespace

Result<std::string> read_record(const std::string& path) {
  UniqueFd f(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!f) return sys_error("open {}", path);
  return read_whole(f, path);
}

Result<std::string> read_record_at(int dir, const std::string& name, const std::string& path) {
  UniqueFd f(::openat(dir, name.c_str(), O_RDONLY | O_CLOEXEC));
  if (!f) return sys_error("open {}", path);
  return read_whole(f, path);
}

}  // namespace ckpt::proc
