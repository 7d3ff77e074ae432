// Pseudo-terminal pairs created inside the tree (a terminal multiplexer and
// its shell): the master (/dev/ptmx) and its slave (/dev/pts/N) both held by
// tasks of the tree. Restore opens /dev/ptmx for a new pair: its index is the
// kernel's choice, so a restored task that reads its pts number (ttyname,
// TIOCGPTN, /proc/self/fd links) sees the new one. Only the link differs: the
// pair's state comes back.
//
// The pair's state goes with its master's description (there is one: a
// master can't be opened again): the slave's termios (the master's own can't
// be set through any ioctl: TCSETS on a master sets its slave's), window
// size, packet mode, lock, exclusive mode of each end, the session it is the
// controlling terminal of and that session's foreground group, and the bytes
// queued in each direction.
//
// Queued bytes can't be peeked at, so dump reads them and puts them back at
// once, while the tree is frozen; whatever happens next (--leave-running, a
// failed dump) the tasks find them where they were:
//  - towards the master (written on the slave side): read from the master,
//    written again on a slave of ckpt's with OPOST off. They reach the
//    master's line discipline through its flip buffer, later, but the
//    master's termios is the raw one the kernel gave it and can't change.
//  - towards the slave (written to the master): already through the slave's
//    input processing (echo, ICRNL, line editing). Read from a slave of
//    ckpt's (canonical: line by line, so lines keep their ends; the line
//    being edited with ICANON off), then given back with TIOCSTI, which
//    feeds the line discipline at once, under a termios that takes each byte
//    literally (no echo, signals or translation; in canonical mode VLNEXT
//    before each special byte). Restore feeds a new pair the same way.
//    TIOCSTI can only fill the line discipline's 4 KiB buffer: more input
//    than 2 KiB pending for the slave is refused, before anything is read.
#include "files/pty.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <string>

#include "base/fs.h"
#include "files/kind.h"
#include "proc/status.h"

namespace ckpt::files {

namespace {

constexpr unsigned kTtyMajor = 5, kPtmxMinor = 2;
constexpr unsigned kPtsMajor = 136;  // UNIX98_PTY_SLAVE_MAJOR: every index is a minor of it
constexpr size_t kKernelNccs = 19;   // the kernel's struct termios c_cc
constexpr int kMaxInputForSlave = 2048;
constexpr uint8_t kDefaultLnext = 0x16;  // ^V

bool is_master(const struct stat& st) {
  return S_ISCHR(st.st_mode) && major(st.st_rdev) == kTtyMajor && minor(st.st_rdev) == kPtmxMinor;
}
bool is_slave(const struct stat& st) { return S_ISCHR(st.st_mode) && major(st.st_rdev) == kPtsMajor; }

// "tty-index:\tN" of a master's fdinfo.
std::optional<uint32_t> master_index(const std::string& fdinfo) {
  const size_t at = fdinfo.find("tty-index:");
  if (at == std::string::npos) return std::nullopt;
  return static_cast<uint32_t>(strtoul(fdinfo.c_str() + at + 10, nullptr, 10));
}

Result<termios> get_termios(int fd) {
  termios t{};
  if (tcgetattr(fd, &t) < 0) return sys_error("TCGETS");
  return t;
}

Result<void> set_termios(int fd, const termios& t) {
  if (tcsetattr(fd, TCSANOW, &t) < 0) return sys_error("TCSETS");
  return {};
}

// Puts a termios back when it goes (dump's reads change it for a moment).
class TermiosBack {
 public:
  TermiosBack(int fd, const termios& t) : fd_(fd), t_(t) {}
  ~TermiosBack() {
    if (owed_) (void)set_termios(fd_, t_);
  }
  Result<void> now() {
    owed_ = false;
    return set_termios(fd_, t_);
  }

 private:
  int fd_;
  termios t_;
  bool owed_ = true;
};

// Puts a description's status flags back when it goes.
class FlagsBack {
 public:
  explicit FlagsBack(int fd) : fd_(fd), flags_(fcntl(fd, F_GETFL)) {}
  ~FlagsBack() {
    if (flags_ >= 0) fcntl(fd_, F_SETFL, flags_);
  }
  int flags() const { return flags_; }

 private:
  int fd_, flags_;
};

int get_int(int fd, unsigned long req, const char* what, Result<void>* err) {
  int v = 0;
  if (ioctl(fd, req, &v) < 0 && *err) *err = sys_error("{}", what);
  return v;
}

// What a non-blocking `fd` has to read. A master in packet mode starts every
// read with a status byte, TIOCPKT_DATA before data (dump refuses a pending
// status first).
Result<std::string> drain(int fd, bool packet) {
  std::string out;
  char buf[8192];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EIO)) break;  // EIO: the other end is closed, nothing left
    if (n < 0) return sys_error("read");
    if (n == 0) break;
    size_t skip = 0;
    if (packet) {
      if (buf[0] != TIOCPKT_DATA) return error(EIO, "packet-mode status byte {:#x} among the data", buf[0]);
      skip = 1;
    }
    out.append(buf + skip, static_cast<size_t>(n) - skip);
  }
  return out;
}

// Writes `data` to non-blocking `fd`, waiting for room.
Result<void> write_all(int fd, std::string_view data) {
  for (int idle = 0; !data.empty();) {
    ssize_t n = write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno != EAGAIN) return sys_error("write {} bytes", data.size());
    if (n > 0) {
      data.remove_prefix(static_cast<size_t>(n));
      idle = 0;
      continue;
    }
    pollfd p{fd, POLLOUT, 0};
    if (poll(&p, 1, 1000) == 0 && ++idle == 10) return error(EAGAIN, "no room for {} bytes after 10 s", data.size());
  }
  return {};
}

bool special(const termios& t, int i) { return t.c_cc[i] != 0; }

// The line terminators of canonical mode that a read hands back with the line.
bool ends_line(const termios& t, uint8_t c) {
  return c == '\n' || (special(t, VEOL) && c == t.c_cc[VEOL]) ||
         (special(t, VEOL2) && (t.c_lflag & IEXTEN) && c == t.c_cc[VEOL2]);
}

// What is queued for the slave's readers, read through `s` (ckpt's own
// non-blocking slave description), and the termios put back.
Result<void> read_input(int s, const termios& real, img::Pty* out) {
  TermiosBack back(s, real);
  char buf[8192];
  if (real.c_lflag & ICANON) {
    // A read returns one line at most (with its terminator; without one if
    // VEOF ended it, and 0 bytes for a VEOF at the start of a line).
    for (int lines = 0;; lines++) {
      if (lines > 4096) return error(EIO, "the slave's input does not run dry");
      ssize_t n = read(s, buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EIO)) break;
      if (n < 0) return sys_error("read a line of the slave's input");
      img::PtyLine* l = out->add_lines();
      l->set_data(buf, static_cast<size_t>(n));
      l->set_eof(n == 0 || !ends_line(real, static_cast<uint8_t>(buf[n - 1])));
    }
  }
  // What is left: the line being edited, or all of it.
  termios raw = real;
  raw.c_lflag &= ~ICANON;
  raw.c_cc[VMIN] = 1;
  raw.c_cc[VTIME] = 0;
  TRY_CTX(set_termios(s, raw), "read the slave's input");
  out->set_to_slave(TRY_CTX(drain(s, false), "read the slave's input"));
  return back.now();
}

// Gives the slave's line discipline `q`'s input back, as read_input read it:
// TIOCSTI on `s` (a slave) under a termios that takes it literally.
Result<void> put_input(int s, const termios& real, bool packet, const img::Pty& q) {
  if (q.lines_size() == 0 && q.to_slave().empty()) return {};
  const bool canon = real.c_lflag & ICANON;
  termios t = real;
  // Flow control stays as it was: packet mode reports a change of it.
  const bool ixon = packet && (real.c_iflag & IXON);
  t.c_iflag = ixon ? IXON : 0;
  t.c_lflag = canon ? (ICANON | IEXTEN) : 0;
  if (canon && !special(t, VLNEXT)) t.c_cc[VLNEXT] = kDefaultLnext;
  bool is_special[256] = {};
  if (canon) {
    is_special[static_cast<uint8_t>('\n')] = true;
    for (int i : {VERASE, VKILL, VEOF, VEOL, VWERASE, VLNEXT, VEOL2})
      if (special(t, i)) is_special[t.c_cc[i]] = true;
  }
  if (ixon)
    for (int i : {VSTART, VSTOP})
      if (special(t, i)) is_special[t.c_cc[i]] = true;
  TRY_CTX(set_termios(s, t), "put the slave's input back");
  TermiosBack back(s, real);
  auto put = [&](uint8_t c) -> Result<void> {
    if (ioctl(s, TIOCSTI, &c) < 0) return sys_error("put the slave's input back: TIOCSTI");
    return {};
  };
  auto literal = [&](uint8_t c) -> Result<void> {
    if (is_special[c]) {
      if (!canon) return error(EOPNOTSUPP, "input for the slave holds its start/stop character {:#x} (IXON)", c);
      TRY(put(t.c_cc[VLNEXT]));
    }
    return put(c);
  };
  for (const img::PtyLine& l : q.lines()) {
    const std::string& d = l.data();
    const size_t body = l.eof() || d.empty() ? d.size() : d.size() - 1;
    for (size_t i = 0; i < body; i++) TRY(literal(static_cast<uint8_t>(d[i])));
    if (!l.eof() && !d.empty()) TRY(put(static_cast<uint8_t>(d.back())));
    if (l.eof()) {
      if (!special(t, VEOF)) return error(EINVAL, "a line ended by VEOF, but VEOF is disabled");
      TRY(put(t.c_cc[VEOF]));
    }
  }
  for (char c : q.to_slave()) TRY(literal(static_cast<uint8_t>(c)));
  return back.now();
}

// Bytes for the master, written on slave `s` with OPOST off: they take the
// master's (raw, fixed) input path, as the slave's output did.
Result<void> put_output(int s, const termios& real, const std::string& data) {
  if (data.empty()) return {};
  termios t = real;
  t.c_oflag &= ~OPOST;
  TRY_CTX(set_termios(s, t), "put the master's input back");
  TermiosBack back(s, real);
  TRY_CTX(write_all(s, data), "put the master's input back");
  return back.now();
}

// A slave description of ckpt's own on master `m`, opened through it
// (TIOCGPTPEER: whatever devpts holds it), unlocked for the moment if locked.
Result<UniqueFd> open_slave(int m, int flags, bool locked) {
  const int unlock = 0, lock = 1;
  if (locked && ioctl(m, TIOCSPTLCK, &unlock) < 0) return sys_error("unlock (TIOCSPTLCK 0)");
  UniqueFd fd(ioctl(m, TIOCGPTPEER, flags | O_NOCTTY | O_CLOEXEC));
  const int err = errno;
  if (locked && ioctl(m, TIOCSPTLCK, &lock) < 0) return sys_error("lock again (TIOCSPTLCK 1)");
  if (!fd) return error(err, "open the slave (TIOCGPTPEER)");
  return fd;
}

// Refuses a pair some process outside the tree holds the slave of (its
// master can't be told from another pair's: /proc names every master
// /dev/ptmx; a session outside with it for terminal is refused by TIOCGSID).
// A pts of another devpts instance has the same path and device number in
// its mount namespace: the instance (st_dev) tells them apart.
Result<void> refuse_outside_holders(uint32_t index, const tree::ProcessTree& tree) {
  const std::string slave = fmt::format("/dev/pts/{}", index);
  struct stat want;
  if (::stat(slave.c_str(), &want) < 0) return sys_error("stat {}", slave);
  for (int pid : TRY(proc::list_numeric_dir("/proc"))) {
    if (tree.find(pid) || pid == getpid()) continue;
    auto fds = proc::list_numeric_dir(fmt::format("/proc/{}/fd", pid));
    if (!fds) continue;  // gone, or a kernel thread
    for (int fd : *fds) {
      const std::string path = fmt::format("/proc/{}/fd/{}", pid, fd);
      auto link = read_link(path);
      struct stat st;
      if (link && *link == slave && ::stat(path.c_str(), &st) == 0 && st.st_dev == want.st_dev &&
          st.st_rdev == want.st_rdev) {
        auto who = proc::read_stat(pid);
        return error(EOPNOTSUPP, "{} is held by pid {} ({}, fd {}), outside the tree: its other end can't come back",
                     slave, pid, who ? who->comm : "?", fd);
      }
    }
  }
  return {};
}

class Pty final : public Kind {
 public:
  std::string_view name() const override { return "pty"; }
  img::FileDesc::KindCase tag() const override { return img::FileDesc::kPty; }
  bool describes(img::FileDesc::KindCase c) const override {
    return c == img::FileDesc::kPty || c == img::FileDesc::kTerminal;
  }

  bool claims(const FdProbe& p, const DumpFlags&) const override { return is_master(p.st) || is_slave(p.st); }

  Result<void> collect(const FdProbe& p, img::FileDesc* d) const override {
    const CollectContext& ctx = *p.ctx;
    if (is_master(p.st)) return collect_master(p, d);
    const uint32_t index = minor(p.st.st_rdev);
    if (ctx.pty_masters.contains(index)) {
      if (p.link != fmt::format("/dev/pts/{}", index))
        return error(EOPNOTSUPP, "a pty slave of another devpts instance ({}): not supported yet", p.link);
      d->mutable_pty()->set_index(index);
      return {};
    }
    // Its master is outside the tree: the terminal the tree runs on, if
    // --shell-job says so and it is that one.
    if (ctx.shell_job && ctx.shell_ttys.contains(p.st.st_rdev)) {
      d->mutable_terminal()->set_path(p.link);
      d->mutable_terminal()->set_fd(p.fd);
      return {};
    }
    return error(EOPNOTSUPP, "{} is a terminal whose master (/dev/ptmx) is held outside the tree{}", p.link,
                 ctx.shell_job ? ", and it is not the terminal the tree runs on (the root's controlling terminal, "
                                 "or ckpt's), which --shell-job would give ckpt's terminal at restore"
                               : ": if it is the terminal of the shell the tree was started from, dump with "
                                 "--shell-job (restore gives the tree ckpt's terminal)");
  }

  Result<void> verify(const img::FileDesc& d) const override {
    const img::Pty& t = d.pty();
    if ((d.flags() & O_ACCMODE) == O_ACCMODE) return error(EINVAL, "access mode {:#o}", d.flags() & O_ACCMODE);
    if (!t.master()) return {};
    if (t.cc().size() != kKernelNccs) return error(EINVAL, "{} control characters, not {}", t.cc().size(), kKernelNccs);
    if (t.rows() > 0xffff || t.cols() > 0xffff || t.xpixel() > 0xffff || t.ypixel() > 0xffff)
      return error(EINVAL, "window size {}x{} ({}x{} pixels) does not fit a winsize", t.cols(), t.rows(), t.xpixel(),
                   t.ypixel());
    if (t.session() < 0 || t.foreground() < 0 || (t.foreground() && !t.session()))
      return error(EINVAL, "session {}, foreground group {}", t.session(), t.foreground());
    size_t input = t.to_slave().size();
    for (const img::PtyLine& l : t.lines()) input += l.data().size();
    if (input > kMaxInputForSlave || t.lines_size() > kMaxInputForSlave)
      return error(EINVAL, "{} bytes of input for the slave: more than {}", input, kMaxInputForSlave);
    if (t.lines_size() && !(t.lflag() & ICANON)) return error(EINVAL, "lines of input, but not in canonical mode");
    if (!t.slave_opened() && (input || !t.to_master().empty() || t.slave_exclusive()))
      return error(EINVAL, "queued data or state of a slave never opened");
    return {};
  }

  // Every pair at once: its slaves can only be opened while it is unlocked.
  Result<void> prepare(std::span<const img::FileDesc* const> descs, OpenState& state) const override {
    std::map<uint32_t, std::vector<const img::FileDesc*>> slaves;
    for (const img::FileDesc* d : descs)
      if (!d->pty().master()) slaves[d->pty().index()].push_back(d);
    for (const img::FileDesc* d : descs) {
      if (!d->pty().master()) continue;
      auto it = slaves.find(d->pty().index());
      TRY_CTX(make_pair(*d, it == slaves.end() ? std::span<const img::FileDesc* const>() : it->second, state),
              "pty {}", d->pty().index());
      if (it != slaves.end()) slaves.erase(it);
    }
    if (!slaves.empty())
      return error(EINVAL, "pty slave {} (description {}) without its master", slaves.begin()->first,
                   slaves.begin()->second.front()->id());
    return {};
  }

  Result<UniqueFd> open(const img::FileDesc& d, OpenState& state) const override {
    UniqueFd fd = state.take(tag(), d.id());
    if (!fd) return error(EINVAL, "pty {}: not made with its pair", d.pty().index());
    return fd;
  }

 private:
  Result<void> collect_master(const FdProbe& p, img::FileDesc* d) const {
    const CollectContext& ctx = *p.ctx;
    if (p.link != "/dev/ptmx" && p.link != "/dev/pts/ptmx")
      return error(EOPNOTSUPP, "a pty master of another devpts instance ({}): not supported yet", p.link);
    const auto index = master_index(p.fdinfo);
    if (!index) return error(EINVAL, "a pty master without \"tty-index\" in its fdinfo");
    img::Pty* t = d->mutable_pty();
    t->set_index(*index);
    t->set_master(true);
    UniqueFd m = TRY(take_file(p));
    if (ctx.tree) TRY(refuse_outside_holders(*index, *ctx.tree));

    const termios real = TRY(get_termios(m.get()));
    if (real.c_lflag & EXTPROC) return error(EOPNOTSUPP, "/dev/pts/{} is in EXTPROC mode: not supported yet", *index);
    t->set_iflag(real.c_iflag);
    t->set_oflag(real.c_oflag);
    t->set_cflag(real.c_cflag);
    t->set_lflag(real.c_lflag);
    t->set_line(real.c_line);
    t->set_cc(std::string(reinterpret_cast<const char*>(real.c_cc), kKernelNccs));
    winsize ws{};
    if (ioctl(m.get(), TIOCGWINSZ, &ws) < 0) return sys_error("TIOCGWINSZ");
    t->set_rows(ws.ws_row);
    t->set_cols(ws.ws_col);
    t->set_xpixel(ws.ws_xpixel);
    t->set_ypixel(ws.ws_ypixel);
    Result<void> err;
    t->set_packet(get_int(m.get(), TIOCGPKT, "TIOCGPKT", &err) != 0);
    t->set_locked(get_int(m.get(), TIOCGPTLCK, "TIOCGPTLCK", &err) != 0);
    t->set_master_exclusive(get_int(m.get(), TIOCGEXCL, "TIOCGEXCL", &err) != 0);
    TRY(err);

    // The session it controls, and its foreground group: both of the tree.
    pid_t sid = 0, fg = 0;
    if (ioctl(m.get(), TIOCGSID, &sid) < 0) {
      if (errno != ENOTTY) return sys_error("TIOCGSID");
      sid = 0;
    }
    if (sid > 0) {
      const tree::Task* leader = ctx.tree ? ctx.tree->find(sid) : nullptr;
      if (!leader || leader->zombie || leader->sid != sid)
        return error(EOPNOTSUPP, "/dev/pts/{} is the controlling terminal of session {}, whose leader is not a live "
                     "task of the tree", *index, sid);
      if (ioctl(m.get(), TIOCGPGRP, &fg) < 0) return sys_error("TIOCGPGRP");
      bool found = fg == 0;
      for (const tree::Task& k : ctx.tree->tasks()) found |= k.pgid == fg && k.sid == sid;
      if (!found)
        return error(EOPNOTSUPP, "/dev/pts/{}: the foreground process group {} of session {} has no task in the "
                     "tree (the job has exited)", *index, fg, sid);
      t->set_session(sid);
      t->set_foreground(fg);
    }

    // Queued bytes. A status pending in packet mode is read by itself and
    // can't be made again.
    pollfd pf{m.get(), POLLPRI, 0};
    if (poll(&pf, 1, 0) < 0) return sys_error("poll the master");
    if (t->packet() && (pf.revents & POLLPRI))
      return error(EOPNOTSUPP, "/dev/pts/{}: a packet-mode status not yet read by the master: not supported", *index);
    const bool hung_up = pf.revents & POLLHUP;  // a slave was opened and is closed
    t->set_slave_opened(hung_up || ctx.pty_slaves.contains(*index));
    if (!t->slave_opened()) return {};  // no slave side ever: nothing queued either way
    UniqueFd s = TRY(open_slave(m.get(), O_RDWR | O_NONBLOCK, t->locked()));
    t->set_slave_exclusive(get_int(s.get(), TIOCGEXCL, "TIOCGEXCL of the slave", &err) != 0);
    TRY(err);
    int pending = 0;
    if (ioctl(s.get(), TIOCINQ, &pending) < 0) return sys_error("TIOCINQ of the slave");
    if (pending > kMaxInputForSlave)
      return error(EOPNOTSUPP, "/dev/pts/{} has {} bytes of input not yet read: more than ckpt can put back ({})",
                   *index, pending, kMaxInputForSlave);
    if (pending && t->packet() && (real.c_iflag & IXON) && !(real.c_lflag & ICANON))
      return error(EOPNOTSUPP, "/dev/pts/{} has input not yet read in raw mode with IXON and packet mode: not "
                   "supported", *index);

    // Read, then given back at once, whatever else happens.
    {
      FlagsBack flags(m.get());
      if (flags.flags() < 0 || fcntl(m.get(), F_SETFL, flags.flags() | O_NONBLOCK) < 0)
        return sys_error("make the master non-blocking");
      t->set_to_master(TRY_CTX(drain(m.get(), t->packet()), "read the master's input"));
    }
    Result<void> read = read_input(s.get(), real, t);
    Result<void> back_in = put_input(s.get(), real, t->packet(), *t);
    Result<void> back_out = put_output(s.get(), real, t->to_master());
    TRY(read);
    TRY(back_in);
    TRY(back_out);
    size_t input = t->to_slave().size();
    for (const img::PtyLine& l : t->lines()) input += l.data().size();
    if (input > kMaxInputForSlave)
      return error(EOPNOTSUPP, "/dev/pts/{} has {} bytes of input not yet read: more than ckpt can put back ({})",
                   *index, input, kMaxInputForSlave);
    return {};
  }

  // A new pair for master `d` and its slave descriptions, left in `state`.
  Result<void> make_pair(const img::FileDesc& d, std::span<const img::FileDesc* const> slaves,
                         OpenState& state) const {
    const img::Pty& t = d.pty();
    int mfd = ::open("/dev/ptmx", (static_cast<int>(d.flags()) & O_ACCMODE) | O_NOCTTY | O_CLOEXEC);
    if (mfd < 0) return sys_error("open /dev/ptmx");
    UniqueFd m(mfd);
    const int unlock = 0, on = 1;
    if (ioctl(m.get(), TIOCSPTLCK, &unlock) < 0) return sys_error("unlock (TIOCSPTLCK 0)");
    for (const img::FileDesc* s : slaves) {
      int fd = ioctl(m.get(), TIOCGPTPEER, (static_cast<int>(s->flags()) & O_ACCMODE) | O_NOCTTY | O_CLOEXEC);
      if (fd < 0) return sys_error("open the slave for description {} (TIOCGPTPEER)", s->id());
      state.leave(tag(), s->id(), UniqueFd(fd));
    }
    termios real = TRY(get_termios(m.get()));
    real.c_iflag = t.iflag();
    real.c_oflag = t.oflag();
    real.c_cflag = t.cflag();
    real.c_lflag = t.lflag();
    real.c_line = static_cast<cc_t>(t.line());
    std::copy(t.cc().begin(), t.cc().end(), real.c_cc);
    // Termios before packet mode, which would report a change of flow control.
    UniqueFd w;
    if (t.slave_opened()) {
      int fd = ioctl(m.get(), TIOCGPTPEER, O_RDWR | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
      if (fd < 0) return sys_error("open a slave (TIOCGPTPEER)");
      w = UniqueFd(fd);
      TRY(put_input(w.get(), real, t.packet(), t));
      TRY(put_output(w.get(), real, t.to_master()));
    }
    TRY(set_termios(m.get(), real));
    winsize ws{static_cast<unsigned short>(t.rows()), static_cast<unsigned short>(t.cols()),
               static_cast<unsigned short>(t.xpixel()), static_cast<unsigned short>(t.ypixel())};
    if (ioctl(m.get(), TIOCSWINSZ, &ws) < 0) return sys_error("TIOCSWINSZ");
    if (t.packet() && ioctl(m.get(), TIOCPKT, &on) < 0) return sys_error("TIOCPKT");
    if (t.master_exclusive() && ioctl(m.get(), TIOCEXCL) < 0) return sys_error("TIOCEXCL");
    if (t.slave_exclusive() && ioctl(w.get(), TIOCEXCL) < 0) return sys_error("TIOCEXCL of the slave");
    w.reset();  // with no slave of the tree's: hung up, as it was
    if (t.locked() && ioctl(m.get(), TIOCSPTLCK, &on) < 0) return sys_error("lock (TIOCSPTLCK 1)");
    state.leave(tag(), d.id(), std::move(m));
    return {};
  }
};

}  // namespace

PtyHolders pty_holders(std::span<TaskFds* const> tasks) {
  PtyHolders out;
  for (const TaskFds* t : tasks)
    for (const FdProbe& p : t->probes) {
      if (is_slave(p.st)) out.slaves.insert(minor(p.st.st_rdev));
      if (is_master(p.st))
        if (auto i = master_index(p.fdinfo)) out.masters.insert(*i);
    }
  return out;
}

Result<void> check_session_terminals(const tree::ProcessTree& tree, const PtyHolders& ptys) {
  for (const tree::Task& k : tree.tasks()) {
    if (k.zombie || k.sid != k.pid) continue;
    const proc::Stat st = TRY(proc::read_stat(k.pid));
    if (st.tty_nr == 0) continue;
    const dev_t tty = static_cast<dev_t>(st.tty_nr);
    if (major(tty) == kPtsMajor && ptys.masters.contains(minor(tty))) continue;
    return error(EOPNOTSUPP, "pid {} ({}) leads session {}, whose controlling terminal ({}) is not a pty pair of the "
                 "tree: restore can't give it back", k.pid, k.comm, k.sid,
                 major(tty) == kPtsMajor ? fmt::format("/dev/pts/{}", minor(tty))
                                         : fmt::format("device {}:{}", major(tty), minor(tty)));
  }
  return {};
}

std::vector<ControllingTerminal> controlling_terminals(const img::FileDescs& descs) {
  std::vector<ControllingTerminal> out;
  for (const img::FileDesc& d : descs.descs())
    if (d.has_pty() && d.pty().master() && d.pty().session() > 0)
      out.push_back({d.id(), d.pty().session(), d.pty().foreground()});
  return out;
}

const Kind& pty_kind() {
  static const Pty k;
  return k;
}

}  // namespace ckpt::files
