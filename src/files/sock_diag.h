// What the kernel's sock_diag netlink interface tells about a unix socket,
// found by its inode: its peer, its name, its state and its queues, which no
// getsockopt gives. ckpt asks in its own network namespace (dump refuses a
// task in another), where every socket of the tree lives.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "base/result.h"

namespace ckpt::files {

struct UnixDiag {
  uint32_t inode = 0;
  uint8_t type = 0;   // SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET
  uint8_t state = 0;  // TCP_ESTABLISHED, TCP_CLOSE, TCP_LISTEN (net/tcp_states.h)
  // The peer's inode: 0 for a peer that was closed (or, stream, a connection
  // not yet accepted: its other end has no inode until accept), none if
  // not connected.
  std::optional<uint32_t> peer;
  std::string name;  // sun_path as bound (abstract: a leading \0); empty if unbound
  // A path-bound socket's file, as bind made it (the path may since lead elsewhere).
  std::optional<std::pair<uint32_t, uint32_t>> vfs;  // inode, device
  // Listening: connections not yet accepted and the backlog. Else: bytes to
  // read (stream, seqpacket: all of them; datagram: the first message) and
  // bytes sent and not yet read by the peer.
  uint32_t rqueue = 0, wqueue = 0;
  std::vector<uint32_t> pending;  // listening: the inodes of the connecting sockets, in accept order
  uint8_t shutdown = 0;           // RCV_SHUTDOWN 1 | SEND_SHUTDOWN 2
};

// Every unix socket of ckpt's network namespace, by inode: one netlink dump,
// where asking socket by socket costs a walk of the kernel's whole table of
// unix sockets each time (net/unix/diag.c: unix_lookup_by_ino).
using UnixSockets = std::map<uint32_t, UnixDiag>;
Result<UnixSockets> unix_diag_all();

}  // namespace ckpt::files
