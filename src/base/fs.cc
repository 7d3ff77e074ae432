#include "base/fs.h"

#include <fcntl.h>
#include <sys/syscall.h>
#include <limits.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <memory>

#include "base/mapping.h"

namespace ckpt {

Result<UniqueFd> open_file(const std::string& path, int flags, mode_t mode) {
  int fd = ::open(path.c_str(), flags | O_CLOEXEC, mode);
  if (fd < 0) return sys_error("open {}", path);
  return UniqueFd(fd);
}

Result<std::string> read_file(const std::string& path) {
  UniqueFd fd = TRY(open_file(path, O_RDONLY));
  return read_fd(fd.get(), path);
}

Result<std::string> read_at_most(int fd, const std::string& path, size_t len) {
  std::string out;
  int err = 0;
  out.resize_and_overwrite(len, [&](char* p, size_t n) {
    if (n >= (1 << 20)) prefault(p, n);  // one fault instead of 256 a MiB
    size_t got = 0;
    while (got < n) {
      ssize_t k = ::read(fd, p + got, n - got);
      if (k < 0 && errno == EINTR) continue;
      if (k <= 0) {
        err = k < 0 ? errno : 0;
        break;
      }
      got += static_cast<size_t>(k);
    }
    return got;
  });
  if (err) return error(err, "read {}", path);
  return out;
}

Result<std::string> read_fd(int fd, const std::string& path, size_t expected) {
  // Straight into place up to the size expected, then whatever more there is.
  std::string out = TRY(read_at_most(fd, path, expected));
  if (out.size() < expected) return out;  // end of file
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return sys_error("read {}", path);
    if (n == 0) break;
    out.append(buf, n);
  }
  return out;
}

Result<void> for_each_line(const std::string& path, const std::function<Result<void>(std::string_view)>& line) {
  UniqueFd fd = TRY(open_file(path, O_RDONLY));
  // Large, so that a big /proc file (smaps of 30,000 VMAs) takes few reads;
  // not zeroed, so that only the pages a read reaches are faulted in (a
  // tiny process's smaps: 5 pages of 64, each fault dear on a VM).
  size_t size = 256 * 1024;
  auto buf = std::make_unique_for_overwrite<char[]>(size);
  size_t have = 0;  // bytes of a line not yet whole, at the front
  for (;;) {
    if (have == size) {  // a line longer than the buffer
      auto bigger = std::make_unique_for_overwrite<char[]>(size * 2);
      std::memcpy(bigger.get(), buf.get(), have);
      buf = std::move(bigger);
      size *= 2;
    }
    const ssize_t n = ::read(fd.get(), buf.get() + have, size - have);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return sys_error("read {}", path);
    if (n == 0) break;
    const std::string_view chunk(buf.get(), have + static_cast<size_t>(n));
    size_t from = 0;
    for (size_t nl; (nl = chunk.find('\n', from)) != std::string_view::npos; from = nl + 1)
      TRY(line(chunk.substr(from, nl - from)));
    have = chunk.size() - from;
    std::memmove(buf.get(), buf.get() + from, have);
  }
  if (have) TRY(line(std::string_view(buf.get(), have)));
  return {};
}

Result<std::string> read_link(const std::string& path) {
  char buf[PATH_MAX + 1];
  ssize_t n = ::readlink(path.c_str(), buf, PATH_MAX);
  if (n < 0) return sys_error("readlink {}", path);
  return std::string(buf, n);
}

Result<UniqueFd> take_task_fd(int pidfd, pid_t pid, int fd) {
  const int got = static_cast<int>(syscall(SYS_pidfd_getfd, pidfd, fd, 0));
  if (got < 0) return sys_error("pid {}: take a copy of fd {}", pid, fd);
  return UniqueFd(got);
}

Result<std::string> read_link_at(int dir, const std::string& name, const std::string& what) {
  // The kernel builds a link's text in a page: a page and a byte tell a
  // whole one from a cut one.
  char buf[PATH_MAX + 1];
  ssize_t n = ::readlinkat(dir, name.c_str(), buf, sizeof buf);
  if (n < 0) return sys_error("readlink {}", what);
  if (static_cast<size_t>(n) < sizeof buf) return std::string(buf, static_cast<size_t>(n));
  for (std::string out(4 * sizeof buf, '\0');; out.resize(out.size() * 4)) {
    n = ::readlinkat(dir, name.c_str(), out.data(), out.size());
    if (n < 0) return sys_error("readlink {}", what);
    if (static_cast<size_t>(n) < out.size()) {
      out.resize(static_cast<size_t>(n));
      return out;
    }
  }
}

Result<void> read_exact(int fd, void* buf, size_t len) {
  auto* p = static_cast<char*>(buf);
  for (size_t got = 0; got < len;) {
    ssize_t n = ::read(fd, p + got, len - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return sys_error("read {} bytes", len - got);
    if (n == 0) return error(ECONNRESET, "the peer closed the connection {} bytes short", len - got);
    got += static_cast<size_t>(n);
  }
  return {};
}

Result<void> write_all(int fd, const void* buf, size_t len) {
  const char* p = static_cast<const char*>(buf);
  while (len > 0) {
    ssize_t n = ::write(fd, p, len);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return sys_error("write {} bytes", len);
    p += n;
    len -= n;
  }
  return {};
}

Result<void> pwrite_all(int fd, const void* buf, size_t len, off_t off) {
  const char* p = static_cast<const char*>(buf);
  for (size_t done = 0; done < len;) {
    ssize_t n = ::pwrite(fd, p + done, len - done, off + done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return sys_error("pwrite {} bytes at offset {}", len - done, off + done);
    done += n;
  }
  return {};
}

Result<size_t> pread_full(int fd, void* buf, size_t len, off_t off) {
  char* p = static_cast<char*>(buf);
  size_t done = 0;
  while (done < len) {
    ssize_t n = ::pread(fd, p + done, len - done, off + done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return sys_error("pread {} bytes at offset {}", len - done, off + done);
    if (n == 0) break;
    done += n;
  }
  return done;
}

std::vector<std::pair<unsigned, unsigned>> fd_ranges_but(std::vector<int> keep) {
  std::sort(keep.begin(), keep.end());
  std::vector<std::pair<unsigned, unsigned>> ranges;
  unsigned from = 0;
  for (int fd : keep) {
    if (fd < 0) continue;  // no fd (AT_FDCWD, -1): nothing to keep
    if (static_cast<unsigned>(fd) > from) ranges.emplace_back(from, fd - 1);
    from = std::max(from, static_cast<unsigned>(fd) + 1);
  }
  ranges.emplace_back(from, ~0U);
  return ranges;
}

void close_all_but(std::vector<int> keep) {
  for (auto [lo, hi] : fd_ranges_but(std::move(keep))) syscall(SYS_close_range, lo, hi, 0);
}

}  // namespace ckpt
