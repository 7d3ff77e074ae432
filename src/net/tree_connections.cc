#include "net/tree_connections.h"

#include <fmt/format.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <set>
#include <string>

#include "files/inet_diag.h"
#include "proc/fds.h"

namespace ckpt::net {

namespace {

// Inodes of the sockets pid's fds lead to.
Result<void> socket_inodes(pid_t pid, std::set<uint32_t>& out) {
  for (const proc::FdLink& f : TRY_CTX(proc::read_fd_links(pid), "pid {}: list its fds", pid)) {
    unsigned long ino;
    if (sscanf(f.link.c_str(), "socket:[%lu]", &ino) == 1) out.insert(static_cast<uint32_t>(ino));
  }
  return {};
}

}  // namespace

uint32_t lockable_states() {
  uint32_t m = 0;
  for (int s : {TCP_SYN_SENT, TCP_SYN_RECV, TCP_ESTABLISHED, TCP_FIN_WAIT1, TCP_FIN_WAIT2, TCP_CLOSE_WAIT,
                TCP_LAST_ACK, TCP_CLOSING})
    m |= 1u << s;
  return m;
}

Result<std::vector<Connection>> tree_tcp_connections(std::span<const pid_t> pids) {
  std::vector<Connection> out;
  // The machine's sockets first: with no connection to lock on it, the
  // tree has none, and its fds need no look (a readlink each: 10,000 fds
  // cost 25 ms).
  const files::InetSockets all = TRY(files::inet_diag_all());
  auto lockable = [](const auto& s) {
    return s.second.protocol == IPPROTO_TCP && (lockable_states() & (1u << s.second.state));
  };
  if (std::ranges::none_of(all.by_inode, lockable)) return out;
  std::set<uint32_t> inodes;
  for (pid_t pid : pids) TRY(socket_inodes(pid, inodes));
  if (inodes.empty()) return out;
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
