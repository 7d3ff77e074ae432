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

#include <cstdint>
#include <set>
#include <vector>

#include "files/inet_diag.h"
#include "net/connection.h"

namespace ckpt::net {

// The states with a peer that could still send: SYN_SENT, SYN_RECV,
// ESTABLISHED, FIN_WAIT1/2, CLOSE_WAIT, LAST_ACK, CLOSING (not LISTEN,
// CLOSE, TIME_WAIT).
uint32_t lockable_states();

// Of the sockets `inodes` (every socket the tree's fds lead to), the TCP
// connections `all` (the machine's, files::inet_diag_all) shows in a
// lockable state: each once, however many fds of however many tasks hold
// it; not those whose peer is the tree's too (a socket or a listener of it).
std::vector<Connection> tree_tcp_connections(const std::set<uint32_t>& inodes, const files::InetSockets& all);

}  // namespace ckpt::net
