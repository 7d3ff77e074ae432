#include "image/socket_sink.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <signal.h>
#include <unistd.h>

#include <cstring>

#include "base/fs.h"
#include "image/crc32c.h"
#include "image/page_wire.h"

namespace ckpt::image {

namespace {

Result<void> read_exact(int fd, void* p, size_t n, const std::string& peer) {
  TRY_CTX(ckpt::read_exact(fd, p, n), "page server {}", peer);
  return {};
}

class SocketPageSink final : public PageSink {
 public:
  SocketPageSink(int fd, std::string name, std::string peer)
      : fd_(fd), file_(std::move(name)), name_(fmt::format("{} on page server {}", file_, peer)), peer_(std::move(peer)) {}
  const std::string& name() const override { return name_; }
  int fd() const override { return fd_; }

 private:
  Result<void> start(uint64_t bytes) override {
    const WireHeader h = wire_header(kWireFile, file_, bytes);
    length_ = bytes;
    return write_all(fd_, &h, sizeof h);
  }
  Result<void> finish() override {
    WireEnd e{};
    std::memcpy(e.magic, kWireEndMagic, sizeof e.magic);
    e.length = length_;
    TRY_CTX(write_all(fd_, &e, sizeof e), "{}", name_);
    WireStatus st{};
    TRY_CTX(read_exact(fd_, &st, sizeof st, peer_), "{}", file_);
    if (st.err) return error(st.err, "page server {} refused {}", peer_, file_);
    return {};
  }
  int fd_;
  std::string file_, name_, peer_;
  uint64_t length_ = 0;
};

}  // namespace

WireHeader wire_header(WireKind kind, const std::string& name, uint64_t length) {
  WireHeader h{};
  std::memcpy(h.magic, kWireMagic, sizeof h.magic);
  h.kind = kind;
  h.name_len = static_cast<uint32_t>(std::min(name.size(), kWireMaxName));
  h.length = length;
  std::memcpy(h.name, name.data(), h.name_len);
  h.crc = crc32c(&h, offsetof(WireHeader, crc));
  return h;
}

Result<PageServerConn> PageServerConn::connect(const std::string& address, uint16_t port,
                                               const std::optional<WireKey>& key) {
  // A server that goes away must fail the write (EPIPE, an error naming it)
  // and leave the dump to undo its work, not kill ckpt mid-way. (dump only:
  // restore never connects, so the tasks it forks inherit nothing of this.)
  signal(SIGPIPE, SIG_IGN);
  const std::string peer = fmt::format("{}:{}", address, port);
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (int e = getaddrinfo(address.c_str(), std::to_string(port).c_str(), &hints, &res); e != 0)
    return error(EINVAL, "page server {}: {}", peer, gai_strerror(e));
  Error last{ECONNREFUSED, fmt::format("connect to page server {}", peer)};
  for (addrinfo* a = res; a; a = a->ai_next) {
    UniqueFd fd(socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol));
    if (!fd) continue;
    if (::connect(fd.get(), a->ai_addr, a->ai_addrlen) == 0) {
      freeaddrinfo(res);
      int one = 1;  // frames and their answers go at once (Nagle would hold them for an ACK)
      (void)setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      WireConn conn = TRY(WireConn::client(std::move(fd), key, fmt::format("page server {}", peer)));
      return PageServerConn(std::move(conn), peer);
    }
    last = Error{errno, fmt::format("connect to page server {}", peer)};
  }
  freeaddrinfo(res);
  return std::unexpected(last);
}

std::unique_ptr<PageSink> PageServerConn::sink(const std::string& name) {
  return std::make_unique<SocketPageSink>(conn_.get(), name, peer_);
}

Result<void> PageServerConn::done() {
  const WireHeader h = wire_header(kWireDone, "", 0);
  TRY_CTX(write_all(conn_.get(), &h, sizeof h), "page server {}", peer_);
  WireStatus st{};
  TRY(read_exact(conn_.get(), &st, sizeof st, peer_));
  if (st.err) return error(st.err, "page server {} refused the end of the session", peer_);
  return {};
}

Result<void> PageServerConn::begin_round(const std::string& name) {
  const WireHeader h = wire_header(kWireRound, name, 0);
  TRY_CTX(write_all(conn_.get(), &h, sizeof h), "migrate to {}", peer_);
  WireStatus st{};
  TRY(read_exact(conn_.get(), &st, sizeof st, peer_));
  if (st.err) return error(st.err, "{} refused round {}", peer_, name);
  return {};
}

Result<uint64_t> PageServerConn::send_file(const ImageDir& dir, const std::string& name) {
  UniqueFd in = TRY(dir.open_read(name));
  struct stat st;
  if (fstat(in.get(), &st) < 0) return sys_error("{}", dir.file(name));
  const uint64_t length = static_cast<uint64_t>(st.st_size);
  const WireHeader h = wire_header(kWireFile, name, length);
  TRY_CTX(write_all(conn_.get(), &h, sizeof h), "send {} to {}", name, peer_);
  for (off_t off = 0; static_cast<uint64_t>(off) < length;) {
    ssize_t n = sendfile(conn_.get(), in.get(), &off, length - static_cast<uint64_t>(off));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return n < 0 ? sys_error("send {} to {}", name, peer_) : error(EIO, "{} shrank while sent", dir.file(name));
  }
  WireEnd e{};
  std::memcpy(e.magic, kWireEndMagic, sizeof e.magic);
  e.length = length;
  TRY_CTX(write_all(conn_.get(), &e, sizeof e), "send {} to {}", name, peer_);
  WireStatus s{};
  TRY(read_exact(conn_.get(), &s, sizeof s, peer_));
  if (s.err) return error(s.err, "{} refused {}", peer_, name);
  return length + sizeof h + sizeof e;
}

Result<pid_t> PageServerConn::restore(const std::string& name) {
  const WireHeader h = wire_header(kWireRestore, name, 0);
  TRY_CTX(write_all(conn_.get(), &h, sizeof h), "migrate to {}", peer_);
  WireRestored r{};
  TRY(read_exact(conn_.get(), &r, sizeof r, peer_));
  r.message[sizeof r.message - 1] = '\0';
  if (r.err) return error(r.err, "restore on {}: {}", peer_, r.message);
  return r.pid;
}

}  // namespace ckpt::image
