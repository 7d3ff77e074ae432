// The data of a file that has no name to reopen (deleted, memfd), kept in
// the checkpoint: its extents (SEEK_DATA/SEEK_HOLE), so a sparse file costs
// what it holds, up to a limit (CRIU's --ghost-limit).
#pragma once

#include <cstdint>

#include "base/result.h"
#include "base/unique_fd.h"
#include "ckpt.pb.h"

namespace ckpt::files {

// Default --ghost-limit: data bytes of one file stored in the checkpoint.
inline constexpr uint64_t kDefaultGhostLimit = 1 << 20;

// Reads `fd` (ckpt's own, through pread: the description's offset stays)
// into `out`, or refuses a file holding more than `limit` bytes of data.
Result<void> read_contents(int fd, uint64_t limit, img::FileContents* out);
// Writes the extents, size, owner and mode into the empty file `fd`.
Result<void> write_contents(int fd, const img::FileContents& c);

}  // namespace ckpt::files

namespace ckpt::files {

// A new description of the file `fd` is on, with `flags` (O_RDONLY, O_WRONLY,
// O_APPEND, ...), through /proc/self/fd: also for a file without a name.
Result<UniqueFd> reopen(int fd, uint32_t flags);

}  // namespace ckpt::files
