// Who may speak to a page server or a migrate destination: with --psk-file
// on both ends, each proves it holds the same secret before a byte of a
// checkpoint moves, so a stranger who can reach the port can neither push a
// checkpoint that the destination would restore as root, nor pose as the
// destination and receive a process's memory. Without it, the connection is
// for a trusted link, as before; a mismatch (one end with a key, the other
// without) is refused by both, with a message that says which.
//
// The server speaks first, with a hello (magic, version, whether it wants a
// key, a random nonce). With a key, the client answers its own nonce and
// HMAC-SHA256(key, "ckpt client" | server nonce | client nonce); the server
// checks it and answers a verdict with HMAC-SHA256(key, "ckpt server" |
// client nonce | server nonce), which the client checks. Fresh nonces on
// both sides: neither proof can be replayed into another session.
//
// The hello also says whether the server wants --tls; a client that does
// not agree refuses, as for the key. This handshake alone does not encrypt,
// nor protect the frames after it from someone on the path who can inject
// into the TCP stream (the page data are still checked by their checksums
// at restore): with --tls on both ends, TLS does (image/wire_tls.h).
#pragma once

#include <ctime>
#include <optional>
#include <string>

#include "base/result.h"

namespace ckpt::image {

struct WireKey {
  std::string secret;
  bool tls = false;  // --tls: the session goes on under TLS keyed by it (image/wire_tls.h)
};

// The key in `path` (empty: none), for TLS too if `tls`. Refused unless it
// is a regular file of ckpt's user that no one else may read or write, of
// 16 to 4096 bytes (a trailing newline is not part of it).
Result<std::optional<WireKey>> load_wire_key(const std::string& path, bool tls = false);

// The receive timeout of a handshake on `fd` while this lives (a peer that
// stops mid-handshake is an error, not a wait without end), none after.
class HandshakeTimeout {
 public:
  explicit HandshakeTimeout(int fd);
  ~HandshakeTimeout();
  HandshakeTimeout(const HandshakeTimeout&) = delete;
  HandshakeTimeout& operator=(const HandshakeTimeout&) = delete;
  static constexpr time_t kSeconds = 30;

 private:
  int fd_;
};

// "address:port" of the other end of a connected socket, for messages.
std::string peer_of(int fd);

// The two ends of the handshake, on a connected socket. `peer` names the
// other end in errors.
Result<void> wire_hello_server(int fd, const std::optional<WireKey>& key, const std::string& peer);
Result<void> wire_hello_client(int fd, const std::optional<WireKey>& key, const std::string& peer);

}  // namespace ckpt::image
