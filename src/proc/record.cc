#include "proc/record.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include "base/unique_fd.h"

namespace ckpt::proc {

namespace {

Result<std::string> read_whole(const UniqueFd& f, const std::string& path) {
  // Most records fit a page: read them into the stack and keep only their
  // bytes (a string grown to a page keeps the page: 40 MB for 10,000 fdinfo
  // files, faulted in one by one).
  char first[4096];
  ssize_t n;
  do n = ::read(f.get(), first, sizeof first);
  while (n < 0 && errno == EINTR);
  if (n < 0) return sys_error("read {}", path);
  std::string out(first, static_cast<size_t>(n));
  if (static_cast<size_t>(n) < sizeof first) return out;
  for (size_t got = out.size(), size = 4 * sizeof first;; size *= 4) {
    out.resize(size);
    do n = ::read(f.get(), out.data() + got, size - got);
    while (n < 0 && errno == EINTR);
    if (n < 0) return sys_error("read {}", path);
    got += static_cast<size_t>(n);
    if (got < size) {
      out.resize(got);
      out.shrink_to_fit();
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
