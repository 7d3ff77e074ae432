// The TCP connections a frozen tree holds, found the way the kernel shows
// them: each task's socket fds (/proc/PID/fd: "socket:[INODE]") matched
// against inet_diag. These are what the network lock drops.
//
// (Once the inet kind collects TCP sockets itself, files::tcp_connections
// of the collected descriptions can replace this; the lock must be in place
// before the sockets are collected, though, so that their queues and
// sequence numbers stop moving.)
#pragma once

#include <sys/types.h>

#include <span>
#include <vector>

#include "base/result.h"
#include "net/connection.h"

namespace ckpt::net {

// The states with a peer that could still send: SYN_SENT, SYN_RECV,
// ESTABLISHED, FIN_WAIT1/2, CLOSE_WAIT, LAST_ACK, CLOSING (not LISTEN,
// CLOSE, TIME_WAIT).
uint32_t lockable_states();

// Each connection once, however many fds of however many tasks hold it;
// not those whose peer is the tree's too (a socket or a listener of it).
// No inet_diag query at all when no task holds a socket.
Result<std::vector<Connection>> tree_tcp_connections(std::span<const pid_t> pids);

}  // namespace ckpt::net
