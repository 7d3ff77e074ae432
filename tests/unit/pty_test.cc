// The restore side of pty pairs (files/pty.cc) on real ptys: a pair made
// from a payload has its termios, window size, modes and queued bytes; and
// verify refuses payloads open could not take.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include <functional>
#include <map>

#include "files/kind.h"

namespace ckpt::files {
namespace {

img::FileDesc master_desc(uint32_t id, bool canonical) {
  img::FileDesc d;
  d.set_id(id);
  d.set_flags(O_RDWR);
  img::Pty* t = d.mutable_pty();
  t->set_index(7);
  t->set_master(true);
  termios def{};
  def.c_iflag = ICRNL | IXON;
  def.c_oflag = OPOST | ONLCR;
  def.c_cflag = B38400 | CS8 | CREAD;
  def.c_lflag = (canonical ? ICANON : 0) | ECHO | ISIG | IEXTEN;
  const char cc[19] = {3, 28, 127, 21, 4, 0, 1, 0, 17, 19, 26, 0, 18, 15, 23, 22, 0, 0, 0};
  t->set_iflag(def.c_iflag);
  t->set_oflag(def.c_oflag);
  t->set_cflag(def.c_cflag);
  t->set_lflag(def.c_lflag);
  t->set_cc(std::string(cc, sizeof cc));
  t->set_rows(24);
  t->set_cols(80);
  t->set_slave_opened(true);
  return d;
}

std::string read_some(int fd) {
  std::string out;
  for (int i = 0; i < 100; i++) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 10) <= 0) {
      if (!out.empty()) break;
      continue;
    }
    char buf[512];
    ssize_t n = read(fd, buf, sizeof buf);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

// Canonical input comes back line by line: a DEL typed literally stays, a
// line ended by VEOF reads without terminator, the edited line waits for
// its end; output for the master is not processed again (no \r\r\n); the
// slave's echo of restored input does not appear.
TEST(Pty, PairFromPayloadKeepsStateAndQueues) {
  img::FileDesc m = master_desc(1, true);
  img::Pty* t = m.mutable_pty();
  t->set_packet(true);
  t->set_locked(true);
  t->set_to_master("out\r\n");
  auto* l = t->add_lines();
  l->set_data(std::string("a\x7f" "b\n"));
  l = t->add_lines();
  l->set_data("eof");
  l->set_eof(true);
  t->set_to_slave("part");
  img::FileDesc s;
  s.set_id(2);
  s.set_flags(O_RDWR);
  s.mutable_pty()->set_index(7);
  for (const img::FileDesc* d : {&m, &s}) {
    auto v = kind_of(*d)->verify(*d);
    ASSERT_TRUE(v) << v.error().str();
  }
  std::map<uint32_t, UniqueFd> shmem;
  OpenState state(shmem, true);
  const img::FileDesc* both[] = {&m, &s};
  auto p = pty_kind().prepare(both, state);
  ASSERT_TRUE(p) << p.error().str();
  auto mo = pty_kind().open(m, state);
  auto so = pty_kind().open(s, state);
  ASSERT_TRUE(mo && so);
  const int mfd = mo->get(), sfd = so->get();
  termios now{};
  ASSERT_EQ(tcgetattr(sfd, &now), 0);
  EXPECT_EQ(now.c_lflag, t->lflag());
  EXPECT_EQ(now.c_iflag, t->iflag());
  EXPECT_EQ(std::string(reinterpret_cast<char*>(now.c_cc), 19), t->cc());
  winsize ws{};
  ASSERT_EQ(ioctl(mfd, TIOCGWINSZ, &ws), 0);
  EXPECT_EQ(ws.ws_row, 24);
  EXPECT_EQ(ws.ws_col, 80);
  int v = 0;
  EXPECT_EQ(ioctl(mfd, TIOCGPKT, &v), 0);
  EXPECT_EQ(v, 1);
  EXPECT_EQ(ioctl(mfd, TIOCGPTLCK, &v), 0);
  EXPECT_EQ(v, 1);
  // Packet mode: a TIOCPKT_DATA byte before each read's data.
  auto data = [](std::string s) { return std::erase(s, '\0'), s; };
  const std::string out = read_some(mfd);
  EXPECT_EQ(out.substr(0, 1), std::string(1, '\0'));
  EXPECT_EQ(data(out), "out\r\n");
  fcntl(sfd, F_SETFL, O_NONBLOCK);
  char buf[64];
  ssize_t n = read(sfd, buf, sizeof buf);
  EXPECT_EQ(std::string(buf, n > 0 ? n : 0), "a\x7f" "b\n");
  n = read(sfd, buf, sizeof buf);
  EXPECT_EQ(std::string(buf, n > 0 ? n : 0), "eof");
  n = read(sfd, buf, sizeof buf);
  EXPECT_EQ(n, -1) << "the edited line must not be readable yet";
  ASSERT_EQ(write(mfd, "end\n", 4), 4);
  fcntl(sfd, F_SETFL, 0);
  n = read(sfd, buf, sizeof buf);
  EXPECT_EQ(std::string(buf, n > 0 ? n : 0), "partend\n");
  // Only the echo of what was typed after the restore.
  EXPECT_EQ(data(read_some(mfd)), "end\r\n");
}

TEST(Pty, VerifyRefusesWhatOpenCouldNotTake) {
  struct Case {
    const char* name;
    std::function<void(img::FileDesc&)> make;
    const char* want;
  };
  const Case cases[] = {
      {"ok", [](img::FileDesc&) {}, ""},
      {"cc", [](img::FileDesc& d) { d.mutable_pty()->set_cc("abc"); }, "3 control characters"},
      {"winsize", [](img::FileDesc& d) { d.mutable_pty()->set_rows(70000); }, "window size"},
      {"access", [](img::FileDesc& d) { d.set_flags(O_ACCMODE); }, "access mode"},
      {"input", [](img::FileDesc& d) { d.mutable_pty()->set_to_slave(std::string(5000, 'x')); }, "5000 bytes"},
      {"lines raw", [](img::FileDesc& d) {
         d.mutable_pty()->set_lflag(0);
         d.mutable_pty()->add_lines()->set_data("x\n");
       }, "not in canonical mode"},
      {"never opened", [](img::FileDesc& d) {
         d.mutable_pty()->set_slave_opened(false);
         d.mutable_pty()->set_to_master("x");
       }, "never opened"},
      {"foreground without session", [](img::FileDesc& d) { d.mutable_pty()->set_foreground(5); },
       "foreground group 5"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    img::FileDesc d = master_desc(1, true);
    c.make(d);
    auto r = kind_of(d)->verify(d);
    if (!*c.want) {
      EXPECT_TRUE(r) << r.error().str();
    } else {
      ASSERT_FALSE(r);
      EXPECT_NE(r.error().msg.find(c.want), std::string::npos) << r.error().msg;
    }
  }
}

}  // namespace
}  // namespace ckpt::files
