// The table of kinds: a new kind of file is one file in src/files/ and one
// line here. Asked in this order whether they take an fd: a more particular
// kind comes before a more general one.
#include <array>

#include "files/kind.h"

namespace ckpt::files {

std::span<const Kind* const> kinds() {
  static const std::array<const Kind*, 17> table = {
      &pty_kind(),  // before terminal: a pair of the tree's own
      &terminal_kind(),
      &memfd_kind(),    // before regular: a memfd is a regular file without a name
      &deleted_kind(),  // likewise
      &unix_socket_kind(),
      &proc_file_kind(),  // before regular: /proc/PID/... is the task's, not a path's
      &regular_kind(),
      &pipe_kind(),
      &epoll_kind(),
      &inotify_kind(),
      &eventfd_kind(),
      &signalfd_kind(),
      &timerfd_kind(),
      &inet_socket_kind(),
      &netlink_socket_kind(),
      &pidfd_kind(),
      &fanotify_kind(),
  };
  return table;
}

const Kind* kind_of(const img::FileDesc& d) {
  for (const Kind* k : kinds())
    if (k->tag() == d.kind_case()) return k;
  return nullptr;
}

}  // namespace ckpt::files
