// A TCP connection of a checkpoint, as the network lock needs it: which
// packets to hold back between dump and restore.
#pragma once

#include <array>
#include <cstdint>

namespace ckpt::net {

// The packets restore makes itself for a restored connection (a FIN the
// socket had received, the ACK of its own FIN: files/tcp_fin.h) carry this mark: the lock lets
// them through, as it drops the rest of the connection's.
inline constexpr uint32_t kRepairMark = 0x636b7074;  // "ckpt"

struct Connection {
  int family;  // AF_INET, AF_INET6
  std::array<uint8_t, 16> local_addr{}, remote_addr{};  // network order; IPv4 in the first 4 bytes
  uint16_t local_port = 0, remote_port = 0;             // host order
};

}  // namespace ckpt::net
