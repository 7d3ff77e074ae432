// Inet sockets across a tree and to the outside: established TCP connections
// through --tcp-established (the tcpecho tree, the tcpserve server with this
// test as its client outside the tree), the refusal without it, and verify
// on crafted payloads. (inetsk, in workloads_test.cc, has the sockets of one
// task that need no repair.)
#include <arpa/inet.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "base/unique_fd.h"
#include "ckpt.pb.h"
#include "files/inet_socket.h"
#include "harness.h"
#include "image/image_dir.h"
#include "image/image_file.h"

namespace e2e {
namespace {

using namespace std::chrono_literals;


std::vector<std::string> dump_args(Harness& h, pid_t pid, bool leave_running) {
  std::vector<std::string> d = {"dump", "-t", std::to_string(pid), "-D", h.images(), "-v4", "-o", "dump.log",
                                "--tcp-established"};
  if (leave_running) d.push_back("--leave-running");
  return d;
}

// The states of the TCP sockets in /proc/net/tcp and tcp6 whose inode a
// task of `tasks` holds, by "local -> remote" (hex, as the kernel prints
// them): compared before the dump and after the restore.
std::map<std::string, int> tcp_states(const std::vector<pid_t>& tasks) {
  std::set<std::string> inodes;
  for (pid_t p : tasks) {
    const std::string dir = fmt::format("/proc/{}/fd", p);
    for (int fd = 0; fd < 64; fd++) {
      char link[64] = "";
      ssize_t n = readlink(fmt::format("{}/{}", dir, fd).c_str(), link, sizeof(link) - 1);
      if (n > 9 && strncmp(link, "socket:[", 8) == 0) inodes.insert(std::string(link + 8, static_cast<size_t>(n) - 9));
    }
  }
  std::map<std::string, int> out;
  for (const char* table : {"/proc/net/tcp", "/proc/net/tcp6"}) {
    std::istringstream in(read_text(table));
    std::string line;
    std::getline(in, line);
    while (std::getline(in, line)) {
      std::istringstream f(line);
      std::string sl, local, remote, st, queues, timer, retr, uid, timeout, inode;
      f >> sl >> local >> remote >> st >> queues >> timer >> retr >> uid >> timeout >> inode;
      if (inodes.contains(inode)) out[local + " -> " + remote] = std::stoi(st, nullptr, 16);
    }
  }
  return out;
}

std::string show(const std::map<std::string, int>& m) {
  std::string out;
  for (const auto& [k, v] : m) out += fmt::format("{} state {}\n", k, v);
  return out;
}

class TcpEcho : public ::testing::TestWithParam<Mode> {};

// Two processes of the tree with two connections between them: one with
// about 1 MiB in flight each way, one half-closed (tcpecho.c).
TEST_P(TcpEcho, ConnectionsInsideTheTree) {
  const Mode& c = GetParam();
  Harness h;
  pid_t pid = h.start_workload("tcpecho");
  ASSERT_GT(pid, 0);
  const std::vector<pid_t> tasks = tree_of(pid);
  ASSERT_EQ(tasks.size(), 2u);
  // The half-closed connection: CLOSE_WAIT (R) and FIN_WAIT2 (C), the same
  // after the restore (a received FIN is delivered again).
  const std::map<std::string, int> before = tcp_states(tasks);
  EXPECT_EQ(std::count_if(before.begin(), before.end(), [](const auto& x) { return x.second == 8; }), 1) << show(before);
  auto same_states = [&] {
    EXPECT_TRUE(wait_until([&] { return tcp_states(tasks) == before; }, 5s))
        << "before:\n" << show(before) << "after:\n" << show(tcp_states(tasks));
  };
  // The network lock's view: the three connections (two in the tree,
  // both ends) and the half-closed one's two ends.
  const int st = h.dump_restore_tree(pid, dump_args(h, pid, c.leave_running), c.leave_running, c.breakpoints, [&] {
    ckpt::img::FileDescs descs;
    auto dir = ckpt::image::ImageDir::open(h.images(), ckpt::image::SharedDir::Allow);
    ASSERT_TRUE(dir) << dir.error().str();
    ASSERT_TRUE(dir->read("fdesc.img", ckpt::image::ImageKind::FileDescs, &descs));
    EXPECT_EQ(ckpt::files::tcp_connections(descs).size(), 4u);
  }, same_states);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
  const std::string log = read_text(h.workload_log("tcpecho"));
  for (const char* name : {"PASS C\n", "PASS tcpecho\n"}) EXPECT_NE(log.find(name), std::string::npos) << name << log;
  EXPECT_EQ(log.find("FAIL"), std::string::npos) << log;
}

INSTANTIATE_TEST_SUITE_P(Modes, TcpEcho, ::testing::Values(Mode{true}, Mode{false}, Mode{true, true}), mode_test_name);

// Without --tcp-established the dump is refused, naming the connection and
// the option, and the tree runs on as before.
TEST(TcpEstablished, RefusedWithoutTheOption) {
  Harness h;
  pid_t pid = h.start_workload("tcpecho");
  ASSERT_GT(pid, 0);
  const std::vector<pid_t> tasks = tree_of(pid);
  CkptRun d = h.ckpt({"dump", "-t", std::to_string(pid), "-D", h.images()});
  EXPECT_NE(d.exit_code(), 0);
  EXPECT_NE(d.err.find("--tcp-established"), std::string::npos) << d.err;
  EXPECT_NE(d.err.find("127.0.0.1:"), std::string::npos) << d.err;
  // The first of the root's two connections it meets is named: the stream
  // (ESTABLISHED) or the half-closed one (CLOSE_WAIT), whichever the root
  // accepted first.
  EXPECT_TRUE(d.err.find("(ESTABLISHED)") != std::string::npos || d.err.find("(CLOSE_WAIT)") != std::string::npos)
      << d.err;
  for (pid_t p : tasks) {
    EXPECT_TRUE(wait_until([&] { return tracer_of(p) == 0; })) << p;
    EXPECT_TRUE(wait_ran_on(p)) << p;
  }
  kill(pid, SIGTERM);
  int st = h.wait_child(pid);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << read_text(h.workload_log("tcpecho"));
}

unsigned char pattern(uint64_t i) { return static_cast<unsigned char>((i % 251) ^ 0x5a); }

// A copy of the TCP connection (not the listener) task `pid` holds, through
// pidfd_getfd: the same socket, to look at its queues.
ckpt::UniqueFd connection_of(pid_t pid) {
  ckpt::UniqueFd pidfd(static_cast<int>(syscall(SYS_pidfd_open, pid, 0)));
  if (!pidfd) return {};
  for (int fd = 0; fd < 64; fd++) {
    ckpt::UniqueFd s(static_cast<int>(syscall(SYS_pidfd_getfd, pidfd.get(), fd, 0)));
    if (!s) continue;
    int proto = 0, listening = 1;
    socklen_t len = sizeof(int);
    if (getsockopt(s.get(), SOL_SOCKET, SO_PROTOCOL, &proto, &len) < 0 || proto != IPPROTO_TCP) continue;
    len = sizeof(int);
    if (getsockopt(s.get(), SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) < 0 || listening) continue;
    return s;
  }
  return {};
}

int ioctl_of(const ckpt::UniqueFd& fd, unsigned long req) {
  int v = -1;
  if (fd) ioctl(fd.get(), req, &v);
  return v;
}

// The loopback address of IPv4 or IPv6 with `port`, and its length: a
// sockaddr_in fits in a sockaddr_in6, its sin_port where sin6_port is.
sockaddr_in6 loopback(bool v6, uint16_t port) {
  sockaddr_in6 a{};
  if (v6) {
    a.sin6_family = AF_INET6;
    a.sin6_addr = in6addr_loopback;
  } else {
    auto* a4 = reinterpret_cast<sockaddr_in*>(&a);
    a4->sin_family = AF_INET;
    a4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  }
  a.sin6_port = htons(port);
  return a;
}
socklen_t addr_len(bool v6) { return v6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in); }

// The client outside the tree, in a thread of the test: it sends numbered
// bytes as fast as the connection takes them and reads the echo at most
// `read_rate` bytes a second, so that the server's queues fill (its send
// queue first, then, as it stops reading when it can't echo, its receive
// queue). Every byte read is checked; a reset, EPIPE or an EOF is a failure.
class Pump {
 public:
  Pump(uint16_t port, uint64_t read_rate, bool v6 = false) : rate_(read_rate) {
    fd_ = ckpt::UniqueFd(socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    int v = 512 << 10;
    setsockopt(fd_.get(), SOL_SOCKET, SO_RCVBUF, &v, sizeof(v));
    const sockaddr_in6 a = loopback(v6, port);
    if (connect(fd_.get(), reinterpret_cast<const sockaddr*>(&a), addr_len(v6)) < 0) {
      error_ = fmt::format("connect: {}", strerror(errno));
      return;
    }
    thread_ = std::thread([this] { run(); });
  }
  ~Pump() {
    sending_ = false;
    done_ = true;
    if (thread_.joinable()) thread_.join();
  }
  uint64_t sent() const { return sent_; }
  uint64_t received() const { return received_; }
  bool failed() const { return failed_; }
  int outq() const { return ioctl_int(SIOCOUTQ); }
  int inq() const { return ioctl_int(SIOCINQ); }
  // Stops sending, reads the rest at full speed and says whether every byte
  // sent came back, in order.
  ::testing::AssertionResult finish(std::chrono::seconds limit = 30s) {
    rate_ = 0;
    sending_ = false;
    const auto end = std::chrono::steady_clock::now() + limit;
    while (!failed_ && thread_.joinable() && received_ < sent_ && std::chrono::steady_clock::now() < end)
      std::this_thread::sleep_for(10ms);
    done_ = true;
    if (thread_.joinable()) thread_.join();
    if (failed_) return ::testing::AssertionFailure() << error_;
    if (received_ != sent_)
      return ::testing::AssertionFailure() << "only " << received_ << " of " << sent_ << " bytes came back";
    return ::testing::AssertionSuccess() << sent_ << " bytes there and back";
  }
  std::string error() const { return failed_ ? error_ : ""; }

 private:
  int ioctl_int(unsigned long req) const {
    int v = -1;
    ioctl(fd_.get(), req, &v);
    return v;
  }
  void fail(std::string what) {
    error_ = std::move(what);
    failed_ = true;
  }
  void run() {
    const auto start = std::chrono::steady_clock::now();
    std::vector<char> wbuf(65536), rbuf(65536);
    while (!done_) {
      if (sending_) {
        for (size_t j = 0; j < wbuf.size(); j++) wbuf[j] = static_cast<char>(pattern(sent_ + j));
        ssize_t w = ::send(fd_.get(), wbuf.data(), wbuf.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
        if (w < 0 && errno != EAGAIN && errno != EINTR)
          return fail(fmt::format("send after {} bytes: {}", sent_.load(), strerror(errno)));
        if (w > 0) sent_ += static_cast<uint64_t>(w);
      }
      // Reads what the rate allows so far (0: no limit).
      size_t room = rbuf.size();
      if (const uint64_t r = rate_) {
        const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        const uint64_t allowed = static_cast<uint64_t>(s * static_cast<double>(r));
        room = allowed > received_ ? std::min<uint64_t>(room, allowed - received_) : 0;
      }
      if (room > 0) {
        ssize_t n = recv(fd_.get(), rbuf.data(), room, MSG_DONTWAIT);
        if (n == 0) return fail(fmt::format("EOF after {} bytes", received_.load()));
        if (n < 0 && errno != EAGAIN && errno != EINTR)
          return fail(fmt::format("recv after {} bytes: {}", received_.load(), strerror(errno)));
        for (ssize_t j = 0; j < n; j++)
          if (static_cast<unsigned char>(rbuf[j]) != pattern(received_ + static_cast<uint64_t>(j)))
            return fail(fmt::format("byte {} differs (lost, repeated or reordered bytes)", received_ + j));
        if (n > 0) received_ += static_cast<uint64_t>(n);
      }
      pollfd p{fd_.get(), static_cast<short>(room ? POLLIN : 0), 0};
      if (sending_) p.events |= POLLOUT;
      poll(&p, 1, 1);
      if (room == 0) std::this_thread::sleep_for(1ms);
    }
  }

  ckpt::UniqueFd fd_;
  std::atomic<uint64_t> rate_;
  std::atomic<uint64_t> sent_ = 0, received_ = 0;
  std::atomic<bool> sending_ = true, done_ = false, failed_ = false;
  std::string error_;
  std::thread thread_;
};

// The connection's queues in the server's image: (send, receive) bytes.
std::pair<size_t, size_t> image_queues(Harness& h) {
  ckpt::img::FileDescs descs;
  auto dir = ckpt::image::ImageDir::open(h.images(), ckpt::image::SharedDir::Allow);
  if (!dir || !dir->read("fdesc.img", ckpt::image::ImageKind::FileDescs, &descs)) return {0, 0};
  for (const ckpt::img::FileDesc& d : descs.descs())
    if (d.has_inet() && d.inet().has_tcp()) return {d.inet().tcp().send_queue().size(), d.inet().tcp().recv_queue().size()};
  return {0, 0};
}

struct OutsideCase {
  Mode mode;
  std::string lock = "auto";
  bool v6 = false;
};
void PrintTo(const OutsideCase& c, std::ostream* os) {
  *os << mode_name(c.mode) << "_" << c.lock << (c.v6 ? "_ipv6" : "");
}
std::string outside_name(const ::testing::TestParamInfo<OutsideCase>& i) { return ::testing::PrintToString(i.param); }

class OutsideClient : public ::testing::TestWithParam<OutsideCase> {};

// An echo server whose client is this test, outside the tree, and never
// stops: it sends and reads the whole time, through the dump, the restore
// and after, while the network lock drops its packets (retransmissions and
// window probes included) from the freeze until the restored server runs.
// It reads slower than it sends, so that about 1 MiB waits in each direction
// when the dump comes (the server's queues and the client's). Every byte
// comes back once and in order, and no reset arrives. IPv4, and IPv6 in
// kill mode.
TEST_P(OutsideClient, EchoServerGoesOn) {
  const OutsideCase& oc = GetParam();
  const Mode& c = oc.mode;
  Harness h;
  pid_t pid = h.start_workload("tcpserve", oc.v6 ? std::vector<std::string>{"6"} : std::vector<std::string>{});
  ASSERT_GT(pid, 0);
  const uint16_t port = static_cast<uint16_t>(std::stoi(read_text(h.dir() + "/tcpserve.ready.port")));
  Pump cl(port, 1 << 20, oc.v6);
  ASSERT_FALSE(cl.failed()) << cl.error();
  // Full: about 1 MiB each way, in the server's queues and the client's.
  ckpt::UniqueFd server;
  ASSERT_TRUE(wait_until([&] { return !!(server = connection_of(pid)); }));
  auto queued = [&] {
    return fmt::format("client to server {} + {}, server to client {} + {}", cl.outq(), ioctl_of(server, SIOCINQ),
                       ioctl_of(server, SIOCOUTQ), cl.inq());
  };
  ASSERT_TRUE(wait_until([&] {
    return cl.outq() + ioctl_of(server, SIOCINQ) >= (1 << 20) + (256 << 10) &&
           ioctl_of(server, SIOCOUTQ) + cl.inq() >= (1 << 20) + (256 << 10);
  }, 20s)) << "the queues did not fill: " << queued() << "; " << cl.error();
  server.reset();  // the server's socket is its own again: it goes with the server
  const int outq = cl.outq(), inq = cl.inq();
  std::vector<std::string> dump = dump_args(h, pid, c.leave_running);
  dump.insert(dump.end(), {"--network-lock", oc.lock});
  pid_t d = h.ckpt_background(dump);
  CkptRun dr = h.wait_ckpt(d);
  ASSERT_EQ(dr.exit_code(), 0) << dr.err << read_text(h.images() + "/dump.log");
  const auto [sq, rq] = image_queues(h);
  // Each direction: what the server held at the freeze and what the client
  // held just before the dump began (it reads on meanwhile: ~1 MiB).
  EXPECT_GE(rq + static_cast<size_t>(outq), 896u << 10) << "client to server: " << rq << " + " << outq;
  EXPECT_GE(sq + static_cast<size_t>(inq), 896u << 10) << "server to client: " << sq << " + " << inq;
  pid_t r = -1;
  if (!c.leave_running) {
    int st = h.wait_child(pid);
    EXPECT_TRUE(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    r = h.restore_background(pid, c.breakpoints);
    ASSERT_GT(r, 0);
  }
  // The conversation goes on: 2 MiB more come back after the restore.
  const uint64_t after = cl.received() + (2 << 20);
  EXPECT_TRUE(wait_until([&] { return cl.failed() || cl.received() >= after; }, 30s))
      << cl.received() << " of " << after << " bytes";
  EXPECT_TRUE(cl.finish()) << read_text(h.images() + "/restore.log");
  kill(pid, SIGTERM);
  if (c.leave_running) {
    int st = h.wait_child(pid);
    EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << read_text(h.workload_log("tcpserve"));
  } else {
    CkptRun rr = h.wait_ckpt(r);
    EXPECT_EQ(rr.exit_code(), 0) << rr.err << read_text(h.workload_log("tcpserve"));
  }
}

INSTANTIATE_TEST_SUITE_P(Modes, OutsideClient,
                         ::testing::Values(OutsideCase{{true}}, OutsideCase{{false}}, OutsideCase{{true, true}},
                                           OutsideCase{{true}, "iptables"}, OutsideCase{{false}, "auto", true}),
                         outside_name);

// The end of the server's send queue that its peer's window (zero: the
// client here reads nothing) kept it from sending comes back not sent
// (SIOCOUTQNSD), after the part that was sent, and leaves once the client
// reads: every byte once, in order.
TEST(TcpUnsent, ComesBackNotSent) {
  Harness h;
  pid_t pid = h.start_workload("tcpserve");
  ASSERT_GT(pid, 0);
  const uint16_t port = static_cast<uint16_t>(std::stoi(read_text(h.dir() + "/tcpserve.ready.port")));
  Pump cl(port, 1);  // reads (next to) nothing
  ASSERT_FALSE(cl.failed()) << cl.error();
  ckpt::UniqueFd server;
  ASSERT_TRUE(wait_until([&] { return !!(server = connection_of(pid)); }));
  ASSERT_TRUE(wait_until([&] { return ioctl_of(server, SIOCOUTQNSD) >= (256 << 10) && cl.outq() >= (256 << 10); }, 20s))
      << "not sent: " << ioctl_of(server, SIOCOUTQNSD) << ", client's send queue " << cl.outq();
  server.reset();
  CkptRun d = h.ckpt(dump_args(h, pid, false));
  ASSERT_EQ(d.exit_code(), 0) << d.err << read_text(h.images() + "/dump.log");
  h.wait_child(pid);
  ckpt::img::FileDescs descs;
  auto dir = ckpt::image::ImageDir::open(h.images(), ckpt::image::SharedDir::Allow);
  ASSERT_TRUE(dir) << dir.error().str();
  ASSERT_TRUE(dir->read("fdesc.img", ckpt::image::ImageKind::FileDescs, &descs));
  uint32_t unsent = 0, queued = 0;
  for (const ckpt::img::FileDesc& x : descs.descs())
    if (x.has_inet() && x.inet().has_tcp()) {
      unsent = x.inet().tcp().unsent();
      queued = static_cast<uint32_t>(x.inet().tcp().send_queue().size());
    }
  EXPECT_GE(unsent, 256u << 10) << "of " << queued;
  pid_t r = h.restore_background(pid, true);
  ASSERT_GT(r, 0);
  server = connection_of(pid);
  ASSERT_TRUE(server);
  // The client's window is still (next to) closed: little of it left since
  // (the server, running again, may have queued a little more). Restored
  // as sent, none of it would count as not sent.
  EXPECT_GE(ioctl_of(server, SIOCOUTQ), static_cast<int>(queued) - (64 << 10));
  EXPECT_GE(ioctl_of(server, SIOCOUTQNSD), static_cast<int>(unsent / 2)) << "of " << unsent;
  server.reset();
  EXPECT_TRUE(cl.finish()) << read_text(h.images() + "/restore.log");
  kill(pid, SIGTERM);
  CkptRun rr = h.wait_ckpt(r);
  EXPECT_EQ(rr.exit_code(), 0) << rr.err << read_text(h.workload_log("tcpserve"));
}

// A blocking TCP connection to 127.0.0.1:`port`.
ckpt::UniqueFd connect_v4(uint16_t port) {
  ckpt::UniqueFd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  const sockaddr_in6 a = loopback(false, port);
  if (!fd || connect(fd.get(), reinterpret_cast<const sockaddr*>(&a), addr_len(false)) < 0) return {};
  return fd;
}

// One byte there and back on `fd` within 10 s: "" if it came back, else
// what happened.
std::string echo_one(int fd) {
  if (send(fd, "e", 1, MSG_NOSIGNAL) != 1) return fmt::format("send: {}", strerror(errno));
  pollfd p{fd, POLLIN, 0};
  if (poll(&p, 1, 10000) != 1) return "no echo within 10 s";
  char c = 0;
  const ssize_t n = recv(fd, &c, 1, 0);
  if (n < 0) return fmt::format("recv: {}", strerror(errno));
  return n == 1 && c == 'e' ? "" : "EOF or another byte";
}

// restore --tcp-close: the server's established connection comes back as a
// new socket that never connected (its recv fails with ENOTCONN at once), and
// the client outside the tree, whose connection no socket holds any more,
// gets a reset at its next send instead of waiting forever.
TEST(TcpClose, EstablishedComesBackClosed) {
  Harness h;
  pid_t pid = h.start_workload("tcpserve");
  ASSERT_GT(pid, 0);
  const uint16_t port = static_cast<uint16_t>(std::stoi(read_text(h.dir() + "/tcpserve.ready.port")));
  ckpt::UniqueFd cl = connect_v4(port);
  ASSERT_TRUE(cl) << strerror(errno);
  ASSERT_EQ(echo_one(cl.get()), "");
  CkptRun d = h.ckpt(dump_args(h, pid, false));
  ASSERT_EQ(d.exit_code(), 0) << d.err << read_text(h.images() + "/dump.log");
  h.wait_child(pid);
  // The server fails on its first recv and exits: no waiting for it to run.
  CkptRun rr = h.ckpt({"restore", "-D", h.images(), "-v4", "-o", "restore.log", "--tcp-close"});
  EXPECT_EQ(rr.exit_code(), 1) << rr.err;
  const std::string log = read_text(h.workload_log("tcpserve"));
  EXPECT_NE(log.find("recv after 1 bytes: ENOTCONN"), std::string::npos) << log;
  const std::string e = echo_one(cl.get());
  EXPECT_TRUE(e.find("ECONNRESET") != std::string::npos || e.find(strerror(ECONNRESET)) != std::string::npos) << e;
}

// A connection from outside the tree waiting in the listener's accept queue:
// the dump is refused, naming it and --skip-in-flight, and the tree runs on;
// with --skip-in-flight it is dropped (its client gets a reset when the
// dumped listener goes) while the listener and the accepted connection come
// back: the connection echoes and the listener takes a new connection.
TEST(SkipInFlight, QueuedOutsideConnectionIsDropped) {
  Harness h;
  pid_t pid = h.start_workload("tcpserve");
  ASSERT_GT(pid, 0);
  const uint16_t port = static_cast<uint16_t>(std::stoi(read_text(h.dir() + "/tcpserve.ready.port")));
  ckpt::UniqueFd accepted = connect_v4(port);
  ASSERT_TRUE(accepted) << strerror(errno);
  ASSERT_EQ(echo_one(accepted.get()), "");  // tcpserve accepts one connection only
  ckpt::UniqueFd queued = connect_v4(port);
  ASSERT_TRUE(queued) << strerror(errno);
  sockaddr_in qa{};
  socklen_t qlen = sizeof(qa);
  ASSERT_EQ(getsockname(queued.get(), reinterpret_cast<sockaddr*>(&qa), &qlen), 0);
  const std::string from = fmt::format("127.0.0.1:{}", ntohs(qa.sin_port));
  CkptRun refused = h.ckpt(dump_args(h, pid, false));
  EXPECT_NE(refused.exit_code(), 0);
  EXPECT_NE(refused.err.find("--skip-in-flight"), std::string::npos) << refused.err;
  EXPECT_NE(refused.err.find(from), std::string::npos) << from << ": " << refused.err;
  EXPECT_TRUE(wait_until([&] { return tracer_of(pid) == 0; }));
  EXPECT_EQ(echo_one(accepted.get()), "") << "the tree runs on after the refusal";
  std::vector<std::string> dump = dump_args(h, pid, false);
  dump.push_back("--skip-in-flight");
  CkptRun d = h.ckpt(dump);
  ASSERT_EQ(d.exit_code(), 0) << d.err << read_text(h.images() + "/dump.log");
  h.wait_child(pid);
  char c;
  pollfd p{queued.get(), POLLIN, 0};
  EXPECT_EQ(poll(&p, 1, 10000), 1);
  EXPECT_EQ(recv(queued.get(), &c, 1, MSG_DONTWAIT), -1);
  EXPECT_EQ(errno, ECONNRESET) << strerror(errno);
  pid_t r = h.restore_background(pid, true);
  ASSERT_GT(r, 0);
  EXPECT_EQ(echo_one(accepted.get()), "");
  EXPECT_TRUE(connect_v4(port)) << "the restored listener: " << strerror(errno);
  kill(pid, SIGTERM);
  CkptRun rr = h.wait_ckpt(r);
  EXPECT_EQ(rr.exit_code(), 0) << rr.err << read_text(h.workload_log("tcpserve"));
}

// What `fd` receives until the end of its stream (each read waits 10 s at
// most; a failure is reported and ends it).
std::string read_to_eof(int fd) {
  std::string got;
  char buf[16];
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 10000) != 1) {
      ADD_FAILURE() << "nothing more after \"" << got << "\"";
      break;
    }
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n < 0) ADD_FAILURE() << strerror(errno) << " after \"" << got << "\"";
    if (n <= 0) break;
    got.append(buf, static_cast<size_t>(n));
  }
  return got;
}

// The state of the connection from local port `lport` to remote port `rport`
// in /proc/net/tcp or tcp6 (0: none).
int proc_tcp_state(uint16_t lport, uint16_t rport, bool v6 = false) {
  std::istringstream in(read_text(v6 ? "/proc/net/tcp6" : "/proc/net/tcp"));
  std::string line;
  std::getline(in, line);
  while (std::getline(in, line)) {
    std::istringstream f(line);
    std::string sl, local, remote, st;
    f >> sl >> local >> remote >> st;
    if (local.ends_with(fmt::format(":{:04X}", lport)) && remote.ends_with(fmt::format(":{:04X}", rport)))
      return std::stoi(st, nullptr, 16);
  }
  return 0;
}

// A listening TCP socket of the test on the loopback address of IPv4 or
// IPv6 (fd empty if it could not be made), and the connections it takes.
struct LoopbackListener {
  explicit LoopbackListener(bool v6) : v6(v6) {
    ckpt::UniqueFd s(socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in6 a = loopback(v6, 0);
    socklen_t len = addr_len(v6);
    if (!s || bind(s.get(), reinterpret_cast<sockaddr*>(&a), len) < 0 || listen(s.get(), 1) < 0 ||
        getsockname(s.get(), reinterpret_cast<sockaddr*>(&a), &len) < 0)
      return;
    port = ntohs(a.sin6_port);
    fd = std::move(s);
  }
  // A connection and its peer's port.
  std::pair<ckpt::UniqueFd, uint16_t> accept() const {
    sockaddr_in6 a{};
    socklen_t len = addr_len(v6);
    ckpt::UniqueFd c(accept4(fd.get(), reinterpret_cast<sockaddr*>(&a), &len, SOCK_CLOEXEC));
    return {std::move(c), ntohs(a.sin6_port)};
  }
  bool v6;
  ckpt::UniqueFd fd;
  uint16_t port = 0;
};

// A client of the tree whose server, outside it (the test), sent its last
// bytes and a FIN: CLOSE_WAIT (8) at dump, CLOSE_WAIT again after the
// restore, and the server gets the rest of the conversation ("bye", then
// the client's FIN) with no reset.
class TcpFinReceived : public ::testing::TestWithParam<bool> {};  // IPv6?

TEST_P(TcpFinReceived, CloseWaitComesBack) {
  const bool v6 = GetParam();
  Harness h;
  LoopbackListener l(v6);
  ASSERT_TRUE(l.fd) << strerror(errno);
  const uint16_t sport = l.port;
  std::vector<std::string> args = {std::to_string(sport)};
  if (v6) args.push_back("6");
  args.push_back("bye");
  pid_t pid = h.start_workload("tcpclient", args);
  ASSERT_GT(pid, 0);
  auto [peer, cport] = l.accept();
  ASSERT_TRUE(peer);
  ASSERT_EQ(send(peer.get(), "abc", 3, 0), 3);
  ASSERT_EQ(shutdown(peer.get(), SHUT_WR), 0);
  char buf[16];
  std::string got;
  while (got.size() < 3) {
    pollfd p{peer.get(), POLLIN, 0};
    ASSERT_EQ(poll(&p, 1, 5000), 1);
    ssize_t n = recv(peer.get(), buf, sizeof(buf), 0);
    ASSERT_GT(n, 0);
    got.append(buf, static_cast<size_t>(n));
  }
  EXPECT_EQ(got, "abc");
  ASSERT_TRUE(wait_until([&] { return proc_tcp_state(cport, sport, v6) == 8; })) << proc_tcp_state(cport, sport, v6);
  CkptRun d = h.ckpt(dump_args(h, pid, false));
  ASSERT_EQ(d.exit_code(), 0) << d.err << read_text(h.images() + "/dump.log");
  h.wait_child(pid);
  pid_t r = h.restore_background(pid, true);
  ASSERT_GT(r, 0);
  EXPECT_EQ(proc_tcp_state(cport, sport, v6), 8) << "the client's state after the restore (8: CLOSE_WAIT)";
  kill(pid, SIGTERM);
  EXPECT_EQ(read_to_eof(peer.get()), "bye");
  CkptRun rr = h.wait_ckpt(r);
  EXPECT_EQ(rr.exit_code(), 0) << rr.err << read_text(h.workload_log("tcpclient"));
}

INSTANTIATE_TEST_SUITE_P(Families, TcpFinReceived, ::testing::Values(false, true),
                         [](const ::testing::TestParamInfo<bool>& i) { return std::string(i.param ? "ipv6" : "ipv4"); });

// A client of the tree that sent its FIN first, which the server outside
// the tree (the test) acknowledged: FIN_WAIT2 (5) at dump and again right
// after the restore (not FIN_WAIT1, its FIN waiting to be sent again), and it
// still reads what the server sends after the restore, then its FIN.
class TcpFinSent : public ::testing::TestWithParam<bool> {};  // IPv6?

TEST_P(TcpFinSent, FinWait2ComesBack) {
  const bool v6 = GetParam();
  Harness h;
  LoopbackListener l(v6);
  ASSERT_TRUE(l.fd) << strerror(errno);
  const uint16_t sport = l.port;
  std::vector<std::string> args = {std::to_string(sport)};
  if (v6) args.push_back("6");
  args.push_back("first");
  pid_t pid = h.start_workload("tcpclient", args);
  ASSERT_GT(pid, 0);
  auto [peer, cport] = l.accept();
  ASSERT_TRUE(peer);
  EXPECT_EQ(read_to_eof(peer.get()), "hi");
  ASSERT_TRUE(wait_until([&] { return proc_tcp_state(cport, sport, v6) == 5; })) << proc_tcp_state(cport, sport, v6);
  CkptRun d = h.ckpt(dump_args(h, pid, false));
  ASSERT_EQ(d.exit_code(), 0) << d.err << read_text(h.images() + "/dump.log");
  h.wait_child(pid);
  pid_t r = h.restore_background(pid, true);
  ASSERT_GT(r, 0);
  EXPECT_EQ(proc_tcp_state(cport, sport, v6), 5) << "the client's state after the restore (5: FIN_WAIT2)";
  ASSERT_EQ(send(peer.get(), "late", 4, MSG_NOSIGNAL), 4) << strerror(errno);
  ASSERT_EQ(shutdown(peer.get(), SHUT_WR), 0);
  EXPECT_TRUE(wait_until([&] { return read_text(h.workload_log("tcpclient")).find("read late, then EOF") != std::string::npos; },
                         20s)) << read_text(h.workload_log("tcpclient"));
  kill(pid, SIGTERM);
  CkptRun rr = h.wait_ckpt(r);
  EXPECT_EQ(rr.exit_code(), 0) << rr.err << read_text(h.workload_log("tcpclient"));
  EXPECT_NE(read_text(h.workload_log("tcpclient")).find("PASS tcpclient"), std::string::npos);
}

INSTANTIATE_TEST_SUITE_P(Families, TcpFinSent, ::testing::Values(false, true),
                         [](const ::testing::TestParamInfo<bool>& i) { return std::string(i.param ? "ipv6" : "ipv4"); });

// LAST_ACK (9): the client of the tree wrote its last bytes and its FIN
// after the server's FIN, and the server's acknowledgement is lost (a rule
// of the test drops the server's pure ACKs). At restore the server's FIN is
// delivered again, then the client's own FIN follows: LAST_ACK again, and
// once the test's rule is gone the server acknowledges the retransmitted
// FIN and the connection ends without a reset.
TEST(TcpFinReceived, LastAckComesBack) {
  Harness h;
  LoopbackListener l(false);
  ASSERT_TRUE(l.fd) << strerror(errno);
  const uint16_t sport = l.port;
  pid_t pid = h.start_workload("tcpclient", {std::to_string(sport), "shut"});
  ASSERT_GT(pid, 0);
  auto [peer, cport] = l.accept();
  ASSERT_TRUE(peer);
  const std::string table = fmt::format("ckpttest-lastack-{}", getpid());
  const std::string rules = fmt::format(
      "add table inet {0}\n"
      "add chain inet {0} input {{ type filter hook input priority -310; policy accept; }}\n"
      "add rule inet {0} input tcp sport {1} tcp dport {2} tcp flags & (fin | syn | rst) == 0 drop\n",
      table, sport, cport);
  FILE* nft = popen("nft -f -", "w");
  ASSERT_TRUE(nft);
  fputs(rules.c_str(), nft);
  ASSERT_EQ(pclose(nft), 0);
  auto undrop = [table] { (void)!system(("nft delete table inet " + table + " 2>/dev/null").c_str()); };
  struct Undo {
    std::function<void()> f;
    ~Undo() {
      if (f) f();
    }
  } undo{undrop};
  ASSERT_EQ(shutdown(peer.get(), SHUT_WR), 0);
  ASSERT_TRUE(wait_until([&] { return proc_tcp_state(cport, sport) == 9; })) << proc_tcp_state(cport, sport);
  CkptRun d = h.ckpt(dump_args(h, pid, false));
  ASSERT_EQ(d.exit_code(), 0) << d.err << read_text(h.images() + "/dump.log");
  h.wait_child(pid);
  pid_t r = h.restore_background(pid, true);
  ASSERT_GT(r, 0);
  EXPECT_EQ(proc_tcp_state(cport, sport), 9) << "the client's state after the restore (9: LAST_ACK)";
  undrop();
  undo.f = nullptr;
  EXPECT_EQ(read_to_eof(peer.get()), "bye");
  EXPECT_TRUE(wait_until([&] { return proc_tcp_state(cport, sport) == 0; }, 20s))
      << "the client's FIN was never acknowledged: state " << proc_tcp_state(cport, sport);
  kill(pid, SIGTERM);
  CkptRun rr = h.wait_ckpt(r);
  EXPECT_EQ(rr.exit_code(), 0) << rr.err << read_text(h.workload_log("tcpclient"));
}

// verify refuses crafted inet payloads, each for its reason, without crashing.
TEST(InetVerify, RejectsCraftedPayloads) {
  Harness h;
  pid_t pid = h.start_workload("tcpecho");
  ASSERT_GT(pid, 0);
  CkptRun d = h.ckpt(dump_args(h, pid, false));
  ASSERT_EQ(d.exit_code(), 0) << d.err << read_text(h.images() + "/dump.log");
  h.wait_child(pid);
  auto dir = ckpt::image::ImageDir::open(h.images(), ckpt::image::SharedDir::Allow);
  ASSERT_TRUE(dir) << dir.error().str();
  ckpt::img::FileDescs good;
  ASSERT_TRUE(dir->read("fdesc.img", ckpt::image::ImageKind::FileDescs, &good));
  int conn = -1, listener = -1;
  for (int i = 0; i < good.descs_size(); i++) {
    if (!good.descs(i).has_inet()) continue;
    if (good.descs(i).inet().has_tcp() && conn < 0) conn = i;
    if (good.descs(i).inet().state() == 10) listener = i;
  }
  ASSERT_GE(conn, 0);
  ASSERT_GE(listener, 0);
  using Edit = std::function<void(ckpt::img::FileDescs&)>;
  const std::vector<std::pair<std::string, Edit>> edits = {
      {"unknown family", [&](auto& x) { x.mutable_descs(conn)->mutable_inet()->set_family(99); }},
      {"neither TCP nor UDP", [&](auto& x) { x.mutable_descs(conn)->mutable_inet()->set_protocol(132); }},
      {"unknown state", [&](auto& x) { x.mutable_descs(conn)->mutable_inet()->set_state(42); }},
      {"not one", [&](auto& x) { x.mutable_descs(conn)->mutable_inet()->set_local_addr("300.1.2.3"); }},
      {"not one", [&](auto& x) { x.mutable_descs(conn)->mutable_inet()->set_remote_port(70000); }},
      {"more unsent bytes", [&](auto& x) { x.mutable_descs(conn)->mutable_inet()->mutable_tcp()->set_unsent(1u << 31); }},
      {"FIN flags", [&](auto& x) { x.mutable_descs(conn)->mutable_inet()->mutable_tcp()->set_fin_sent(true); }},
      {"options out of range", [&](auto& x) { x.mutable_descs(conn)->mutable_inet()->mutable_tcp()->set_snd_wscale(15); }},
      {"without its repair data", [&](auto& x) { x.mutable_descs(conn)->mutable_inet()->clear_tcp(); }},
      {"without a port", [&](auto& x) { x.mutable_descs(listener)->mutable_inet()->set_local_port(0); }},
      {"datagrams queued on a TCP socket", [&](auto& x) { x.mutable_descs(conn)->mutable_inet()->add_senders(); }},
      {"IFNAMSIZ", [&](auto& x) { x.mutable_descs(conn)->mutable_inet()->mutable_opts()->set_bind_dev(std::string(40, 'x')); }},
      {"option out of range", [&](auto& x) { x.mutable_descs(conn)->mutable_inet()->mutable_opts()->set_sndbuf(1u << 31); }},
  };
  for (const auto& [want, edit] : edits) {
    ckpt::img::FileDescs bad = good;
    edit(bad);
    ASSERT_TRUE(dir->write("fdesc.img", ckpt::image::ImageKind::FileDescs, bad, ckpt::TempFile::Replace::Yes));
    CkptRun v = h.ckpt({"verify", h.images()});
    EXPECT_EQ(v.exit_code(), 1) << want << ": " << v.err;
    EXPECT_NE(v.err.find(want), std::string::npos) << want << ": " << v.err;
  }
  ASSERT_TRUE(dir->write("fdesc.img", ckpt::image::ImageKind::FileDescs, good, ckpt::TempFile::Replace::Yes));
  CkptRun v = h.ckpt({"verify", h.images()});
  EXPECT_EQ(v.exit_code(), 0) << v.err;
  CkptRun show = h.ckpt({"show", h.images()});
  EXPECT_EQ(show.exit_code(), 0) << show.err;
  EXPECT_NE(show.out.find("inet {"), std::string::npos);
}

}  // namespace
}  // namespace e2e
