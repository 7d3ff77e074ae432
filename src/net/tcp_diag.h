// The TCP sockets of ckpt's network namespace, by inode, from the kernel's
// inet_diag (NETLINK_SOCK_DIAG): their 4-tuple and state, which /proc/PID/fd
// does not show. Dump refuses a task in another network namespace, so every
// socket of the tree is here.
#pragma once

#include <cstdint>
#include <map>

#include "base/result.h"
#include "net/connection.h"

namespace ckpt::net {

struct TcpSocket {
  uint8_t state = 0;  // TCP_ESTABLISHED.. (net/tcp_states.h)
  Connection conn{};
};

// Every IPv4 and IPv6 TCP socket whose state is in `states` (a mask of
// 1 << TCP_*), by inode: one netlink dump per family.
Result<std::map<uint32_t, TcpSocket>> tcp_sockets(uint32_t states);

}  // namespace ckpt::net
