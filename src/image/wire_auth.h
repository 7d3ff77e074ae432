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
// What this does not do: encrypt, or protect the frames after the
// handshake from someone on the path who can inject into the TCP stream
// (the page data are still checked by their checksums at restore). That is
// TLS's job; this kernel has no kTLS, and ckpt's pages go by splice.
#pragma once

#include <optional>
#include <string>

#include "base/result.h"

namespace ckpt::image {

struct WireKey {
  std::string secret;
};

// The key in `path` (empty: none). Refused unless it is a regular file of
// ckpt's user that no one else may read or write, of 16 to 4096 bytes (a
// trailing newline is not part of it).
Result<std::optional<WireKey>> load_wire_key(const std::string& path);

// "address:port" of the other end of a connected socket, for messages.
std::string peer_of(int fd);

// The two ends of the handshake, on a connected socket. `peer` names the
// other end in errors.
Result<void> wire_hello_server(int fd, const std::optional<WireKey>& key, const std::string& peer);
Result<void> wire_hello_client(int fd, const std::optional<WireKey>& key, const std::string& peer);

}  // namespace ckpt::image
