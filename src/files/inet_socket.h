// Inet sockets (inet_socket.cc): what dump, restore and the network lock need
// of them beyond the Kind interface.
#pragma once

#include <string>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"
#include "ckpt.pb.h"
#include "net/connection.h"

namespace ckpt::files {

// The most the TCP and UDP queues of a tree may hold in all: they are kept in
// fdesc.img, a metadata image (at most 256 MiB, image/image_dir.h).
inline constexpr uint64_t kMaxInetQueuesBytes = 128 << 20;

// One line for people (ckpt show): "TCP socket [123] 127.0.0.1:5000 ->
// 127.0.0.1:41234 (ESTABLISHED), 10 bytes to send, 4 to read".
std::string show_inet_socket(const img::InetSocket& s);

// Every established or half-closed TCP connection of the checkpoint (those
// restored through TCP_REPAIR), for the network lock.
std::vector<net::Connection> tcp_connections(const img::FileDescs& descs);

// Sockets ckpt put in repair mode (TCP_REPAIR) at dump, through its own fd
// on each (the task's socket itself). Dropped as they are, they leave repair
// mode: the connection goes on (a failed dump, --leave-running). Once the
// tree is killed, `close_silently` closes them still in repair mode, so that
// neither FIN nor RST goes out and the peer waits for the restore.
class TcpRepairs {
 public:
  TcpRepairs() = default;
  TcpRepairs(const TcpRepairs&) = delete;
  TcpRepairs& operator=(const TcpRepairs&) = delete;
  ~TcpRepairs() { (void)leave(); }
  // `reuseaddr`: its SO_REUSEADDR, which leaving repair mode clears.
  void add(UniqueFd fd, bool reuseaddr) { fds_.push_back({std::move(fd), reuseaddr}); }
  size_t size() const { return fds_.size(); }
  // Out of repair mode, each; the first error, once all were tried.
  Result<void> leave();
  void close_silently() { fds_.clear(); }

 private:
  struct Held {
    UniqueFd fd;
    bool reuseaddr;
  };
  std::vector<Held> fds_;
};

// At restore: a connection made in repair mode.
struct RepairedSocket {
  UniqueFd fd;
  bool reuseaddr = false;  // SO_REUSEADDR, set once out of repair mode (which clears it)
  // The end of the send queue that was not sent at dump: written as new
  // data once out of repair mode, with SO_SNDBUF (as dumped, 0: the new
  // socket's) put back after.
  std::string unsent;
  uint32_t sndbuf = 0;
};
// Leaves repair mode on each, once the tree is restored, and queues what
// was not sent yet: the connections go on.
Result<void> leave_repair(std::vector<RepairedSocket>& socks);

}  // namespace ckpt::files
