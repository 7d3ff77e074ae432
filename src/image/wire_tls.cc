#include "image/wire_tls.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <thread>
#include <vector>

#include "image/openssl.h"

namespace ckpt::image {

namespace {

constexpr size_t kBuf = 256 << 10;
// A relay whose user is gone gives the peer this long to take what is left.
constexpr int kFlushTimeoutMs = 30'000;

struct SslFree {
  const OpenSsl* o = nullptr;
  void operator()(SSL* s) const { o->SSL_free(s); }
  void operator()(SSL_CTX* c) const { o->SSL_CTX_free(c); }
};

std::string ssl_error(const OpenSsl& o, const char* what) {
  const unsigned long e = o.ERR_get_error();
  char buf[256] = "";
  if (e) o.ERR_error_string_n(e, buf, sizeof buf);
  o.ERR_clear_error();
  return fmt::format("TLS {}: {}", what, e ? buf : std::strerror(errno));
}

// The TLS pre-shared key: derived from the key file (which may be up to
// 4 KiB; OpenSSL's PSK callbacks take at most 512 bytes) under a label of
// its own, so it is never the value the wire_auth handshake's MACs use.
using Psk = Sha256;
Psk derive_psk(const OpenSsl& o, const WireKey& key) { return hmac_sha256(o, key.secret, "ckpt tls 1.3 psk"); }

constexpr char kIdentity[] = "ckpt";

// The key the relay set as the connection's data (index 0, SSL_set_app_data's):
// OpenSSL is open by then.
const Psk* psk_of(SSL* ssl) { return static_cast<const Psk*>((*openssl())->SSL_get_ex_data(ssl, 0)); }

unsigned client_psk(SSL* ssl, const char*, char* identity, unsigned max_identity, unsigned char* psk, unsigned max_psk) {
  const Psk* p = psk_of(ssl);
  if (max_identity < sizeof kIdentity || max_psk < p->size()) return 0;
  std::memcpy(identity, kIdentity, sizeof kIdentity);
  std::memcpy(psk, p->data(), p->size());
  return static_cast<unsigned>(p->size());
}

unsigned server_psk(SSL* ssl, const char* identity, unsigned char* psk, unsigned max_psk) {
  const Psk* p = psk_of(ssl);
  if (!identity || std::strcmp(identity, kIdentity) != 0 || max_psk < p->size()) return 0;
  std::memcpy(psk, p->data(), p->size());
  return static_cast<unsigned>(p->size());
}

}  // namespace

struct WireConn::Relay {
  const OpenSsl* o;
  std::unique_ptr<SSL_CTX, SslFree> ctx;
  std::unique_ptr<SSL, SslFree> ssl;
  Psk psk;
  UniqueFd net, mine, theirs;  // theirs: the user's end
  std::thread thread;

  // Moves bytes both ways until the user's end and the peer are both done,
  // or either fails; then the user's end reads EOF (writes fail).
  void run() {
    fcntl(net.get(), F_SETFL, fcntl(net.get(), F_GETFL) | O_NONBLOCK);
    fcntl(mine.get(), F_SETFL, fcntl(mine.get(), F_GETFL) | O_NONBLOCK);
    std::vector<char> out(kBuf), in(kBuf);  // user -> peer, peer -> user
    size_t out_off = 0, out_len = 0, in_off = 0, in_len = 0;
    bool user_eof = false, user_gone = false, peer_eof = false, sent_close = false, shut_user = false;
    for (;;) {
      short want_net = 0;
      for (bool progress = true; progress;) {
        progress = false;
        if (out_len == 0 && !user_eof) {
          const ssize_t n = read(mine.get(), out.data(), out.size());
          if (n > 0) out_off = 0, out_len = static_cast<size_t>(n), progress = true;
          else if (n == 0 || errno != EAGAIN) user_eof = progress = true;
        }
        if (out_len) {
          const int r = o->SSL_write(ssl.get(), out.data() + out_off, static_cast<int>(out_len));
          if (r > 0) {
            out_off += static_cast<size_t>(r), out_len -= static_cast<size_t>(r), progress = true;
          } else {
            const int e = o->SSL_get_error(ssl.get(), r);
            if (e == SSL_ERROR_WANT_READ) want_net |= POLLIN;
            else if (e == SSL_ERROR_WANT_WRITE) want_net |= POLLOUT;
            else return;  // the peer is gone or broke the stream: the user reads EOF
          }
        }
        if (in_len == 0 && !peer_eof) {
          const int r = o->SSL_read(ssl.get(), in.data(), static_cast<int>(in.size()));
          if (r > 0) {
            in_off = 0, in_len = static_cast<size_t>(r), progress = true;
          } else {
            const int e = o->SSL_get_error(ssl.get(), r);
            if (e == SSL_ERROR_WANT_READ) want_net |= POLLIN;
            else if (e == SSL_ERROR_WANT_WRITE) want_net |= POLLOUT;
            else if (e == SSL_ERROR_ZERO_RETURN) peer_eof = progress = true;
            else return;
          }
        }
        if (in_len && !user_gone) {
          const ssize_t n = send(mine.get(), in.data() + in_off, in_len, MSG_NOSIGNAL | MSG_DONTWAIT);
          if (n > 0) in_off += static_cast<size_t>(n), in_len -= static_cast<size_t>(n), progress = true;
          else if (n < 0 && errno != EAGAIN) user_gone = progress = true;
        }
        if (user_gone) in_len = 0;  // nobody reads it
      }
      if (user_eof && out_len == 0 && !sent_close) {
        (void)o->SSL_shutdown(ssl.get());  // close_notify: the peer reads EOF; we may still read
        sent_close = true;
      }
      if (peer_eof && in_len == 0 && !shut_user) {
        (void)shutdown(mine.get(), SHUT_WR);
        shut_user = true;
      }
      if (sent_close && (user_gone || (peer_eof && in_len == 0))) return;
      pollfd fds[2] = {{mine.get(), 0, 0}, {net.get(), want_net, 0}};
      fds[0].events = static_cast<short>((out_len == 0 && !user_eof ? POLLIN : 0) | (in_len && !user_gone ? POLLOUT : 0));
      if (user_gone && !fds[0].events) fds[0].fd = -1;
      if (in_len == 0 && !peer_eof) fds[1].events |= POLLIN;
      const int n = poll(fds, 2, user_eof ? kFlushTimeoutMs : -1);
      if (n == 0) return;  // the peer took nothing for that long after our user went
      if (n < 0 && errno != EINTR) return;
      // The user closed its end: nobody reads what comes any more, but what
      // it wrote before is still to be read (and sent).
      if (fds[0].revents & (POLLHUP | POLLERR)) user_gone = true;
    }
  }
};

WireConn::WireConn() = default;
WireConn::WireConn(WireConn&&) noexcept = default;

WireConn& WireConn::operator=(WireConn&& o) noexcept {
  if (this != &o) {
    close();
    peer_ = std::move(o.peer_);
    net_ = std::move(o.net_);
    relay_ = std::move(o.relay_);
  }
  return *this;
}

WireConn::~WireConn() { close(); }

void WireConn::close() {
  if (!relay_) return;
  // Our end goes: the relay sends what was written, says close_notify, ends.
  relay_->theirs.reset();
  if (relay_->thread.joinable()) relay_->thread.join();
  relay_.reset();
}

int WireConn::get() const { return relay_ ? relay_->theirs.get() : net_.get(); }

Result<WireConn> WireConn::server(UniqueFd net, const std::optional<WireKey>& key, const std::string& peer) {
  TRY(wire_hello_server(net.get(), key, peer));
  return after_hello(std::move(net), key, true, peer);
}

Result<WireConn> WireConn::client(UniqueFd net, const std::optional<WireKey>& key, const std::string& peer) {
  TRY(wire_hello_client(net.get(), key, peer));
  return after_hello(std::move(net), key, false, peer);
}

Result<WireConn> WireConn::after_hello(UniqueFd net, const std::optional<WireKey>& key, bool server,
                                       const std::string& peer) {
  WireConn c;
  if (key && key->tls) c = TRY(secure(std::move(net), *key, server, peer));
  else c.net_ = std::move(net);
  c.peer_ = peer;
  return c;
}

Result<WireConn> WireConn::secure(UniqueFd net, const WireKey& key, bool server, const std::string& peer) {
  signal(SIGPIPE, SIG_IGN);  // OpenSSL writes the socket with write(2): a peer gone is an error, not a signal
  const OpenSsl& o = *TRY(openssl());
  auto r = std::make_unique<Relay>();
  r->o = &o;
  r->psk = derive_psk(o, key);
  // OpenSSL's macros, spelled out: they call SSL_CTX_ctrl, and so do these.
  auto ctrl = [&](int cmd, long arg) { return o.SSL_CTX_ctrl(r->ctx.get(), cmd, arg, nullptr); };
  r->ctx = {o.SSL_CTX_new(server ? o.TLS_server_method() : o.TLS_client_method()), SslFree{&o}};
  if (!r->ctx) return error(EPROTO, "{}: {}", peer, ssl_error(o, "context"));
  // TLS 1.3 only, with the SHA-256 suite a PSK of these callbacks pairs with.
  if (ctrl(SSL_CTRL_SET_MIN_PROTO_VERSION, TLS1_3_VERSION) != 1 ||
      o.SSL_CTX_set_ciphersuites(r->ctx.get(), "TLS_AES_128_GCM_SHA256") != 1)
    return error(EPROTO, "{}: {}", peer, ssl_error(o, "setup"));
  ctrl(SSL_CTRL_MODE, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  o.SSL_CTX_set_num_tickets(r->ctx.get(), 0);  // sessions are never resumed
  // Records are read as many as have come, not one read(2) each.
  ctrl(SSL_CTRL_SET_READ_AHEAD, 1);
  o.SSL_CTX_set_default_read_buffer_len(r->ctx.get(), kBuf);
  r->ssl = {o.SSL_new(r->ctx.get()), SslFree{&o}};
  if (!r->ssl || o.SSL_set_fd(r->ssl.get(), net.get()) != 1)
    return error(EPROTO, "{}: {}", peer, ssl_error(o, "setup"));
  o.SSL_set_ex_data(r->ssl.get(), 0, &r->psk);
  if (server) o.SSL_set_psk_server_callback(r->ssl.get(), server_psk);
  else o.SSL_set_psk_client_callback(r->ssl.get(), client_psk);
  {
    HandshakeTimeout timeout(net.get());
    if ((server ? o.SSL_accept(r->ssl.get()) : o.SSL_connect(r->ssl.get())) != 1)
      return error(EACCES, "{}: {} (do both ends run with --tls and the same --psk-file?)", peer,
                   ssl_error(o, "handshake"));
  }
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) return sys_error("socketpair for TLS");
  r->mine = UniqueFd(sv[0]);
  r->theirs = UniqueFd(sv[1]);
  // Room for a few MiB each way: the user and the relay wake each other
  // less often (a page server's TCP socket has as much).
  for (int fd : sv) {
    int size = 4 << 20;
    (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
  }
  r->net = std::move(net);
  r->thread = std::thread([relay = r.get()] {
    relay->run();
    relay->mine.reset();  // the user reads EOF, or fails to write
  });
  WireConn c;
  c.relay_ = std::move(r);
  return c;
}

}  // namespace ckpt::image
