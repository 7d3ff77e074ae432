// One TCP connection of the dumped tree, as the network lock matches it.
#pragma once

#include <array>
#include <cstdint>

namespace ckpt::net {

// Addresses in network byte order (IPv4: the first 4 bytes), ports in host order.
struct Connection {
  int family;
  std::array<uint8_t, 16> local_addr{}, remote_addr{};
  uint16_t local_port = 0, remote_port = 0;
};

}  // namespace ckpt::net
