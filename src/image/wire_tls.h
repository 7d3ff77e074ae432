// A page server's or migrate's connection once the handshake of
// image/wire_auth.h is through: the TCP socket itself, or with --tls the
// local end of a relay that carries every byte under TLS 1.3 (OpenSSL),
// keyed by the --psk-file both ends hold (an external PSK with ephemeral
// key exchange: what is recorded on the path can't be read later even with
// the key).
//
// Why a relay: ckpt moves pages zero-copy (splice from the parasite's pipes,
// sendfile from files), which needs a file descriptor, and this kernel has
// no kTLS to encrypt inside the socket. So the user of the connection gets
// one end of a unix socket pair and reads, writes, splices and sendfiles on
// it as on the TCP socket; a thread moves the bytes between its other end
// and TLS (SSL_read, SSL_write), both ways, until either side ends. The cost
// is the encryption and one copy more; without --tls nothing changes.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "base/result.h"
#include "base/unique_fd.h"
#include "image/wire_auth.h"

namespace ckpt::image {

class WireConn {
 public:
  WireConn();
  WireConn(WireConn&&) noexcept;
  WireConn& operator=(WireConn&&) noexcept;
  ~WireConn();

  // Where the session's bytes are read and written.
  int get() const;
  // The other end, for messages.
  const std::string& peer() const { return peer_; }

  // The two ends of a session on a connected socket: the handshake with
  // `key`, then TLS if the key says so. `peer` names the other end in errors.
  static Result<WireConn> server(UniqueFd net, const std::optional<WireKey>& key, const std::string& peer);
  static Result<WireConn> client(UniqueFd net, const std::optional<WireKey>& key, const std::string& peer);

 private:
  struct Relay;
  // The session once the handshake is through: the socket, or TLS over it.
  static Result<WireConn> after_hello(UniqueFd net, const std::optional<WireKey>& key, bool server,
                                      const std::string& peer);
  static Result<WireConn> secure(UniqueFd net, const WireKey& key, bool server, const std::string& peer);
  void close();
  std::string peer_;
  UniqueFd net_;                  // plain: the socket
  std::unique_ptr<Relay> relay_;  // --tls
};

}  // namespace ckpt::image
