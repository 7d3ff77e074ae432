// The network lock through the ckpt binary (docs/netlock.md), on a tree
// whose TCP connection has its peer here, in the test: a failed dump
// removes the lock and the connection goes on; a ckpt SIGKILLed while the
// lock is in place leaves it (and the connection dead to the world) until
// the next ckpt run removes it; --network-lock skip installs nothing. The
// ruleset is read as a user would (nft, iptables-save).
#include <arpa/inet.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <regex>

#include "base/unique_fd.h"
#include "harness.h"

namespace e2e {
namespace {

using ckpt::UniqueFd;

std::string run_text(const std::string& cmd) {
  std::string out;
  if (FILE* f = popen((cmd + " 2>/dev/null").c_str(), "r")) {
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0) out.append(buf, n);
    pclose(f);
  }
  return out;
}

// Every ruleset a lock may be in.
std::string ruleset() {
  return run_text("nft list tables") + run_text("iptables-save -t filter") + run_text("ip6tables-save -t filter") +
         run_text("iptables-legacy-save -t filter");
}

bool record_of(const std::string& name) { return access(("/run/ckpt/netlock/" + name).c_str(), F_OK) == 0; }

// The lock ckpt `pid` made: its name, found in the ruleset.
std::string lock_of(pid_t ckpt) {
  std::smatch m;
  const std::string rules = ruleset();
  const std::regex re(fmt::format("ckpt-{}-[0-9]+", ckpt));
  return std::regex_search(rules, m, re) ? m.str() : "";
}

// What arrives on `fd` within `ms`.
std::string receive(int fd, int ms) {
  pollfd p{fd, POLLIN, 0};
  if (poll(&p, 1, ms) != 1) return "";
  char buf[256];
  ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
  return n > 0 ? std::string(buf, n) : std::string();
}

// wl_tcpecho, connected to a server socket of the test's: the peer outside the tree.
struct EchoTree {
  pid_t pid = -1;
  UniqueFd peer;
};

EchoTree start_echo(Harness& h) {
  EchoTree t;
  UniqueFd l(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(a);
  if (bind(l.get(), reinterpret_cast<sockaddr*>(&a), len) < 0 || listen(l.get(), 1) < 0 ||
      getsockname(l.get(), reinterpret_cast<sockaddr*>(&a), &len) < 0)
    return t;
  t.pid = h.start_workload("tcpecho", {std::to_string(ntohs(a.sin_port))});
  if (t.pid > 0) t.peer = UniqueFd(accept4(l.get(), nullptr, nullptr, SOCK_CLOEXEC));
  return t;
}

::testing::AssertionResult echoes(const EchoTree& t, const std::string& text, int ms = 5000) {
  if (send(t.peer.get(), text.data(), text.size(), 0) != ssize_t(text.size()))
    return ::testing::AssertionFailure() << "send: " << strerror(errno);
  std::string got;
  while (got.size() < text.size()) {
    std::string part = receive(t.peer.get(), ms);
    if (part.empty()) return ::testing::AssertionFailure() << "echoed \"" << got << "\" of \"" << text << "\"";
    got += part;
  }
  if (got != text) return ::testing::AssertionFailure() << "echoed \"" << got << "\", sent \"" << text << "\"";
  return ::testing::AssertionSuccess();
}

void expect_passes(Harness& h, pid_t pid) {
  kill(pid, SIGTERM);
  int st = h.wait_child(pid);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << read_text(h.workload_log("tcpecho"));
}

class FailedDump : public ::testing::TestWithParam<std::string> {};

// The dump fails (today at the inet socket's kind: not supported yet); the
// lock it made is gone with it and the connection goes on.
TEST_P(FailedDump, RemovesTheLock) {
  Harness h;
  EchoTree t = start_echo(h);
  ASSERT_GT(t.pid, 0);
  ASSERT_TRUE(echoes(t, "before"));
  CkptRun d = h.ckpt({"dump", "-t", std::to_string(t.pid), "-D", h.images(), "-v3", "--network-lock", GetParam()});
  EXPECT_NE(d.exit_code(), 0) << "the dump of an inet socket succeeded: this test needs another way to fail";
  std::smatch m;
  ASSERT_TRUE(std::regex_search(d.err, m, std::regex("network lock: [a-z-]+ (ckpt-[0-9]+-[0-9]+) drops the packets "
                                                     "of 1 connections")))
      << d.err;
  const std::string name = m[1];
  EXPECT_NE(d.err.find(fmt::format("network lock: {}", GetParam())), std::string::npos) << d.err;
  EXPECT_EQ(ruleset().find(name), std::string::npos) << name << " is still in the ruleset";
  EXPECT_FALSE(record_of(name));
  EXPECT_TRUE(alive(t.pid));
  EXPECT_TRUE(echoes(t, "after"));
  expect_passes(h, t.pid);
}

INSTANTIATE_TEST_SUITE_P(NetLock, FailedDump, ::testing::Values("nftables", "iptables"));

// ckpt SIGKILLed with the lock in place: the tree runs on (ptrace let it
// go), but its connection is dead to the world until the next ckpt run,
// which removes the lock; then TCP's retransmission brings the bytes.
void killed_dump_then(const std::vector<std::string>& lock, const std::function<void(Harness&)>& next_run) {
  Harness h;
  EchoTree t = start_echo(h);
  ASSERT_GT(t.pid, 0);
  ASSERT_TRUE(echoes(t, "before"));
  setenv("CKPT_FAULT", "hang:netlock", 1);
  std::vector<std::string> args = {"dump", "-t", std::to_string(t.pid), "-D", h.images()};
  args.insert(args.end(), lock.begin(), lock.end());
  pid_t ckpt = h.ckpt_background(args);
  unsetenv("CKPT_FAULT");
  ASSERT_TRUE(wait_in_syscall(ckpt, SYS_pause)) << "ckpt never reached the lock";
  const std::string name = lock_of(ckpt);
  ASSERT_FALSE(name.empty()) << "no lock of ckpt " << ckpt << " in the ruleset:\n" << ruleset();
  EXPECT_TRUE(record_of(name));
  kill(ckpt, SIGKILL);
  h.wait_ckpt(ckpt);
  ASSERT_TRUE(wait_back_in_loop(t.pid)) << "state " << proc_state(t.pid) << ", tracer " << tracer_of(t.pid);
  EXPECT_NE(ruleset().find(name), std::string::npos) << "the lock went with ckpt";
  const std::string held = "held";
  ASSERT_EQ(send(t.peer.get(), held.data(), held.size(), 0), ssize_t(held.size()));
  EXPECT_EQ(receive(t.peer.get(), 500), "") << "a packet passed the lock";
  next_run(h);
  EXPECT_EQ(ruleset().find(name), std::string::npos) << name << " is still there after the next ckpt run";
  EXPECT_FALSE(record_of(name));
  EXPECT_EQ(receive(t.peer.get(), 15000), held);
  EXPECT_TRUE(echoes(t, "after"));
  expect_passes(h, t.pid);
}

TEST(NetLock, KilledDumpsLockGoesWithTheNextCheck) {
  killed_dump_then({}, [](Harness& h) {
    CkptRun c = h.ckpt({"check", "-v3"});
    EXPECT_NE(c.out.find("network lock"), std::string::npos) << c.out;
    EXPECT_NE(c.err.find("left by a ckpt that died removed"), std::string::npos) << c.err;
  });
}

TEST(NetLock, KilledDumpsIptablesLockGoesWithTheNextDump) {
  killed_dump_then({"--network-lock", "iptables"}, [](Harness& h) {
    pid_t other = h.start_workload("counter");
    ASSERT_GT(other, 0);
    CkptRun d = h.ckpt({"dump", "-t", std::to_string(other), "-D", h.dir() + "/other", "--leave-running"});
    EXPECT_EQ(d.exit_code(), 0) << d.err;
    kill(other, SIGTERM);
    h.wait_child(other);
  });
}

// --network-lock skip: the user locks; ckpt puts nothing in the ruleset.
TEST(NetLock, SkipInstallsNothing) {
  Harness h;
  EchoTree t = start_echo(h);
  ASSERT_GT(t.pid, 0);
  setenv("CKPT_FAULT", "hang:netlock", 1);
  pid_t ckpt = h.ckpt_background({"dump", "-t", std::to_string(t.pid), "-D", h.images(), "--network-lock", "skip"});
  unsetenv("CKPT_FAULT");
  ASSERT_TRUE(wait_in_syscall(ckpt, SYS_pause)) << "ckpt never reached the lock";
  EXPECT_EQ(lock_of(ckpt), "") << ruleset();
  EXPECT_EQ(run_text(fmt::format("ls /run/ckpt/netlock | grep '^ckpt-{}-'", ckpt)), "");
  kill(ckpt, SIGKILL);
  h.wait_ckpt(ckpt);
  ASSERT_TRUE(wait_back_in_loop(t.pid));
  EXPECT_TRUE(echoes(t, "free"));
  expect_passes(h, t.pid);
}

TEST(NetLock, CheckSaysWhichLockWorks) {
  Harness h;
  CkptRun c = h.ckpt({"check"});
  std::smatch m;
  EXPECT_TRUE(std::regex_search(c.out, m, std::regex("network lock +ok +nftables \\(dump's choice\\)"))) << c.out;
}

}  // namespace
}  // namespace e2e
