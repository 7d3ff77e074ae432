// Small file helpers: whole-file reads, loops around short reads and writes.
#pragma once

#include <sys/types.h>

#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"

namespace ckpt {

Result<UniqueFd> open_file(const std::string& path, int flags, mode_t mode = 0);
// Whole content of a (possibly /proc) file.
Result<std::string> read_file(const std::string& path);
// Whole content of an open file, from its current offset; `name` for errors.
// `expected`: its size if known (fstat), read in place with no copy.
Result<std::string> read_fd(int fd, const std::string& name, size_t expected = 0);
// `len` bytes of an open file, in place; fewer at its end.
Result<std::string> read_at_most(int fd, const std::string& name, size_t len);
// Each line of a (possibly /proc) file, without its newline, read in
// chunks: for files too big to copy whole (30,000 VMAs' smaps: 25 MB).
Result<void> for_each_line(const std::string& path, const std::function<Result<void>(std::string_view)>& line);
Result<std::string> read_link(const std::string& path);
// ckpt's own copy of fd `fd` of the task `pid` (pidfd_getfd through its
// `pidfd`): the same open file description.
Result<UniqueFd> take_task_fd(int pidfd, pid_t pid, int fd);
// The link `name` under the directory fd `dir`, however long; `what` for errors.
Result<std::string> read_link_at(int dir, const std::string& name, const std::string& what);
// Exactly len bytes (a socket, a pipe); an end before them is ECONNRESET.
Result<void> read_exact(int fd, void* buf, size_t len);
// Loops over short writes; EINTR is retried.
Result<void> write_all(int fd, const void* buf, size_t len);
// write_all() at an offset.
Result<void> pwrite_all(int fd, const void* buf, size_t len, off_t off);
// pread until len bytes or EOF; returns bytes read.
Result<size_t> pread_full(int fd, void* buf, size_t len, off_t off);
// Closes every fd of the process but `keep`: for a helper process forked
// from ckpt, which must hold no file of ckpt's (the log, a tracee's pidfd).
void close_all_but(std::vector<int> keep);
// The inclusive fd ranges close_all_but(keep) closes, the last one open-ended
// (~0U): for a helper that may make no libc call (tree_commit.cc).
std::vector<std::pair<unsigned, unsigned>> fd_ranges_but(std::vector<int> keep);

}  // namespace ckpt
