// Pipes and FIFOs: each end is a description of its own, and the ends of one
// pipe (same inode) are one pipe again after restore, with its capacity and
// its unread bytes.
//
// Dump reads the bytes without taking them: tee(2) duplicates the pipe's
// buffers (references to the same pages, nothing consumed) into a pipe of
// ckpt's, which ckpt then reads. The task finds every byte where it was,
// with --leave-running too.
//
// Restore creates the pipe with its first description and keeps an O_RDWR
// holder on it (OpenState) while the others are opened: each description is
// a new open of the pipe through /proc/self/fd/HOLDER (a FIFO's path leads
// to the same pipe), which never blocks since the holder is a reader and a
// writer. The holder goes when every description is open: an end no
// description holds is then closed, as it was at dump.
#include <fcntl.h>
#include <linux/limits.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "arch/x86_64/page.h"
#include "base/fs.h"
#include "files/kind.h"
#include "proc/status.h"

namespace ckpt::files {

namespace {

// Unread data of all the pipes of a tree, which goes into fdesc.img (whose
// frame takes 256 MiB, image_dir.h): room left for the rest.
constexpr uint64_t kMaxPipeData = 192 << 20;
// The kernel's O_LARGEFILE, as fdinfo shows it (glibc's is 0 on x86_64).
constexpr uint32_t kLargeFile = 0100000;

bool is_fifo(const img::Pipe& p) { return !p.fifo_path().empty(); }

bool can_read(uint32_t flags) { return (flags & O_ACCMODE) != O_WRONLY; }
bool can_write(uint32_t flags) { return (flags & O_ACCMODE) != O_RDONLY; }

// Bytes queued in a pipe, through any of its ends.
Result<int> queued(int fd) {
  int n = 0;
  if (ioctl(fd, FIONREAD, &n) < 0) return sys_error("FIONREAD");
  return n;
}

// A pipe of ckpt's as large as the task's, for tee to copy into.
Result<std::pair<UniqueFd, UniqueFd>> scratch_pipe(uint32_t size) {
  int c[2];
  if (pipe2(c, O_CLOEXEC | O_NONBLOCK) < 0) return sys_error("pipe2");
  std::pair<UniqueFd, UniqueFd> out{UniqueFd(c[0]), UniqueFd(c[1])};
  if (fcntl(c[1], F_SETPIPE_SZ, size) < static_cast<int>(size)) return sys_error("F_SETPIPE_SZ {} for a copy", size);
  return out;
}

// Duplicates what `src` (readable) holds into `into`, consuming nothing.
Result<size_t> tee_all(int src, int into, uint32_t size) {
  ssize_t n = tee(src, into, size, SPLICE_F_NONBLOCK);
  if (n < 0 && errno == EAGAIN) return 0;  // empty, with writers
  if (n < 0) return sys_error("tee");
  return static_cast<size_t>(n);
}

// The unread bytes of the pipe `src` reads, with their packets. A read
// returns at most one packet (pipe_read stops after a PIPE_BUF_FLAG_PACKET
// buffer) and otherwise all it is asked for, so reads of everything left cut
// the copy at packet ends: several reads mean packets. One read of at most a
// page may be one packet: reading one byte of a second copy says (the rest
// of a packet is dropped with it).
Result<void> peek(int src, uint32_t size, img::Pipe* out) {
  auto [r, w] = TRY(scratch_pipe(size));
  const size_t n = TRY(tee_all(src, w.get(), size));
  std::string data;
  std::vector<uint32_t> reads;
  int err = 0;
  size_t got = 0;
  // Read into place, not into a zero-filled string first.
  data.resize_and_overwrite(n, [&](char* p, size_t) {
    while (got < n) {
      ssize_t k = read(r.get(), p + got, n - got);
      if (k <= 0) {
        err = k < 0 ? errno : EIO;
        break;
      }
      reads.push_back(static_cast<uint32_t>(k));
      got += static_cast<size_t>(k);
    }
    return got;
  });
  if (err) return error(err, "read the copy of its data at {} of {} bytes", got, n);
  bool packets = reads.size() > 1;
  if (reads.size() == 1 && n > 1 && n <= arch::kPageSize) {
    TRY(tee_all(src, w.get(), size));
    char one;
    if (read(r.get(), &one, 1) != 1) return sys_error("read a second copy");
    packets = TRY(queued(r.get())) == 0;
  }
  if (packets) {
    for (uint32_t len : reads)
      if (len > arch::kPageSize)
        return error(EOPNOTSUPP, "it holds packets (O_DIRECT) and a byte stream of {} bytes between them: not "
                     "supported", len);
    for (uint32_t len : reads) out->add_packets(len);
  }
  out->set_data(std::move(data));
  return {};
}

// The fds of processes outside the tree that hold one of `links`
// ("pipe:[123]", a FIFO's path): a process ckpt does not trace is outside
// (dump has seized every task of the tree), and so is nothing of ckpt's own.
struct Holder {
  pid_t pid;
  int fd;
};
Result<std::map<std::string, Holder>> outside_holders(const std::set<std::string>& links) {
  std::map<std::string, Holder> out;
  const pid_t self = getpid();
  for (int pid : TRY(proc::list_numeric_dir("/proc"))) {
    if (pid == self) continue;
    auto fds = proc::list_numeric_dir(fmt::format("/proc/{}/fd", pid));
    if (!fds) continue;  // gone, or a kernel thread
    for (int fd : *fds) {
      auto link = read_link(fmt::format("/proc/{}/fd/{}", pid, fd));
      if (!link || !links.contains(*link) || out.contains(*link)) continue;
      auto status = read_file(fmt::format("/proc/{}/status", pid));
      if (status && status->find(fmt::format("\nTracerPid:\t{}\n", self)) != std::string::npos) break;  // the tree's
      out[*link] = {pid, fd};
    }
  }
  return out;
}

class PipeKind final : public Kind {
 public:
  std::string_view name() const override { return "pipe"; }
  img::FileDesc::KindCase tag() const override { return img::FileDesc::kPipe; }

  bool claims(const FdProbe& p, const DumpFlags&) const override { return S_ISFIFO(p.st.st_mode); }

  Result<void> collect(const FdProbe& p, img::FileDesc* d) const override {
    img::Pipe* pp = d->mutable_pipe();
    pp->set_inode(p.st.st_ino);
    const bool fifo = !p.link.starts_with("pipe:");
    if (fifo) {
      // Restore opens the path: it must lead to this very FIFO.
      const std::string& path = p.link;
      if (path.ends_with(kDeletedSuffix)) return error(EOPNOTSUPP, "a deleted FIFO: not supported");
      struct stat at;
      if (path.empty() || path[0] != '/' || ::stat(path.c_str(), &at) < 0 || at.st_dev != p.st.st_dev ||
          at.st_ino != p.st.st_ino)
        return error(EOPNOTSUPP, "a FIFO restore could not open again by its path: not supported");
      pp->set_fifo_path(path);
      pp->set_fifo_dev(p.st.st_dev);
    }
    UniqueFd f = TRY(take_file(p));
    const int size = fcntl(f.get(), F_GETPIPE_SZ);
    if (size < 0) return sys_error("F_GETPIPE_SZ");
    pp->set_size(static_cast<uint32_t>(size));
    if (TRY(queued(f.get())) == 0) return {};
    if (can_read(p.info.flags)) return peek(f.get(), pp->size(), pp);
    // A write end only. The bytes of an anonymous pipe whose read end is
    // closed are lost to everyone (check() makes sure no one outside holds
    // it): it comes back empty, and writes fail with EPIPE as they did. A
    // FIFO's can still be read by whoever opens its path: they are kept,
    // read through a read end of ckpt's (which never blocks, the task holding
    // a write end).
    if (!fifo) return {};
    const std::string at = fmt::format("/proc/{}/fd/{}", p.pid, p.fd);
    int r = ::open(at.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (r < 0) return sys_error("open {} to read its data", at);
    return peek(UniqueFd(r).get(), pp->size(), pp);
  }

  // An end that no description of the tree holds is closed, unless a
  // process outside the tree holds it: its bytes would go (or come) there,
  // which restore can't bring back.
  Result<void> check(std::span<const img::FileDesc* const> descs,
                     std::span<const FdProbe* const> probes) const override {
    struct Ends {
      bool read = false, write = false;
      const FdProbe* first = nullptr;
    };
    std::map<std::string, Ends> pipes;  // by link
    for (size_t i = 0; i < descs.size(); i++) {
      Ends& e = pipes[probes[i]->link];
      e.read |= can_read(descs[i]->flags());
      e.write |= can_write(descs[i]->flags());
      if (!e.first) e.first = probes[i];
    }
    // Their data goes into fdesc.img, a metadata image (at most 256 MiB).
    uint64_t data = 0;
    for (const img::FileDesc* d : descs) data += d->pipe().data().size();
    if (data > kMaxPipeData)
      return error(EFBIG, "the tree's pipes hold {} MiB of unread data, more than ckpt keeps ({} MiB)", data >> 20,
                   kMaxPipeData >> 20);
    std::set<std::string> incomplete;
    for (const auto& [link, e] : pipes)
      if (!e.read || !e.write) incomplete.insert(link);
    if (incomplete.empty()) return {};
    for (const auto& [link, h] : TRY(outside_holders(incomplete))) {
      const Ends& e = pipes[link];
      return error(EOPNOTSUPP, "pid {}: fd {} ({}): the tree holds no {} of this {}, and pid {} outside the tree "
                   "holds it (fd {}): a pipe with an end outside the dumped tree is not supported", e.first->pid,
                   e.first->fd, link, e.read ? "write end" : "read end", link.starts_with("pipe:") ? "pipe" : "FIFO",
                   h.pid, h.fd);
    }
    return {};
  }

  Result<UniqueFd> open(const img::FileDesc& d, OpenState& state) const override {
    const img::Pipe& p = d.pipe();
    const int t = state_tag(p);
    UniqueFd holder = state.take(t, state_key(p, kHolder));
    if (!holder) {
      auto [h, ends] = TRY(create(p));
      holder = std::move(h);
      if (ends[0]) state.leave(t, state_key(p, kReadEnd), std::move(ends[0]));
      if (ends[1]) state.leave(t, state_key(p, kWriteEnd), std::move(ends[1]));
    }
    const int size = fcntl(holder.get(), F_GETPIPE_SZ);
    if (size != static_cast<int>(p.size()))
      return error(EINVAL, "the pipe's capacity is {} bytes, the image says {}", size, p.size());
    // An end pipe(2) made has no O_LARGEFILE (open(2) always adds it, and
    // F_SETFL can't take it away): such a description is an end of
    // restore's pipe(2) too. Others are opens of the pipe, as they were.
    const int acc = d.flags() & O_ACCMODE;
    UniqueFd out;
    if (!is_fifo(p) && !(d.flags() & kLargeFile) && acc != O_RDWR)
      out = state.take(t, state_key(p, acc == O_RDONLY ? kReadEnd : kWriteEnd));
    if (!out) {
      // Non-blocking: a FIFO's open never waits for a partner (the holder is
      // both); set_status gives the description its own flags afterwards.
      const std::string at = fmt::format("/proc/self/fd/{}", holder.get());
      int fd = ::open(at.c_str(), acc | O_NONBLOCK | O_CLOEXEC);
      if (fd < 0) return sys_error("open the pipe again ({})", is_fifo(p) ? p.fifo_path() : at);
      out = UniqueFd(fd);
    }
    if (!p.data().empty() && TRY(queued(holder.get())) == 0) TRY(fill(holder.get(), p));
    state.leave(t, state_key(p, kHolder), std::move(holder));
    return out;
  }

 private:
  // What OpenState keeps of a pipe until every description is open: the
  // holder, and the ends of restore's pipe(2) no description took yet.
  enum Slot { kHolder, kReadEnd, kWriteEnd };
  // FIFOs under a tag of their own (no kind's: negative): their keys are
  // hashes of (device, inode), an anonymous pipe's are exact.
  int state_tag(const img::Pipe& p) const { return is_fifo(p) ? -tag() : tag(); }
  static uint64_t state_key(const img::Pipe& p, Slot s) {
    if (is_fifo(p)) return p.inode() ^ (p.fifo_dev() * 0x9e3779b97f4a7c15ULL);
    return p.inode() * 3 + s;  // pipefs inode numbers are 32 bits (verified)
  }

  // The pipe with its capacity, as an O_RDWR|O_NONBLOCK holder, and the ends
  // of a new anonymous pipe.
  static Result<std::pair<UniqueFd, std::array<UniqueFd, 2>>> create(const img::Pipe& p) {
    std::array<UniqueFd, 2> ends;
    int fd;
    if (is_fifo(p)) {
      // Not opened at all if it is something else now (a device's open may
      // do things); fstat below closes the race.
      struct stat at;
      if (::stat(p.fifo_path().c_str(), &at) < 0) return sys_error("stat FIFO {}", p.fifo_path());
      if (!S_ISFIFO(at.st_mode)) return error(EINVAL, "{} is no longer a FIFO", p.fifo_path());
      fd = ::open(p.fifo_path().c_str(), O_RDWR | O_NONBLOCK | O_CLOEXEC);
      if (fd < 0) return sys_error("open FIFO {}", p.fifo_path());
    } else {
      int e[2];
      if (pipe2(e, O_CLOEXEC) < 0) return sys_error("pipe2");
      ends = {UniqueFd(e[0]), UniqueFd(e[1])};
      fd = ::open(fmt::format("/proc/self/fd/{}", e[0]).c_str(), O_RDWR | O_NONBLOCK | O_CLOEXEC);
      if (fd < 0) return sys_error("open a new pipe read-write");
    }
    UniqueFd holder(fd);
    struct stat st;
    if (fstat(fd, &st) < 0) return sys_error("fstat");
    if (!S_ISFIFO(st.st_mode)) return error(EINVAL, "{} is no longer a FIFO", p.fifo_path());
    if (fcntl(fd, F_SETPIPE_SZ, p.size()) < 0) return sys_error("F_SETPIPE_SZ {}", p.size());
    return std::pair{std::move(holder), std::move(ends)};
  }

  // Its unread bytes, packet by packet in packet mode.
  static Result<void> fill(int holder, const img::Pipe& p) {
    const std::string& data = p.data();
    std::vector<size_t> writes;
    if (p.packets_size() == 0) writes.push_back(data.size());
    for (uint32_t len : p.packets()) writes.push_back(len);
    const int flags = fcntl(holder, F_GETFL);
    if (p.packets_size() && fcntl(holder, F_SETFL, flags | O_DIRECT) < 0) return sys_error("set O_DIRECT");
    size_t at = 0;
    for (size_t len : writes) {
      // One write per packet, whole; a stream fits too (the image is
      // verified: no more than the capacity, and a holder that can't block).
      ssize_t n = write(holder, data.data() + at, len);
      if (n != static_cast<ssize_t>(len))
        return n < 0 ? sys_error("write {} bytes of data at {}", len, at)
                     : error(EIO, "wrote {} of {} bytes of data at {}", n, len, at);
      at += len;
    }
    if (p.packets_size() && fcntl(holder, F_SETFL, flags) < 0) return sys_error("clear O_DIRECT");
    return {};
  }
};

}  // namespace

const Kind& pipe_kind() {
  static const PipeKind k;
  return k;
}

}  // namespace ckpt::files
