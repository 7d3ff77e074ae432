// The client side of the page server (image/page_wire.h): a connection to
// `ckpt page-server`, and a PageSink that streams one pages file over it.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "base/result.h"
#include "base/unique_fd.h"
#include "image/image_dir.h"
#include "image/page_sink.h"
#include "image/page_wire.h"
#include "image/wire_auth.h"
#include "image/wire_tls.h"

namespace ckpt::image {

// A frame header of `kind` (image/page_wire.h), its checksum set.
WireHeader wire_header(WireKind kind, const std::string& name, uint64_t length);

class PageServerConn {
 public:
  // Connects and runs the handshake of image/wire_auth.h with `key` (and
  // TLS, image/wire_tls.h, if the key says so).
  static Result<PageServerConn> connect(const std::string& address, uint16_t port,
                                        const std::optional<WireKey>& key);
  // A sink for the pages file `name` (one at a time on a connection).
  std::unique_ptr<PageSink> sink(const std::string& name);
  // Ends the session: the server keeps what it received.
  Result<void> done();
  // ckpt migrate: the files that follow go to round `name` on the receiver;
  // `send_file` streams one whole image of `dir`; `restore` has the
  // receiver restore round `name` and returns the restored root's pid there.
  Result<void> begin_round(const std::string& name);
  Result<uint64_t> send_file(const ImageDir& dir, const std::string& name);
  Result<pid_t> restore(const std::string& name);
  int fd() const { return conn_.get(); }
  const std::string& peer() const { return peer_; }

 private:
  PageServerConn(WireConn conn, std::string peer) : conn_(std::move(conn)), peer_(std::move(peer)) {}
  WireConn conn_;
  std::string peer_;
};

}  // namespace ckpt::image
