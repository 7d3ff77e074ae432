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
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <functional>

#include "base/unique_fd.h"
#include "ckpt.pb.h"
#include "files/inet_socket.h"
#include "harness.h"
#include "image/image_dir.h"
#include "image/image_file.h"

namespace e2e {
namespace {

using namespace std::chrono_literals;

struct Case {
  bool breakpoints;
  bool leave_running;
};
std::string case_name(const ::testing::TestParamInfo<Case>& i) {
  return std::string(i.param.breakpoints ? "breakpoint" : "syscalltrace") + (i.param.leave_running ? "_leaverunning" : "");
}

std::vector<std::string> dump_args(Harness& h, pid_t pid, bool leave_running) {
  std::vector<std::string> d = {"dump", "-t", std::to_string(pid), "-D", h.images(), "-v4", "-o", "dump.log",
                                "--tcp-established"};
  if (leave_running) d.push_back("--leave-running");
  return d;
}

// Restores the images of `pid` in the background; returns ckpt's pid once
// the tree runs.
pid_t restore(Harness& h, pid_t pid, bool breakpoints) {
  const std::string pidfile = h.dir() + "/restored.pid";
  std::vector<std::string> rst = {"restore", "-D", h.images(), "-v4", "-o", "restore.log", "--pidfile", pidfile};
  if (!breakpoints) rst.push_back("--no-breakpoints");
  pid_t r = h.ckpt_background(rst);
  EXPECT_TRUE(h.wait_restored(pid, pidfile)) << read_text(h.images() + "/restore.log");
  return r;
}

class TcpEcho : public ::testing::TestWithParam<Case> {};

// Two processes of the tree with two connections between them: one with
// about 1 MiB in flight each way, one half-closed (tcpecho.c).
TEST_P(TcpEcho, ConnectionsInsideTheTree) {
  const Case& c = GetParam();
  Harness h;
  pid_t pid = h.start_workload("tcpecho");
  ASSERT_GT(pid, 0);
  const std::vector<pid_t> tasks = tree_of(pid);
  ASSERT_EQ(tasks.size(), 2u);
  CkptRun d = h.ckpt(dump_args(h, pid, c.leave_running));
  ASSERT_EQ(d.exit_code(), 0) << d.err << read_text(h.images() + "/dump.log");
  int st = 0;
  if (c.leave_running) {
    for (pid_t p : tasks) EXPECT_TRUE(wait_until([&] { return tracer_of(p) == 0; })) << p;
    kill(pid, SIGTERM);
    st = h.wait_child(pid);
  } else {
    st = h.wait_child(pid);
    EXPECT_TRUE(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL) << "dump should kill the tree";
    for (pid_t p : tasks)
      EXPECT_TRUE(wait_until([&] {
        waitpid(p, nullptr, WNOHANG);
        return kill(p, 0) < 0;
      })) << p << " still held";
    CkptRun v = h.ckpt({"verify", h.images()});
    EXPECT_EQ(v.exit_code(), 0) << v.err;
    // The network lock's view: the three connections (two in the tree,
    // both ends) and the half-closed one's two ends.
    ckpt::img::FileDescs descs;
    auto dir = ckpt::image::ImageDir::open(h.images(), ckpt::image::SharedDir::Allow);
    ASSERT_TRUE(dir) << dir.error().str();
    ASSERT_TRUE(dir->read("fdesc.img", ckpt::image::ImageKind::FileDescs, &descs));
    EXPECT_EQ(ckpt::files::tcp_connections(descs).size(), 4u);
    pid_t r = restore(h, pid, c.breakpoints);
    for (pid_t p : tasks) EXPECT_TRUE(wait_until([&] { return tracer_of(p) == 0; })) << p;
    kill(pid, SIGTERM);
    CkptRun rr = h.wait_ckpt(r);
    st = rr.status;
    EXPECT_EQ(rr.exit_code(), 0) << rr.err << read_text(h.images() + "/restore.log");
  }
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
  const std::string log = read_text(h.workload_log("tcpecho"));
  for (const char* name : {"PASS C\n", "PASS tcpecho\n"}) EXPECT_NE(log.find(name), std::string::npos) << name << log;
  EXPECT_EQ(log.find("FAIL"), std::string::npos) << log;
}

INSTANTIATE_TEST_SUITE_P(Modes, TcpEcho, ::testing::Values(Case{true, false}, Case{false, false}, Case{true, true}),
                         case_name);

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
  EXPECT_NE(d.err.find("ESTABLISHED"), std::string::npos) << d.err;
  for (pid_t p : tasks) {
    EXPECT_TRUE(wait_until([&] { return tracer_of(p) == 0; })) << p;
    EXPECT_TRUE(wait_ran_on(p)) << p;
  }
  kill(pid, SIGTERM);
  int st = h.wait_child(pid);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << read_text(h.workload_log("tcpecho"));
}

unsigned char pattern(uint64_t i) { return static_cast<unsigned char>((i % 251) ^ 0x5a); }

// The client side, outside the tree.
class Client {
 public:
  explicit Client(uint16_t port) {
    fd_ = ckpt::UniqueFd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    int v = 512 << 10;
    setsockopt(fd_.get(), SOL_SOCKET, SO_RCVBUF, &v, sizeof(v));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ok_ = connect(fd_.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
  }
  bool ok() const { return ok_; }
  // Sends `n` more numbered bytes, reading what comes back meanwhile.
  ::testing::AssertionResult send(uint64_t n, std::chrono::seconds limit = 20s) {
    const uint64_t until = sent_ + n;
    const auto end = std::chrono::steady_clock::now() + limit;
    char buf[65536];
    while (sent_ < until) {
      if (std::chrono::steady_clock::now() > end) return ::testing::AssertionFailure() << "sending timed out";
      const size_t k = std::min<uint64_t>(sizeof(buf), until - sent_);
      for (size_t j = 0; j < k; j++) buf[j] = static_cast<char>(pattern(sent_ + j));
      ssize_t w = ::send(fd_.get(), buf, k, MSG_DONTWAIT | MSG_NOSIGNAL);
      if (w < 0 && errno != EAGAIN) return ::testing::AssertionFailure() << "send: " << strerror(errno);
      if (w > 0) sent_ += static_cast<uint64_t>(w);
      if (w < 0) {
        pollfd p{fd_.get(), POLLOUT, 0};
        poll(&p, 1, 10);
      }
    }
    return ::testing::AssertionSuccess();
  }
  // Reads until everything sent came back, checking every byte.
  ::testing::AssertionResult read_all(std::chrono::seconds limit = 30s) {
    const auto end = std::chrono::steady_clock::now() + limit;
    char buf[65536];
    while (received_ < sent_) {
      if (std::chrono::steady_clock::now() > end)
        return ::testing::AssertionFailure() << "only " << received_ << " of " << sent_ << " bytes came back";
      pollfd p{fd_.get(), POLLIN, 0};
      poll(&p, 1, 100);
      ssize_t r = recv(fd_.get(), buf, sizeof(buf), MSG_DONTWAIT);
      if (r == 0) return ::testing::AssertionFailure() << "EOF after " << received_ << " bytes";
      if (r < 0 && errno != EAGAIN) return ::testing::AssertionFailure() << "recv: " << strerror(errno);
      for (ssize_t j = 0; j < r; j++)
        if (static_cast<unsigned char>(buf[j]) != pattern(received_ + static_cast<uint64_t>(j)))
          return ::testing::AssertionFailure() << "byte " << received_ + static_cast<uint64_t>(j) << " differs";
      if (r > 0) received_ += static_cast<uint64_t>(r);
    }
    return ::testing::AssertionSuccess();
  }
  int outq() const {
    int v = -1;
    ioctl(fd_.get(), SIOCOUTQ, &v);
    return v;
  }
  int inq() const {
    int v = -1;
    ioctl(fd_.get(), SIOCINQ, &v);
    return v;
  }

 private:
  ckpt::UniqueFd fd_;
  bool ok_ = false;
  uint64_t sent_ = 0, received_ = 0;
};

class OutsideClient : public ::testing::TestWithParam<Case> {};

// An echo server whose client is this test, outside the tree: the bytes it
// sent before the dump come back after the restore, then more flow, none
// lost, repeated or reset. Without a network lock the host answers a packet
// for the dumped connection with a reset while no socket has its port, so
// the client sends and reads nothing between the dump and the restore (it
// waits first until the server acknowledged everything it sent: nothing of
// its own is then in flight), with its data queued in the server and the
// server's echo queued on both sides. With --leave-running it pumps on
// while the dump runs.
TEST_P(OutsideClient, EchoServerGoesOn) {
  const Case& c = GetParam();
  Harness h;
  pid_t pid = h.start_workload("tcpserve");
  ASSERT_GT(pid, 0);
  const uint16_t port = static_cast<uint16_t>(std::stoi(read_text(h.dir() + "/tcpserve.ready.port")));
  Client cl(port);
  ASSERT_TRUE(cl.ok()) << strerror(errno);
  // 2 MiB: its echo fills this side's receive buffer and the server's send
  // queue, the rest waits in the server's receive queue.
  ASSERT_TRUE(cl.send(2 << 20));
  EXPECT_TRUE(wait_until([&] { return cl.outq() == 0; }, 10s)) << "the server acknowledged all but " << cl.outq();
  usleep(300 * 1000);
  if (c.leave_running) {
    pid_t d = h.ckpt_background(dump_args(h, pid, true));
    ASSERT_TRUE(cl.send(1 << 20));
    ASSERT_TRUE(cl.read_all());
    CkptRun dr = h.wait_ckpt(d);
    ASSERT_EQ(dr.exit_code(), 0) << dr.err << read_text(h.images() + "/dump.log");
    ASSERT_TRUE(cl.send(1 << 20));
    ASSERT_TRUE(cl.read_all());
    kill(pid, SIGTERM);
    int st = h.wait_child(pid);
    EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << read_text(h.workload_log("tcpserve"));
    return;
  }
  const int inq_before = cl.inq();
  EXPECT_GT(inq_before, 256 << 10) << "the server's echo should wait in the client's receive queue";
  CkptRun d = h.ckpt(dump_args(h, pid, false));
  ASSERT_EQ(d.exit_code(), 0) << d.err << read_text(h.images() + "/dump.log");
  int st = h.wait_child(pid);
  EXPECT_TRUE(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
  pid_t r = restore(h, pid, c.breakpoints);
  ASSERT_TRUE(cl.read_all()) << read_text(h.images() + "/restore.log");
  ASSERT_TRUE(cl.send(1 << 20));
  ASSERT_TRUE(cl.read_all());
  kill(pid, SIGTERM);
  CkptRun rr = h.wait_ckpt(r);
  EXPECT_EQ(rr.exit_code(), 0) << rr.err << read_text(h.workload_log("tcpserve"));
}

INSTANTIATE_TEST_SUITE_P(Modes, OutsideClient,
                         ::testing::Values(Case{true, false}, Case{false, false}, Case{true, true}), case_name);

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
