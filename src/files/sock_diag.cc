#include "files/sock_diag.h"

#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>
#include <sys/socket.h>

#include <cstring>
#include <span>

#include "files/diag_dump.h"

namespace ckpt::files {

namespace {

// One attribute of a reply: its type and payload.
struct Attr {
  uint16_t type;
  std::string_view data;
};

// One message of a reply, `h`, whose nlmsg_len fits what was received.
Result<UnixDiag> parse(const nlmsghdr* h) {
  if (h->nlmsg_len < NLMSG_LENGTH(sizeof(unix_diag_msg))) return error(EPROTO, "sock_diag: short reply");
  const auto* m = static_cast<const unix_diag_msg*>(NLMSG_DATA(h));
  UnixDiag out;
  out.inode = m->udiag_ino;
  out.type = m->udiag_type;
  out.state = m->udiag_state;
  const char* p = reinterpret_cast<const char*>(m) + NLMSG_ALIGN(sizeof(unix_diag_msg));
  const char* end = reinterpret_cast<const char*>(h) + h->nlmsg_len;
  while (end - p >= static_cast<ptrdiff_t>(sizeof(nlattr))) {
    const auto* a = reinterpret_cast<const nlattr*>(p);
    if (a->nla_len < sizeof(nlattr) || a->nla_len > end - p) return error(EPROTO, "sock_diag: bad attribute");
    const Attr at{static_cast<uint16_t>(a->nla_type & NLA_TYPE_MASK),
                  std::string_view(p + NLA_HDRLEN, a->nla_len - NLA_HDRLEN)};
    auto u32 = [&](size_t i) {
      uint32_t v = 0;
      if (at.data.size() >= (i + 1) * 4) memcpy(&v, at.data.data() + i * 4, 4);
      return v;
    };
    switch (at.type) {
      case UNIX_DIAG_NAME: out.name = std::string(at.data); break;
      case UNIX_DIAG_VFS: out.vfs = std::pair{u32(0), u32(1)}; break;
      case UNIX_DIAG_PEER: out.peer = u32(0); break;
      case UNIX_DIAG_ICONS:
        for (size_t i = 0; i < at.data.size() / 4; i++) out.pending.push_back(u32(i));
        break;
      case UNIX_DIAG_RQLEN:
        out.rqueue = u32(0);
        out.wqueue = u32(1);
        break;
      case UNIX_DIAG_SHUTDOWN:
        if (!at.data.empty()) out.shutdown = static_cast<uint8_t>(at.data[0]);
        break;
      default: break;
    }
    p += NLA_ALIGN(a->nla_len);
  }
  return out;
}

}  // namespace

Result<UnixSockets> unix_diag_all() {
  unix_diag_req req{};
  req.sdiag_family = AF_UNIX;
  req.udiag_states = ~0U;
  req.udiag_show = UDIAG_SHOW_NAME | UDIAG_SHOW_VFS | UDIAG_SHOW_PEER | UDIAG_SHOW_ICONS | UDIAG_SHOW_RQLEN;
  UnixSockets out;
  TRY_CTX(sock_diag_dump(req, "sock_diag",
                         [&](const nlmsghdr* h) -> Result<void> {
                           UnixDiag d = TRY(parse(h));
                           out.emplace(d.inode, std::move(d));
                           return {};
                         }),
          "dump of unix sockets");
  return out;
}

}  // namespace ckpt::files
