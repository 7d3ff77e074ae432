// Unix sockets (unix_socket.cc): what `verify` checks of their records.
#pragma once

#include "base/result.h"
#include "ckpt.pb.h"

namespace ckpt::files {

// The most a socket's queue may hold in an image, and all sockets' queues
// together: they are kept in fdesc.img, a metadata image (at most 256 MiB,
// image/image_dir.h). A queue is bounded by its senders' SO_SNDBUF, 416 KiB
// unless raised (net.core.wmem_max, or SO_SNDBUFFORCE).
inline constexpr uint64_t kMaxUnixQueueBytes = 64 << 20;
inline constexpr uint64_t kMaxUnixQueuesBytes = 128 << 20;
inline constexpr int kMaxUnixQueueMessages = 1 << 20;

// Every unix socket of `descs` safe to restore: types, names (sizes, paths
// absolute), queues within bounds, and every socket named by another (peer,
// pending connection) in the same checkpoint, once.
Result<void> check_unix_sockets(const img::FileDescs& descs);

}  // namespace ckpt::files
