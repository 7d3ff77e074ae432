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
#include <sys/mman.h>
#include <sys/syscall.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <regex>

#include "base/fs.h"
#include "base/unique_fd.h"
#include "harness.h"
#include "image/image_file.h"
#include "net/netlock.h"

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

// wl_tcpclient, connected to a server socket of the test's: the peer outside the tree.
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
  t.pid = h.start_workload("tcpclient", {std::to_string(ntohs(a.sin_port))});
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
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << read_text(h.workload_log("tcpclient"));
}

class FailedDump : public ::testing::TestWithParam<std::string> {};

// The dump fails (an established connection without --tcp-established); the
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

INSTANTIATE_TEST_SUITE_P(NetLock, FailedDump, ::testing::Values("nftables", "iptables"),
                         [](const ::testing::TestParamInfo<std::string>& i) { return i.param; });

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

// A kill dump's lock as the inet kind will leave it, on a connection of the
// test's own: a ckpt now dead (a child here) made it and handed it to the
// checkpoint of the counter workload, whose inventory names it. Restore takes
// it over and removes it once the tree runs, or when it fails.
struct HeldLock {
  UniqueFd client, server;
  std::string name;
};

HeldLock hand_lock_to(Harness& h) {
  HeldLock l;
  UniqueFd lis(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(a);
  EXPECT_EQ(bind(lis.get(), reinterpret_cast<sockaddr*>(&a), len), 0);
  EXPECT_EQ(listen(lis.get(), 1), 0);
  EXPECT_EQ(getsockname(lis.get(), reinterpret_cast<sockaddr*>(&a), &len), 0);
  l.client = UniqueFd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  EXPECT_EQ(connect(l.client.get(), reinterpret_cast<sockaddr*>(&a), len), 0);
  l.server = UniqueFd(accept4(lis.get(), nullptr, nullptr, SOCK_CLOEXEC));
  sockaddr_in me{};
  socklen_t ml = sizeof(me);
  getsockname(l.client.get(), reinterpret_cast<sockaddr*>(&me), &ml);
  ckpt::net::Connection c{.family = AF_INET};
  memcpy(c.local_addr.data(), &me.sin_addr, 4);
  memcpy(c.remote_addr.data(), &a.sin_addr, 4);
  c.local_port = ntohs(me.sin_port);
  c.remote_port = ntohs(a.sin_port);

  int fds[2];
  EXPECT_EQ(pipe(fds), 0);
  const std::string images = ckpt::read_link("/proc/self/cwd").value_or("") + "/" + h.images();
  // The inventory names the lock before the lock names the checkpoint (as
  // in a dump), so that no sweep meanwhile takes it for stale.
  const std::string inv_path = h.images() + "/inventory.img";
  pid_t pid = fork();
  if (pid == 0) {
    ckpt::Log log(0);
    auto nl = ckpt::net::NetLock::lock(ckpt::net::LockChoice::Auto, {c}, log);
    if (!nl) _exit(1);
    auto framed = ckpt::read_file(inv_path);
    ckpt::img::Inventory inv;
    if (!framed || !ckpt::image::unframe("inventory.img", *framed, ckpt::image::ImageKind::Inventory, &inv)) _exit(2);
    *inv.mutable_network_lock() = nl->image();
    const std::string out = ckpt::image::frame(ckpt::image::ImageKind::Inventory, inv);
    UniqueFd f(open(inv_path.c_str(), O_WRONLY | O_TRUNC));
    if (write(f.get(), out.data(), out.size()) != ssize_t(out.size())) _exit(3);
    if (!nl->hand_over(h.images().starts_with("/") ? h.images() : images)) _exit(4);
    const std::string name = nl->name();
    if (write(fds[1], name.data(), name.size()) != ssize_t(name.size())) _exit(5);
    nl->release();
    _exit(0);
  }
  close(fds[1]);
  char buf[64] = {};
  ssize_t n = read(fds[0], buf, sizeof(buf) - 1);
  close(fds[0]);
  int st;
  waitpid(pid, &st, 0);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << "status " << st;
  l.name = n > 0 ? std::string(buf, n) : "";
  return l;
}

TEST(NetLock, RestoreRemovesTheDumpsLockOnceTheTreeRuns) {
  Harness h;
  const pid_t pid = h.dump_workload("counter");
  HeldLock l = hand_lock_to(h);
  ASSERT_FALSE(l.name.empty());
  // Held by the checkpoint: another ckpt run leaves it.
  CkptRun c = h.ckpt({"check"});
  EXPECT_NE(ruleset().find(l.name), std::string::npos) << "a lock the checkpoint holds was swept";
  ASSERT_EQ(send(l.client.get(), "held", 4, 0), 4);
  EXPECT_EQ(receive(l.server.get(), 300), "");
  CkptRun v = h.ckpt({"verify", h.images()});
  EXPECT_EQ(v.exit_code(), 0) << v.err;
  CkptRun s = h.ckpt({"show", h.images()});
  EXPECT_NE(s.out.find(fmt::format("=== network lock: nftables table inet {} (removed by restore), 1 connection", l.name)),
            std::string::npos) << s.out;
  CkptRun r = h.ckpt({"restore", "-d", "-D", h.images(), "-v3"});
  ASSERT_EQ(r.exit_code(), 0) << r.err;
  EXPECT_NE(r.err.find(fmt::format("network lock: nftables {} of the dump taken over", l.name)), std::string::npos)
      << r.err;
  EXPECT_EQ(ruleset().find(l.name), std::string::npos) << "still locked after the restore";
  EXPECT_FALSE(record_of(l.name));
  EXPECT_EQ(receive(l.server.get(), 15000), "held");
  kill(pid, SIGTERM);
  int st = h.wait_child(pid);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << read_text(h.workload_log("counter"));
}

// The restored task faults at its first instruction (its rip moved into a
// page that can't be executed): the restore fails, and the lock goes too.
TEST(NetLock, FailedRestoreRemovesTheDumpsLock) {
  Harness h;
  const pid_t pid = h.dump_workload("counter");
  HeldLock l = hand_lock_to(h);
  ASSERT_FALSE(l.name.empty());
  const std::string core_path = fmt::format("{}/core-{}.img", h.images(), pid);
  auto framed = ckpt::read_file(core_path);
  ASSERT_TRUE(framed);
  ckpt::img::TaskCore core;
  ASSERT_TRUE(ckpt::image::unframe("core", *framed, ckpt::image::ImageKind::Core, &core));
  auto mm_framed = ckpt::read_file(fmt::format("{}/mm-{}.img", h.images(), pid));
  ckpt::img::MmImage mm;
  ASSERT_TRUE(mm_framed && ckpt::image::unframe("mm", *mm_framed, ckpt::image::ImageKind::Mm, &mm));
  uint64_t rip = 0;
  for (const ckpt::img::Vma& v : mm.vmas())
    if (v.kind() == ckpt::img::Vma::ANON_PRIVATE && !(v.prot() & PROT_EXEC) && (v.prot() & PROT_READ)) {
      rip = v.start() + 64;
      break;
    }
  ASSERT_NE(rip, 0u);
  core.mutable_threads(0)->mutable_regs()->set_rip(rip);
  const std::string out = ckpt::image::frame(ckpt::image::ImageKind::Core, core);
  {
    UniqueFd f(open(core_path.c_str(), O_WRONLY | O_TRUNC));
    ASSERT_EQ(write(f.get(), out.data(), out.size()), ssize_t(out.size()));
  }
  ASSERT_EQ(send(l.client.get(), "held", 4, 0), 4);
  CkptRun r = h.ckpt({"restore", "-d", "-D", h.images()});
  EXPECT_NE(r.exit_code(), 0) << r.err;
  EXPECT_FALSE(alive(pid));
  EXPECT_EQ(ruleset().find(l.name), std::string::npos) << "still locked after a failed restore";
  EXPECT_FALSE(record_of(l.name));
  EXPECT_EQ(receive(l.server.get(), 15000), "held");
}

// A restore refused while it reads the images (here a flipped bit in the
// mm image) changes nothing: the lock holds, for the restore that follows
// once the image is whole again.
TEST(NetLock, RestoreRefusedBeforeTakingOverLeavesTheLock) {
  Harness h;
  const pid_t pid = h.dump_workload("counter");
  HeldLock l = hand_lock_to(h);
  ASSERT_FALSE(l.name.empty());
  const std::string mm = fmt::format("{}/mm-{}.img", h.images(), pid);
  auto flip = [&] {
    UniqueFd f(open(mm.c_str(), O_RDWR));
    uint8_t b;
    ASSERT_EQ(pread(f.get(), &b, 1, 40), 1);
    b ^= 0x04;
    ASSERT_EQ(pwrite(f.get(), &b, 1, 40), 1);
  };
  flip();
  CkptRun bad = h.ckpt({"restore", "-d", "-D", h.images()});
  EXPECT_NE(bad.exit_code(), 0) << bad.err;
  EXPECT_NE(ruleset().find(l.name), std::string::npos) << "a refused restore took the lock away";
  EXPECT_TRUE(record_of(l.name));
  ASSERT_EQ(send(l.client.get(), "held", 4, 0), 4);
  EXPECT_EQ(receive(l.server.get(), 300), "");
  flip();
  CkptRun r = h.ckpt({"restore", "-d", "-D", h.images()});
  ASSERT_EQ(r.exit_code(), 0) << r.err;
  EXPECT_EQ(ruleset().find(l.name), std::string::npos);
  EXPECT_EQ(receive(l.server.get(), 15000), "held");
  kill(pid, SIGTERM);
  int st = h.wait_child(pid);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << read_text(h.workload_log("counter"));
}

}  // namespace
}  // namespace e2e
