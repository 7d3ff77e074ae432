// files/probe.h reads an fd's facts through ckpt's own copy of it, and
// /proc/PID/fdinfo only where a kind needs its lines or a lock may be: what
// it finds must be what /proc says of every kind of fd, on a dense table and
// on one whose fds lie far apart (found by /proc's listing), and a locked
// file must come with its fdinfo's lock lines.
#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <set>
#include <string>

#include "base/fs.h"
#include "base/unique_fd.h"
#include "files/probe.h"
#include "proc/status.h"

namespace ckpt::files {
namespace {

// A child holding fds of many kinds (and `more` dups of a pipe's end, and one
// fd at `far`, if not 0), stopped until killed.
class Holder {
 public:
  Holder(const std::string& dir, int more, int far) {
    int ready[2];
    EXPECT_EQ(pipe(ready), 0);
    pid_ = fork();
    if (pid_ == 0) {
      close(ready[0]);
      const std::string file = dir + "/data";
      int f = open(file.c_str(), O_RDWR | O_CREAT | O_APPEND | O_NONBLOCK, 0600);
      if (f < 0 || write(f, "0123456789", 10) != 10 || lseek(f, 3, SEEK_SET) != 3) _exit(2);
      if (dup(f) < 0) _exit(2);
      int ro = open(file.c_str(), O_RDONLY | O_CLOEXEC);
      if (ro < 0 || lseek(ro, 7, SEEK_SET) != 7) _exit(2);
      if (open(dir.c_str(), O_RDONLY | O_DIRECTORY) < 0 || open(file.c_str(), O_PATH) < 0) _exit(2);
      int p[2], s[2];
      if (pipe2(p, O_NONBLOCK) < 0 || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, s) < 0) _exit(2);
      if (eventfd(3, EFD_NONBLOCK) < 0 || open("/dev/null", O_WRONLY) < 0) _exit(2);
      int m = memfd_create("probe", 0);
      if (m < 0 || ftruncate(m, 8192) < 0 || lseek(m, 100, SEEK_SET) != 100) _exit(2);
      const std::string gone = dir + "/gone";
      int g = open(gone.c_str(), O_RDWR | O_CREAT, 0600);
      if (g < 0 || unlink(gone.c_str()) < 0) _exit(2);
      const std::string locked = dir + "/locked";
      int l = open(locked.c_str(), O_RDWR | O_CREAT, 0600);
      if (l < 0 || flock(l, LOCK_EX) < 0) _exit(2);
      rlimit rl;
      if (getrlimit(RLIMIT_NOFILE, &rl) < 0) _exit(2);
      rl.rlim_cur = rl.rlim_max;
      if (setrlimit(RLIMIT_NOFILE, &rl) < 0) _exit(2);
      for (int i = 0; i < more; i++)
        if (dup(p[0]) < 0) _exit(2);
      if (far && dup2(f, far) != far) _exit(2);
      if (write(ready[1], "x", 1) != 1) _exit(2);
      for (;;) pause();
    }
    close(ready[1]);
    char c;
    ok_ = read(ready[0], &c, 1) == 1;
    close(ready[0]);
  }
  ~Holder() {
    if (pid_ <= 0) return;
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
  pid_t pid() const { return pid_; }
  bool ok() const { return ok_; }

 private:
  pid_t pid_ = -1;
  bool ok_ = false;
};

void expect_as_proc_says(int more, int far) {
  const std::string dir = fmt::format("/tmp/ckpt-fd-probe-{}", getpid());
  std::filesystem::create_directories(dir);
  {
    Holder h(dir, more, far);
    ASSERT_TRUE(h.ok());
    UniqueFd pidfd(static_cast<int>(syscall(SYS_pidfd_open, h.pid(), 0)));
    ASSERT_TRUE(pidfd.valid());
    auto probes = probe_fds(h.pid(), pidfd.get());
    ASSERT_TRUE(probes) << probes.error().str();
    std::set<int> listed, probed;
    for (const auto& e : std::filesystem::directory_iterator(fmt::format("/proc/{}/fd", h.pid())))
      listed.insert(std::stoi(e.path().filename()));
    bool saw_lock = false;
    size_t without_fdinfo = 0;
    for (const FdProbe& p : *probes) {
      probed.insert(p.fd);
      const std::string at = fmt::format("/proc/{}/fd/{}", h.pid(), p.fd);
      SCOPED_TRACE(fmt::format("fd {} ({})", p.fd, p.link));
      EXPECT_EQ(p.link, read_link(at).value_or("?"));
      struct stat st;
      ASSERT_EQ(stat(at.c_str(), &st), 0);
      EXPECT_EQ(p.st.st_dev, st.st_dev);
      EXPECT_EQ(p.st.st_ino, st.st_ino);
      EXPECT_EQ(p.st.st_mode, st.st_mode);
      EXPECT_EQ(p.st.st_rdev, st.st_rdev);
      EXPECT_EQ(p.st.st_size, st.st_size);
      EXPECT_EQ(p.st.st_nlink, st.st_nlink);
      auto text = read_file(fmt::format("/proc/{}/fdinfo/{}", h.pid(), p.fd));
      ASSERT_TRUE(text);
      auto info = proc::parse_fdinfo(*text);
      ASSERT_TRUE(info);
      EXPECT_EQ(p.info.flags, info->flags & ~O_CLOEXEC) << "flags, octal: " << std::oct << p.info.flags;
      EXPECT_EQ(p.info.pos, info->pos);
      // fdinfo read where a kind reads its lines, or a lock is: then whole.
      const bool plain = (S_ISREG(st.st_mode) || S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode)) &&
                         !(info->flags & O_PATH) && text->find("lock:") == std::string::npos;
      if (!p.fdinfo.empty() || !plain) {
        EXPECT_EQ(p.fdinfo, *text);
      }
      // Close-on-exec known from fdinfo, else the parasite's to tell.
      EXPECT_EQ(p.cloexec.has_value(), !p.fdinfo.empty());
      if (p.cloexec) {
        EXPECT_EQ(*p.cloexec, (info->flags & O_CLOEXEC) != 0);
      }
      without_fdinfo += p.fdinfo.empty();
      saw_lock = saw_lock || p.fdinfo.find("lock:") != std::string::npos;
    }
    EXPECT_EQ(probed, listed);
    // A few fds: every fdinfo read, for its lock lines. Thousands: those
    // of files /proc/locks lists no lock on are spared.
    if (more < 4096) {
      EXPECT_EQ(without_fdinfo, 0u);
    } else {
      EXPECT_GT(without_fdinfo, static_cast<size_t>(more) / 2);
    }
    EXPECT_TRUE(saw_lock) << "the flock'd file's fdinfo lines";
    if (far) {
      EXPECT_TRUE(probed.contains(far));
    }
  }
  std::filesystem::remove_all(dir);
}

TEST(FdProbe, EveryKindAsProcSaysIt) { expect_as_proc_says(0, 0); }

// Fd 5000 lies beyond the slots walked: /proc's listing finds it.
TEST(FdProbe, AnFdFarAboveTheOthers) { expect_as_proc_says(0, 5000); }

// Enough fds for /proc/locks to be read: the flock'd file still comes with
// its fdinfo.
TEST(FdProbe, ThousandsOfFdsAndOneFarAbove) { expect_as_proc_says(5000, 12000); }

// An FdProbe of our own fd `fd`, its inode number said to be `ino`.
FdProbe own(int fd, int pidfd, uint64_t ino) {
  FdProbe p;
  p.pid = getpid();
  p.fd = fd;
  p.pidfd = pidfd;
  p.st.st_ino = ino;
  return p;
}

TEST(LockedInodes, InodesOfEveryLockKind) {
  const std::string locks =
      "1: POSIX  ADVISORY  WRITE 3131 00:1a:12345 0 EOF\n"
      "1: -> POSIX  ADVISORY  WRITE 3132 00:1a:12345 0 EOF\n"
      "2: FLOCK  ADVISORY  WRITE 1234 fd:00:555 0 EOF\n"
      "3: OFDLCK ADVISORY  READ  -1 00:1a:777 0 EOF\n"
      "4: LEASE  ACTIVE    READ 1234 00:1a:999 0 EOF\n";
  auto l = LockedInodes::parse(locks, "pid:[4026531836]");
  ASSERT_TRUE(l);
  UniqueFd null(open("/dev/null", O_RDONLY | O_CLOEXEC));
  UniqueFd pidfd(static_cast<int>(syscall(SYS_pidfd_open, getpid(), 0)));
  for (uint64_t ino : {12345u, 555u, 777u, 999u}) EXPECT_TRUE(*l->may_hold(own(null.get(), pidfd.get(), ino))) << ino;
  auto other = l->may_hold(own(null.get(), pidfd.get(), 556));
  ASSERT_TRUE(other) << other.error().str();
  EXPECT_FALSE(*other) << "a file on another inode, not on overlayfs";
}

TEST(LockedInodes, NoLocksNoFdinfo) {
  auto l = LockedInodes::parse("", "pid:[4026531836]");
  ASSERT_TRUE(l);
  EXPECT_FALSE(*l->may_hold(own(-1, -1, 1)));
}

// Seen from another pid namespace's /proc, a lock whose owner has no pid
// there is left out; a line that can't be read says nothing certain.
TEST(LockedInodes, UnsureMeansEveryFile) {
  auto other_ns = LockedInodes::parse("", "pid:[4026532999]");
  ASSERT_TRUE(other_ns);
  EXPECT_TRUE(*other_ns->may_hold(own(-1, -1, 1)));
  auto garbled = LockedInodes::parse("1: POSIX ADVISORY WRITE 12 garbage 0 EOF\n", "pid:[4026531836]");
  ASSERT_TRUE(garbled);
  EXPECT_TRUE(*garbled->may_hold(own(-1, -1, 1)));
}

}  // namespace
}  // namespace ckpt::files
