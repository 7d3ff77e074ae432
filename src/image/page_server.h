// ckpt page-server: receives the pages files of one dump or pre-dump over
// TCP (image/page_wire.h) into an images directory.
#pragma once

#include <cstdint>
#include <string>

#include "base/log.h"
#include "base/result.h"
#include "image/image_dir.h"

namespace ckpt::image {

struct ServedSession {
  uint64_t files = 0;
  uint64_t bytes = 0;
};

// Listens on address:port (address empty: every address), serves one
// connection, returns once it ended with kDone. Any other end (the peer
// gone mid-file, a malformed frame) is an error, and what the session put
// in `dir` is removed.
Result<ServedSession> serve_pages(ImageDir& dir, const std::string& address, uint16_t port, Log& log);

}  // namespace ckpt::image
