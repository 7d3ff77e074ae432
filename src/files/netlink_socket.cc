// Netlink sockets (AF_NETLINK): protocol, port id, multicast groups, a
// connect()ed peer and the NETLINK_* flags. Dump reads them through ckpt's
// own copy of the socket; a socket with messages not yet read is refused
// (they can't be queued again: only the kernel sends them). Restore binds at
// the same port id (a socket of another process holding it fails the
// restore, named) and joins the groups again.
#include <linux/netlink.h>
#include <sys/socket.h>
#include <unistd.h>

#include <climits>
#include <vector>

#include "files/kind.h"

namespace ckpt::files {

namespace {

constexpr int kFlags[] = {NETLINK_PKTINFO, NETLINK_BROADCAST_ERROR, NETLINK_NO_ENOBUFS, NETLINK_LISTEN_ALL_NSID,
                          NETLINK_CAP_ACK, NETLINK_EXT_ACK, NETLINK_GET_STRICT_CHK};
constexpr uint32_t kMaxGroups = 1 << 16;

std::string describe(const img::NetlinkSocket& n) {
  return fmt::format("netlink socket (protocol {}, port id {})", n.protocol(), n.portid());
}

Result<int> get_int(int fd, int level, int opt, const char* what) {
  int v = 0;
  socklen_t len = sizeof(v);
  if (getsockopt(fd, level, opt, &v, &len) < 0) return sys_error("getsockopt {}", what);
  return v;
}

Result<void> set_int(int fd, int level, int opt, int v, const char* what) {
  if (setsockopt(fd, level, opt, &v, sizeof(v)) < 0) return sys_error("setsockopt {} {}", what, v);
  return {};
}

class NetlinkSocketKind final : public Kind {
 public:
  std::string_view name() const override { return "netlink socket"; }
  img::FileDesc::KindCase tag() const override { return img::FileDesc::kNetlink; }

  bool claims(const FdProbe& p, const DumpFlags&) const override {
    if (!S_ISSOCK(p.st.st_mode)) return false;
    auto f = take_file(p);
    if (!f) return false;
    auto domain = get_int(f->get(), SOL_SOCKET, SO_DOMAIN, "SO_DOMAIN");
    return domain && *domain == AF_NETLINK;
  }

  Result<void> collect(const FdProbe& p, img::FileDesc* d) const override {
    UniqueFd f = TRY(take_file(p));
    const int fd = f.get();
    img::NetlinkSocket* n = d->mutable_netlink();
    n->set_type(static_cast<uint32_t>(TRY(get_int(fd, SOL_SOCKET, SO_TYPE, "SO_TYPE"))));
    n->set_protocol(static_cast<uint32_t>(TRY(get_int(fd, SOL_SOCKET, SO_PROTOCOL, "SO_PROTOCOL"))));
    sockaddr_nl a{};
    socklen_t len = sizeof(a);
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) < 0) return sys_error("getsockname");
    n->set_portid(a.nl_pid);
    // Every group, past the 32 that nl_groups shows.
    std::vector<uint32_t> mask(kMaxGroups / 32);
    len = static_cast<socklen_t>(mask.size() * sizeof(uint32_t));
    if (getsockopt(fd, SOL_NETLINK, NETLINK_LIST_MEMBERSHIPS, mask.data(), &len) < 0)
      return sys_error("getsockopt NETLINK_LIST_MEMBERSHIPS");
    for (size_t w = 0; w < std::min<size_t>(mask.size(), len / sizeof(uint32_t)); w++)
      for (uint32_t b = 0; b < 32; b++)
        if (mask[w] & (1u << b)) n->add_groups(static_cast<uint32_t>(w * 32 + b + 1));
    sockaddr_nl peer{};
    len = sizeof(peer);
    if (getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &len) == 0 && (peer.nl_pid || peer.nl_groups)) {
      n->set_connected(true);
      n->set_dst_portid(peer.nl_pid);
      n->set_dst_group(peer.nl_groups);
    }
    uint32_t flags = 0;
    for (size_t i = 0; i < std::size(kFlags); i++)
      if (TRY(get_int(fd, SOL_NETLINK, kFlags[i], "NETLINK flag"))) flags |= 1u << i;
    n->set_flags(flags);
    n->set_sndbuf(static_cast<uint32_t>(TRY(get_int(fd, SOL_SOCKET, SO_SNDBUF, "SO_SNDBUF"))));
    n->set_rcvbuf(static_cast<uint32_t>(TRY(get_int(fd, SOL_SOCKET, SO_RCVBUF, "SO_RCVBUF"))));
    char c;
    ssize_t r = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    if (r >= 0) return error(EOPNOTSUPP, "{}: messages wait to be read in it: not supported", describe(*n));
    if (errno != EAGAIN) return sys_error("{}: peek at its queue", describe(*n));
    return {};
  }

  Result<void> verify(const img::FileDesc& d) const override {
    const img::NetlinkSocket& n = d.netlink();
    if (n.type() != SOCK_RAW && n.type() != SOCK_DGRAM) return error(EINVAL, "{}: type {}", describe(n), n.type());
    if (n.protocol() >= MAX_LINKS) return error(EINVAL, "{}: unknown protocol", describe(n));
    if (n.groups_size() > static_cast<int>(kMaxGroups)) return error(EINVAL, "{}: too many groups", describe(n));
    for (uint32_t g : n.groups())
      if (g == 0 || g > kMaxGroups) return error(EINVAL, "{}: group {} out of range", describe(n), g);
    if (n.flags() >> std::size(kFlags)) return error(EINVAL, "{}: unknown flags {:#x}", describe(n), n.flags());
    if (n.sndbuf() > INT_MAX || n.rcvbuf() > INT_MAX) return error(EINVAL, "{}: a buffer size out of range", describe(n));
    return {};
  }

  Result<UniqueFd> open(const img::FileDesc& d, OpenState&) const override {
    const img::NetlinkSocket& n = d.netlink();
    int raw = socket(AF_NETLINK, static_cast<int>(n.type()) | SOCK_CLOEXEC, static_cast<int>(n.protocol()));
    if (raw < 0) return sys_error("{}: socket", describe(n));
    UniqueFd fd(raw);
    if (n.portid() != 0) {
      sockaddr_nl a{};
      a.nl_family = AF_NETLINK;
      a.nl_pid = n.portid();
      if (bind(raw, reinterpret_cast<sockaddr*>(&a), sizeof(a)) < 0)
        return sys_error("{}: bind (another socket may hold the port id)", describe(n));
    }
    for (uint32_t g : n.groups())
      TRY_CTX(set_int(raw, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, static_cast<int>(g), "NETLINK_ADD_MEMBERSHIP"), "{}",
              describe(n));
    if (n.connected()) {
      sockaddr_nl a{};
      a.nl_family = AF_NETLINK;
      a.nl_pid = n.dst_portid();
      a.nl_groups = n.dst_group();
      if (connect(raw, reinterpret_cast<sockaddr*>(&a), sizeof(a)) < 0) return sys_error("{}: connect", describe(n));
    }
    for (size_t i = 0; i < std::size(kFlags); i++)
      if (n.flags() & (1u << i)) TRY_CTX(set_int(raw, SOL_NETLINK, kFlags[i], 1, "NETLINK flag"), "{}", describe(n));
    // Only what differs from a new socket's (setting one locks it).
    if (n.sndbuf() && static_cast<int>(n.sndbuf()) != TRY(get_int(raw, SOL_SOCKET, SO_SNDBUF, "SO_SNDBUF")))
      TRY(set_int(raw, SOL_SOCKET, SO_SNDBUFFORCE, static_cast<int>(n.sndbuf() / 2), "SO_SNDBUFFORCE"));
    if (n.rcvbuf() && static_cast<int>(n.rcvbuf()) != TRY(get_int(raw, SOL_SOCKET, SO_RCVBUF, "SO_RCVBUF")))
      TRY(set_int(raw, SOL_SOCKET, SO_RCVBUFFORCE, static_cast<int>(n.rcvbuf() / 2), "SO_RCVBUFFORCE"));
    return fd;
  }
};

}  // namespace

const Kind& netlink_socket_kind() {
  static const NetlinkSocketKind k;
  return k;
}

}  // namespace ckpt::files
