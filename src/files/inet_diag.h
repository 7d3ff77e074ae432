// What the kernel's inet_diag (sock_diag for AF_INET, AF_INET6) tells about
// TCP and UDP sockets that no getsockopt does: shutdown state, and the
// connections waiting in a listener's accept queue, which have no file
// (inode 0) until accepted. One netlink dump per family and protocol.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <vector>

#include "base/result.h"

namespace ckpt::files {

struct InetDiag {
  uint8_t family = 0;    // AF_INET, AF_INET6
  uint8_t protocol = 0;  // IPPROTO_TCP, IPPROTO_UDP
  uint8_t state = 0;     // include/net/tcp_states.h
  uint32_t inode = 0;    // 0: no file (not yet accepted, or orphaned)
  std::array<uint8_t, 16> src{}, dst{};  // network order; IPv4 in the first 4 bytes
  uint16_t sport = 0, dport = 0;         // host order
  uint32_t rqueue = 0, wqueue = 0;       // listening: accept queue length and backlog
  uint8_t shutdown = 0;                  // RCV_SHUTDOWN 1 | SEND_SHUTDOWN 2
};

// Every TCP and UDP socket of ckpt's network namespace: those with a file
// by inode, the rest (accept queues) in a list.
struct InetSockets {
  std::map<uint32_t, InetDiag> by_inode;
  std::vector<InetDiag> fileless;
};
Result<InetSockets> inet_diag_all();

}  // namespace ckpt::files
