#include "net/tree_connections.h"

#include <netinet/in.h>
#include <netinet/tcp.h>

#include <algorithm>
#include <array>

namespace ckpt::net {

uint32_t lockable_states() {
  uint32_t m = 0;
  for (int s : {TCP_SYN_SENT, TCP_SYN_RECV, TCP_ESTABLISHED, TCP_FIN_WAIT1, TCP_FIN_WAIT2, TCP_CLOSE_WAIT,
                TCP_LAST_ACK, TCP_CLOSING})
    m |= 1u << s;
  return m;
}

std::vector<Connection> tree_tcp_connections(const std::set<uint32_t>& inodes, const files::InetSockets& all) {
  std::vector<Connection> out;
  std::vector<const files::InetDiag*> tcp;
  for (uint32_t ino : inodes)
    if (auto s = all.by_inode.find(ino); s != all.by_inode.end() && s->second.protocol == IPPROTO_TCP)
      tcp.push_back(&s->second);
  // A connection whose peer is the tree's too (its other end, or a listener
  // of the tree whose queue holds it) is not locked: both ends are frozen
  // and come back together, and a client of the tree that connects again at
  // restore must see its old socket go (its FIN answered) to get its port.
  auto peer_in_tree = [&](const files::InetDiag& c) {
    constexpr std::array<uint8_t, 16> kAny{};
    return std::ranges::any_of(tcp, [&](const files::InetDiag* t) {
      if (t->family != c.family || t->sport != c.dport) return false;
      if (t->state == TCP_LISTEN) return t->src == c.dst || t->src == kAny;
      return t->src == c.dst && t->dst == c.src && t->dport == c.sport;
    });
  };
  for (const files::InetDiag* d : tcp) {
    if (!(lockable_states() & (1u << d->state)) || peer_in_tree(*d)) continue;
    out.push_back({d->family, d->src, d->dst, d->sport, d->dport});
  }
  return out;
}

}  // namespace ckpt::net
