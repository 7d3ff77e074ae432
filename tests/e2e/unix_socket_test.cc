// Unix sockets across the tasks of a tree, and what dump refuses: fds in
// flight, a peer outside the tree; what restore refuses: a path taken by
// something else. The workload `unixsk` (workloads_test.cc) covers every
// shape of socket within one process.
#include <fcntl.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <thread>

#include "harness.h"

namespace e2e {
namespace {

using namespace std::chrono_literals;

void must(bool ok) {
  if (!ok) _exit(1);
}

void kill_all(Harness& h, const std::vector<pid_t>& tasks) {
  for (pid_t p : tasks) kill(p, SIGKILL);
  for (pid_t p : tasks) {
    waitpid(p, nullptr, WNOHANG);
    wait_until([&] {
      waitpid(p, nullptr, WNOHANG);
      return kill(p, 0) < 0;
    });
  }
  (void)h;
}

// ckpt's test process's own copy of fd `fd` of `pid`.
int take(pid_t pid, int fd) {
  int pidfd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
  if (pidfd < 0) return -1;
  int out = static_cast<int>(syscall(SYS_pidfd_getfd, pidfd, fd, 0));
  close(pidfd);
  return out;
}

std::string read_link_of(int fd) {
  char buf[256];
  ssize_t n = readlink(fmt::format("/proc/self/fd/{}", fd).c_str(), buf, sizeof(buf));
  return n < 0 ? "" : std::string(buf, n);
}

// Every message queued on fd `fd` of `pid` (read: consumed), joined by '|'.
std::string drain(pid_t pid, int fd) {
  int f = take(pid, fd);
  if (f < 0) return "(no fd)";
  std::string out;
  char buf[256];
  for (ssize_t n; (n = recv(f, buf, sizeof(buf), MSG_DONTWAIT)) > 0;) out += std::string(buf, n) + "|";
  close(f);
  return out;
}

// Fds: 0-2 /dev/null; R: 3 (stream) and 5 (datagram); C, its child: 4 and 6,
// the other ends; each sent to the other before the dump.
void pair_across_tasks() {
  int st[2], dg[2];
  must(socketpair(AF_UNIX, SOCK_STREAM, 0, st) == 0 && st[0] == 3);
  must(socketpair(AF_UNIX, SOCK_DGRAM, 0, dg) == 0 && dg[0] == 5);
  if (fork() == 0) {
    close(st[0]), close(dg[0]);
    must(send(st[1], "from C", 6, 0) == 6 && send(dg[1], "c1", 2, 0) == 2);
    for (;;) pause();
  }
  close(st[1]), close(dg[1]);
  must(send(st[0], "from R", 6, 0) == 6 && send(dg[0], "r1", 2, 0) == 2 && send(dg[0], "r2", 2, 0) == 2);
}

void expect_pairs(const std::vector<pid_t>& t) {
  ASSERT_EQ(t.size(), 2u);
  EXPECT_EQ(drain(t[0], 3), "from C|");
  EXPECT_EQ(drain(t[1], 4), "from R|");
  EXPECT_EQ(drain(t[0], 5), "c1|");
  EXPECT_EQ(drain(t[1], 6), "r1|r2|");
  // Still each other's peer.
  int a = take(t[0], 5), b = take(t[1], 6);
  EXPECT_EQ(send(a, "x", 1, 0), 1);
  char c;
  EXPECT_EQ(recv(b, &c, 1, MSG_DONTWAIT), 1);
  close(a), close(b);
}

class PairAcrossTasks : public ::testing::TestWithParam<std::pair<bool, bool>> {};

TEST_P(PairAcrossTasks, DumpRestore) {
  const auto [breakpoints, leave_running] = GetParam();
  Harness h;
  pid_t pid = spawn_paused(pair_across_tasks);
  ASSERT_TRUE(tree_paused(pid, 2));
  const std::vector<pid_t> tasks = tree_of(pid);
  std::vector<std::string> dump = {"dump", "-t", std::to_string(pid), "-D", h.images(), "-v4", "-o", "dump.log"};
  if (leave_running) dump.push_back("--leave-running");
  CkptRun d = h.ckpt(dump);
  ASSERT_EQ(d.exit_code(), 0) << d.err << read_text(h.images() + "/dump.log");
  if (!leave_running) {
    kill_all(h, tasks);
    std::vector<std::string> rst = {"restore", "-D", h.images(), "-d", "-v4", "-o", "restore.log"};
    if (!breakpoints) rst.push_back("--no-breakpoints");
    CkptRun r = h.ckpt(rst);
    ASSERT_EQ(r.exit_code(), 0) << r.err << read_text(h.images() + "/restore.log");
    ASSERT_TRUE(tree_paused(pid, 2));
    EXPECT_EQ(tree_of(pid), tasks);
  }
  expect_pairs(tasks);
  kill_all(h, tasks);
}

INSTANTIATE_TEST_SUITE_P(Modes, PairAcrossTasks,
                         ::testing::Values(std::pair{true, false}, std::pair{false, false}, std::pair{true, true}),
                         [](const auto& i) {
                           return fmt::format("{}{}", i.param.first ? "breakpoint" : "syscalltrace",
                                              i.param.second ? "_leaverunning" : "");
                         });

TEST(UnixSocket, FdsInFlightRefusedAtDump) {
  Harness h;
  pid_t pid = spawn_paused([] {
    int sv[2];
    must(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    int fd = open("/dev/null", O_RDONLY);
    char data = 'x';
    iovec iov{&data, 1};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
    msghdr m{};
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    m.msg_control = control;
    m.msg_controllen = sizeof(control);
    cmsghdr* c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof(int));
    must(sendmsg(sv[0], &m, 0) == 1 && close(fd) == 0);
  });
  ASSERT_TRUE(tree_paused(pid, 1));
  const std::string fds = fds_of(pid);
  CkptRun d = h.ckpt({"dump", "-t", std::to_string(pid), "-D", h.images()});
  EXPECT_NE(d.exit_code(), 0);
  EXPECT_NE(d.err.find(fmt::format("pid {}: fd 4 (socket:[", pid)), std::string::npos) << d.err;
  EXPECT_NE(d.err.find("a unix socket with fds in flight (SCM_RIGHTS)"), std::string::npos) << d.err;
  EXPECT_TRUE(alive(pid));
  EXPECT_EQ(tracer_of(pid), 0);
  EXPECT_EQ(fds_of(pid), fds);
  // The message and its fd are still there for the task.
  int f = take(pid, 4);
  char data;
  iovec iov{&data, 1};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  msghdr m{};
  m.msg_iov = &iov;
  m.msg_iovlen = 1;
  m.msg_control = control;
  m.msg_controllen = sizeof(control);
  EXPECT_EQ(recvmsg(f, &m, MSG_DONTWAIT | MSG_CMSG_CLOEXEC), 1);
  cmsghdr* c = CMSG_FIRSTHDR(&m);
  ASSERT_TRUE(c && c->cmsg_type == SCM_RIGHTS);
  int got;
  memcpy(&got, CMSG_DATA(c), sizeof(int));
  EXPECT_EQ(read_link_of(got), "/dev/null");
  close(got), close(f);
  kill_all(h, {pid});
}

TEST(UnixSocket, PeerOutsideTheTreeRefusedAtDump) {
  Harness h;
  pid_t pid = spawn_paused([] {
    int sv[2];
    must(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    if (fork() == 0) {
      setsid();  // dumped alone: it leads its session
      close(sv[0]);
      for (;;) pause();
    }
    close(sv[1]);
  });
  ASSERT_TRUE(tree_paused(pid, 2));
  const std::vector<pid_t> tasks = tree_of(pid);
  const pid_t child = tasks[1];
  CkptRun d = h.ckpt({"dump", "-t", std::to_string(child), "-D", h.images()});
  EXPECT_NE(d.exit_code(), 0);
  EXPECT_NE(d.err.find(fmt::format("pid {}: fd 4 (socket:[", child)), std::string::npos) << d.err;
  EXPECT_NE(d.err.find("outside the dumped tree"), std::string::npos) << d.err;
  EXPECT_NE(d.err.find(fmt::format("held by pid {} (", pid)), std::string::npos) << d.err;
  EXPECT_NE(d.err.find("not even with --ext-unix-sk"), std::string::npos) << d.err;
  EXPECT_TRUE(alive(child));
  EXPECT_EQ(tracer_of(child), 0);
  EXPECT_NE(access((h.images() + "/inventory.img").c_str(), F_OK), 0);
  // Both ends still talk.
  int a = take(pid, 3), b = take(child, 4);
  EXPECT_EQ(send(a, "x", 1, 0), 1);
  char c;
  EXPECT_EQ(recv(b, &c, 1, MSG_DONTWAIT), 1);
  close(a), close(b);
  kill_all(h, tasks);
}

// A datagram socket connected to a named socket outside the tree (a
// syslog daemon's /dev/log): refused, naming who holds the peer and the
// option; dumped with --ext-unix-sk, restored connected to that name again.
TEST(UnixSocket, ExternalDatagramPeer) {
  Harness h;
  const std::string path = h.dir() + "/log.sock";
  int log = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  strcpy(a.sun_path, path.c_str());
  ASSERT_EQ(bind(log, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  pid_t pid = spawn_paused([&] {
    int s = socket(AF_UNIX, SOCK_DGRAM, 0);
    must(s == 3 && connect(s, reinterpret_cast<const sockaddr*>(&a), sizeof(a)) == 0 && send(s, "before", 6, 0) == 6);
  });
  ASSERT_TRUE(tree_paused(pid, 1));
  CkptRun d = h.ckpt({"dump", "-t", std::to_string(pid), "-D", h.images()});
  EXPECT_NE(d.exit_code(), 0);
  EXPECT_NE(d.err.find(fmt::format("pid {}: fd 3 (socket:[", pid)), std::string::npos) << d.err;
  EXPECT_NE(d.err.find(fmt::format("({}), outside the dumped tree (held by pid {} (", path, getpid())), std::string::npos)
      << d.err;
  EXPECT_NE(d.err.find("--ext-unix-sk connects it to that name again at restore"), std::string::npos) << d.err;
  EXPECT_TRUE(alive(pid));
  EXPECT_EQ(tracer_of(pid), 0);

  d = h.ckpt({"dump", "-t", std::to_string(pid), "-D", h.images(), "--ext-unix-sk"});
  ASSERT_EQ(d.exit_code(), 0) << d.err;
  kill_all(h, {pid});
  CkptRun r = h.ckpt({"restore", "-D", h.images(), "-d"});
  ASSERT_EQ(r.exit_code(), 0) << r.err;
  ASSERT_TRUE(tree_paused(pid, 1));
  int s = take(pid, 3);
  EXPECT_EQ(send(s, "after", 5, 0), 5);
  sockaddr_un peer{};
  socklen_t len = sizeof(peer);
  EXPECT_EQ(getpeername(s, reinterpret_cast<sockaddr*>(&peer), &len), 0);
  EXPECT_STREQ(peer.sun_path, path.c_str());
  close(s);
  char buf[16];
  EXPECT_EQ(recv(log, buf, sizeof(buf), MSG_DONTWAIT), 6);
  EXPECT_EQ(recv(log, buf, sizeof(buf), MSG_DONTWAIT), 5);
  EXPECT_EQ(std::string(buf, 5), "after");
  close(log);
  kill_all(h, {pid});
}

// The listener's path holds a regular file at restore: refused, naming it;
// once it is gone, the restore recreates the socket file.
TEST(UnixSocket, PathTakenAtRestore) {
  Harness h;
  const std::string path = h.dir() + "/listener.sock";
  pid_t pid = spawn_paused([&] {
    int l = socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    strcpy(a.sun_path, path.c_str());
    must(l >= 0 && bind(l, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0 && listen(l, 3) == 0);
  });
  ASSERT_TRUE(tree_paused(pid, 1));
  CkptRun d = h.ckpt({"dump", "-t", std::to_string(pid), "-D", h.images()});
  ASSERT_EQ(d.exit_code(), 0) << d.err;
  kill_all(h, {pid});
  ASSERT_EQ(unlink(path.c_str()), 0);
  int f = open(path.c_str(), O_CREAT | O_WRONLY, 0600);
  ASSERT_GE(f, 0);
  close(f);
  CkptRun r = h.ckpt({"restore", "-D", h.images(), "-d"});
  EXPECT_NE(r.exit_code(), 0);
  EXPECT_NE(r.err.find(path + " is taken by something else than a socket file"), std::string::npos) << r.err;
  EXPECT_FALSE(alive(pid));
  ASSERT_EQ(unlink(path.c_str()), 0);
  r = h.ckpt({"restore", "-D", h.images(), "-d"});
  ASSERT_EQ(r.exit_code(), 0) << r.err;
  struct stat st;
  EXPECT_TRUE(stat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode));
  // Listening there again.
  int c = socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  strcpy(a.sun_path, path.c_str());
  EXPECT_EQ(connect(c, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0) << strerror(errno);
  close(c);
  kill_all(h, {pid});
}

}  // namespace
}  // namespace e2e
