// Connections as people and firewall rules read them.
#pragma once

#include <span>
#include <string>

#include "net/connection.h"

namespace ckpt::net {

// "127.0.0.1" or "::1" (inet_ntop) of a connection's family.
std::string addr_text(int family, const std::array<uint8_t, 16>& addr);
// "127.0.0.1:5000 <-> 127.0.0.1:41234" (local first); IPv6 in brackets.
std::string describe(const Connection& c);
// The first few of `cs`, then "and N more": for error messages.
std::string describe_some(std::span<const Connection> cs, size_t most = 3);
// How packets of `c` travel: an IPv6 socket talking to an IPv4 peer
// (::ffff:a.b.c.d on both ends) sends IPv4 packets, which an IPv6 rule
// would never see.
Connection on_the_wire(const Connection& c);

}  // namespace ckpt::net
