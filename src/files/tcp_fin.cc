#include "files/tcp_fin.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/ip6.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <chrono>
#include <cstring>
#include <thread>

#include "base/unique_fd.h"
#include "net/connection.h"

namespace ckpt::files {

namespace {

// The one's complement sum of RFC 1071, over several pieces.
class Checksum {
 public:
  void add(const void* data, size_t n) {
    const auto* p = static_cast<const uint8_t*>(data);
    for (size_t i = 0; i < n; i++) sum_ += (i + odd_) % 2 ? p[i] : static_cast<uint32_t>(p[i]) << 8;
    odd_ = (odd_ + n) % 2;
  }
  uint16_t done() const {
    uint32_t s = sum_;
    while (s >> 16) s = (s & 0xffff) + (s >> 16);
    return htons(static_cast<uint16_t>(~s));
  }

 private:
  uint32_t sum_ = 0;
  size_t odd_ = 0;
};

tcphdr segment(const PeerFin& f) {
  tcphdr t{};
  t.source = htons(f.remote_port);
  t.dest = htons(f.local_port);
  t.seq = htonl(f.seq);
  t.ack_seq = htonl(f.ack);
  t.doff = sizeof(tcphdr) / 4;
  t.fin = f.fin ? 1 : 0;
  t.ack = 1;
  t.window = htons(f.window);
  return t;
}

Result<void> send_v4(const PeerFin& f) {
  int raw = socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW);  // IP_HDRINCL
  if (raw < 0) return sys_error("raw socket (needs CAP_NET_RAW)");
  UniqueFd s(raw);
  const int mark = static_cast<int>(net::kRepairMark);
  if (setsockopt(raw, SOL_SOCKET, SO_MARK, &mark, sizeof(mark)) < 0) return sys_error("setsockopt SO_MARK");
  struct {
    iphdr ip;
    tcphdr tcp;
  } pkt{};
  pkt.tcp = segment(f);
  Checksum c;
  c.add(f.remote.data(), 4);
  c.add(f.local.data(), 4);
  const uint8_t proto[2] = {0, IPPROTO_TCP};
  const uint16_t len = htons(sizeof(tcphdr));
  c.add(proto, 2);
  c.add(&len, 2);
  c.add(&pkt.tcp, sizeof(tcphdr));
  pkt.tcp.check = c.done();
  pkt.ip.version = 4;
  pkt.ip.ihl = sizeof(iphdr) / 4;
  pkt.ip.ttl = 64;
  pkt.ip.protocol = IPPROTO_TCP;
  pkt.ip.tot_len = htons(sizeof(pkt));  // the kernel fills in the id and checksum
  memcpy(&pkt.ip.saddr, f.remote.data(), 4);
  memcpy(&pkt.ip.daddr, f.local.data(), 4);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  memcpy(&to.sin_addr, f.local.data(), 4);
  if (sendto(raw, &pkt, sizeof(pkt), 0, reinterpret_cast<sockaddr*>(&to), sizeof(to)) < 0)
    return sys_error("send the {}", f.fin ? "FIN" : "ACK of its FIN");
  return {};
}

Result<void> send_v6(const PeerFin& f) {
  int raw = socket(AF_INET6, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW);  // the header is ours (IPV6_HDRINCL)
  if (raw < 0) return sys_error("raw IPv6 socket (needs CAP_NET_RAW)");
  UniqueFd s(raw);
  const int mark = static_cast<int>(net::kRepairMark);
  if (setsockopt(raw, SOL_SOCKET, SO_MARK, &mark, sizeof(mark)) < 0) return sys_error("setsockopt SO_MARK");
  struct {
    ip6_hdr ip;
    tcphdr tcp;
  } pkt{};
  pkt.tcp = segment(f);
  Checksum c;
  c.add(f.remote.data(), 16);
  c.add(f.local.data(), 16);
  const uint32_t len = htonl(sizeof(tcphdr));
  const uint8_t next[4] = {0, 0, 0, IPPROTO_TCP};
  c.add(&len, 4);
  c.add(next, 4);
  c.add(&pkt.tcp, sizeof(tcphdr));
  pkt.tcp.check = c.done();
  pkt.ip.ip6_flow = htonl(6u << 28);
  pkt.ip.ip6_plen = htons(sizeof(tcphdr));
  pkt.ip.ip6_nxt = IPPROTO_TCP;
  pkt.ip.ip6_hlim = 64;
  memcpy(&pkt.ip.ip6_src, f.remote.data(), 16);
  memcpy(&pkt.ip.ip6_dst, f.local.data(), 16);
  sockaddr_in6 to{};
  to.sin6_family = AF_INET6;
  memcpy(&to.sin6_addr, f.local.data(), 16);
  if (sendto(raw, &pkt, sizeof(pkt), 0, reinterpret_cast<sockaddr*>(&to), sizeof(to)) < 0)
    return sys_error("send the {}", f.fin ? "FIN" : "ACK of its FIN");
  return {};
}

uint8_t state_of(int sock) {
  tcp_info info{};
  socklen_t len = sizeof(info);
  if (getsockopt(sock, IPPROTO_TCP, TCP_INFO, &info, &len) < 0) return 0;
  return info.tcpi_state;
}

}  // namespace

Result<void> deliver_peer_fin(int sock, const PeerFin& fin, uint8_t want) {
  TRY(fin.family == AF_INET ? send_v4(fin) : send_v6(fin));
  // The loopback device hands it to the socket from a softirq: soon, not
  // within sendto.
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  uint8_t now = state_of(sock);
  while (now != want && std::chrono::steady_clock::now() < end) {
    std::this_thread::sleep_for(std::chrono::microseconds(200));
    now = state_of(sock);
  }
  if (now != want)
    return error(EPROTO, "the {} sent again as its peer's (sequence {}, acknowledging {}) did not take: state {}, "
                 "expected {}", fin.fin ? "FIN" : "ACK of its FIN", fin.seq, fin.ack, now, want);
  return {};
}

}  // namespace ckpt::files
