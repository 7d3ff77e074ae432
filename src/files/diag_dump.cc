#include "files/diag_dump.h"

#include <linux/sock_diag.h>
#include <sys/socket.h>

#include <string>

#include "base/unique_fd.h"

namespace ckpt::files {

Result<void> sock_diag_dump(std::span<const std::byte> request, std::string_view what,
                            const std::function<Result<void>(const nlmsghdr*)>& each) {
  int s = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
  if (s < 0) return sys_error("{}: netlink socket", what);
  UniqueFd nl(s);
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  if (sendto(nl.get(), request.data(), request.size(), 0, reinterpret_cast<sockaddr*>(&kernel), sizeof(kernel)) < 0)
    return sys_error("{}: ask for the sockets", what);
  // Each read brings as many messages as fit (a unix listener's pending
  // connections take 4 bytes each: at most somaxconn, 4096).
  std::string buf(1 << 16, '\0');
  for (;;) {
    ssize_t n;
    do n = recv(nl.get(), buf.data(), buf.size(), 0);
    while (n < 0 && errno == EINTR);
    if (n < 0) return sys_error("{}: read the answer", what);
    if (n == 0) return error(EPROTO, "{}: the dump ended early", what);
    size_t left = static_cast<size_t>(n);
    for (auto* h = reinterpret_cast<const nlmsghdr*>(buf.data()); NLMSG_OK(h, left); h = NLMSG_NEXT(h, left)) {
      if (h->nlmsg_type == NLMSG_DONE) return {};
      if (h->nlmsg_type == NLMSG_ERROR) {
        if (h->nlmsg_len < NLMSG_LENGTH(sizeof(nlmsgerr))) return error(EPROTO, "{}: short error reply", what);
        return error(-static_cast<const nlmsgerr*>(NLMSG_DATA(h))->error, "{}: the kernel's answer", what);
      }
      if (h->nlmsg_type != SOCK_DIAG_BY_FAMILY) return error(EPROTO, "{}: unexpected reply type {}", what, h->nlmsg_type);
      TRY(each(h));
    }
  }
}

}  // namespace ckpt::files
