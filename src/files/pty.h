// Pseudo-terminal pairs created inside the tree (pty.cc): what dump and
// restore need of them beyond their Kind.
#pragma once

#include <sys/types.h>

#include <set>
#include <span>
#include <vector>

#include "ckpt.pb.h"
#include "files/files.h"
#include "tree/tree.h"

namespace ckpt::files {

// The indices of the pty pairs whose master (and, apart, whose slave) some
// fd of the tree holds: a slave whose master is not among them is a
// terminal of the outside.
struct PtyHolders {
  std::set<uint32_t> masters, slaves;
};
PtyHolders pty_holders(std::span<TaskFds* const> tasks);

// Refuses, naming it, a session led in the tree whose controlling terminal
// is not a pair of the tree's (restore could not give it back: taking the
// caller's terminal would steal it from the caller's session).
Result<void> check_session_terminals(const tree::ProcessTree& tree, const PtyHolders& ptys);

// A session's controlling terminal: the restored session leader calls
// TIOCSCTTY on ckpt's fd of the master description `desc` right after
// setsid(), and TIOCSPGRP `foreground` once every group exists.
struct ControllingTerminal {
  uint32_t desc;  // FileDesc.id of the pair's master
  pid_t session, foreground;
};
std::vector<ControllingTerminal> controlling_terminals(const img::FileDescs& descs);

}  // namespace ckpt::files
