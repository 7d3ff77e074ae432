// The guard of a lazy restore against a lazy-pages daemon that dies.
//
// When the last reference to a userfaultfd goes, the kernel's
// userfaultfd_release() (fs/userfaultfd.c) unregisters every VMA of it and
// wakes the faults that wait; handle_userfault() on a released context
// returns VM_FAULT_NOPAGE, the fault is retried on a VMA that is no longer
// registered, and anonymous memory then reads as a fresh zero page. So a
// daemon that dies holding the only copy would leave the task running on
// zeros where its data should be: wrong memory, and no error.
//
// Hence a second copy: each restorer also sends its task's userfaultfd to
// this watcher, a small ckpt process (`ckpt-lazy-watch` in ps) forked by
// ckpt restore once the tree exists, outside the tree, in a session of its
// own. It never reads the fds: they stay queued on its socket, which keeps
// every registration alive, so a fault with no daemon waits. It holds the
// connection to the daemon and waits for its word: kDone (every page is in)
// and it exits, dropping its copies; a hang-up without it (the daemon died,
// or gave up with kError) and it kills the tree with SIGKILL and says why
// on ckpt restore's stderr. No task runs on a page that is not its own.
// Killing the watcher and the daemon both leaves what the kernel does.
#pragma once

#include <sys/types.h>

#include <string>

#include "base/result.h"
#include "base/unique_fd.h"

namespace ckpt::restore {

// `conn`: the connection to the daemon (shared, not taken); `fds`: the
// socket the restorers' copies arrive on; `root`: the tree's root (or its
// --pidns init) as ckpt sees it; `socket_path` for messages; `log`: where
// its message goes instead of ckpt's stderr, if valid.
Result<void> fork_lazy_watcher(int conn, UniqueFd fds, pid_t root, const std::string& socket_path, UniqueFd log);

}  // namespace ckpt::restore
