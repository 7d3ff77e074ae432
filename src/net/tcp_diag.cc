#include "net/tcp_diag.h"

#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstring>
#include <string>

#include "base/unique_fd.h"

namespace ckpt::net {

namespace {

Result<void> dump_family(int family, uint32_t states, std::map<uint32_t, TcpSocket>& out) {
  const char* fam = family == AF_INET ? "IPv4" : "IPv6";
  int s = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
  if (s < 0) return sys_error("inet_diag: netlink socket");
  UniqueFd nl(s);
  struct {
    nlmsghdr h;
    inet_diag_req_v2 r;
  } req{};
  req.h.nlmsg_len = sizeof(req);
  req.h.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  req.h.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  req.h.nlmsg_seq = 1;
  req.r.sdiag_family = static_cast<uint8_t>(family);
  req.r.sdiag_protocol = IPPROTO_TCP;
  req.r.idiag_states = states;
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  if (sendto(nl.get(), &req, sizeof(req), 0, reinterpret_cast<sockaddr*>(&kernel), sizeof(kernel)) < 0)
    return sys_error("inet_diag: ask for the {} TCP sockets", fam);
  std::string buf(1 << 16, '\0');
  for (;;) {
    ssize_t n;
    do n = recv(nl.get(), buf.data(), buf.size(), 0);
    while (n < 0 && errno == EINTR);
    if (n < 0) return sys_error("inet_diag: read the {} TCP sockets", fam);
    if (n == 0) return error(EPROTO, "inet_diag: the dump of {} TCP sockets ended early", fam);
    size_t left = static_cast<size_t>(n);
    for (auto* h = reinterpret_cast<const nlmsghdr*>(buf.data()); NLMSG_OK(h, left); h = NLMSG_NEXT(h, left)) {
      if (h->nlmsg_type == NLMSG_DONE) return {};
      if (h->nlmsg_type == NLMSG_ERROR) {
        if (h->nlmsg_len < NLMSG_LENGTH(sizeof(nlmsgerr))) return error(EPROTO, "inet_diag: short error reply");
        const auto* e = static_cast<const nlmsgerr*>(NLMSG_DATA(h));
        return error(-e->error, "inet_diag: the kernel's answer for {} TCP sockets", fam);
      }
      if (h->nlmsg_type != SOCK_DIAG_BY_FAMILY || h->nlmsg_len < NLMSG_LENGTH(sizeof(inet_diag_msg)))
        return error(EPROTO, "inet_diag: unexpected reply type {}", h->nlmsg_type);
      const auto* m = static_cast<const inet_diag_msg*>(NLMSG_DATA(h));
      if (m->idiag_inode == 0) continue;  // not yet accepted: no file, nothing holds it
      TcpSocket t;
      t.state = m->idiag_state;
      t.conn.family = m->idiag_family;
      const size_t len = m->idiag_family == AF_INET ? 4 : 16;
      memcpy(t.conn.local_addr.data(), m->id.idiag_src, len);
      memcpy(t.conn.remote_addr.data(), m->id.idiag_dst, len);
      t.conn.local_port = ntohs(m->id.idiag_sport);
      t.conn.remote_port = ntohs(m->id.idiag_dport);
      out[m->idiag_inode] = t;
    }
  }
}

}  // namespace

Result<std::map<uint32_t, TcpSocket>> tcp_sockets(uint32_t states) {
  std::map<uint32_t, TcpSocket> out;
  TRY(dump_family(AF_INET, states, out));
  // A kernel without IPv6 has no IPv6 sockets to find.
  if (auto r = dump_family(AF_INET6, states, out); !r && r.error().err != EAFNOSUPPORT && r.error().err != ENOENT)
    return std::unexpected(r.error());
  return out;
}

}  // namespace ckpt::net
