// The network lock on real loopback connections: packets of a locked
// connection stop both ways (TCP's retransmission brings them once it goes),
// other connections are untouched; a lock of a ckpt that died goes at the
// next sweep unless a checkpoint holds it. Runs as root, on this machine's
// real ruleset (each lock is a table or chain of its own).
#include "net/netlock.h"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <set>

#include "base/unique_fd.h"
#include "cli/commands/commands.h"
#include "image/image_dir.h"
#include "net/lock_name.h"
#include "net/lock_records.h"
#include "net/run_tool.h"
#include "net/tree_connections.h"
#include "proc/fds.h"

namespace ckpt::net {

// ctest's listing names the choice (else its bytes).
void PrintTo(LockChoice c, std::ostream* os) { *os << (c == LockChoice::Nftables ? "nftables" : "iptables"); }

namespace {

// Both ends of a connection made over loopback, and its 4-tuple as the client sees it.
struct Pair {
  UniqueFd client, server;
  Connection conn{};
};

Pair loopback_pair(bool v6 = false) {
  Pair p;
  const int fam = v6 ? AF_INET6 : AF_INET;
  UniqueFd l(socket(fam, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_storage a{};
  socklen_t len;
  if (v6) {
    auto* s6 = reinterpret_cast<sockaddr_in6*>(&a);
    s6->sin6_family = AF_INET6;
    s6->sin6_addr = in6addr_loopback;
    len = sizeof(sockaddr_in6);
  } else {
    auto* s4 = reinterpret_cast<sockaddr_in*>(&a);
    s4->sin_family = AF_INET;
    s4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    len = sizeof(sockaddr_in);
  }
  EXPECT_EQ(bind(l.get(), reinterpret_cast<sockaddr*>(&a), len), 0) << strerror(errno);
  EXPECT_EQ(listen(l.get(), 1), 0);
  EXPECT_EQ(getsockname(l.get(), reinterpret_cast<sockaddr*>(&a), &len), 0);
  p.client = UniqueFd(socket(fam, SOCK_STREAM | SOCK_CLOEXEC, 0));
  EXPECT_EQ(connect(p.client.get(), reinterpret_cast<sockaddr*>(&a), len), 0) << strerror(errno);
  p.server = UniqueFd(accept4(l.get(), nullptr, nullptr, SOCK_CLOEXEC));
  EXPECT_TRUE(p.server.valid());
  sockaddr_storage me{}, peer{};
  socklen_t ml = sizeof(me), pl = sizeof(peer);
  getsockname(p.client.get(), reinterpret_cast<sockaddr*>(&me), &ml);
  getpeername(p.client.get(), reinterpret_cast<sockaddr*>(&peer), &pl);
  p.conn.family = fam;
  if (v6) {
    auto* m = reinterpret_cast<sockaddr_in6*>(&me);
    auto* r = reinterpret_cast<sockaddr_in6*>(&peer);
    memcpy(p.conn.local_addr.data(), &m->sin6_addr, 16);
    memcpy(p.conn.remote_addr.data(), &r->sin6_addr, 16);
    p.conn.local_port = ntohs(m->sin6_port);
    p.conn.remote_port = ntohs(r->sin6_port);
  } else {
    auto* m = reinterpret_cast<sockaddr_in*>(&me);
    auto* r = reinterpret_cast<sockaddr_in*>(&peer);
    memcpy(p.conn.local_addr.data(), &m->sin_addr, 4);
    memcpy(p.conn.remote_addr.data(), &r->sin_addr, 4);
    p.conn.local_port = ntohs(m->sin_port);
    p.conn.remote_port = ntohs(r->sin_port);
  }
  return p;
}

// What arrives on `fd` within `ms`.
std::string receive(int fd, int ms) {
  pollfd p{fd, POLLIN, 0};
  if (poll(&p, 1, ms) != 1) return "";
  char buf[256];
  ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
  return n > 0 ? std::string(buf, n) : std::string();
}

void send_text(int fd, const std::string& s) { ASSERT_EQ(send(fd, s.data(), s.size(), 0), ssize_t(s.size())); }

bool available(Method m) {
  auto b = make_backend(m);
  if (!b) return false;
  auto names = (*b)->list();
  return names.has_value();
}

// Locked: nothing passes either way; the other connection talks on; once
// unlocked, TCP's retransmissions bring the held bytes.
void expect_lock_holds(Pair& locked, Pair& other, const std::function<Result<void>()>& unlock) {
  send_text(locked.client.get(), "ping");
  send_text(locked.server.get(), "pong");
  EXPECT_EQ(receive(locked.server.get(), 500), "") << "a packet of the locked connection passed";
  EXPECT_EQ(receive(locked.client.get(), 100), "") << "a packet of the locked connection passed";
  send_text(other.client.get(), "free");
  EXPECT_EQ(receive(other.server.get(), 2000), "free") << "the lock held an unrelated connection";
  send_text(other.server.get(), "back");
  EXPECT_EQ(receive(other.client.get(), 2000), "back");
  ASSERT_TRUE(unlock());
  EXPECT_EQ(receive(locked.server.get(), 10000), "ping");
  EXPECT_EQ(receive(locked.client.get(), 10000), "pong");
}

class LockMethod : public ::testing::TestWithParam<LockChoice> {};

TEST_P(LockMethod, DropsOnlyTheLockedConnectionUntilUnlocked) {
  const LockChoice choice = GetParam();
  if (!available(choice == LockChoice::Nftables ? Method::Nftables : Method::Iptables))
    GTEST_SKIP() << "this lock does not work here";
  for (bool v6 : {false, true}) {
    SCOPED_TRACE(v6 ? "IPv6" : "IPv4");
    Pair a = loopback_pair(v6), b = loopback_pair(v6);
    Log log(0);
    auto l = NetLock::lock(choice, {a.conn}, log);
    ASSERT_TRUE(l) << l.error().str();
    ASSERT_TRUE(l->locked());
    const std::string name = l->name();
    auto backend = make_backend(l->method());
    ASSERT_TRUE(backend);
    EXPECT_TRUE((*backend)->exists(name).value_or(false));
    ASSERT_TRUE(read_record(name).has_value());
    expect_lock_holds(a, b, [&] { return l->unlock(); });
    EXPECT_FALSE((*backend)->exists(name).value_or(true)) << name << " is still there";
    EXPECT_FALSE(read_record(name).has_value());
  }
}

INSTANTIATE_TEST_SUITE_P(NetLock, LockMethod, ::testing::Values(LockChoice::Nftables, LockChoice::Iptables),
                         [](const auto& i) { return ::testing::PrintToString(i.param); });

// The legacy tools (x_tables), for kernels without nf_tables.
TEST(NetLock, IptablesLegacyDropsOnlyTheLockedConnection) {
  if (!available(Method::IptablesLegacy)) GTEST_SKIP() << "no iptables-legacy here";
  Pair a = loopback_pair(), b = loopback_pair();
  auto backend = make_backend(Method::IptablesLegacy);
  ASSERT_TRUE(backend);
  const std::string name = lock_name({getpid(), 424242});
  ASSERT_TRUE((*backend)->install(name, std::vector{a.conn}));
  EXPECT_TRUE((*backend)->exists(name).value_or(false));
  expect_lock_holds(a, b, [&] { return (*backend)->remove(name); });
  EXPECT_FALSE((*backend)->exists(name).value_or(true));
}

// An IPv6 socket talking to an IPv4 peer sends IPv4 packets.
TEST(NetLock, MappedIpv6IsLockedAsIpv4) {
  if (!available(Method::Nftables)) GTEST_SKIP() << "no nftables here";
  Pair a = loopback_pair(), b = loopback_pair();
  Connection mapped = a.conn;
  mapped.family = AF_INET6;
  mapped.local_addr = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 1};
  mapped.remote_addr = mapped.local_addr;
  Log log(0);
  auto l = NetLock::lock(LockChoice::Nftables, {mapped}, log);
  ASSERT_TRUE(l) << l.error().str();
  expect_lock_holds(a, b, [&] { return l->unlock(); });
}

TEST(NetLock, DestructorUnlocksAndSkipInstallsNothing) {
  Pair a = loopback_pair();
  Log log(0);
  std::string name;
  {
    auto l = NetLock::lock(LockChoice::Auto, {a.conn}, log);
    ASSERT_TRUE(l) << l.error().str();
    name = l->name();
    ASSERT_TRUE(read_record(name).has_value());
  }
  EXPECT_FALSE(read_record(name).has_value());
  for (Method m : {Method::Nftables, Method::Iptables})
    if (auto b = make_backend(m)) {
      EXPECT_FALSE((*b)->exists(name).value_or(false)) << method_name(m);
    }
  auto skip = NetLock::lock(LockChoice::Skip, {a.conn}, log);
  ASSERT_TRUE(skip);
  EXPECT_FALSE(skip->locked());
  auto none = NetLock::lock(LockChoice::Auto, {}, log);
  ASSERT_TRUE(none);
  EXPECT_FALSE(none->locked());
}

// The tree is this process: a connection whose other end another process
// holds is locked; one with both ends here is not (both come back together).
TEST(NetLock, FindsTheTreesConnections) {
  Pair a = loopback_pair(), b = loopback_pair(true), both = loopback_pair();
  const pid_t outside = fork();
  if (outside == 0)
    for (;;) pause();  // holds a copy of every end, the accepted ones among them
  a.server.reset();
  b.server.reset();
  std::set<uint32_t> sockets;
  auto fds = proc::read_fd_links(getpid());
  ASSERT_TRUE(fds) << fds.error().str();
  for (const proc::FdLink& f : *fds)
    if (unsigned long ino; sscanf(f.link.c_str(), "socket:[%lu]", &ino) == 1) sockets.insert(ino);
  auto all = files::inet_diag_all();
  kill(outside, SIGKILL);
  waitpid(outside, nullptr, 0);
  ASSERT_TRUE(all) << all.error().str();
  const std::vector<Connection> found = tree_tcp_connections(sockets, *all);
  const std::vector<Connection>* conns = &found;
  auto has = [&](const Connection& c) {
    for (const Connection& x : *conns)
      if (x.family == c.family && x.local_port == c.local_port && x.remote_port == c.remote_port &&
          x.local_addr == c.local_addr && x.remote_addr == c.remote_addr)
        return true;
    return false;
  };
  EXPECT_TRUE(has(a.conn));
  EXPECT_TRUE(has(b.conn));
  Connection server_side = both.conn;
  std::swap(server_side.local_port, server_side.remote_port);
  EXPECT_FALSE(has(both.conn)) << "both ends in the tree";
  EXPECT_FALSE(has(server_side)) << "both ends in the tree";
  EXPECT_EQ(conns->size(), 2u);
}

TEST(NetLock, LockNames) {
  EXPECT_EQ(lock_name({123, 456}), "ckpt-123-456");
  auto o = parse_lock_name("ckpt-4194304-1844674407370");
  ASSERT_TRUE(o);
  EXPECT_EQ(o->pid, 4194304);
  for (const char* bad : {"ckpt-", "ckpt-1", "ckpt-1-", "ckpt-0-5", "ckpt-1-2-3", "ckpt-1-2; flush ruleset",
                          "x-1-2", "ckpt-99999999-1", "ckpt--1-2", "ckpt-1-22222222222222222222222"})
    EXPECT_FALSE(parse_lock_name(bad)) << bad;
}

// A child makes a lock and "dies" without removing it, as a SIGKILLed
// ckpt would (before or after handing it to an images directory, whose
// inventory it names first, as a dump does: no sweep meanwhile takes it).
std::string lock_in_dead_child(const Connection& c, const std::string& images_dir, bool inventory = false) {
  int fds[2];
  EXPECT_EQ(pipe(fds), 0);
  pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    Log log(0);
    auto l = NetLock::lock(LockChoice::Auto, {c}, log);
    if (!l) _exit(1);
    if (inventory) {
      img::Inventory inv;
      *inv.mutable_network_lock() = l->image();
      auto images = image::ImageDir::open(images_dir, image::SharedDir::Refuse);
      if (!images || !images->write(image::kInventoryName, image::ImageKind::Inventory, inv)) _exit(4);
    }
    if (!images_dir.empty() && !l->hand_over(images_dir)) _exit(2);
    const std::string name = l->name();
    if (write(fds[1], name.data(), name.size()) != ssize_t(name.size())) _exit(3);
    l->release();
    _exit(0);
  }
  close(fds[1]);
  char buf[64] = {};
  ssize_t n = read(fds[0], buf, sizeof(buf) - 1);
  close(fds[0]);
  int st;
  waitpid(pid, &st, 0);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << "child status " << st;
  return n > 0 ? std::string(buf, n) : "";
}

bool lock_there(const std::string& name) {
  for (Method m : {Method::Nftables, Method::Iptables, Method::IptablesLegacy})
    if (auto b = make_backend(m); b && (*b)->exists(name).value_or(false)) return true;
  return false;
}

TEST(NetLock, StaleLockGoesHeldLockStaysTakeOverRemoves) {
  Pair a = loopback_pair(), b = loopback_pair();
  Log log(0);
  // Killed before handing over: stale at once.
  const std::string stale = lock_in_dead_child(a.conn, "");
  ASSERT_FALSE(stale.empty());
  cli::sweep_network_locks(false, log);
  EXPECT_FALSE(lock_there(stale)) << stale;
  EXPECT_FALSE(read_record(stale).has_value());

  // Handed to a checkpoint whose inventory names it: it stays.
  char tmpl[] = "/tmp/ckpt-netlock-XXXXXX";
  ASSERT_TRUE(mkdtemp(tmpl));
  const std::string dir = tmpl;
  const std::string held = lock_in_dead_child(a.conn, dir, true);
  ASSERT_FALSE(held.empty());
  cli::sweep_network_locks(true, log);
  EXPECT_TRUE(lock_there(held)) << "a lock a checkpoint holds was swept";
  send_text(a.client.get(), "held");
  EXPECT_EQ(receive(a.server.get(), 300), "");

  // Restore takes it over and removes it.
  img::NetLock image;
  image.set_name(held);
  {
    Connection c = a.conn;
    img::NetLockConnection* e = image.add_connections();
    e->set_family(AF_INET);
    e->set_local_addr(c.local_addr.data(), 4);
    e->set_remote_addr(c.remote_addr.data(), 4);
    e->set_local_port(c.local_port);
    e->set_remote_port(c.remote_port);
  }
  auto taken = NetLock::take_over(image, dir, LockChoice::Auto, log);
  ASSERT_TRUE(taken) << taken.error().str();
  EXPECT_EQ(taken->name(), held);
  ASSERT_TRUE(taken->unlock());
  EXPECT_FALSE(lock_there(held));
  EXPECT_EQ(receive(a.server.get(), 10000), "held");

  // The checkpoint deleted: its lock is stale.
  const std::string orphan = lock_in_dead_child(b.conn, dir + "/gone");
  cli::sweep_network_locks(false, log);
  EXPECT_FALSE(lock_there(orphan));
  (void)std::system(fmt::format("rm -rf '{}'", dir).c_str());
}

}  // namespace
}  // namespace ckpt::net
