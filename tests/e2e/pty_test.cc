// Terminals (files/pty.cc, files/tty.cc): a pty pair with an end outside the
// tree is refused at dump, naming it, with the tree left running; /dev/tty
// is refused; --shell-job restores a tree that runs on a terminal onto the
// terminal ckpt restore runs in, as a user at a shell would do it. The pair
// made inside a tree is the `ptypair` workload (workloads_test.cc).
#include <fcntl.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <termios.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>

#include "harness.h"

namespace e2e {
namespace {

using namespace std::chrono_literals;

// A pty pair of the test's: the master, and the slave's path.
struct Pair {
  int master = -1;
  std::string slave;
  Pair() {
    master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    char name[64] = "";
    if (master >= 0 && grantpt(master) == 0 && unlockpt(master) == 0 && ptsname_r(master, name, sizeof name) == 0)
      slave = name;
  }
  ~Pair() {
    if (master >= 0) close(master);
  }
};

// What the master reads until `want` shows up (or 10 s).
std::string read_until(int m, const std::string& want) {
  std::string got;
  for (int i = 0; i < 1000 && got.find(want) == std::string::npos; i++) {
    pollfd p{m, POLLIN, 0};
    if (poll(&p, 1, 10) <= 0) continue;
    char buf[256];
    ssize_t n = read(m, buf, sizeof buf);
    if (n > 0) got.append(buf, static_cast<size_t>(n));
  }
  return got;
}

void expect_refused_alive(Harness& h, pid_t pid, const std::vector<std::string>& extra,
                          const std::vector<std::string>& words) {
  std::vector<std::string> args = {"dump", "-t", std::to_string(pid), "-D", h.images()};
  args.insert(args.end(), extra.begin(), extra.end());
  CkptRun d = h.ckpt(args);
  EXPECT_NE(d.exit_code(), 0);
  for (const std::string& w : words) EXPECT_NE(d.err.find(w), std::string::npos) << "want \"" << w << "\" in " << d.err;
  EXPECT_TRUE(alive(pid));
  EXPECT_EQ(tracer_of(pid), 0);
  EXPECT_TRUE(wait_state(pid, 'S')) << proc_state(pid);
}

// The tree holds a slave; the test, outside, its master: refused, with and
// without --shell-job (it is not the tree's terminal, nor ckpt's).
TEST(Pty, SlaveWhoseMasterIsOutsideIsRefused) {
  Harness h;
  Pair p;
  ASSERT_FALSE(p.slave.empty());
  pid_t c = fork();
  if (c == 0) {
    setsid();
    close_range(3, ~0U, 0);  // the test's own (the master among them)
    if (open(p.slave.c_str(), O_RDWR | O_NOCTTY) < 0) _exit(1);
    for (;;) pause();
  }
  ASSERT_TRUE(wait_until([&] { return fds_of(c).find(p.slave) != std::string::npos; })) << fds_of(c);
  expect_refused_alive(h, c, {}, {p.slave, "held outside the tree", "--shell-job"});
  expect_refused_alive(h, c, {"--shell-job"}, {p.slave, "held outside the tree", "not the terminal the tree runs on"});
  kill(c, SIGKILL);
  h.wait_child(c);
}

// The tree holds a master; the test holds its slave: refused, naming who.
TEST(Pty, MasterWhoseSlaveIsOutsideIsRefused) {
  Harness h;
  Pair p;
  ASSERT_FALSE(p.slave.empty());
  int s = open(p.slave.c_str(), O_RDWR | O_NOCTTY | O_CLOEXEC);
  ASSERT_GE(s, 0);
  pid_t c = fork();
  if (c == 0) {
    setsid();
    // The master alone: the test's other fds are not the tree's.
    if (p.master > 3) close_range(3, p.master - 1, 0);
    close_range(p.master + 1, ~0U, 0);
    for (;;) pause();
  }
  close(p.master);
  p.master = -1;
  ASSERT_TRUE(wait_until([&] { return fds_of(c).find("/dev/ptmx") != std::string::npos; })) << fds_of(c);
  expect_refused_alive(h, c, {}, {p.slave, fmt::format("held by pid {}", getpid()), "outside the tree"});
  close(s);
  kill(c, SIGKILL);
  h.wait_child(c);
}

// A pair of the tree's own, the session's terminal, also opened as /dev/tty.
TEST(Pty, DevTtyIsRefused) {
  Harness h;
  pid_t c = fork();
  if (c == 0) {
    setsid();
    close_range(3, ~0U, 0);
    int m = posix_openpt(O_RDWR | O_NOCTTY);
    if (m < 0 || grantpt(m) < 0 || unlockpt(m) < 0) _exit(1);
    int s = open(ptsname(m), O_RDWR);  // the session's terminal from now on
    if (s < 0 || open("/dev/tty", O_RDWR) < 0) _exit(2);
    for (;;) pause();
  }
  ASSERT_TRUE(wait_until([&] { return fds_of(c).find("/dev/tty") != std::string::npos; })) << fds_of(c);
  expect_refused_alive(h, c, {}, {"/dev/tty", "controlling terminal", "not supported"});
  kill(c, SIGKILL);
  h.wait_child(c);
}

// /dev/console, the system console: no terminal of the tree's, refused by
// name (the "/dev/tty, /dev/console refused with a clear message").
TEST(Pty, DevConsoleIsRefused) {
  Harness h;
  pid_t c = fork();
  if (c == 0) {
    setsid();
    close_range(3, ~0U, 0);
    if (open("/dev/console", O_RDWR | O_NOCTTY) < 0) _exit(1);
    for (;;) pause();
  }
  ASSERT_TRUE(wait_until([&] { return fds_of(c).find("/dev/console") != std::string::npos; })) << fds_of(c);
  expect_refused_alive(h, c, {}, {"/dev/console", "the system console", "not supported"});
  kill(c, SIGKILL);
  h.wait_child(c);
}

// A session leader whose controlling terminal is the test's pty, held by no
// fd: restore could not give it back.
TEST(Pty, SessionTerminalOutsideIsRefused) {
  Harness h;
  Pair p;
  ASSERT_FALSE(p.slave.empty());
  pid_t c = fork();
  if (c == 0) {
    setsid();
    close_range(3, ~0U, 0);
    int s = open(p.slave.c_str(), O_RDWR);  // its controlling terminal
    if (s < 0) _exit(1);
    close(s);
    for (;;) pause();
  }
  ASSERT_TRUE(wait_until([&] {
    std::string stat = read_text(fmt::format("/proc/{}/stat", c));
    return fds_of(c).find("/dev/pts") == std::string::npos && stat.find(") S ") != std::string::npos;
  }));
  expect_refused_alive(h, c, {}, {"controlling terminal", p.slave, "not a pty pair of the tree"});
  kill(c, SIGKILL);
  h.wait_child(c);
}

// A pair of the tree's own with more input pending for the slave than ckpt
// can give back: refused before a byte is read, every byte still there.
TEST(Pty, TooMuchInputForTheSlaveIsRefusedUntouched) {
  Harness h;
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  pid_t c = fork();
  if (c == 0) {
    setsid();
    close(fds[0]);
    if (fds[1] != 3) dup2(fds[1], 3);
    close_range(4, ~0U, 0);
    int m = posix_openpt(O_RDWR | O_NOCTTY);
    if (m < 0 || grantpt(m) < 0 || unlockpt(m) < 0) _exit(1);
    int s = open(ptsname(m), O_RDWR | O_NOCTTY);
    termios t{};
    if (s < 0 || tcgetattr(s, &t) < 0) _exit(2);
    cfmakeraw(&t);
    if (tcsetattr(s, TCSANOW, &t) < 0) _exit(3);
    const std::string x(3000, 'x');
    if (write(m, x.data(), x.size()) != 3000) _exit(4);
    if (write(3, &s, sizeof s) != sizeof s) _exit(5);
    close(3);
    for (;;) pause();
  }
  close(fds[1]);
  int slave_fd = -1;
  ASSERT_EQ(read(fds[0], &slave_fd, sizeof slave_fd), static_cast<ssize_t>(sizeof slave_fd));
  close(fds[0]);
  expect_refused_alive(h, c, {}, {"3000 bytes of input not yet read"});
  int pidfd = static_cast<int>(syscall(SYS_pidfd_open, c, 0));
  ASSERT_GE(pidfd, 0);
  int s = static_cast<int>(syscall(SYS_pidfd_getfd, pidfd, slave_fd, 0));
  ASSERT_GE(s, 0);
  int n = 0;
  EXPECT_EQ(ioctl(s, FIONREAD, &n), 0);
  EXPECT_EQ(n, 3000);
  close(s);
  close(pidfd);
  kill(c, SIGKILL);
  h.wait_child(c);
}

// A user's terminal: the test holds the master (the terminal emulator); T,
// the session leader with the slave for terminal (the login shell), runs a
// job W that echoes the lines it reads. W is dumped with --shell-job from
// outside the terminal; then T runs `ckpt restore --shell-job -d` in the
// terminal, and W echoes again there.
TEST(ShellJob, RestoredOntoTheTerminalCkptRunsIn) {
  Harness h;
  Pair p;
  ASSERT_FALSE(p.slave.empty());
  int go[2], done[2], wpid[2];
  ASSERT_EQ(pipe2(go, O_CLOEXEC), 0);
  ASSERT_EQ(pipe2(done, O_CLOEXEC), 0);
  ASSERT_EQ(pipe2(wpid, O_CLOEXEC), 0);
  const std::string images = h.images();
  pid_t t = fork();
  if (t == 0) {
    setsid();
    close(p.master);
    int s = open(p.slave.c_str(), O_RDWR);
    if (s < 0 || ioctl(s, TIOCSCTTY, 0) < 0) _exit(1);
    dup2(s, 0), dup2(s, 1), dup2(s, 2);
    pid_t w = fork();
    if (w == 0) {
      close_range(3, ~0U, 0);  // the test's pipes and master: not the job's
      char line[256];
      for (;;) {
        ssize_t n = read(0, line, sizeof line);
        if (n <= 0) _exit(3);
        char out[300];
        int k = snprintf(out, sizeof out, "echo: %.*s", static_cast<int>(n), line);
        if (write(1, out, static_cast<size_t>(k)) < 0) _exit(4);
      }
    }
    if (write(wpid[1], &w, sizeof w) != sizeof w) _exit(5);
    waitpid(w, nullptr, 0);  // the dump kills it
    char c;
    if (read(go[0], &c, 1) != 1) _exit(6);
    pid_t r = fork();
    if (r == 0) {
      execl(ckpt_bin(), "ckpt", "restore", "-D", images.c_str(), "--shell-job", "-d", "-v4", "-o", "restore.log",
            nullptr);
      _exit(127);
    }
    int st = 0;
    waitpid(r, &st, 0);
    if (write(done[1], &st, sizeof st) != sizeof st) _exit(7);
    for (;;) pause();
  }
  pid_t w = 0;
  ASSERT_EQ(read(wpid[0], &w, sizeof w), static_cast<ssize_t>(sizeof w));
  ASSERT_NE(write(p.master, "one\n", 4), -1);
  EXPECT_NE(read_until(p.master, "echo: one").find("echo: one"), std::string::npos);

  CkptRun d = h.ckpt({"dump", "-t", std::to_string(w), "-D", images, "--shell-job", "-v4", "-o", "dump.log"});
  ASSERT_EQ(d.exit_code(), 0) << d.err << read_text(images + "/dump.log");
  CkptRun s = h.ckpt({"show", images});
  EXPECT_NE(s.out.find("terminal {"), std::string::npos) << s.out;
  ASSERT_TRUE(wait_until([&] { return !alive(w); }));

  ASSERT_EQ(write(go[1], "g", 1), 1);
  int st = -1;
  ASSERT_EQ(read(done[0], &st, sizeof st), static_cast<ssize_t>(sizeof st));
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st << read_text(images + "/restore.log");
  ASSERT_TRUE(wait_until([&] { return alive(w) && tracer_of(w) == 0; })) << read_text(images + "/restore.log");
  EXPECT_EQ(getsid(w), t);
  EXPECT_NE(fds_of(w).find(p.slave), std::string::npos) << fds_of(w);
  ASSERT_NE(write(p.master, "two\n", 4), -1);
  EXPECT_NE(read_until(p.master, "echo: two").find("echo: two"), std::string::npos);
  kill(w, SIGKILL);
  kill(t, SIGKILL);
  h.wait_child(t);
  wait_until([&] { return waitpid(w, nullptr, WNOHANG) == w || !alive(w); });
  for (int fd : {go[0], go[1], done[0], done[1], wpid[0], wpid[1]}) close(fd);
}

}  // namespace
}  // namespace e2e
