// A TCP connection of a checkpoint, as the network lock needs it: which
// packets to hold back between dump and restore.
#pragma once

#include <array>
#include <cstdint>

namespace ckpt::net {

struct Connection {
  int family;  // AF_INET, AF_INET6
  std::array<uint8_t, 16> local_addr{}, remote_addr{};  // network order; IPv4 in the first 4 bytes
  uint16_t local_port = 0, remote_port = 0;             // host order
};

}  // namespace ckpt::net
