#include "net/addr.h"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>

namespace ckpt::net {

std::string addr_text(int family, const std::array<uint8_t, 16>& addr) {
  char buf[INET6_ADDRSTRLEN] = "?";
  inet_ntop(family == AF_INET ? AF_INET : AF_INET6, addr.data(), buf, sizeof(buf));
  return buf;
}

std::string describe(const Connection& c) {
  auto end = [&](const std::array<uint8_t, 16>& a, uint16_t port) {
    return c.family == AF_INET ? fmt::format("{}:{}", addr_text(c.family, a), port)
                               : fmt::format("[{}]:{}", addr_text(c.family, a), port);
  };
  return fmt::format("{} <-> {}", end(c.local_addr, c.local_port), end(c.remote_addr, c.remote_port));
}

std::string describe_some(std::span<const Connection> cs, size_t most) {
  std::string out;
  for (size_t i = 0; i < cs.size() && i < most; i++) out += (i ? ", " : "") + describe(cs[i]);
  if (cs.size() > most) out += fmt::format(" and {} more", cs.size() - most);
  return out;
}

Connection on_the_wire(const Connection& c) {
  static constexpr uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  auto mapped = [](const std::array<uint8_t, 16>& a) { return memcmp(a.data(), kMapped, 12) == 0; };
  if (c.family != AF_INET6 || !mapped(c.local_addr) || !mapped(c.remote_addr)) return c;
  Connection v4 = c;
  v4.family = AF_INET;
  v4.local_addr = {};
  v4.remote_addr = {};
  std::copy_n(c.local_addr.begin() + 12, 4, v4.local_addr.begin());
  std::copy_n(c.remote_addr.begin() + 12, 4, v4.remote_addr.begin());
  return v4;
}

}  // namespace ckpt::net
