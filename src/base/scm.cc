#include "base/scm.h"

#include <sys/socket.h>

#include <cstring>
#include <memory>

namespace ckpt {

ssize_t send_with_fd(int sock, const void* data, size_t len, int fd) {
  iovec v{const_cast<void*>(data), len};
  msghdr m{};
  m.msg_iov = &v;
  m.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  if (fd >= 0) {
    m.msg_control = control;
    m.msg_controllen = sizeof control;
    cmsghdr* c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(c), &fd, sizeof fd);
  }
  return sendmsg(sock, &m, MSG_NOSIGNAL);
}

ssize_t recv_with_fds(int sock, void* data, size_t len, std::vector<UniqueFd>* fds, size_t max_fds) {
  iovec v{data, len};
  const size_t space = CMSG_SPACE(max_fds * sizeof(int));
  auto control = std::make_unique<cmsghdr[]>(space / sizeof(cmsghdr) + 1);
  msghdr m{};
  m.msg_iov = &v;
  m.msg_iovlen = 1;
  m.msg_control = control.get();
  m.msg_controllen = space;
  const ssize_t got = recvmsg(sock, &m, MSG_CMSG_CLOEXEC);
  if (got < 0) return got;
  for (cmsghdr* c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    const size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < n; i++) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
      if (fds) fds->emplace_back(fd);
      else close(fd);
    }
  }
  return got;
}

}  // namespace ckpt
