// The path of a file that inotify or fanotify shows by its handle in fdinfo
// ("ino:2dd sdev:fe00000 ... fhandle-bytes:8 fhandle-type:1 f_handle:dd02..."):
// open_by_handle_at on a mount of its device, then where that fd leads.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "base/result.h"

namespace ckpt::files {

struct FileHandle {
  uint64_t ino = 0;
  unsigned sdev = 0;  // the kernel's encoding: major << 20 | minor
  int type = 0;
  std::string bytes;
};

// Parses "fhandle-bytes:8 fhandle-type:1 f_handle:dd02000000000000" (the
// tail of a mark's or a watch's line).
Result<void> parse_fhandle(std::string_view text, FileHandle* h);

// The path of the file, which must lead to it again (restore opens it by
// that path), or an Error saying why not.
Result<std::string> path_of(const FileHandle& h);

// A mount point of device `sdev` (the kernel's encoding), from
// /proc/self/mountinfo.
Result<std::string> mount_point_of_dev(unsigned sdev);

}  // namespace ckpt::files
