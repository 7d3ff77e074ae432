// One kind of open file description (a file opened by path, a terminal, a
// pipe, ...): how dump collects it and how restore creates it again. Each kind
// lives in one file of src/files/ with both sides, and has one line in the
// table of kinds.cc; files.cc does the rest (sharing, ids, install).
//
//   dump:     claims(fd)    which kind takes an fd (in table order)
//             collect(fd)   the payload of a description, from its first fd;
//                           an Error if restore could not bring it back
//             check(all)    across descriptions, once all are collected (a
//                           pipe's two ends, a socket's peer)
//             link(fd)      what refers to other descriptions, once all are
//                           numbered (an epoll's targets)
//   verify:   verify(desc)  what open needs of a payload read from an image
//                           (image/verify.cc, for ckpt verify and restore)
//   restore:  prepare(all)  once, before any open, with the descriptions of
//                           the kind: to create those that are made together
//                           (a connection, a listener's queue) in an order
//                           of the kind's own, left in OpenState for open
//             open(desc)    ckpt's own fd on a new description, before any
//                           task exists; every task that holds it inherits it
//                           from ckpt and dups it to its numbers
//                           (restore/fd_moves.h). A kind that
//                           needs_tasks() (a pidfd, a file of /proc/PID) is
//                           opened once every task exists with its PID
//                           instead: each task that holds it then takes
//                           ckpt's fd (files.h: open_late)
//             in_task(desc) what the first task that holds it does itself,
//                           once its fds are at their numbers
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <map>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"
#include "ckpt.pb.h"
#include "files/inet_diag.h"
#include "files/sock_diag.h"
#include "proc/status.h"
#include "tree/tree.h"

namespace ckpt::files {

class FsIds;
class TcpRepairs;
struct RepairedSocket;

struct DumpFlags {
  bool shell_job = false;  // ttys are left to the restoring terminal
};

// What collecting a description may need of the rest of the dump.
struct CollectContext {
  uint64_t ghost_limit = 0;  // data bytes stored for a file without a name (contents.h)
  FsIds* fsids = nullptr;    // the filesystems of files opened by path, asked once each (file_id.h)
  // Shared memory objects the tree maps (dump/shmem.h), by (device, inode):
  // a memfd held as an fd is also one of them.
  std::map<std::pair<uint64_t, uint64_t>, uint32_t> shmem_objects;
  bool ext_unix_sk = false;  // --ext-unix-sk (unix_socket.cc)
  UnixSockets unix_sockets;  // of ckpt's network namespace, once the tree is frozen
  // Terminals (pty.cc, tty.cc): the indices of the pty pairs whose master
  // the tree holds; --shell-job and the terminals it accepts from outside
  // (the root's controlling terminal, ckpt's own), as st_rdev; the tree.
  std::set<uint32_t> pty_masters, pty_slaves;
  bool shell_job = false;
  std::set<uint64_t> shell_ttys;
  const tree::ProcessTree* tree = nullptr;
  // Inet sockets (inet_socket.cc).
  bool tcp_established = false;   // --tcp-established: connections through TCP_REPAIR
  bool skip_in_flight = false;    // --skip-in-flight: drop connections not yet accepted from outside
  InetSockets inet_sockets;       // of ckpt's network namespace, once the tree is frozen
  TcpRepairs* tcp_repairs = nullptr;  // what collect put in repair mode, held by the dump
};

// An fd of a frozen task, as dump finds it.
struct FdProbe {
  pid_t pid = 0;
  int fd = -1;
  std::string link;    // /proc/PID/fd/N: "/path", "pipe:[123]", "anon_inode:[eventfd]", ...
  struct stat st {};   // of the file itself
  proc::FdInfo info;   // the description's status flags (no O_CLOEXEC: the fd's own) and offset
  std::optional<bool> cloexec;  // the fd's FD_CLOEXEC, where fdinfo was read; else the parasite's to tell
  std::string fdinfo;  // /proc/PID/fdinfo/N, for the lines of a kind; empty where none needs it (probe.h)
  int pidfd = -1;      // the task's pidfd: pidfd_getfd(pidfd, fd) is ckpt's own fd on the description
  const CollectContext* ctx = nullptr;  // set when descriptions are collected
};

// What the kernel appends to the path of a file without a name
// ("/tmp/x (deleted)", "/memfd:name (deleted)").
inline constexpr std::string_view kDeletedSuffix = " (deleted)";

// ckpt's own fd on the description `p` is on (pidfd_getfd). Its state is the
// task's: a kind reads through it and changes nothing (or puts back what it
// changed before returning).
Result<UniqueFd> take_file(const FdProbe& p);

// A notification group (inotify, fanotify) with events not yet read
// (FIONREAD) is refused: restore could not queue them again.
Result<void> refuse_unread_events(const FdProbe& p);

// Descriptions being created at restore, with what one description leaves
// for another (a pipe's other end), by kind and object.
class OpenState {
 public:
  // `shmem`: the shared memory objects restore created, by id (restore/shmem.h).
  // `check_files`: refuse a file that is not as it was dumped (its size).
  OpenState(const std::map<uint32_t, UniqueFd>& shmem, bool check_files) : shmem_(shmem), check_files_(check_files) {}
  bool check_files() const { return check_files_; }
  // --tcp-close: established TCP connections come back closed.
  bool tcp_close = false;
  // TCP connections made in repair mode: they leave it once the tree is
  // restored (inet_socket.h: leave_repair), and are closed in it, silently,
  // if the restore fails.
  std::vector<RepairedSocket>* repaired = nullptr;
  // Kept for every description of one object (a file without a name opened
  // twice): `keep` once, then `kept` gives it to each, or -1.
  void keep(int tag, uint64_t object, UniqueFd fd) { kept_[{tag, object}] = std::move(fd); }
  int kept(int tag, uint64_t object) const {
    auto it = kept_.find({tag, object});
    return it == kept_.end() ? -1 : it->second.get();
  }
  // An fd on shared memory object `id`, or -1.
  int shmem(uint32_t id) const {
    auto it = shmem_.find(id);
    return it == shmem_.end() ? -1 : it->second.get();
  }
  void leave(int tag, uint64_t object, UniqueFd fd) { left_[{tag, object}] = std::move(fd); }
  // What `leave` left for (tag, object), or an invalid fd.
  UniqueFd take(int tag, uint64_t object) {
    auto it = left_.find({tag, object});
    if (it == left_.end()) return UniqueFd();
    UniqueFd fd = std::move(it->second);
    left_.erase(it);
    return fd;
  }

 private:
  std::map<std::pair<int, uint64_t>, UniqueFd> left_, kept_;
  const std::map<uint32_t, UniqueFd>& shmem_;
  bool check_files_;
};

// Which description an fd of a task refers to, once all are numbered at
// dump (0: none).
class FdIndex {
 public:
  virtual ~FdIndex() = default;
  virtual uint32_t desc_of(pid_t pid, int fd) const = 0;
};

// Something a restored task does itself once its fds are at their numbers,
// before it runs a single instruction of its own: what only the holder of
// an fd number can do (an epoll's targets are keyed by their fd numbers).
// Plain data: the spawner runs it in the task (pie/spawn_abi.h: StepArg).
struct InTaskStep {
  enum class Op { EpollAdd, PosixLock } op;
  int fd;               // the task's fd it acts on (the epoll, the locked file)
  int target = -1;      // EpollAdd: the target's fd number
  int source = -1;      // EpollAdd: where the task holds it if `target` was closed since (kept closed)
  uint32_t events = 0;  // EpollAdd: epoll_event
  uint64_t data = 0;
  bool write = false;   // PosixLock: F_WRLCK or F_RDLCK, over [start, start + len) (len 0: to EOF)
  uint64_t start = 0, len = 0;
};

class Kind {
 public:
  virtual ~Kind() = default;
  // As messages name it: "pipe", "regular file".
  virtual std::string_view name() const = 0;
  // Its case of img::FileDesc::kind.
  virtual img::FileDesc::KindCase tag() const = 0;
  // The cases collect may give (a pty slave of the caller's terminal is a
  // --shell-job terminal).
  virtual bool describes(img::FileDesc::KindCase c) const { return c == tag(); }
  virtual bool claims(const FdProbe& p, const DumpFlags& flags) const = 0;
  virtual Result<void> collect(const FdProbe& p, img::FileDesc* d) const = 0;
  // Once every description is numbered: what refers to others (an epoll's
  // targets) names them.
  virtual Result<void> link(const FdProbe& p, const FdIndex& index, img::FileDesc* d) const {
    (void)p, (void)index, (void)d;
    return {};
  }
  // `probes[i]` is the first fd of `descs[i]`, for the descriptions of this kind.
  virtual Result<void> check(std::span<const img::FileDesc* const> descs,
                             std::span<const FdProbe* const> probes) const {
    (void)descs, (void)probes;
    return {};
  }
  // `descs`: those of this kind, by id.
  virtual Result<void> prepare(std::span<const img::FileDesc* const> descs, OpenState& state) const {
    (void)descs, (void)state;
    return {};
  }
  // The payload of `d` as an image holds it is one open can take: a crafted
  // image gets an Error saying what is wrong with it.
  virtual Result<void> verify(const img::FileDesc& d) const {
    (void)d;
    return {};
  }
  virtual Result<UniqueFd> open(const img::FileDesc& d, OpenState& state) const = 0;
  // Its descriptions refer to tasks of the tree by PID: open() runs once
  // they all exist (zombies not yet dead), not before any does.
  virtual bool needs_tasks() const { return false; }
  // Steps the first task that holds `d` (at fd `fd`; `table`: its whole fd
  // table, sorted by fd) takes itself once its fds are in place.
  virtual Result<void> in_task(const img::FileDesc& d, int fd, const img::Files& table,
                               std::vector<InTaskStep>* steps) const {
    (void)d, (void)fd, (void)table, (void)steps;
    return {};
  }
};

// The kinds, one per file of src/files/ (named after it).
const Kind& regular_kind();
const Kind& terminal_kind();
const Kind& pipe_kind();
const Kind& epoll_kind();
const Kind& memfd_kind();
const Kind& deleted_kind();
const Kind& inotify_kind();
const Kind& unix_socket_kind();
const Kind& eventfd_kind();
const Kind& signalfd_kind();
const Kind& timerfd_kind();
const Kind& pty_kind();
const Kind& inet_socket_kind();
const Kind& netlink_socket_kind();
const Kind& pidfd_kind();
const Kind& proc_file_kind();
const Kind& fanotify_kind();

// A terminal's device: pts, tty, console or ptmx.
bool is_tty_dev(dev_t rdev);

// Every kind, in the order they are asked to claim an fd (kinds.cc).
std::span<const Kind* const> kinds();
// The kind of a description, or nullptr (an unknown case).
const Kind* kind_of(const img::FileDesc& d);

}  // namespace ckpt::files
