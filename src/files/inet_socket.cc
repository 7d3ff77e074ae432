// Inet sockets (AF_INET, AF_INET6; TCP and UDP): their addresses, options,
// state, and what is queued in them.
//
// Dump, per socket: ckpt's own copy of it (take_file) gives names and
// options; inet_diag (inet_diag.h) the shutdown state and the connections in
// a listener's accept queue, which have no file until accepted.
//   - A listener keeps its backlog. A connection in its queue comes back only
//     if its client is a socket of the tree that sent nothing yet: that client
//     connects again at restore ("reconnect"). One from outside the tree is
//     refused, or dropped with --skip-in-flight.
//   - UDP: the datagrams queued, each with its sender, peeked without being
//     consumed (SO_PEEK_OFF walks the queue, and is put back).
//   - An established or half-closed TCP connection needs --tcp-established:
//     ckpt puts the socket in repair mode (TCP_REPAIR, on its own fd: the same
//     socket) and reads its sequence numbers, the options negotiated at
//     connect, its window and both queues. The socket stays in repair mode
//     until the dump is over (TcpRepairs): closed in it when the tree is
//     killed (no FIN, no RST), out of it again if the tree goes on.
//
// Restore (prepare) makes them all together, in this order:
//   1. every socket but connections, bound (a listener before the connections
//      that share its port), listening;
//   2. the clients waiting in a listener's queue connect again;
//   3. UDP: the queued datagrams sent again, each from a stand-in bound at its
//      sender's address; then connected sockets connect;
//   4. connections through repair mode: sequence numbers, bind, connect (no
//      handshake in repair mode), options, the receive queue, the part of
//      the send queue that was sent, window, FIN sent;
//   5. a FIN received, sent to the socket again as its peer's, or in
//      FIN_WAIT2 the peer's ACK of its FIN (tcp_fin.h).
//   They leave repair mode once the tree is restored (leave_repair), where
//   the part of the send queue that was not sent is written as new data; a
//   failed restore closes them silently.
#include "files/inet_socket.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstring>
#include <map>
#include <set>

#include "base/fs.h"
#include "files/inet_diag.h"
#include "files/kind.h"
#include "files/tcp_fin.h"

namespace ckpt::files {

namespace {

// include/net/tcp_states.h
enum : uint32_t {
  kEstablished = 1, kSynSent, kSynRecv, kFinWait1, kFinWait2, kTimeWait, kClose, kCloseWait, kLastAck, kListen, kClosing
};
constexpr uint32_t kRcvShutdown = 1, kSendShutdown = 2;
constexpr size_t kChunk = 64 << 10;

const char* state_name(uint32_t s) {
  static constexpr const char* kNames[] = {"?",         "ESTABLISHED", "SYN_SENT", "SYN_RECV", "FIN_WAIT1", "FIN_WAIT2",
                                           "TIME_WAIT", "CLOSE",       "CLOSE_WAIT", "LAST_ACK", "LISTEN",   "CLOSING"};
  return s < std::size(kNames) ? kNames[s] : "?";
}

bool fin_sent(uint32_t s) { return s == kFinWait1 || s == kFinWait2 || s == kClosing || s == kLastAck; }
bool fin_received(uint32_t s) { return s == kCloseWait || s == kClosing || s == kLastAck; }
bool connection_state(uint32_t s) { return s == kEstablished || fin_sent(s) || fin_received(s); }

bool is_tcp(const img::InetSocket& s) { return s.protocol() == IPPROTO_TCP; }

std::string endpoint(const std::string& addr, uint32_t port) {
  return addr.find(':') != std::string::npos ? fmt::format("[{}]:{}", addr, port) : fmt::format("{}:{}", addr, port);
}

// "TCP socket [123] 127.0.0.1:5000 -> 127.0.0.1:41234 (ESTABLISHED)", as
// messages name a socket.
std::string describe(const img::InetSocket& s) {
  std::string out = fmt::format("{}{} socket [{}]", is_tcp(s) ? "TCP" : "UDP", s.family() == AF_INET6 ? "v6" : "",
                                s.inode());
  if (s.local_port()) out += " " + endpoint(s.local_addr(), s.local_port());
  if (s.remote_port()) out += " -> " + endpoint(s.remote_addr(), s.remote_port());
  if (is_tcp(s)) out += fmt::format(" ({})", state_name(s.state()));
  return out;
}

std::string addr_text(int family, const void* bytes) {
  char buf[INET6_ADDRSTRLEN] = "";
  inet_ntop(family, bytes, buf, sizeof(buf));
  return buf;
}

// An address in text form, for `family`; false if it is not one.
bool parse_addr(int family, const std::string& text, std::array<uint8_t, 16>* out) {
  out->fill(0);
  return inet_pton(family, text.c_str(), out->data()) == 1;
}

struct Sockaddr {
  sockaddr_storage ss{};
  socklen_t len = 0;
  const sockaddr* get() const { return reinterpret_cast<const sockaddr*>(&ss); }
};

Result<Sockaddr> make_sockaddr(int family, const std::string& addr, uint32_t port) {
  Sockaddr a;
  std::array<uint8_t, 16> bytes;
  if (!parse_addr(family, addr, &bytes)) return error(EINVAL, "bad address {}", addr);
  if (family == AF_INET) {
    auto* in = reinterpret_cast<sockaddr_in*>(&a.ss);
    in->sin_family = AF_INET;
    in->sin_port = htons(static_cast<uint16_t>(port));
    memcpy(&in->sin_addr, bytes.data(), 4);
    a.len = sizeof(sockaddr_in);
  } else {
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&a.ss);
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(static_cast<uint16_t>(port));
    memcpy(&in6->sin6_addr, bytes.data(), 16);
    a.len = sizeof(sockaddr_in6);
  }
  return a;
}

// (address text, port) of a sockaddr the kernel filled in.
std::pair<std::string, uint32_t> from_sockaddr(const sockaddr_storage& ss) {
  if (ss.ss_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(&ss);
    return {addr_text(AF_INET, &in->sin_addr), ntohs(in->sin_port)};
  }
  if (ss.ss_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&ss);
    return {addr_text(AF_INET6, &in6->sin6_addr), ntohs(in6->sin6_port)};
  }
  return {"", 0};
}

template <typename T>
Result<T> get_opt(int fd, int level, int opt, const char* what) {
  T v{};
  socklen_t len = sizeof(v);
  if (getsockopt(fd, level, opt, &v, &len) < 0) return sys_error("getsockopt {}", what);
  return v;
}

template <typename T>
Result<void> set_opt(int fd, int level, int opt, const T& v, const char* what) {
  if (setsockopt(fd, level, opt, &v, sizeof(v)) < 0) return sys_error("setsockopt {}", what);
  return {};
}

Result<int> get_int(int fd, int level, int opt, const char* what) { return get_opt<int>(fd, level, opt, what); }
Result<void> set_int(int fd, int level, int opt, int v, const char* what) {
  if (setsockopt(fd, level, opt, &v, sizeof(v)) < 0) return sys_error("setsockopt {} {}", what, v);
  return {};
}

Result<int> ioctl_int(int fd, unsigned long req, const char* what) {
  int v = 0;
  if (ioctl(fd, req, &v) < 0) return sys_error("ioctl {}", what);
  return v;
}

// --- dump ------------------------------------------------------------------

Result<void> collect_options(int fd, const img::InetSocket& s, img::InetOptions* o) {
  o->set_reuseaddr(TRY(get_int(fd, SOL_SOCKET, SO_REUSEADDR, "SO_REUSEADDR")) != 0);
  o->set_reuseport(TRY(get_int(fd, SOL_SOCKET, SO_REUSEPORT, "SO_REUSEPORT")) != 0);
  o->set_keepalive(TRY(get_int(fd, SOL_SOCKET, SO_KEEPALIVE, "SO_KEEPALIVE")) != 0);
  o->set_broadcast(TRY(get_int(fd, SOL_SOCKET, SO_BROADCAST, "SO_BROADCAST")) != 0);
  o->set_sndbuf(static_cast<uint32_t>(TRY(get_int(fd, SOL_SOCKET, SO_SNDBUF, "SO_SNDBUF"))));
  o->set_rcvbuf(static_cast<uint32_t>(TRY(get_int(fd, SOL_SOCKET, SO_RCVBUF, "SO_RCVBUF"))));
  const linger l = TRY(get_opt<linger>(fd, SOL_SOCKET, SO_LINGER, "SO_LINGER"));
  o->set_linger(l.l_onoff != 0);
  o->set_linger_s(static_cast<uint32_t>(l.l_linger));
  char dev[IFNAMSIZ + 1] = "";
  socklen_t dlen = IFNAMSIZ;
  if (getsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, dev, &dlen) < 0) return sys_error("getsockopt SO_BINDTODEVICE");
  o->set_bind_dev(std::string(dev, strnlen(dev, dlen)));
  if (is_tcp(s)) {
    o->set_nodelay(TRY(get_int(fd, IPPROTO_TCP, TCP_NODELAY, "TCP_NODELAY")) != 0);
    o->set_keepidle(static_cast<uint32_t>(TRY(get_int(fd, IPPROTO_TCP, TCP_KEEPIDLE, "TCP_KEEPIDLE"))));
    o->set_keepintvl(static_cast<uint32_t>(TRY(get_int(fd, IPPROTO_TCP, TCP_KEEPINTVL, "TCP_KEEPINTVL"))));
    o->set_keepcnt(static_cast<uint32_t>(TRY(get_int(fd, IPPROTO_TCP, TCP_KEEPCNT, "TCP_KEEPCNT"))));
  }
  if (s.family() == AF_INET) {
    o->set_tos(static_cast<uint32_t>(TRY(get_int(fd, IPPROTO_IP, IP_TOS, "IP_TOS"))));
    o->set_ttl(static_cast<uint32_t>(TRY(get_int(fd, IPPROTO_IP, IP_TTL, "IP_TTL"))));
  } else {
    o->set_v6only(TRY(get_int(fd, IPPROTO_IPV6, IPV6_V6ONLY, "IPV6_V6ONLY")) != 0);
    o->set_tos(static_cast<uint32_t>(TRY(get_int(fd, IPPROTO_IPV6, IPV6_TCLASS, "IPV6_TCLASS"))));
    o->set_ttl(static_cast<uint32_t>(TRY(get_int(fd, IPPROTO_IPV6, IPV6_UNICAST_HOPS, "IPV6_UNICAST_HOPS"))));
  }
  return {};
}

// IPv4 multicast memberships of a UDP socket: the kernel has no getsockopt
// for them, but /proc/net/igmp lists the groups joined per interface; the
// socket's own are found by trying to join each again (EADDRINUSE: this
// socket has it).
Result<void> collect_memberships(int fd, img::InetOptions* o) {
  auto text = read_file("/proc/net/igmp");
  if (!text) return {};
  // "Idx\tDevice    : Count Querier\tGroup    Users Timer\tReporter\n"
  // "1\tlo        :     1      V3\n\t\t\t\t010000E0     1 0:00000000\t\t0\n"
  int ifindex = 0;
  size_t at = 0;
  while (at < text->size()) {
    size_t end = text->find('\n', at);
    if (end == std::string::npos) end = text->size();
    const std::string line = text->substr(at, end - at);
    at = end + 1;
    if (line.empty()) continue;
    if (line[0] != '\t') {
      if (!isdigit(static_cast<unsigned char>(line[0]))) continue;
      ifindex = atoi(line.c_str());
      continue;
    }
    unsigned group = 0;
    if (sscanf(line.c_str(), " %x", &group) != 1) continue;
    in_addr g{};
    g.s_addr = group;  // printed as the kernel's __be32 in hex
    if (g.s_addr == htonl(INADDR_ALLHOSTS_GROUP)) continue;
    ip_mreqn m{};
    m.imr_multiaddr = g;
    m.imr_ifindex = ifindex;
    if (setsockopt(fd, IPPROTO_IP, IP_ADD_MEMBERSHIP, &m, sizeof(m)) == 0) {
      // Not the socket's: taken back at once.
      (void)setsockopt(fd, IPPROTO_IP, IP_DROP_MEMBERSHIP, &m, sizeof(m));
      continue;
    }
    if (errno != EADDRINUSE) continue;
    img::InetMembership* mm = o->add_memberships();
    mm->set_group(addr_text(AF_INET, &g));
    mm->set_ifindex(ifindex);
  }
  return {};
}

// IPv6 memberships (IPV6_ADD_MEMBERSHIP), the same way: /proc/net/igmp6
// lists the groups joined per interface, one a line:
//   "1    lo              ff020000000000000000000000000001     1 0000000C 0"
// and a join the socket already has fails with EADDRINUSE.
Result<void> collect_memberships6(int fd, img::InetOptions* o) {
  auto text = read_file("/proc/net/igmp6");
  if (!text) return {};
  size_t at = 0;
  while (at < text->size()) {
    size_t end = text->find('\n', at);
    if (end == std::string::npos) end = text->size();
    const std::string line = text->substr(at, end - at);
    at = end + 1;
    int ifindex = 0;
    char dev[IFNAMSIZ + 1] = "", hex[33] = "";
    if (sscanf(line.c_str(), "%d %16s %32s", &ifindex, dev, hex) != 3 || strlen(hex) != 32) continue;
    ipv6_mreq m{};
    for (int i = 0; i < 16; i++) {
      unsigned b = 0;
      if (sscanf(hex + 2 * i, "%2x", &b) != 1) break;
      m.ipv6mr_multiaddr.s6_addr[i] = static_cast<uint8_t>(b);
    }
    m.ipv6mr_interface = static_cast<unsigned>(ifindex);
    if (setsockopt(fd, IPPROTO_IPV6, IPV6_ADD_MEMBERSHIP, &m, sizeof(m)) == 0) {
      (void)setsockopt(fd, IPPROTO_IPV6, IPV6_DROP_MEMBERSHIP, &m, sizeof(m));  // not the socket's
      continue;
    }
    if (errno != EADDRINUSE) continue;
    img::InetMembership* mm = o->add_memberships();
    mm->set_group(addr_text(AF_INET6, &m.ipv6mr_multiaddr));
    mm->set_ifindex(ifindex);
  }
  return {};
}

// The task's SO_PEEK_OFF while ckpt peeks from offset 0, put back after.
class PeekFrom0 {
 public:
  static Result<PeekFrom0> set(int fd) {
    int saved = -1;
    socklen_t len = sizeof(saved);
    if (getsockopt(fd, SOL_SOCKET, SO_PEEK_OFF, &saved, &len) < 0) saved = -1;
    TRY(set_int(fd, SOL_SOCKET, SO_PEEK_OFF, 0, "SO_PEEK_OFF"));
    return PeekFrom0(fd, saved);
  }
  PeekFrom0(PeekFrom0&& o) noexcept : fd_(o.fd_), saved_(o.saved_) { o.fd_ = -1; }
  ~PeekFrom0() {
    if (fd_ >= 0) (void)setsockopt(fd_, SOL_SOCKET, SO_PEEK_OFF, &saved_, sizeof(saved_));
  }

 private:
  PeekFrom0(int fd, int saved) : fd_(fd), saved_(saved) {}
  int fd_;
  int saved_;
};

// Each datagram queued on fd, peeked from the first, to each(bytes, sender).
template <typename Each>
Result<void> peek_each_datagram(int fd, Each each) {
  PeekFrom0 peek = TRY(PeekFrom0::set(fd));
  std::string buf(65536, '\0');
  for (;;) {
    iovec iov{buf.data(), buf.size()};
    sockaddr_storage from{};
    msghdr m{};
    m.msg_name = &from;
    m.msg_namelen = sizeof(from);
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    ssize_t n = recvmsg(fd, &m, MSG_PEEK | MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return {};
    if (n < 0) return sys_error("peek at its queue");
    if (m.msg_flags & MSG_TRUNC) return error(EIO, "a queued datagram larger than 64 KiB");
    // A datagram of 0 bytes moves the peek offset by nothing: it would be
    // read forever.
    if (n == 0) return error(EOPNOTSUPP, "an empty datagram in its queue: not supported");
    TRY(each(std::string_view(buf.data(), static_cast<size_t>(n)), from));
  }
}

Result<void> peek_datagrams(int fd, img::InetSocket* s, uint64_t* total) {
  return peek_each_datagram(fd, [&](std::string_view data, const sockaddr_storage& from) -> Result<void> {
    *total += data.size();
    if (*total > kMaxInetQueuesBytes) return error(EFBIG, "more than {} bytes queued: not supported", kMaxInetQueuesBytes);
    s->add_queue(data.data(), data.size());
    auto [addr, port] = from_sockaddr(from);
    img::InetEndpoint* e = s->add_senders();
    e->set_addr(addr);
    e->set_port(port);
    return {};
  });
}

// For the error when datagrams sent again did not come: the other UDP
// sockets on the port (SO_REUSEADDR lets one bind beside another, and the
// kernel then gives the datagrams to one of them), and this one's queue.
std::string port_holders(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  struct stat st;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) < 0 || fstat(fd, &st) < 0) return "";
  const uint16_t port = ntohs(ss.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port
                                                       : reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
  auto all = inet_diag_all();
  if (!all) return "";
  std::string others;
  uint32_t queued = 0;
  for (const auto& [inode, d] : all->by_inode) {
    if (d.protocol != IPPROTO_UDP || d.sport != port) continue;
    if (inode == st.st_ino) queued = d.rqueue;
    else others += fmt::format("{}socket:[{}]", others.empty() ? "" : ", ", inode);
  }
  return fmt::format(" ({} bytes queued; port {} {})", queued, port,
                     others.empty() ? "held by no other socket" : "held too by " + others);
}

// Loopback delivers a datagram sent again through the backlog of the
// network stack, which a busy machine leaves to ksoftirqd: the task must not
// run before its queue is whole.
Result<void> await_datagrams(int fd, size_t want) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  for (;;) {
    size_t have = 0;
    TRY(peek_each_datagram(fd, [&](std::string_view, const sockaddr_storage&) -> Result<void> {
      have++;
      return {};
    }));
    if (have >= want) return {};
    if (std::chrono::steady_clock::now() > deadline)
      return error(ETIMEDOUT, "{} of the {} datagrams sent again arrived within 2 s{}", have, want, port_holders(fd));
    usleep(200);
  }
}

// `want` bytes of the queue repair mode selected, peeked.
Result<std::string> peek_queue(int fd, size_t want, bool send_queue) {
  std::string buf(want + 1, '\0');
  if (send_queue) {
    // The kernel copies the whole send queue at once (tcp_peek_sndq).
    ssize_t n;
    do n = recv(fd, buf.data(), buf.size(), MSG_PEEK | MSG_DONTWAIT);
    while (n < 0 && errno == EINTR);
    if (n < 0 && errno == EAGAIN) n = 0;
    if (n < 0) return sys_error("peek at its send queue");
    buf.resize(static_cast<size_t>(n));
    return buf;
  }
  PeekFrom0 peek = TRY(PeekFrom0::set(fd));
  size_t got = 0;
  while (got < want) {
    ssize_t n = recv(fd, buf.data() + got, want - got, MSG_PEEK | MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) break;
    if (n < 0) return sys_error("peek at its receive queue");
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  buf.resize(got);
  return buf;
}

Result<void> repair_dump(int fd, uint32_t state, img::TcpRepair* t, uint64_t* total) {
  tcp_info info{};
  socklen_t len = sizeof(info);
  if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) < 0) return sys_error("getsockopt TCP_INFO");
  t->set_sack(info.tcpi_options & TCPI_OPT_SACK);
  t->set_timestamps(info.tcpi_options & TCPI_OPT_TIMESTAMPS);
  t->set_wscale(info.tcpi_options & TCPI_OPT_WSCALE);
  t->set_snd_wscale(info.tcpi_snd_wscale);
  t->set_rcv_wscale(info.tcpi_rcv_wscale);
  t->set_mss(static_cast<uint32_t>(TRY(get_int(fd, IPPROTO_TCP, TCP_MAXSEG, "TCP_MAXSEG"))));
  t->set_timestamp(TRY(get_opt<uint32_t>(fd, IPPROTO_TCP, TCP_TIMESTAMP, "TCP_TIMESTAMP")));
  const tcp_repair_window w = TRY(get_opt<tcp_repair_window>(fd, IPPROTO_TCP, TCP_REPAIR_WINDOW, "TCP_REPAIR_WINDOW"));
  t->set_snd_wl1(w.snd_wl1);
  t->set_snd_wnd(w.snd_wnd);
  t->set_max_window(w.max_window);
  t->set_rcv_wnd(w.rcv_wnd);
  t->set_rcv_wup(w.rcv_wup);
  t->set_fin_sent(fin_sent(state));
  t->set_fin_received(fin_received(state));
  const int outq = TRY(ioctl_int(fd, SIOCOUTQ, "SIOCOUTQ"));      // write_seq - snd_una (a FIN counts)
  const int unsent = TRY(ioctl_int(fd, SIOCOUTQNSD, "SIOCOUTQNSD"));  // write_seq - snd_nxt
  const int inq = TRY(ioctl_int(fd, SIOCINQ, "SIOCINQ"));         // rcv_nxt - copied_seq (a FIN does not)
  if (static_cast<uint64_t>(outq) + static_cast<uint64_t>(inq) + *total > kMaxInetQueuesBytes)
    return error(EFBIG, "more than {} bytes queued in the tree's sockets: not supported", kMaxInetQueuesBytes);

  TRY(set_int(fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, TCP_SEND_QUEUE, "TCP_REPAIR_QUEUE"));
  const uint32_t write_seq = TRY(get_opt<uint32_t>(fd, IPPROTO_TCP, TCP_QUEUE_SEQ, "TCP_QUEUE_SEQ (send)"));
  std::string sq = TRY(peek_queue(fd, static_cast<size_t>(outq), true));
  TRY(set_int(fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, TCP_RECV_QUEUE, "TCP_REPAIR_QUEUE"));
  const uint32_t rcv_nxt = TRY(get_opt<uint32_t>(fd, IPPROTO_TCP, TCP_QUEUE_SEQ, "TCP_QUEUE_SEQ (receive)"));
  std::string rq = TRY(peek_queue(fd, static_cast<size_t>(inq), false));
  TRY(set_int(fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, TCP_NO_QUEUE, "TCP_REPAIR_QUEUE"));
  if (rq.size() != static_cast<size_t>(inq))
    return error(EIO, "peeking read {} bytes of the {} its receive queue holds (urgent data?): not supported",
                 rq.size(), inq);
  // The FIN is in write_seq; sent again by shutdown() at restore.
  const uint32_t fin = t->fin_sent() ? 1 : 0;
  if (sq.size() + fin < static_cast<size_t>(outq) || sq.size() < static_cast<size_t>(std::max(unsent - 1, 0)))
    return error(EIO, "peeking read {} bytes of the {} its send queue holds: not supported", sq.size(), outq);
  t->set_snd_seq(write_seq - fin - static_cast<uint32_t>(sq.size()));
  // The FIN received counts in rcv_nxt, after the data: the data read after
  // restore starts one earlier, which no one sees.
  t->set_rcv_seq(rcv_nxt - static_cast<uint32_t>(rq.size()));
  t->set_unsent(fin ? 0 : static_cast<uint32_t>(std::min<int>(unsent, static_cast<int>(sq.size()))));
  *total += sq.size() + rq.size();
  t->set_send_queue(std::move(sq));
  t->set_recv_queue(std::move(rq));
  return {};
}

bool same_addr(const InetDiag& d, const std::array<uint8_t, 16>& a, bool dst) {
  const auto& x = dst ? d.dst : d.src;
  return memcmp(x.data(), a.data(), d.family == AF_INET ? 4 : 16) == 0;
}

bool is_any(const std::array<uint8_t, 16>& a, int family) {
  return std::all_of(a.begin(), a.begin() + (family == AF_INET ? 4 : 16), [](uint8_t b) { return b == 0; });
}

#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71
#endif

// ckpt (and so inet_diag) sees the sockets of its own network namespace.
Result<void> check_netns(int fd, const char* fam) {
  const uint64_t theirs = TRY(get_opt<uint64_t>(fd, SOL_SOCKET, SO_NETNS_COOKIE, "SO_NETNS_COOKIE"));
  int raw = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (raw < 0) return sys_error("socket");
  UniqueFd mine(raw);
  if (TRY(get_opt<uint64_t>(raw, SOL_SOCKET, SO_NETNS_COOKIE, "SO_NETNS_COOKIE")) != theirs)
    return error(EOPNOTSUPP, "an {} socket of another network namespace: not supported", fam);
  return {};
}

// --- restore ---------------------------------------------------------------

Result<UniqueFd> new_socket(const img::InetSocket& s) {
  int fd = socket(static_cast<int>(s.family()), static_cast<int>(s.type()) | SOCK_CLOEXEC, static_cast<int>(s.protocol()));
  if (fd < 0) return sys_error("socket({}, {}, {})", s.family(), s.type(), s.protocol());
  return UniqueFd(fd);
}

// What must be set before bind: the address family's, the device, reuse.
Result<void> set_before_bind(int fd, const img::InetSocket& s) {
  const img::InetOptions& o = s.opts();
  if (s.family() == AF_INET6) TRY(set_int(fd, IPPROTO_IPV6, IPV6_V6ONLY, o.v6only(), "IPV6_V6ONLY"));
  if (!o.bind_dev().empty() &&
      setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, o.bind_dev().data(), static_cast<socklen_t>(o.bind_dev().size())) < 0)
    return sys_error("setsockopt SO_BINDTODEVICE {}", o.bind_dev());
  TRY(set_int(fd, SOL_SOCKET, SO_REUSEADDR, o.reuseaddr(), "SO_REUSEADDR"));
  TRY(set_int(fd, SOL_SOCKET, SO_REUSEPORT, o.reuseport(), "SO_REUSEPORT"));
  return {};
}

Result<void> set_buffers(int fd, const img::InetSocket& s) {
  const img::InetOptions& o = s.opts();
  // Only what differs from a new socket's: setting one locks it (no more
  // autotuning), which a task that never set it did not ask for.
  if (o.sndbuf() && static_cast<int>(o.sndbuf()) != TRY(get_int(fd, SOL_SOCKET, SO_SNDBUF, "SO_SNDBUF")))
    TRY(set_int(fd, SOL_SOCKET, SO_SNDBUFFORCE, static_cast<int>(o.sndbuf() / 2), "SO_SNDBUFFORCE"));
  if (o.rcvbuf() && static_cast<int>(o.rcvbuf()) != TRY(get_int(fd, SOL_SOCKET, SO_RCVBUF, "SO_RCVBUF")))
    TRY(set_int(fd, SOL_SOCKET, SO_RCVBUFFORCE, static_cast<int>(o.rcvbuf() / 2), "SO_RCVBUFFORCE"));
  return {};
}

// The rest, once bound and connected.
Result<void> set_after(int fd, const img::InetSocket& s) {
  const img::InetOptions& o = s.opts();
  TRY(set_int(fd, SOL_SOCKET, SO_KEEPALIVE, o.keepalive(), "SO_KEEPALIVE"));
  TRY(set_int(fd, SOL_SOCKET, SO_BROADCAST, o.broadcast(), "SO_BROADCAST"));
  linger l{o.linger() ? 1 : 0, static_cast<int>(o.linger_s())};
  TRY(set_opt(fd, SOL_SOCKET, SO_LINGER, l, "SO_LINGER"));
  if (is_tcp(s)) {
    TRY(set_int(fd, IPPROTO_TCP, TCP_NODELAY, o.nodelay(), "TCP_NODELAY"));
    if (o.keepidle()) TRY(set_int(fd, IPPROTO_TCP, TCP_KEEPIDLE, static_cast<int>(o.keepidle()), "TCP_KEEPIDLE"));
    if (o.keepintvl()) TRY(set_int(fd, IPPROTO_TCP, TCP_KEEPINTVL, static_cast<int>(o.keepintvl()), "TCP_KEEPINTVL"));
    if (o.keepcnt()) TRY(set_int(fd, IPPROTO_TCP, TCP_KEEPCNT, static_cast<int>(o.keepcnt()), "TCP_KEEPCNT"));
  }
  if (s.family() == AF_INET) {
    TRY(set_int(fd, IPPROTO_IP, IP_TOS, static_cast<int>(o.tos()), "IP_TOS"));
    if (o.ttl()) TRY(set_int(fd, IPPROTO_IP, IP_TTL, static_cast<int>(o.ttl()), "IP_TTL"));
    for (const img::InetMembership& m : o.memberships()) {
      ip_mreqn r{};
      std::array<uint8_t, 16> g;
      if (!parse_addr(AF_INET, m.group(), &g)) return error(EINVAL, "bad multicast group {}", m.group());
      memcpy(&r.imr_multiaddr, g.data(), 4);
      r.imr_ifindex = m.ifindex();
      if (setsockopt(fd, IPPROTO_IP, IP_ADD_MEMBERSHIP, &r, sizeof(r)) < 0)
        return sys_error("join multicast group {} on interface {}", m.group(), m.ifindex());
    }
  } else {
    TRY(set_int(fd, IPPROTO_IPV6, IPV6_TCLASS, static_cast<int>(o.tos()), "IPV6_TCLASS"));
    if (o.ttl()) TRY(set_int(fd, IPPROTO_IPV6, IPV6_UNICAST_HOPS, static_cast<int>(o.ttl()), "IPV6_UNICAST_HOPS"));
    for (const img::InetMembership& m : o.memberships()) {
      ipv6_mreq r{};
      std::array<uint8_t, 16> g;
      if (!parse_addr(AF_INET6, m.group(), &g)) return error(EINVAL, "bad multicast group {}", m.group());
      memcpy(&r.ipv6mr_multiaddr, g.data(), 16);
      r.ipv6mr_interface = static_cast<unsigned>(m.ifindex());
      if (setsockopt(fd, IPPROTO_IPV6, IPV6_ADD_MEMBERSHIP, &r, sizeof(r)) < 0)
        return sys_error("join multicast group {} on interface {}", m.group(), m.ifindex());
    }
  }
  TRY(set_buffers(fd, s));
  if (s.peek_off() != -1) TRY(set_int(fd, SOL_SOCKET, SO_PEEK_OFF, s.peek_off(), "SO_PEEK_OFF"));
  return {};
}

Result<void> bind_local(int fd, const img::InetSocket& s) {
  const Sockaddr a = TRY(make_sockaddr(static_cast<int>(s.family()), s.local_addr(), s.local_port()));
  if (::bind(fd, a.get(), a.len) < 0) {
    if (errno == EADDRINUSE)
      return sys_error("bind {}: a socket outside the restored tree holds it", endpoint(s.local_addr(), s.local_port()));
    return sys_error("bind {}", endpoint(s.local_addr(), s.local_port()));
  }
  return {};
}

Result<void> connect_remote(int fd, const img::InetSocket& s) {
  const Sockaddr a = TRY(make_sockaddr(static_cast<int>(s.family()), s.remote_addr(), s.remote_port()));
  if (::connect(fd, a.get(), a.len) < 0) return sys_error("connect to {}", endpoint(s.remote_addr(), s.remote_port()));
  return {};
}

// Room in a buffer for `bytes` more (the kernel charges about twice the data).
Result<void> make_room(int fd, int opt, int force, uint64_t bytes, const char* what) {
  if (bytes == 0) return {};
  const int want = static_cast<int>(std::min<uint64_t>(2 * bytes + (1 << 20), INT_MAX / 2));
  if (TRY(get_int(fd, SOL_SOCKET, opt, what)) < want) TRY(set_int(fd, SOL_SOCKET, force, want, what));
  return {};
}

Result<void> send_all(int fd, std::string_view data, const char* what) {
  for (size_t off = 0; off < data.size();) {
    ssize_t n = send(fd, data.data() + off, std::min(kChunk, data.size() - off), MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return sys_error("queue {} bytes of its {} again (at {})", data.size(), what, off);
    off += static_cast<size_t>(n);
  }
  return {};
}

// The sequence number of the first byte of the receive queue: the image's
// rcv_seq counts a FIN received (it is rcv_nxt minus the queue).
uint32_t first_received(const img::TcpRepair& t) { return t.rcv_seq() - (t.fin_received() ? 1 : 0); }

// The FIN a connection had received, delivered again (files/tcp_fin.h), and
// in LAST_ACK its own FIN after it; CLOSING had its own FIN first
// (repair_connect). In FIN_WAIT2 the peer's ACK of the socket's FIN instead:
// without it the socket would be FIN_WAIT1 and send its FIN again. Once
// every connection of the tree exists: the ACK the socket answers with must
// find the peer's socket if it is the tree's.
Result<void> finish_fin(int fd, const img::InetSocket& s) {
  const img::TcpRepair& t = s.tcp();
  const bool fin_acked = s.state() == kFinWait2;
  if (!t.fin_received() && !fin_acked) return {};
  PeerFin f{.fin = !fin_acked, .family = static_cast<int>(s.family())};
  std::array<uint8_t, 16> local, remote;
  if (!parse_addr(f.family, s.local_addr(), &local) || !parse_addr(f.family, s.remote_addr(), &remote))
    return error(EINVAL, "bad address");
  // An IPv6 socket talking to an IPv4 peer (::ffff:a.b.c.d) gets IPv4.
  static constexpr uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (f.family == AF_INET6 && memcmp(remote.data(), kMapped, 12) == 0) {
    f.family = AF_INET;
    memmove(local.data(), local.data() + 12, 4);
    memmove(remote.data(), remote.data() + 12, 4);
  }
  f.local = local;
  f.remote = remote;
  f.local_port = static_cast<uint16_t>(s.local_port());
  f.remote_port = static_cast<uint16_t>(s.remote_port());
  f.seq = first_received(t) + static_cast<uint32_t>(t.recv_queue().size());
  f.ack = t.snd_seq();
  // FIN_WAIT2 has every byte acknowledged (its send queue is empty): the
  // ACK is of the FIN, one after them.
  if (fin_acked) f.ack += static_cast<uint32_t>(t.send_queue().size()) + 1;
  f.window = static_cast<uint16_t>(std::min<uint32_t>(t.wscale() ? t.snd_wnd() >> t.snd_wscale() : t.snd_wnd(), 65535));
  TRY(deliver_peer_fin(fd, f, fin_acked ? kFinWait2 : s.state() == kClosing ? kClosing : kCloseWait));
  if (s.state() == kLastAck) {
    TRY(set_int(fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, TCP_SEND_QUEUE, "TCP_REPAIR_QUEUE"));
    if (::shutdown(fd, SHUT_WR) < 0) return sys_error("shutdown(SHUT_WR)");
    TRY(set_int(fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, TCP_NO_QUEUE, "TCP_REPAIR_QUEUE"));
  }
  return {};
}

struct TcpRepairOpt {
  uint32_t code, val;
};

// A connection made again in repair mode (see the file's comment, 4.).
Result<RepairedSocket> repair_connect(const img::InetSocket& s) {
  const img::TcpRepair& t = s.tcp();
  UniqueFd sock = TRY(new_socket(s));
  const int fd = sock.get();
  TRY(set_before_bind(fd, s));
  // After SO_REUSEADDR, which would undo what repair mode sets: a bind that
  // ignores the listener and the others on its port (SK_FORCE_REUSE).
  TRY(set_int(fd, IPPROTO_TCP, TCP_REPAIR, 1, "TCP_REPAIR (needs CAP_NET_ADMIN)"));
  TRY(set_int(fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, TCP_SEND_QUEUE, "TCP_REPAIR_QUEUE"));
  TRY(set_opt(fd, IPPROTO_TCP, TCP_QUEUE_SEQ, t.snd_seq(), "TCP_QUEUE_SEQ (send)"));
  TRY(set_int(fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, TCP_RECV_QUEUE, "TCP_REPAIR_QUEUE"));
  TRY(set_opt(fd, IPPROTO_TCP, TCP_QUEUE_SEQ, first_received(t), "TCP_QUEUE_SEQ (receive)"));
  TRY(bind_local(fd, s));
  TRY(connect_remote(fd, s));
  // What the handshake negotiated (only before any data is sent).
  std::vector<TcpRepairOpt> opts = {{TCPOPT_MAXSEG, t.mss()}};
  if (t.wscale()) opts.push_back({TCPOPT_WINDOW, t.snd_wscale() | (t.rcv_wscale() << 16)});
  if (t.sack()) opts.push_back({TCPOPT_SACK_PERMITTED, 0});
  if (t.timestamps()) opts.push_back({TCPOPT_TIMESTAMP, 0});
  if (setsockopt(fd, IPPROTO_TCP, TCP_REPAIR_OPTIONS, opts.data(), static_cast<socklen_t>(opts.size() * sizeof(opts[0]))) < 0)
    return sys_error("setsockopt TCP_REPAIR_OPTIONS");
  if (t.timestamps()) TRY(set_opt(fd, IPPROTO_TCP, TCP_TIMESTAMP, t.timestamp(), "TCP_TIMESTAMP"));
  TRY(make_room(fd, SO_RCVBUF, SO_RCVBUFFORCE, t.recv_queue().size(), "SO_RCVBUFFORCE"));
  TRY(make_room(fd, SO_SNDBUF, SO_SNDBUFFORCE, t.send_queue().size(), "SO_SNDBUFFORCE"));
  TRY(set_int(fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, TCP_RECV_QUEUE, "TCP_REPAIR_QUEUE"));
  TRY(send_all(fd, t.recv_queue(), "receive queue"));
  // The part of the send queue that was sent, in repair mode, as sent: the
  // retransmission timer sends it again if the peer does not acknowledge it
  // (again). The rest was not sent: it goes as new data once out of repair
  // mode (leave_repair), so that the socket shows it as not sent, and it
  // leaves when the peer's window lets it.
  const std::string_view queue = t.send_queue();
  const size_t sent = queue.size() - t.unsent();
  TRY(set_int(fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, TCP_SEND_QUEUE, "TCP_REPAIR_QUEUE"));
  TRY(send_all(fd, queue.substr(0, sent), "send queue"));
  // The window's left edge may not pass rcv_nxt, which stops short of a
  // FIN received (rcv_wup was at most the FIN's end): its right edge stays.
  tcp_repair_window w{t.snd_wl1(), t.snd_wnd(), t.max_window(), t.rcv_wnd(), t.rcv_wup()};
  const uint32_t rcv_nxt = first_received(t) + static_cast<uint32_t>(t.recv_queue().size());
  if (static_cast<int32_t>(w.rcv_wup - rcv_nxt) > 0) {
    w.rcv_wnd += w.rcv_wup - rcv_nxt;
    w.rcv_wup = rcv_nxt;
  }
  TRY(set_opt(fd, IPPROTO_TCP, TCP_REPAIR_WINDOW, w, "TCP_REPAIR_WINDOW"));
  // The FIN sent goes after the data, marked sent (the send queue is still
  // the one repair writes), but in LAST_ACK after the peer's (finish_fins).
  // A FIN received comes in finish_fins too; a read side shut without one
  // (shutdown(SHUT_RD) of the task's own) is shut here.
  int how = 0;
  if ((s.shutdown() & kSendShutdown) && s.state() != kLastAck) how |= 2;
  if ((s.shutdown() & kRcvShutdown) && !t.fin_received()) how |= 1;
  if (how && ::shutdown(fd, how == 3 ? SHUT_RDWR : how == 2 ? SHUT_WR : SHUT_RD) < 0)
    return sys_error("shutdown({})", how - 1);
  TRY(set_int(fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, TCP_NO_QUEUE, "TCP_REPAIR_QUEUE"));
  TRY(set_after(fd, s));
  return RepairedSocket{std::move(sock), s.opts().reuseaddr(), std::string(queue.substr(sent)), s.opts().sndbuf()};
}

// A UDP datagram sent again to `to` from `from`: a stand-in bound at the
// sender's address (a non-local one too: IP_TRANSPARENT).
Result<void> send_datagram(const img::InetSocket& to, const img::InetEndpoint& from, const std::string& data,
                           const Sockaddr& dest) {
  const int family = static_cast<int>(to.family());
  int raw = socket(family, SOCK_DGRAM | SOCK_CLOEXEC, IPPROTO_UDP);
  if (raw < 0) return sys_error("socket for a stand-in sender");
  UniqueFd sender(raw);
  TRY(set_int(raw, SOL_SOCKET, SO_REUSEADDR, 1, "SO_REUSEADDR"));
  if (family == AF_INET) TRY(set_int(raw, IPPROTO_IP, IP_TRANSPARENT, 1, "IP_TRANSPARENT"));
  else TRY(set_int(raw, IPPROTO_IPV6, IPV6_TRANSPARENT, 1, "IPV6_TRANSPARENT"));
  if (!from.addr().empty()) {
    const Sockaddr a = TRY(make_sockaddr(family, from.addr(), from.port()));
    if (::bind(raw, a.get(), a.len) < 0) return sys_error("bind a stand-in at the sender {}", endpoint(from.addr(), from.port()));
  }
  if (sendto(raw, data.data(), data.size(), MSG_DONTWAIT, dest.get(), dest.len) < 0)
    return sys_error("send a datagram of {} bytes from {} again", data.size(), endpoint(from.addr(), from.port()));
  return {};
}

class Restorer {
 public:
  Restorer(std::span<const img::FileDesc* const> descs, OpenState& state)
      : descs_(descs), state_(state), socks_(descs.size()) {}

  Result<void> run(int tag) {
    // 1. (listeners before the connections that share their port)
    for (size_t i = 0; i < descs_.size(); i++) TRY_CTX(create(i), "{}", describe(s(i)));
    // 2.
    for (size_t i = 0; i < descs_.size(); i++) TRY_CTX(reconnect(i), "{}", describe(s(i)));
    // 3.
    for (size_t i = 0; i < descs_.size(); i++) TRY_CTX(datagrams(i), "{}", describe(s(i)));
    for (size_t i = 0; i < descs_.size(); i++) TRY_CTX(finish_udp(i), "{}", describe(s(i)));
    // 4.
    for (size_t i = 0; i < descs_.size(); i++) TRY_CTX(repair(i), "{}", describe(s(i)));
    for (size_t i = 0; i < descs_.size(); i++)
      if (repaired(i) && !state_.tcp_close) TRY_CTX(finish_fin(socks_[i].get(), s(i)), "{}", describe(s(i)));
    for (size_t i = 0; i < descs_.size(); i++) state_.leave(tag, s(i).inode(), std::move(socks_[i]));
    return {};
  }

 private:
  const img::InetSocket& s(size_t i) const { return descs_[i]->inet(); }
  bool repaired(size_t i) const { return is_tcp(s(i)) && s(i).has_tcp() && connection_state(s(i).state()); }

  Result<void> create(size_t i) {
    if (repaired(i) && !state_.tcp_close) return {};
    const img::InetSocket& x = s(i);
    socks_[i] = TRY(new_socket(x));
    const int fd = socks_[i].get();
    TRY(set_before_bind(fd, x));
    if (repaired(i)) return set_after(fd, x);  // --tcp-close: a new socket, closed
    // UDP: stand-ins bind at the senders' addresses meanwhile (3.), this
    // socket's own included.
    if (!is_tcp(x)) TRY(set_int(fd, SOL_SOCKET, SO_REUSEADDR, 1, "SO_REUSEADDR"));
    if (x.local_port() && !x.reconnect()) TRY(bind_local(fd, x));
    if (x.state() == kListen) {
      if (::listen(fd, static_cast<int>(x.backlog())) < 0) return sys_error("listen({})", x.backlog());
    }
    if (is_tcp(x) && !x.reconnect()) {
      TRY(set_after(fd, x));
      if (x.shutdown() && x.state() != kClose) TRY(shutdown_as(fd, x));
    }
    return {};
  }

  Result<void> shutdown_as(int fd, const img::InetSocket& x) {
    const int how = (x.shutdown() & kSendShutdown ? 2 : 0) | (x.shutdown() & kRcvShutdown ? 1 : 0);
    if (how && ::shutdown(fd, how == 3 ? SHUT_RDWR : how == 2 ? SHUT_WR : SHUT_RD) < 0 && errno != ENOTCONN)
      return sys_error("shutdown({})", how - 1);
    return {};
  }

  Result<void> reconnect(size_t i) {
    const img::InetSocket& x = s(i);
    if (!x.reconnect()) return {};
    const int fd = socks_[i].get();
    // Its own port again, free since the dumped one closed.
    TRY(set_int(fd, SOL_SOCKET, SO_REUSEADDR, 1, "SO_REUSEADDR"));
    TRY(bind_local(fd, x));
    TRY(set_int(fd, SOL_SOCKET, SO_REUSEADDR, x.opts().reuseaddr(), "SO_REUSEADDR"));
    TRY_CTX(connect_remote(fd, x), "its listener's queue");
    return set_after(fd, x);
  }

  Result<void> datagrams(size_t i) {
    const img::InetSocket& x = s(i);
    if (is_tcp(x) || !x.queue_size()) return {};
    if (!x.local_port()) return error(EINVAL, "datagrams queued for an unbound socket");
    const int family = static_cast<int>(x.family());
    uint64_t bytes = 0;
    for (const std::string& m : x.queue()) bytes += m.size() + 1024;
    TRY(make_room(socks_[i].get(), SO_RCVBUF, SO_RCVBUFFORCE, bytes, "SO_RCVBUFFORCE"));
    for (int k = 0; k < x.queue_size(); k++) {
      // To its own address; bound to any, to the loopback address of the
      // sender's kind (an IPv4 sender of a dual-stack socket is v4-mapped).
      std::string to = x.local_addr();
      std::array<uint8_t, 16> a;
      if (parse_addr(family, to, &a) && is_any(a, family))
        to = family == AF_INET ? "127.0.0.1" : x.senders(k).addr().starts_with("::ffff:") ? "::ffff:127.0.0.1" : "::1";
      const Sockaddr dest = TRY(make_sockaddr(family, to, x.local_port()));
      TRY_CTX(send_datagram(x, x.senders(k), x.queue(k), dest), "datagram {} of {}", k + 1, x.queue_size());
    }
    return {};
  }

  // Once every queue is in: connected, a UDP socket takes datagrams from its
  // peer alone.
  Result<void> finish_udp(size_t i) {
    const img::InetSocket& x = s(i);
    if (is_tcp(x)) return {};
    const int fd = socks_[i].get();
    if (x.queue_size()) TRY(await_datagrams(fd, static_cast<size_t>(x.queue_size())));
    TRY(set_int(fd, SOL_SOCKET, SO_REUSEADDR, x.opts().reuseaddr(), "SO_REUSEADDR"));
    if (x.remote_port()) TRY(connect_remote(fd, x));
    TRY(set_after(fd, x));
    if (x.shutdown()) TRY(shutdown_as(fd, x));
    return {};
  }

  Result<void> repair(size_t i) {
    if (!repaired(i) || state_.tcp_close) return {};
    RepairedSocket r = TRY(repair_connect(s(i)));
    int copy = fcntl(r.fd.get(), F_DUPFD_CLOEXEC, 0);
    if (copy < 0) return sys_error("dup");
    socks_[i] = UniqueFd(copy);
    if (!state_.repaired) return error(EINVAL, "no one to take the connection out of repair mode");
    state_.repaired->push_back(std::move(r));
    return {};
  }

  std::span<const img::FileDesc* const> descs_;
  OpenState& state_;
  std::vector<UniqueFd> socks_;
};

class InetSocketKind final : public Kind {
 public:
  std::string_view name() const override { return "inet socket"; }
  img::FileDesc::KindCase tag() const override { return img::FileDesc::kInet; }

  bool claims(const FdProbe& p, const DumpFlags&) const override {
    if (!S_ISSOCK(p.st.st_mode)) return false;
    auto f = take_file(p);
    if (!f) return false;
    auto domain = get_int(f->get(), SOL_SOCKET, SO_DOMAIN, "SO_DOMAIN");
    return domain && (*domain == AF_INET || *domain == AF_INET6);
  }

  Result<void> collect(const FdProbe& p, img::FileDesc* d) const override {
    UniqueFd f = TRY(take_file(p));
    const int fd = f.get();
    const CollectContext& ctx = *p.ctx;
    img::InetSocket* s = d->mutable_inet();
    s->set_family(static_cast<uint32_t>(TRY(get_int(fd, SOL_SOCKET, SO_DOMAIN, "SO_DOMAIN"))));
    s->set_type(static_cast<uint32_t>(TRY(get_int(fd, SOL_SOCKET, SO_TYPE, "SO_TYPE"))));
    s->set_protocol(static_cast<uint32_t>(TRY(get_int(fd, SOL_SOCKET, SO_PROTOCOL, "SO_PROTOCOL"))));
    s->set_inode(static_cast<uint32_t>(p.st.st_ino));
    const char* fam = s->family() == AF_INET ? "AF_INET" : "AF_INET6";
    if (s->type() == SOCK_RAW) return error(EOPNOTSUPP, "a raw {} socket (protocol {}): not supported", fam, s->protocol());
    if (!(s->type() == SOCK_STREAM && s->protocol() == IPPROTO_TCP) && !(s->type() == SOCK_DGRAM && s->protocol() == IPPROTO_UDP))
      return error(EOPNOTSUPP, "an {} socket of type {} and protocol {} (only TCP and UDP are): not supported", fam,
                   s->type(), s->protocol());
    // inet_diag lists the sockets of the hash tables: a socket neither
    // bound to a port nor connected (or bound without listening: TCP) is in
    // none, and is closed.
    InetDiag unlisted;
    unlisted.state = kClose;
    auto found = ctx.inet_sockets.by_inode.find(s->inode());
    if (found == ctx.inet_sockets.by_inode.end()) TRY(check_netns(fd, fam));
    const InetDiag& di = found == ctx.inet_sockets.by_inode.end() ? unlisted : found->second;
    s->set_state(di.state);
    s->set_shutdown(di.shutdown);
    sockaddr_storage ss{};
    socklen_t len = sizeof(ss);
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) < 0) return sys_error("getsockname");
    auto [laddr, lport] = from_sockaddr(ss);
    s->set_local_addr(laddr);
    s->set_local_port(lport);
    len = sizeof(ss);
    ss = {};
    if (getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) == 0) {
      auto [raddr, rport] = from_sockaddr(ss);
      s->set_remote_addr(raddr);
      s->set_remote_port(rport);
    } else if (errno != ENOTCONN) {
      return sys_error("getpeername");
    }
    TRY(collect_options(fd, *s, s->mutable_opts()));
    int peek = -1;
    socklen_t plen = sizeof(peek);
    if (getsockopt(fd, SOL_SOCKET, SO_PEEK_OFF, &peek, &plen) < 0) peek = -1;
    s->set_peek_off(peek);
    if (!is_tcp(*s)) {
      if (s->family() == AF_INET) TRY(collect_memberships(fd, s->mutable_opts()));
      else TRY(collect_memberships6(fd, s->mutable_opts()));
      uint64_t total = 0;
      return peek_datagrams(fd, s, &total);
    }
    switch (di.state) {
      case kClose: return {};
      case kListen: return collect_listener(di, ctx, s);
      case kSynSent: return error(EOPNOTSUPP, "{}: a connect() in progress: not supported", describe(*s));
      case kSynRecv:
      case kTimeWait: return error(EOPNOTSUPP, "{}: not supported", describe(*s));
      default: break;
    }
    if (TRY(pending_client(di, ctx, s))) return {};
    if (!ctx.tcp_established)
      return error(EOPNOTSUPP, "{}: an established TCP connection; dump it with --tcp-established (restored through "
                   "TCP_REPAIR)", describe(*s));
    if (!ctx.tcp_repairs) return error(EINVAL, "no one to hold the connection in repair mode");
    TRY_CTX(set_int(fd, IPPROTO_TCP, TCP_REPAIR, 1, "TCP_REPAIR (needs CAP_NET_ADMIN)"), "{}", describe(*s));
    // Held from now on: out of repair mode again if the dump fails.
    ctx.tcp_repairs->add(std::move(f), s->opts().reuseaddr());
    uint64_t total = 0;
    return repair_dump(fd, di.state, s->mutable_tcp(), &total);
  }

  Result<void> check(std::span<const img::FileDesc* const> descs,
                     std::span<const FdProbe* const> probes) const override {
    (void)probes;
    std::set<uint32_t> inodes;
    uint64_t queued = 0;
    for (const img::FileDesc* d : descs) {
      inodes.insert(d->inet().inode());
      for (const std::string& m : d->inet().queue()) queued += m.size();
      queued += d->inet().tcp().send_queue().size() + d->inet().tcp().recv_queue().size();
    }
    if (queued > kMaxInetQueuesBytes)
      return error(EFBIG, "the inet sockets of the tree have {} bytes queued in all, more than the {} ckpt keeps: not "
                   "supported", queued, kMaxInetQueuesBytes);
    // Which listener's queue each client of the tree waits in.
    std::set<std::tuple<uint32_t, std::string, uint32_t>> clients;  // listener, address, port
    for (const img::FileDesc* d : descs) {
      const img::InetSocket& s = d->inet();
      if (!s.reconnect()) continue;
      if (!inodes.contains(s.listener()))
        return error(EOPNOTSUPP, "{}: its connection waits in the accept queue of a listener outside the dumped tree "
                     "(socket [{}]): not supported", describe(s), s.listener());
      clients.insert({s.listener(), s.local_addr(), s.local_port()});
    }
    for (const img::FileDesc* d : descs) {
      const img::InetSocket& s = d->inet();
      for (const img::InetEndpoint& e : s.pending()) {
        if (clients.contains({s.inode(), e.addr(), e.port()})) continue;
        if (probes.empty() || !probes[0]->ctx || !probes[0]->ctx->skip_in_flight)
          return error(EOPNOTSUPP, "{}: a connection from {}, outside the dumped tree, waits in its accept queue: not "
                       "supported (--skip-in-flight drops it)", describe(s), endpoint(e.addr(), e.port()));
      }
    }
    return {};
  }

  Result<void> prepare(std::span<const img::FileDesc* const> descs, OpenState& state) const override {
    return Restorer(descs, state).run(tag());
  }

  Result<void> verify(const img::FileDesc& d) const override {
    const img::InetSocket& s = d.inet();
    auto bad = [&](std::string_view what) { return error(EINVAL, "{}: {}", describe(s), what); };
    if (s.family() != AF_INET && s.family() != AF_INET6) return bad("unknown family");
    if (!(s.type() == SOCK_STREAM && s.protocol() == IPPROTO_TCP) && !(s.type() == SOCK_DGRAM && s.protocol() == IPPROTO_UDP))
      return bad("neither TCP nor UDP");
    if (s.state() < kEstablished || s.state() > kClosing) return bad("unknown state");
    if (!is_tcp(s) && s.state() != kEstablished && s.state() != kClose) return bad("a UDP socket in a TCP state");
    const int family = static_cast<int>(s.family());
    std::array<uint8_t, 16> a;
    auto addr_ok = [&](const std::string& t, uint32_t port) { return port <= 65535 && (port == 0 || parse_addr(family, t, &a)); };
    if (!addr_ok(s.local_addr(), s.local_port()) || !addr_ok(s.remote_addr(), s.remote_port()))
      return bad("an address or port that is not one");
    if (s.shutdown() > 3) return bad("unknown shutdown bits");
    if (s.backlog() > INT_MAX || s.opts().sndbuf() > INT_MAX || s.opts().rcvbuf() > INT_MAX ||
        s.opts().keepidle() > INT_MAX || s.opts().keepintvl() > INT_MAX || s.opts().keepcnt() > INT_MAX ||
        s.opts().linger_s() > INT_MAX || s.opts().tos() > 255 || s.opts().ttl() > 255)
      return bad("an option out of range");
    if (s.opts().bind_dev().size() >= IFNAMSIZ) return bad("a device name longer than IFNAMSIZ");
    for (const img::InetMembership& m : s.opts().memberships())
      if (!parse_addr(family, m.group(), &a)) return bad("a multicast group that is not an address of its family");
    if (s.state() == kListen && (s.local_port() == 0 || !is_tcp(s))) return bad("a listener without a port");
    if (s.state() != kListen && s.pending_size()) return bad("pending connections without listening");
    for (const img::InetEndpoint& e : s.pending())
      if (!addr_ok(e.addr(), e.port()) || e.port() == 0) return bad("a pending connection without an address");
    if (is_tcp(s) && (s.queue_size() || s.senders_size())) return bad("datagrams queued on a TCP socket");
    if (s.senders_size() != s.queue_size()) return bad("senders that are not one per queued datagram");
    for (const img::InetEndpoint& e : s.senders())
      if (!(e.addr().empty() && e.port() == 0) && !addr_ok(e.addr(), e.port())) return bad("a sender that is not an address");
    if (s.queue_size() && s.local_port() == 0) return bad("datagrams queued on an unbound socket");
    uint64_t bytes = 0;
    for (const std::string& m : s.queue()) {
      if (m.size() > 65535) return bad("a datagram larger than 64 KiB");
      bytes += m.size();
    }
    if (s.has_tcp()) {
      const img::TcpRepair& t = s.tcp();
      if (!is_tcp(s) || !connection_state(s.state())) return bad("repair data for a socket that is no connection");
      if (s.local_port() == 0 || s.remote_port() == 0) return bad("a connection without its addresses");
      if (t.unsent() > t.send_queue().size()) return bad("more unsent bytes than its send queue holds");
      if (t.fin_sent() != fin_sent(s.state()) || t.fin_received() != fin_received(s.state()))
        return bad("FIN flags that do not match its state");
      if (t.snd_wscale() > 14 || t.rcv_wscale() > 14 || t.mss() > 65535) return bad("options out of range");
      bytes += t.send_queue().size() + t.recv_queue().size();
    } else if (is_tcp(s) && connection_state(s.state()) && !s.reconnect()) {
      return bad("a connection without its repair data");
    }
    if (s.reconnect() && (!is_tcp(s) || s.state() != kEstablished || s.remote_port() == 0 || s.local_port() == 0))
      return bad("a client to connect again that is not an established TCP socket");
    if (bytes > kMaxInetQueuesBytes) return bad(fmt::format("{} bytes queued, more than {}", bytes, kMaxInetQueuesBytes));
    return {};
  }

  Result<UniqueFd> open(const img::FileDesc& d, OpenState& state) const override {
    UniqueFd fd = state.take(tag(), d.inet().inode());
    if (!fd) return error(EINVAL, "{} was not made", describe(d.inet()));
    return fd;
  }

 private:
  Result<void> collect_listener(const InetDiag& di, const CollectContext& ctx, img::InetSocket* s) const {
    s->set_backlog(di.wqueue);
    std::array<uint8_t, 16> local;
    parse_addr(static_cast<int>(s->family()), s->local_addr(), &local);
    uint32_t queued = 0;
    for (const InetDiag& c : ctx.inet_sockets.fileless) {
      if (c.protocol != IPPROTO_TCP || c.family != di.family || c.sport != di.sport) continue;
      if (!is_any(local, di.family) && !same_addr(c, local, false)) continue;
      const std::string from = endpoint(addr_text(c.family, c.dst.data()), c.dport);
      if (c.state == kSynRecv) {
        if (ctx.skip_in_flight) continue;
        return error(EOPNOTSUPP, "{}: a connection from {} in its handshake: not supported (--skip-in-flight drops "
                     "it)", describe(*s), from);
      }
      if (c.state != kEstablished) continue;  // closed since: nothing to accept
      queued++;
      if (c.rqueue && !ctx.skip_in_flight)
        return error(EOPNOTSUPP, "{}: {} bytes sent by {} wait in a connection not yet accepted: not supported "
                     "(--skip-in-flight drops it)", describe(*s), c.rqueue, from);
      img::InetEndpoint* e = s->add_pending();
      e->set_addr(addr_text(c.family, c.dst.data()));
      e->set_port(c.dport);
    }
    (void)queued;
    return {};
  }

  // A client of this namespace whose connection waits in a listener's queue
  // (the accepted end has no file yet): it connects again at restore, if it
  // sent nothing.
  Result<bool> pending_client(const InetDiag& di, const CollectContext& ctx, img::InetSocket* s) const {
    if (di.state != kEstablished) return false;
    for (const InetDiag& c : ctx.inet_sockets.fileless) {
      if (c.protocol != IPPROTO_TCP || c.family != di.family || c.state != kEstablished) continue;
      if (c.sport != di.dport || c.dport != di.sport || !same_addr(c, di.src, true) || !same_addr(c, di.dst, false))
        continue;
      // Its listener: on that port, at that address or any.
      for (const auto& [inode, l] : ctx.inet_sockets.by_inode) {
        if (l.protocol != IPPROTO_TCP || l.state != kListen || l.family != di.family || l.sport != c.sport) continue;
        if (!is_any(l.src, l.family) && !same_addr(l, c.src, false)) continue;
        if (c.rqueue || di.rqueue || di.wqueue || di.shutdown)
          return error(EOPNOTSUPP, "{}: data or a shutdown on a connection not yet accepted: not supported",
                       describe(*s));
        s->set_reconnect(true);
        s->set_listener(inode);
        return true;
      }
    }
    return false;
  }
};

}  // namespace

Result<void> TcpRepairs::leave() {
  Result<void> out;
  for (Held& h : fds_) {
    if (!h.fd) continue;
    const int off = 0, reuse = h.reuseaddr;
    if (setsockopt(h.fd.get(), IPPROTO_TCP, TCP_REPAIR, &off, sizeof(off)) < 0 && out) out = sys_error("leave TCP_REPAIR");
    if (setsockopt(h.fd.get(), SOL_SOCKET, SO_REUSEADDR, &reuse, sizeof(reuse)) < 0 && out)
      out = sys_error("put SO_REUSEADDR back");
  }
  fds_.clear();
  return out;
}

Result<void> leave_repair(std::vector<RepairedSocket>& socks) {
  for (RepairedSocket& r : socks) {
    const int off = 0;
    if (setsockopt(r.fd.get(), IPPROTO_TCP, TCP_REPAIR, &off, sizeof(off)) < 0) return sys_error("leave TCP_REPAIR");
    TRY(set_int(r.fd.get(), SOL_SOCKET, SO_REUSEADDR, r.reuseaddr, "SO_REUSEADDR"));
    if (r.unsent.empty()) continue;
    // Room for it beside what repair queued, whatever the task's buffer.
    const int queued = TRY(ioctl_int(r.fd.get(), SIOCOUTQ, "SIOCOUTQ"));
    TRY(make_room(r.fd.get(), SO_SNDBUF, SO_SNDBUFFORCE, static_cast<uint64_t>(queued) + r.unsent.size(),
                  "SO_SNDBUFFORCE"));
    TRY(send_all(r.fd.get(), r.unsent, "unsent bytes"));
    if (r.sndbuf && static_cast<int>(r.sndbuf) != TRY(get_int(r.fd.get(), SOL_SOCKET, SO_SNDBUF, "SO_SNDBUF")))
      TRY(set_int(r.fd.get(), SOL_SOCKET, SO_SNDBUFFORCE, static_cast<int>(r.sndbuf / 2), "SO_SNDBUFFORCE"));
  }
  socks.clear();
  return {};
}

std::string show_inet_socket(const img::InetSocket& s) {
  std::string out = describe(s);
  if (s.state() == kListen)
    out += fmt::format(", backlog {}, {} connection{} to accept", s.backlog(), s.pending_size(),
                       s.pending_size() == 1 ? "" : "s");
  if (s.has_tcp())
    out += fmt::format(", {} bytes to send ({} not sent yet), {} to read{}{}", s.tcp().send_queue().size(),
                       s.tcp().unsent(), s.tcp().recv_queue().size(), s.tcp().fin_sent() ? ", FIN sent" : "",
                       s.tcp().fin_received() ? ", FIN received" : "");
  if (s.reconnect()) out += fmt::format(", waits in the accept queue of socket [{}]", s.listener());
  if (s.queue_size()) {
    uint64_t bytes = 0;
    for (const std::string& m : s.queue()) bytes += m.size();
    out += fmt::format(", {} datagram{} ({} bytes) to read", s.queue_size(), s.queue_size() == 1 ? "" : "s", bytes);
  }
  if (s.shutdown()) out += fmt::format(", shut down {}", s.shutdown() == 3 ? "both ways" : s.shutdown() == 2 ? "for writing" : "for reading");
  return out;
}

std::vector<net::Connection> tcp_connections(const img::FileDescs& descs) {
  std::vector<net::Connection> out;
  for (const img::FileDesc& d : descs.descs()) {
    if (!d.has_inet() || !d.inet().has_tcp()) continue;
    const img::InetSocket& s = d.inet();
    net::Connection c{.family = static_cast<int>(s.family())};
    if (!parse_addr(c.family, s.local_addr(), &c.local_addr) || !parse_addr(c.family, s.remote_addr(), &c.remote_addr))
      continue;
    c.local_port = static_cast<uint16_t>(s.local_port());
    c.remote_port = static_cast<uint16_t>(s.remote_port());
    out.push_back(c);
  }
  return out;
}

const Kind& inet_socket_kind() {
  static const InetSocketKind k;
  return k;
}

}  // namespace ckpt::files
