// ckpt page-server: receives the pages files of one dump or pre-dump over
// TCP (image/page_wire.h) into an images directory.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "base/log.h"
#include "base/result.h"
#include "base/unique_fd.h"
#include "image/image_dir.h"
#include "image/page_wire.h"
#include "image/wire_auth.h"
#include "image/wire_tls.h"

namespace ckpt::image {

struct ServedSession {
  uint64_t files = 0;
  uint64_t bytes = 0;
};

// pages-PID.img or pages-shmem-ID.img: the only names a page server reads
// or writes, so nothing else of a directory is reachable from the network.
bool pages_file_name(std::string_view n);

// The pieces `ckpt migrate --listen` shares with the page server.
Result<UniqueFd> listen_on(const std::string& address, uint16_t port);
Result<void> read_exact(int fd, void* p, size_t n, const char* what);
// The one connection on `listener` (closed once it came: one session),
// through the handshake of image/wire_auth.h with `key` (and TLS if the
// key says so, image/wire_tls.h).
Result<WireConn> accept_session(UniqueFd listener, const std::optional<WireKey>& key);
// Which files a session may write: pages files only (page-server), or every
// image of a checkpoint (migrate).
enum class Accept { Pages, Images };
// One file announced by `h`: its bytes into a temporary, renamed into place
// once whole (and, for a pages file, its header checked). Returns its length.
Result<uint64_t> receive_file(ImageDir& dir, int conn, const WireHeader& h, Accept accept);

// Listens on address:port (address empty: every address), serves one
// connection, returns once it ended with kDone. Any other end (the peer
// gone mid-file, a malformed frame) is an error, and what the session put
// in `dir` is removed.
// `key`: the one the dump must prove it holds (image/wire_auth.h).
Result<ServedSession> serve_pages(ImageDir& dir, const std::string& address, uint16_t port,
                                  const std::optional<WireKey>& key, Log& log);

}  // namespace ckpt::image
