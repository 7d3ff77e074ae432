// Unix sockets (AF_UNIX stream, datagram and seqpacket): their names, their
// connections, their options and the data queued for them to read.
//
// Dump, per socket: sock_diag (sock_diag.h) gives its peer by inode, its
// name, state, shutdown and a listener's queue; ckpt's own copy of the
// socket (take_file) gives the options and the queued data, peeked without
// being consumed: SO_PEEK_OFF walks the queue and is put back as the task had
// it. Across sockets (check): every peer and every connection waiting in a
// listener's queue must be in the tree.
//
// Restore (prepare) makes them all together, in this order, so that each
// connection, name and message can be made again:
//   1. connections between two sockets of the tree: socketpair() when
//      neither end is named; else through a temporary listener bound at the
//      accepted end's name (connect, accept), so that getsockname() and
//      getpeername() answer as at dump. An end whose peer was closed gets a
//      stand-in peer (a "ghost"), closed once the end's data is queued;
//   2. every other socket created, and bound (a path: its socket file made
//      again with its mode and owner); listeners listen, and the connections
//      in their queue connect to them again, in accept order;
//   3. datagram sockets connect to their peers by name;
//   4. the queued data, sent by each socket's peer (or its ghost, or an
//      unbound stand-in for datagrams sent to a bound socket);
//   5. datagram sockets whose peer is outside the tree (--ext-unix-sk)
//      connect to its name; ghosts closed; shutdown, SO_PASSCRED, buffer
//      sizes, SO_PEEK_OFF.
#include "files/unix_socket.h"

#include <fcntl.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <climits>
#include <cstring>
#include <map>
#include <optional>
#include <set>

#include "base/fs.h"
#include "files/kind.h"
#include "files/sock_diag.h"
#include "proc/status.h"

namespace ckpt::files {

namespace {

// sk_state values (include/net/tcp_states.h) that unix sockets take.
constexpr uint32_t kEstablished = 1, kClose = 7, kListen = 10;
constexpr uint32_t kShutdownBoth = 3;  // RCV_SHUTDOWN | SEND_SHUTDOWN
constexpr size_t kMaxName = sizeof(sockaddr_un{}.sun_path);
constexpr size_t kStreamChunk = 64 << 10;

bool is_path(std::string_view name) { return !name.empty() && name[0] != '\0'; }

// A name as messages show it: an abstract one with '@' for its leading \0,
// as ss(8) prints it.
std::string printable(std::string_view name) {
  if (name.empty()) return "unbound";
  std::string out;
  for (char c : name) {
    if (c == '\0') out += '@';
    else if (isprint(static_cast<unsigned char>(c))) out += c;
    else out += fmt::format("\\x{:02x}", static_cast<unsigned char>(c));
  }
  return out;
}

const char* type_name(uint32_t type) {
  switch (type) {
    case SOCK_STREAM: return "stream";
    case SOCK_DGRAM: return "datagram";
    case SOCK_SEQPACKET: return "seqpacket";
    default: return "unknown";
  }
}

// "unix stream socket [123] (/run/a.sock)", as messages name a socket.
std::string describe(const img::UnixSocket& u) {
  return fmt::format("unix {} socket [{}] ({})", type_name(u.type()), u.inode(), printable(u.name()));
}

// sun_path as the kernel filled it in, without the NUL that ends a path.
std::string sun_path_of(const sockaddr_un& a, socklen_t len) {
  if (len <= offsetof(sockaddr_un, sun_path)) return "";
  std::string s(a.sun_path, std::min<size_t>(len - offsetof(sockaddr_un, sun_path), kMaxName));
  if (is_path(s)) s.resize(strnlen(s.data(), s.size()));
  return s;
}

Result<int> get_int(int fd, int opt, const char* what) {
  int v = 0;
  socklen_t len = sizeof(v);
  if (getsockopt(fd, SOL_SOCKET, opt, &v, &len) < 0) return sys_error("getsockopt {}", what);
  return v;
}

Result<void> set_int(int fd, int opt, int v, const char* what) {
  if (setsockopt(fd, SOL_SOCKET, opt, &v, sizeof(v)) < 0) return sys_error("setsockopt {} {}", what, v);
  return {};
}

// --- dump ------------------------------------------------------------------

// Control data that came with a peeked message: fds in flight are refused
// (peeking installed copies of them in ckpt: closed here). Credentials are
// not kept (see docs/state.md).
Result<void> check_control(msghdr& m) {
  bool fds = false;
  for (cmsghdr* c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    fds = true;
    const size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < n; i++) {
      int fd;
      memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
      ::close(fd);
    }
  }
  if (fds || (m.msg_flags & MSG_CTRUNC))
    return error(EOPNOTSUPP, "a unix socket with fds in flight (SCM_RIGHTS) in its queue: not supported");
  return {};
}

// The queue, message by message (datagram, seqpacket) or in chunks
// (stream), peeked from offset 0 on.
Result<void> walk_queue(int fd, const UnixDiag& di, img::UnixSocket* u) {
  const bool stream = di.type == SOCK_STREAM;
  uint64_t total = 0;
  std::string buf;
  alignas(cmsghdr) char control[4096];
  for (;;) {
    size_t want = kStreamChunk;
    if (!stream) {
      // The next message's length: MSG_TRUNC says it whole, and a peek of
      // nothing leaves the peek offset where it is.
      ssize_t n = recv(fd, nullptr, 0, MSG_PEEK | MSG_DONTWAIT | MSG_TRUNC);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno == EAGAIN) break;
      if (n < 0) return sys_error("peek at its queue");
      // An empty message, or the end of a seqpacket stream. (An empty
      // datagram after others is skipped by the peek offset, unseen.)
      if (n == 0 && di.type == SOCK_DGRAM) return error(EOPNOTSUPP, "an empty datagram in its queue: not supported");
      if (n == 0) break;
      want = static_cast<size_t>(n);
    }
    buf.resize(want);
    iovec iov{buf.data(), want};
    sockaddr_un from{};
    msghdr m{};
    if (di.type == SOCK_DGRAM) {
      m.msg_name = &from;
      m.msg_namelen = sizeof(from);
    }
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    m.msg_control = control;
    m.msg_controllen = sizeof(control);
    ssize_t n = recvmsg(fd, &m, MSG_PEEK | MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) break;
    if (n < 0) return sys_error("peek at its queue");
    TRY(check_control(m));
    if (n == 0) break;
    if (!stream && (m.msg_flags & MSG_TRUNC)) return error(EIO, "a queued message of {} bytes grew while read", want);
    total += static_cast<uint64_t>(n);
    if (total > kMaxUnixQueueBytes || u->queue_size() >= kMaxUnixQueueMessages)
      return error(EFBIG, "more than {} bytes or {} messages queued: not supported", kMaxUnixQueueBytes,
                   kMaxUnixQueueMessages);
    u->add_queue(buf.data(), static_cast<size_t>(n));
    if (di.type == SOCK_DGRAM) u->add_senders(sun_path_of(from, m.msg_namelen));
  }
  // sock_diag counts every byte queued (stream, seqpacket) or the first
  // message's: what peeking can't see (an empty message, out-of-band data)
  // makes them differ.
  const uint64_t expect = di.type == SOCK_DGRAM ? (u->queue_size() ? u->queue(0).size() : 0) : total;
  if (expect != di.rqueue)
    return error(EOPNOTSUPP, "peeking read {} bytes where the kernel counts {} queued (empty messages or "
                 "out-of-band data): not supported", expect, di.rqueue);
  return {};
}

Result<void> peek_queue(int fd, const UnixDiag& di, img::UnixSocket* u) {
  const int saved = TRY(get_int(fd, SO_PEEK_OFF, "SO_PEEK_OFF"));
  TRY(set_int(fd, SO_PEEK_OFF, 0, "SO_PEEK_OFF"));
  Result<void> walked = walk_queue(fd, di, u);
  // The task's own peek offset, whatever happened.
  Result<void> back = set_int(fd, SO_PEEK_OFF, saved, "SO_PEEK_OFF (put back)");
  TRY(walked);
  return back;
}

// A path-bound socket's file: mode and owner, or gone (unlinked, or the
// path now leads to another file).
Result<void> collect_file(const std::string& path, const UnixDiag& di, img::UnixSocket* u) {
  struct stat st;
  if (::lstat(path.c_str(), &st) < 0) {
    if (errno != ENOENT && errno != ENOTDIR) return sys_error("stat its socket file {}", path);
    u->set_file_gone(true);
    return {};
  }
  bool same = false;
  if (S_ISSOCK(st.st_mode) && di.vfs) {
    // sock_diag gives the kernel's dev_t (major << 20 | minor).
    const dev_t dev = makedev(di.vfs->second >> 20, di.vfs->second & 0xfffff);
    same = st.st_ino == di.vfs->first && st.st_dev == dev;
  }
  if (!same) {
    u->set_file_gone(true);
    return {};
  }
  u->set_file_mode(st.st_mode & 07777);
  u->set_file_uid(st.st_uid);
  u->set_file_gid(st.st_gid);
  return {};
}

// "pid 77 (name) fd 4": a task that holds socket `inode`, searched in /proc;
// empty if none does.
std::string holder_of(uint32_t inode) {
  const std::string want = fmt::format("socket:[{}]", inode);
  auto pids = proc::list_numeric_dir("/proc");
  if (!pids) return "";
  for (int pid : *pids) {
    auto fds = proc::list_numeric_dir(fmt::format("/proc/{}/fd", pid));
    if (!fds) continue;
    for (int fd : *fds) {
      auto link = read_link(fmt::format("/proc/{}/fd/{}", pid, fd));
      if (!link || *link != want) continue;
      auto comm = read_file(fmt::format("/proc/{}/comm", pid));
      std::string name = comm ? *comm : "?";
      while (!name.empty() && name.back() == '\n') name.pop_back();
      return fmt::format("pid {} ({}) fd {}", pid, name, fd);
    }
  }
  return "";
}

// --- restore -----------------------------------------------------------------

sockaddr_un address(const std::string& name, socklen_t* len) {
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  memcpy(a.sun_path, name.data(), std::min(name.size(), kMaxName));
  *len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + std::min(name.size(), kMaxName));
  return a;
}

Result<UniqueFd> new_socket(uint32_t type) {
  int fd = socket(AF_UNIX, static_cast<int>(type) | SOCK_CLOEXEC, 0);
  if (fd < 0) return sys_error("socket(AF_UNIX, {})", type_name(type));
  return UniqueFd(fd);
}

// Makes room at `path` for a bind: nothing there, or the socket file of a
// socket that no longer exists (a dumped process's: no connect reaches it),
// which is removed. Anything else there is an error: restore takes nobody's
// file.
Result<void> clear_stale(const std::string& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) < 0) {
    if (errno == ENOENT) return {};
    return sys_error("stat {}", path);
  }
  if (!S_ISSOCK(st.st_mode))
    return error(EEXIST, "{} is taken by something else than a socket file (mode {:o}): move it away to restore",
                 path, st.st_mode);
  // A datagram probe: connecting it to a live socket of any type changes
  // nothing there (a stream listener answers EPROTOTYPE, without a
  // connection in its queue).
  UniqueFd probe = TRY(new_socket(SOCK_DGRAM));
  socklen_t len;
  sockaddr_un a = address(path, &len);
  if (::connect(probe.get(), reinterpret_cast<sockaddr*>(&a), len) == 0 || errno != ECONNREFUSED)
    return error(EADDRINUSE, "{} is the socket of a live process (not of the dumped tree): restore does not take "
                 "its place", path);
  if (::unlink(path.c_str()) < 0 && errno != ENOENT) return sys_error("remove the stale socket file {}", path);
  return {};
}

Result<void> bind_name(int fd, const std::string& name) {
  if (is_path(name)) TRY(clear_stale(name));
  socklen_t len;
  sockaddr_un a = address(name, &len);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), len) == 0) return {};
  if (errno == ENOENT) return sys_error("bind {}: its directory does not exist", printable(name));
  if (errno == EADDRINUSE) return sys_error("bind {}: a socket outside the restored tree holds this name", printable(name));
  return sys_error("bind {}", printable(name));
}

Result<void> connect_to(int fd, const std::string& name) {
  socklen_t len;
  sockaddr_un a = address(name, &len);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), len) < 0) return sys_error("connect to {}", printable(name));
  return {};
}

// The mode and owner of the socket file just bound at `path`, through an
// O_PATH handle on it: a link put there meanwhile is not followed.
Result<void> set_file(const std::string& path, uint32_t mode, uint32_t uid, uint32_t gid) {
  int fd = ::open(path.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return sys_error("open the socket file {}", path);
  UniqueFd f(fd);
  struct stat st;
  if (fstat(fd, &st) < 0) return sys_error("stat {}", path);
  if (!S_ISSOCK(st.st_mode)) return error(EEXIST, "{} is no longer the socket file restore made", path);
  // The fd's /proc link leads to the file itself.
  const std::string self = fmt::format("/proc/self/fd/{}", fd);
  if (::chown(self.c_str(), uid, gid) < 0) return sys_error("chown {} to {}:{}", path, uid, gid);
  if (::chmod(self.c_str(), mode) < 0) return sys_error("chmod {} {:o}", path, mode);
  return {};
}

// `client` connected through a temporary listener bound at `name`: the
// accepted end, whose getsockname() is `name`. The listener's socket file
// stays (the caller decides).
Result<UniqueFd> through_listener(uint32_t type, const std::string& name, int client) {
  UniqueFd l = TRY(new_socket(type));
  TRY(bind_name(l.get(), name));
  if (::listen(l.get(), 1) < 0) return sys_error("listen at {}", printable(name));
  TRY(connect_to(client, name));
  int fd = accept4(l.get(), nullptr, nullptr, SOCK_CLOEXEC);
  if (fd < 0) return sys_error("accept at {}", printable(name));
  return UniqueFd(fd);
}

class Restorer {
 public:
  explicit Restorer(std::span<const img::FileDesc* const> descs) : descs_(descs), socks_(descs.size()),
                                                                   ghosts_(descs.size()), bound_(descs.size()) {
    for (size_t i = 0; i < descs.size(); i++) {
      by_inode_[u(i).inode()] = i;
      if (u(i).state() == kListen) {
        listener_names_.insert(u(i).name());
        for (uint32_t p : u(i).pending()) pending_.insert(p);
      }
    }
    for (size_t i = 0; i < descs.size(); i++) {
      if (!u(i).name().empty() && !accepted(i)) owned_names_.insert(u(i).name());
      if (!u(i).name().empty() && u(i).type() == SOCK_DGRAM) names_[u(i).name()] = i;
    }
  }

  Result<void> run(int tag, OpenState& state) {
    for (size_t i = 0; i < descs_.size(); i++) TRY_CTX(connect_pair(i), "{}", describe(u(i)));
    for (size_t i = 0; i < descs_.size(); i++) TRY_CTX(create(i), "{}", describe(u(i)));
    for (size_t i = 0; i < descs_.size(); i++) TRY_CTX(listen(i), "{}", describe(u(i)));
    for (size_t i = 0; i < descs_.size(); i++) TRY_CTX(connect_datagram(i), "{}", describe(u(i)));
    for (size_t i = 0; i < descs_.size(); i++) TRY_CTX(queue(i), "{}", describe(u(i)));
    // Once its queue is in: connected, it takes messages from its peer
    // alone, and the stand-in that sent them is not its peer.
    for (size_t i = 0; i < descs_.size(); i++)
      if (external(i))
        TRY_CTX(connect_to(socks_[i].get(), u(i).peer_name()), "{}: its peer outside the tree (--ext-unix-sk)",
                describe(u(i)));
    ghosts_.clear();  // a stream end whose peer is closed now sees it closed
    for (size_t i = 0; i < descs_.size(); i++) TRY_CTX(set_options(i), "{}", describe(u(i)));
    for (size_t i = 0; i < descs_.size(); i++) state.leave(tag, u(i).inode(), std::move(socks_[i]));
    return {};
  }

 private:
  const img::UnixSocket& u(size_t i) const { return descs_[i]->unix_socket(); }
  bool connection(size_t i) const { return u(i).type() != SOCK_DGRAM && u(i).connected(); }
  bool is_pending(size_t i) const { return pending_.contains(u(i).inode()); }
  // Connected to a named peer outside the tree (--ext-unix-sk at dump).
  bool external(size_t i) const {
    return u(i).external_ok() && u(i).connected() && u(i).peer() != 0 && !by_inode_.contains(u(i).peer());
  }
  Result<size_t> index_of(uint32_t inode) const {
    auto it = by_inode_.find(inode);
    if (it == by_inode_.end()) return error(EINVAL, "unix socket [{}], which the images lack", inode);
    return it->second;
  }

  // An end of a stream or seqpacket connection that accept() made, and
  // which so carries a listener's name without binding it.
  bool accepted(size_t i) const {
    if (!connection(i) || is_pending(i) || u(i).name().empty()) return false;
    if (listener_names_.contains(u(i).name())) return true;
    if (u(i).peer() == 0) return u(i).peer_name().empty();
    auto j = by_inode_.find(u(i).peer());
    if (j == by_inode_.end()) return false;
    const img::UnixSocket& p = u(j->second);
    if (p.name().empty()) return true;
    if (listener_names_.contains(p.name())) return false;
    return i < j->second;  // both bound by hand: either can stand for the other
  }

  // Binds socket i to its own name, with its file as it was.
  Result<void> bind_own(size_t i) {
    const img::UnixSocket& s = u(i);
    TRY(bind_name(socks_[i].get(), s.name()));
    bound_[i] = true;
    if (!is_path(s.name())) return {};
    if (s.file_gone()) {
      if (::unlink(s.name().c_str()) < 0) return sys_error("unlink {} (gone at dump)", s.name());
      return {};
    }
    return set_file(s.name(), s.file_mode(), s.file_uid(), s.file_gid());
  }

  // After a temporary listener at `name`: its file goes if a socket of the
  // tree binds that name itself, or if it was gone at dump; else it stays, as
  // the file a closed listener left (with the accepted end's mode).
  Result<void> after_listener(const std::string& name, const img::UnixSocket* accepted_end) {
    if (!is_path(name)) return {};
    if (owned_names_.contains(name) || (accepted_end && accepted_end->file_gone()) || !accepted_end) {
      if (::unlink(name.c_str()) < 0 && errno != ENOENT) return sys_error("unlink {}", name);
      return {};
    }
    return set_file(name, accepted_end->file_mode(), accepted_end->file_uid(), accepted_end->file_gid());
  }

  // 1. Connections between two ends, and ends whose peer was closed.
  Result<void> connect_pair(size_t i) {
    if (socks_[i] || !u(i).connected() || is_pending(i)) return {};
    const uint32_t type = u(i).type();
    if (external(i)) return {};
    if (u(i).peer() == 0) return with_ghost(i);
    const size_t j = TRY(index_of(u(i).peer()));
    if (type == SOCK_DGRAM) {
      // Mutual datagram peers with an unbound end: only socketpair() makes
      // them (connect() needs a name). Others connect by name (3.).
      const bool mutual = u(j).connected() && u(j).peer() == u(i).inode();
      if (!mutual || (!u(i).name().empty() && !u(j).name().empty())) return {};
      return socket_pair(i, j);
    }
    if (u(j).peer() != u(i).inode())
      return error(EINVAL, "its peer [{}] is connected to [{}]", u(i).peer(), u(j).peer());
    size_t server = i, client = j;
    if (accepted(j)) std::swap(server, client);
    else if (!accepted(i)) return socket_pair(i, j);
    socks_[client] = TRY(new_socket(type));
    if (!u(client).name().empty()) TRY(bind_own(client));
    socks_[server] = TRY(through_listener(type, u(server).name(), socks_[client].get()));
    return after_listener(u(server).name(), &u(server));
  }

  Result<void> socket_pair(size_t i, size_t j) {
    int sv[2];
    if (socketpair(AF_UNIX, static_cast<int>(u(i).type()) | SOCK_CLOEXEC, 0, sv) < 0)
      return sys_error("socketpair({})", type_name(u(i).type()));
    socks_[i] = UniqueFd(sv[0]);
    socks_[j] = UniqueFd(sv[1]);
    return {};
  }

  // An end whose peer was closed: connected to a ghost, closed in 5.
  Result<void> with_ghost(size_t i) {
    const img::UnixSocket& s = u(i);
    if (s.type() == SOCK_DGRAM && !s.peer_name().empty()) return {};  // 3. binds the ghost at that name
    if (s.peer_name().empty() && !accepted(i)) {
      int sv[2];
      if (socketpair(AF_UNIX, static_cast<int>(s.type()) | SOCK_CLOEXEC, 0, sv) < 0)
        return sys_error("socketpair({})", type_name(s.type()));
      socks_[i] = UniqueFd(sv[0]);
      ghosts_[i] = UniqueFd(sv[1]);
      return {};
    }
    if (accepted(i)) {
      // It was accepted: the ghost connects to its name.
      ghosts_[i] = TRY(new_socket(s.type()));
      if (!s.peer_name().empty()) TRY(bind_name(ghosts_[i].get(), s.peer_name()));
      socks_[i] = TRY(through_listener(s.type(), s.name(), ghosts_[i].get()));
      if (is_path(s.peer_name()) && ::unlink(s.peer_name().c_str()) < 0) return sys_error("unlink {}", s.peer_name());
      return after_listener(s.name(), &s);
    }
    // It connected to a listener since closed: the ghost is accepted there.
    socks_[i] = TRY(new_socket(s.type()));
    if (!s.name().empty()) TRY(bind_own(i));
    ghosts_[i] = TRY(through_listener(s.type(), s.peer_name(), socks_[i].get()));
    return after_listener(s.peer_name(), nullptr);
  }

  // 2. The others, and names.
  Result<void> create(size_t i) {
    if (!socks_[i]) socks_[i] = TRY(new_socket(u(i).type()));
    if (!u(i).name().empty() && !accepted(i) && !bound_[i]) TRY(bind_own(i));
    return {};
  }

  Result<void> listen(size_t i) {
    if (u(i).state() != kListen) return {};
    if (::listen(socks_[i].get(), static_cast<int>(u(i).backlog())) < 0) return sys_error("listen({})", u(i).backlog());
    // The connections in its queue, in accept order: connect() returns at
    // once while the backlog has room, as it had at dump.
    for (uint32_t inode : u(i).pending()) {
      const size_t c = TRY(index_of(inode));
      const int fd = socks_[c].get();
      const int fl = fcntl(fd, F_GETFL);
      if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) return sys_error("F_SETFL");
      TRY_CTX(connect_to(fd, u(i).name()), "the connection of {} in its queue", describe(u(c)));
      if (fcntl(fd, F_SETFL, fl) < 0) return sys_error("F_SETFL");
    }
    return {};
  }

  // 3. Datagram sockets connected by name.
  Result<void> connect_datagram(size_t i) {
    const img::UnixSocket& s = u(i);
    if (s.type() != SOCK_DGRAM || !s.connected() || ghosts_[i] || external(i)) return {};
    if (s.peer() == 0) {
      // Its peer was closed: a ghost bound at the peer's name, gone once
      // the queue is sent (its file with it).
      ghosts_[i] = TRY(new_socket(SOCK_DGRAM));
      TRY(bind_name(ghosts_[i].get(), s.peer_name()));
      TRY(connect_to(socks_[i].get(), s.peer_name()));
      if (is_path(s.peer_name()) && !owned_names_.contains(s.peer_name()) && ::unlink(s.peer_name().c_str()) < 0)
        return sys_error("unlink {}", s.peer_name());
      return {};
    }
    const size_t j = TRY(index_of(s.peer()));
    // Made by socketpair() in 1.
    if (u(j).connected() && u(j).peer() == s.inode() && (s.name().empty() || u(j).name().empty())) return {};
    if (u(j).name().empty()) return error(EINVAL, "its peer {} is unbound: it can't be connected to", describe(u(j)));
    return connect_to(socks_[i].get(), u(j).name());
  }

  // 4. What it has to read, sent again by who can.
  Result<void> queue(size_t i) {
    const img::UnixSocket& s = u(i);
    if (s.queue_size() == 0) return {};
    int sender = -1;
    bool by_name = false;  // sendto() its name, the sender not being its peer
    UniqueFd stand_in;
    if (external(i) || (s.type() == SOCK_DGRAM && !s.connected())) {
      // From outside the tree, or from anyone: its name is the address.
      stand_in = TRY(new_socket(SOCK_DGRAM));
      sender = stand_in.get();
      by_name = true;
    } else if (s.connected() && s.peer() != 0) {
      const size_t j = TRY(index_of(s.peer()));
      sender = socks_[j].get();
      by_name = s.type() == SOCK_DGRAM && !(u(j).connected() && u(j).peer() == s.inode());
    } else if (s.connected() && ghosts_[i]) {
      sender = ghosts_[i].get();
      by_name = s.type() == SOCK_DGRAM && !s.peer_name().empty();
    } else {
      return error(EINVAL, "data queued and no peer to send it");
    }
    if (by_name && s.name().empty()) return error(EINVAL, "messages queued for an unbound socket that is not its sender's peer");
    // Room for all of it in the sender's buffer, with the kernel's overhead
    // per message (what it charges can be twice the data).
    uint64_t bytes = 0;
    for (const std::string& m : s.queue()) bytes += m.size() + 1024;
    const int room = static_cast<int>(std::min<uint64_t>(2 * bytes + (1 << 20), INT_MAX / 2));
    if (TRY(get_int(sender, SO_SNDBUF, "SO_SNDBUF")) < room) TRY(set_int(sender, SO_SNDBUFFORCE, room, "SO_SNDBUFFORCE"));
    socklen_t len;
    const sockaddr_un to = address(s.name(), &len);
    for (int k = 0; k < s.queue_size(); k++) {
      const std::string& m = s.queue(k);
      // A datagram from a bound socket of the tree comes from it again, so
      // that recvfrom names it.
      int from = sender;
      bool from_by_name = by_name;
      if (k < s.senders_size() && !s.senders(k).empty()) {
        auto it = names_.find(s.senders(k));
        if (it != names_.end() && it->second != i) {
          from = socks_[it->second].get();
          from_by_name = !(u(it->second).connected() && u(it->second).peer() == s.inode());
          if (from_by_name && s.name().empty())
            return error(EINVAL, "a message from {} for this unbound socket", describe(u(it->second)));
          if (TRY(get_int(from, SO_SNDBUF, "SO_SNDBUF")) < room)
            TRY(set_int(from, SO_SNDBUFFORCE, room, "SO_SNDBUFFORCE"));
        }
      }
      for (size_t off = 0;;) {
        ssize_t n = from_by_name ? sendto(from, m.data() + off, m.size() - off, MSG_DONTWAIT | MSG_NOSIGNAL,
                                          reinterpret_cast<const sockaddr*>(&to), len)
                                 : send(from, m.data() + off, m.size() - off, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return sys_error("queue message {} of {} ({} bytes) again", k + 1, s.queue_size(), m.size());
        off += static_cast<size_t>(n);
        if (off >= m.size()) break;
      }
    }
    return {};
  }

  // 5. What the task set, once the data is in.
  Result<void> set_options(size_t i) {
    const img::UnixSocket& s = u(i);
    const int fd = socks_[i].get();
    // sk_shutdown's bits are SHUT_RD + 1 and SHUT_WR + 1.
    if (s.shutdown() != 0 && ::shutdown(fd, static_cast<int>(s.shutdown()) - 1) < 0)
      return sys_error("shutdown({})", s.shutdown() - 1);
    if (s.passcred()) TRY(set_int(fd, SO_PASSCRED, 1, "SO_PASSCRED"));
    // The kernel doubles what it is given (and keeps a minimum).
    // Only what differs from a new socket's: setting one locks it
    // (SOCK_SNDBUF_LOCK), which a task that never set it did not ask for.
    if (s.sndbuf() && static_cast<int>(s.sndbuf()) != TRY(get_int(fd, SO_SNDBUF, "SO_SNDBUF")))
      TRY(set_int(fd, SO_SNDBUFFORCE, static_cast<int>(s.sndbuf() / 2), "SO_SNDBUFFORCE"));
    if (s.rcvbuf() && static_cast<int>(s.rcvbuf()) != TRY(get_int(fd, SO_RCVBUF, "SO_RCVBUF")))
      TRY(set_int(fd, SO_RCVBUFFORCE, static_cast<int>(s.rcvbuf() / 2), "SO_RCVBUFFORCE"));
    if (s.peek_off() != -1) TRY(set_int(fd, SO_PEEK_OFF, s.peek_off(), "SO_PEEK_OFF"));
    return {};
  }

  std::span<const img::FileDesc* const> descs_;
  std::map<uint32_t, size_t> by_inode_;
  std::set<uint32_t> pending_;            // sockets whose connection waits in a listener's queue
  std::set<std::string> listener_names_;  // names of the listeners
  std::set<std::string> owned_names_;     // names bound by a socket itself (not by accept)
  std::map<std::string, size_t> names_;   // datagram sockets by name
  std::vector<UniqueFd> socks_;
  std::vector<UniqueFd> ghosts_;          // the stand-in peer of an end whose peer was closed
  std::vector<bool> bound_;
};

class UnixSocketKind final : public Kind {
 public:
  std::string_view name() const override { return "unix socket"; }
  img::FileDesc::KindCase tag() const override { return img::FileDesc::kUnixSocket; }

  bool claims(const FdProbe& p, const DumpFlags&) const override {
    if (!S_ISSOCK(p.st.st_mode)) return false;
    auto f = take_file(p);
    if (!f) return false;
    auto domain = get_int(f->get(), SO_DOMAIN, "SO_DOMAIN");
    return domain && *domain == AF_UNIX;
  }

  Result<void> collect(const FdProbe& p, img::FileDesc* d) const override {
    UniqueFd f = TRY(take_file(p));
    // sock_diag answers for ckpt's network namespace alone (every task is
    // in it: dump checks): a socket it does not list was made in another.
    auto found = p.ctx->unix_sockets.find(static_cast<uint32_t>(p.st.st_ino));
    if (found == p.ctx->unix_sockets.end())
      return error(EOPNOTSUPP, "a unix socket of another network namespace: not supported");
    const UnixDiag& di = found->second;
    img::UnixSocket* u = d->mutable_unix_socket();
    if (di.type != SOCK_STREAM && di.type != SOCK_DGRAM && di.type != SOCK_SEQPACKET)
      return error(EOPNOTSUPP, "a unix socket of type {}: not supported", di.type);
    if (di.state != kEstablished && di.state != kClose && di.state != kListen)
      return error(EOPNOTSUPP, "a unix socket in state {}: not supported", di.state);
    u->set_type(di.type);
    u->set_state(di.state);
    u->set_inode(di.inode);
    std::string name = di.name;
    if (is_path(name)) name.resize(strnlen(name.data(), name.size()));
    if (is_path(name) && name[0] != '/')
      return error(EOPNOTSUPP, "a unix socket bound to the relative path {}: not supported", name);
    if (is_path(name)) TRY(collect_file(name, di, u));
    u->set_name(name);
    if (di.peer) {
      u->set_connected(true);
      u->set_peer(*di.peer);
      sockaddr_un a{};
      socklen_t len = sizeof(a);
      if (getpeername(f.get(), reinterpret_cast<sockaddr*>(&a), &len) == 0) u->set_peer_name(sun_path_of(a, len));
      else if (errno != ENOTCONN) return sys_error("getpeername");
      u->set_external_ok(p.ctx->ext_unix_sk && di.type == SOCK_DGRAM && *di.peer != 0 && !u->peer_name().empty());
    }
    u->set_shutdown(di.shutdown);
    u->set_passcred(TRY(get_int(f.get(), SO_PASSCRED, "SO_PASSCRED")) != 0);
    u->set_sndbuf(static_cast<uint32_t>(TRY(get_int(f.get(), SO_SNDBUF, "SO_SNDBUF"))));
    u->set_rcvbuf(static_cast<uint32_t>(TRY(get_int(f.get(), SO_RCVBUF, "SO_RCVBUF"))));
    u->set_peek_off(TRY(get_int(f.get(), SO_PEEK_OFF, "SO_PEEK_OFF")));
    if (di.state == kListen) {
      u->set_backlog(di.wqueue);
      for (uint32_t c : di.pending) {
        if (c == 0)
          return error(EOPNOTSUPP, "a connection in its queue whose connecting socket was closed: not supported");
        u->add_pending(c);
      }
      return {};
    }
    // A connection not yet accepted: what was sent waits in the queue of a
    // socket that has no file yet (no inode), which ckpt can't read.
    if (di.peer && *di.peer == 0 && di.type != SOCK_DGRAM && di.wqueue > 0 && di.shutdown != kShutdownBoth)
      return error(EOPNOTSUPP, "{} bytes sent on a connection not yet accepted: not supported", di.wqueue);
    // A stream or seqpacket socket has data only once connected (recv
    // refuses the others).
    if (di.type != SOCK_DGRAM && di.state != kEstablished) return {};
    return peek_queue(f.get(), di, u);
  }

  Result<void> check(std::span<const img::FileDesc* const> descs,
                     std::span<const FdProbe* const> probes) const override {
    std::map<uint32_t, size_t> by_inode;
    std::set<uint32_t> pending;
    uint64_t queued = 0;
    for (size_t i = 0; i < descs.size(); i++) {
      const img::UnixSocket& s = descs[i]->unix_socket();
      by_inode[s.inode()] = i;
      pending.insert(s.pending().begin(), s.pending().end());
      for (const std::string& m : s.queue()) queued += m.size();
    }
    if (queued > kMaxUnixQueuesBytes)
      return error(EFBIG, "the unix sockets of the tree have {} bytes queued in all, more than the {} ckpt keeps: "
                   "not supported", queued, kMaxUnixQueuesBytes);
    for (size_t i = 0; i < descs.size(); i++) {
      const img::UnixSocket& s = descs[i]->unix_socket();
      const FdProbe& p = *probes[i];
      auto where = [&] { return fmt::format("pid {}: fd {} ({})", p.pid, p.fd, p.link); };
      auto held = [](uint32_t inode) {
        const std::string h = holder_of(inode);
        return h.empty() ? std::string("held by no task ckpt can see") : "held by " + h;
      };
      if (s.connected() && s.peer() != 0 && !by_inode.contains(s.peer())) {
        if (!s.external_ok()) {
          const bool named_dgram = s.type() == SOCK_DGRAM && !s.peer_name().empty();
          return error(EOPNOTSUPP, "{}: {} is connected to unix socket [{}] ({}), outside the dumped tree ({}): "
                       "a peer outside the tree is not supported{}", where(), describe(s), s.peer(),
                       printable(s.peer_name()), held(s.peer()),
                       named_dgram ? " (--ext-unix-sk connects it to that name again at restore)"
                                   : s.type() == SOCK_DGRAM ? "" : " (not even with --ext-unix-sk: that process "
                                                                   "would have to accept a new connection)");
        }
        if (s.queue_size() && s.name().empty())
          return error(EOPNOTSUPP, "{}: messages queued for the unbound {} by its peer outside the tree: restore "
                       "could not send them again", where(), describe(s));
        continue;
      }
      for (uint32_t c : s.pending())
        if (!by_inode.contains(c))
          return error(EOPNOTSUPP, "{}: a connection from unix socket [{}], outside the dumped tree ({}), waits "
                       "to be accepted by {}: not supported", where(), c, held(c), describe(s));
      if (s.type() != SOCK_DGRAM && s.connected() && s.peer() == 0 && s.shutdown() != kShutdownBoth &&
          !pending.contains(s.inode()))
        return error(EOPNOTSUPP, "{}: {} waits to be accepted by {}, a listener outside the dumped tree: not supported",
                     where(), describe(s), printable(s.peer_name()));
      if (s.type() == SOCK_DGRAM && s.connected() && s.peer() != 0) {
        const img::UnixSocket& q = descs[by_inode[s.peer()]]->unix_socket();
        const bool mutual = q.connected() && q.peer() == s.inode();
        if (!mutual && q.name().empty())
          return error(EOPNOTSUPP, "{}: {} is connected to the unbound {}: restore could not connect it again",
                       where(), describe(s), describe(q));
        if (s.queue_size() && !mutual && s.name().empty())
          return error(EOPNOTSUPP, "{}: messages queued for the unbound {}, from a peer not connected to it: "
                       "restore could not send them again", where(), describe(s));
      }
      if (s.type() == SOCK_DGRAM && s.queue_size() && s.name().empty() && (!s.connected() || (s.peer() == 0 && !s.peer_name().empty())))
        return error(EOPNOTSUPP, "{}: messages queued for the unbound, unconnected {}: restore could not send them "
                     "again", where(), describe(s));
    }
    return {};
  }

  Result<void> prepare(std::span<const img::FileDesc* const> descs, OpenState& state) const override {
    return Restorer(descs).run(tag(), state);
  }

  Result<UniqueFd> open(const img::FileDesc& d, OpenState& state) const override {
    UniqueFd fd = state.take(tag(), d.unix_socket().inode());
    if (!fd) return error(EINVAL, "{} was not made", describe(d.unix_socket()));
    return fd;
  }
};

}  // namespace

Result<void> check_unix_sockets(const img::FileDescs& descs) {
  std::set<uint32_t> inodes;
  for (const img::FileDesc& d : descs.descs())
    if (d.has_unix_socket() && !inodes.insert(d.unix_socket().inode()).second)
      return error(EINVAL, "description {}: unix socket [{}] appears twice", d.id(), d.unix_socket().inode());
  std::set<uint32_t> pending;
  for (const img::FileDesc& d : descs.descs()) {
    if (!d.has_unix_socket()) continue;
    const img::UnixSocket& s = d.unix_socket();
    auto bad = [&](std::string_view what) { return error(EINVAL, "description {} ({}): {}", d.id(), describe(s), what); };
    if (s.type() != SOCK_STREAM && s.type() != SOCK_DGRAM && s.type() != SOCK_SEQPACKET) return bad("unknown type");
    if (s.state() != kEstablished && s.state() != kClose && s.state() != kListen) return bad("unknown state");
    if (s.state() == kListen && s.type() == SOCK_DGRAM) return bad("a listening datagram socket");
    if (s.name().size() > kMaxName || s.peer_name().size() > kMaxName) return bad("a name longer than sun_path");
    for (const std::string* n : {&s.name(), &s.peer_name()})
      if (is_path(*n) && ((*n)[0] != '/' || n->find('\0') != std::string::npos))
        return bad("a path name that is not absolute or holds a NUL");
    if (s.state() == kListen && s.name().empty()) return bad("a listener without a name");
    if (s.shutdown() > kShutdownBoth) return bad("unknown shutdown bits");
    if (s.sndbuf() > INT_MAX || s.rcvbuf() > INT_MAX || s.backlog() > INT_MAX) return bad("a size out of range");
    if (s.file_mode() > 07777) return bad("a file mode out of range");
    if (s.external_ok() && (s.type() != SOCK_DGRAM || s.peer_name().empty()))
      return bad("--ext-unix-sk on a socket that is not a datagram socket with a named peer");
    if (s.connected() && s.peer() != 0 && !inodes.contains(s.peer()) && !s.external_ok())
      return bad("a peer the images lack");
    if (s.state() != kListen && s.pending_size()) return bad("pending connections without listening");
    if (s.pending_size() > 65536) return bad("more pending connections than a listener can hold");
    for (uint32_t c : s.pending())
      if (!inodes.contains(c) || !pending.insert(c).second) return bad("a pending connection the images lack, or twice");
    if (s.queue_size() > kMaxUnixQueueMessages) return bad("too many queued messages");
    if (s.senders_size() && (s.type() != SOCK_DGRAM || s.senders_size() != s.queue_size()))
      return bad("senders that are not one per queued datagram");
    for (const std::string& n : s.senders())
      if (n.size() > kMaxName) return bad("a sender's name longer than sun_path");
    if (s.state() == kListen && s.queue_size()) return bad("queued data on a listener");
    uint64_t bytes = 0;
    for (const std::string& m : s.queue()) bytes += m.size();
    if (bytes > kMaxUnixQueueBytes) return bad(fmt::format("{} bytes queued, more than {}", bytes, kMaxUnixQueueBytes));
  }
  return {};
}

const Kind& unix_socket_kind() {
  static const UnixSocketKind k;
  return k;
}

}  // namespace ckpt::files
