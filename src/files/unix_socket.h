// Unix sockets (unix_socket.cc): what `verify` checks of their records.
#pragma once

#include "base/result.h"
#include "ckpt.pb.h"

namespace ckpt::files {

// The most a socket's queue may hold in an image: more than any receive
// queue a task is allowed (SO_SNDBUFFORCE tops out at INT_MAX, doubled).
inline constexpr uint64_t kMaxUnixQueueBytes = 1ULL << 30;
inline constexpr int kMaxUnixQueueMessages = 1 << 20;

// Every unix socket of `descs` safe to restore: types, names (sizes, paths
// absolute), queues within bounds, and every socket named by another (peer,
// pending connection) in the same checkpoint, once.
Result<void> check_unix_sockets(const img::FileDescs& descs);

}  // namespace ckpt::files
