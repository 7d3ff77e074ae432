#include "files/inet_diag.h"

#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstring>
#include <span>

#include "files/diag_dump.h"

namespace ckpt::files {

namespace {

Result<InetDiag> parse(const nlmsghdr* h, uint8_t protocol) {
  if (h->nlmsg_len < NLMSG_LENGTH(sizeof(inet_diag_msg))) return error(EPROTO, "inet_diag: short reply");
  const auto* m = static_cast<const inet_diag_msg*>(NLMSG_DATA(h));
  InetDiag out;
  out.family = m->idiag_family;
  out.protocol = protocol;
  out.state = m->idiag_state;
  out.inode = m->idiag_inode;
  memcpy(out.src.data(), m->id.idiag_src, 16);
  memcpy(out.dst.data(), m->id.idiag_dst, 16);
  out.sport = ntohs(m->id.idiag_sport);
  out.dport = ntohs(m->id.idiag_dport);
  out.rqueue = m->idiag_rqueue;
  out.wqueue = m->idiag_wqueue;
  const char* p = reinterpret_cast<const char*>(m) + NLMSG_ALIGN(sizeof(inet_diag_msg));
  const char* end = reinterpret_cast<const char*>(h) + h->nlmsg_len;
  while (end - p >= static_cast<ptrdiff_t>(sizeof(nlattr))) {
    const auto* a = reinterpret_cast<const nlattr*>(p);
    if (a->nla_len < sizeof(nlattr) || a->nla_len > end - p) return error(EPROTO, "inet_diag: bad attribute");
    if ((a->nla_type & NLA_TYPE_MASK) == INET_DIAG_SHUTDOWN && a->nla_len > NLA_HDRLEN)
      out.shutdown = static_cast<uint8_t>(p[NLA_HDRLEN]);
    p += NLA_ALIGN(a->nla_len);
  }
  return out;
}

Result<void> dump_one(uint8_t family, uint8_t protocol, InetSockets& out) {
  inet_diag_req_v2 req{};
  req.sdiag_family = family;
  req.sdiag_protocol = protocol;
  req.idiag_states = ~0U;
  // The shutdown attribute comes unasked; nothing else is wanted.
  return sock_diag_dump(req, "inet_diag", [&](const nlmsghdr* h) -> Result<void> {
    InetDiag d = TRY(parse(h, protocol));
    if (d.inode) out.by_inode[d.inode] = d;
    else out.fileless.push_back(d);
    return {};
  });
}

}  // namespace

Result<InetSockets> inet_diag_all() {
  InetSockets out;
  for (uint8_t family : {AF_INET, AF_INET6})
    for (uint8_t protocol : {IPPROTO_TCP, IPPROTO_UDP})
      TRY_CTX(dump_one(family, protocol, out), "inet_diag of {} {}", family == AF_INET ? "IPv4" : "IPv6",
              protocol == IPPROTO_TCP ? "TCP" : "UDP");
  return out;
}

}  // namespace ckpt::files
