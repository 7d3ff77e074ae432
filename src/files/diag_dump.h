// One NETLINK_SOCK_DIAG dump, the loop that inet_diag (inet_diag.cc) and
// unix_diag (sock_diag.cc) share: the request goes to the kernel, then every
// message of the answer to a callback until NLMSG_DONE. An NLMSG_ERROR ends
// it with the kernel's errno.
#pragma once

#include <linux/netlink.h>
#include <linux/sock_diag.h>

#include <functional>
#include <span>
#include <string_view>

#include "base/result.h"

namespace ckpt::files {

// `request`: a whole netlink message (nlmsghdr first, NLM_F_DUMP set).
// `each` gets every SOCK_DIAG_BY_FAMILY message of the answer, its
// nlmsg_len checked against what was received. `what` names the dump in
// errors ("inet_diag", "sock_diag").
Result<void> sock_diag_dump(std::span<const std::byte> request, std::string_view what,
                            const std::function<Result<void>(const nlmsghdr*)>& each);

// The same, for a request body of a family (inet_diag_req_v2,
// unix_diag_req): the SOCK_DIAG_BY_FAMILY dump header goes in front of it.
template <typename Body>
Result<void> sock_diag_dump(const Body& body, std::string_view what,
                            const std::function<Result<void>(const nlmsghdr*)>& each) {
  struct {
    nlmsghdr h;
    Body r;
  } req{};
  req.h.nlmsg_len = sizeof(req);
  req.h.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  req.h.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  req.h.nlmsg_seq = 1;
  req.r = body;
  return sock_diag_dump(std::as_bytes(std::span(&req, 1)), what, each);
}

}  // namespace ckpt::files
