// One NETLINK_SOCK_DIAG dump, the loop that inet_diag (inet_diag.cc) and
// unix_diag (sock_diag.cc) share: the request goes to the kernel, then every
// message of the answer to a callback until NLMSG_DONE. An NLMSG_ERROR ends
// it with the kernel's errno.
#pragma once

#include <linux/netlink.h>

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

}  // namespace ckpt::files
