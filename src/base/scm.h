// Messages with file descriptors attached (SCM_RIGHTS) over a unix socket:
// how ckpt talks to its parasite and to the userfaultfd keeper.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <vector>

#include "base/unique_fd.h"

namespace ckpt {

// Sends `len` bytes of `data` with `fd` attached (none if -1), without
// SIGPIPE. Returns what sendmsg returns, errno set on -1.
ssize_t send_with_fd(int sock, const void* data, size_t len, int fd = -1);
// Receives up to `len` bytes into `data`. Up to `max_fds` fds attached are
// appended to `fds`, close-on-exec (closed if `fds` is null). Returns what
// recvmsg returns, errno set on -1.
ssize_t recv_with_fds(int sock, void* data, size_t len, std::vector<UniqueFd>* fds, size_t max_fds);

}  // namespace ckpt
