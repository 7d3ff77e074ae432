#include "image/socket_sink.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <signal.h>
#include <unistd.h>

#include <cstring>

#include "base/fs.h"
#include "image/crc32c.h"
#include "image/page_wire.h"

namespace ckpt::image {

namespace {

Result<void> read_exact(int fd, void* p, size_t n, const std::string& peer) {
  auto* c = static_cast<char*>(p);
  while (n > 0) {
    ssize_t r = read(fd, c, n);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return sys_error("page server {}", peer);
    if (r == 0) return error(ECONNRESET, "page server {} closed the connection", peer);
    c += r;
    n -= static_cast<size_t>(r);
  }
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
    WireHeader h{};
    std::memcpy(h.magic, kWireMagic, sizeof h.magic);
    h.kind = kWireFile;
    h.name_len = static_cast<uint32_t>(file_.size());
    h.length = bytes;
    std::memcpy(h.name, file_.data(), std::min(file_.size(), kWireMaxName));
    h.crc = crc32c(&h, offsetof(WireHeader, crc));
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

Result<PageServerConn> PageServerConn::connect(const std::string& address, uint16_t port) {
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
      return PageServerConn(std::move(fd), peer);
    }
    last = Error{errno, fmt::format("connect to page server {}", peer)};
  }
  freeaddrinfo(res);
  return std::unexpected(last);
}

std::unique_ptr<PageSink> PageServerConn::sink(const std::string& name) {
  return std::make_unique<SocketPageSink>(fd_.get(), name, peer_);
}

Result<void> PageServerConn::done() {
  WireHeader h{};
  std::memcpy(h.magic, kWireMagic, sizeof h.magic);
  h.kind = kWireDone;
  h.crc = crc32c(&h, offsetof(WireHeader, crc));
  TRY_CTX(write_all(fd_.get(), &h, sizeof h), "page server {}", peer_);
  WireStatus st{};
  TRY(read_exact(fd_.get(), &st, sizeof st, peer_));
  if (st.err) return error(st.err, "page server {} refused the end of the session", peer_);
  return {};
}

}  // namespace ckpt::image
