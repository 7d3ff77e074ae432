// The rule every collector keeps: what ckpt can't restore, it refuses at
// dump while the process lives. One process per kind of fd and per form of
// /proc/PID/maps path the kernel produces; each is dumped (kill mode), and
// either the dump refuses it (the process runs on, untraced) or a restore
// brings it back with the same fds and the same maps (shared memory objects
// get new inode numbers). A dump that kills a process no restore can bring
// back fails this test, naming the kind.
#include <fcntl.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <linux/userfaultfd.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/fanotify.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <functional>
#include <regex>
#include <map>
#include <sstream>
#include <thread>

#include "harness.h"

namespace e2e {
namespace {

using namespace std::chrono_literals;

struct Kind {
  std::string name;
  std::function<void(const std::string& dir)> setup;  // runs in the process, which then pauses
  bool restorable = false;  // a refusal fails the test
};
void PrintTo(const Kind& k, std::ostream* os) { *os << k.name; }

void must(bool ok) {
  if (!ok) _exit(1);
}
// What this kernel can't make (a config option it was built without).
constexpr int kUnsupported = 2;

void* map_anon(size_t len, int flags) {
  void* p = mmap(nullptr, len, PROT_READ | PROT_WRITE, flags | MAP_ANONYMOUS, -1, 0);
  must(p != MAP_FAILED);
  static_cast<char*>(p)[0] = 1;
  return p;
}

#ifndef PR_SET_VMA
#define PR_SET_VMA 0x53564d41
#define PR_SET_VMA_ANON_NAME 0
#endif

std::vector<Kind> kinds() {
  std::vector<Kind> out = {
      {"eventfd", [](auto&) { must(eventfd(3, EFD_SEMAPHORE | EFD_NONBLOCK) >= 0); }, true},
      {"epoll", [](auto&) { must(epoll_create1(0) >= 0); }},
      {"signalfd", [](auto&) {
         sigset_t s;
         sigemptyset(&s);
         sigaddset(&s, SIGUSR1);
         sigaddset(&s, SIGRTMIN + 1);
         must(signalfd(-1, &s, SFD_NONBLOCK) >= 0);
       }, true},
      {"timerfd", [](auto&) {
         int fd = timerfd_create(CLOCK_MONOTONIC, 0);
         const itimerspec its{{0, 250'000'000}, {3600, 0}};
         must(fd >= 0 && timerfd_settime(fd, 0, &its, nullptr) == 0);
       }, true},
      {"timerfd_abs_realtime", [](auto&) {
         int fd = timerfd_create(CLOCK_REALTIME, TFD_NONBLOCK);
         const itimerspec its{{}, {time(nullptr) + 3600, 0}};
         must(fd >= 0 && timerfd_settime(fd, TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET, &its, nullptr) == 0);
       }, true},
      {"inotify", [](auto&) { must(inotify_init1(0) >= 0); }},
      {"fanotify", [](const std::string& d) {
         int fd = fanotify_init(FAN_CLASS_NOTIF | FAN_NONBLOCK, O_RDONLY);
         must(fd >= 0 && fanotify_mark(fd, FAN_MARK_ADD, FAN_MODIFY, AT_FDCWD, d.c_str()) == 0);
       }, true},
      {"pidfd", [](auto&) { must(syscall(SYS_pidfd_open, getpid(), 0) >= 0); }, true},
      {"userfaultfd", [](auto&) { must(syscall(SYS_userfaultfd, 0) >= 0); }},
      {"unix_socket", [](const std::string& d) {
         int l = socket(AF_UNIX, SOCK_STREAM, 0);
         sockaddr_un a{};
         a.sun_family = AF_UNIX;
         snprintf(a.sun_path, sizeof(a.sun_path), "%s/listener", d.c_str());
         must(l >= 0 && bind(l, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0 && listen(l, 4) == 0);
         must(socket(AF_UNIX, SOCK_STREAM, 0) >= 0);
       }},
      {"socketpair", [](auto&) {
         int sv[2];
         must(socketpair(AF_UNIX, SOCK_DGRAM, 0, sv) == 0 && send(sv[0], "queued", 6, 0) == 6);
       }},
      {"unix_fds_in_flight", [](auto&) {
         int sv[2];
         must(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
         char c = 0;
         iovec iov{&c, 1};
         alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
         msghdr m{};
         m.msg_iov = &iov;
         m.msg_iovlen = 1;
         m.msg_control = control;
         m.msg_controllen = sizeof(control);
         cmsghdr* h = CMSG_FIRSTHDR(&m);
         h->cmsg_level = SOL_SOCKET;
         h->cmsg_type = SCM_RIGHTS;
         h->cmsg_len = CMSG_LEN(sizeof(int));
         memcpy(CMSG_DATA(h), &sv[0], sizeof(int));
         must(sendmsg(sv[0], &m, 0) == 1);
       }},
      {"tcp_socket", [](auto&) { must(socket(AF_INET, SOCK_STREAM, 0) >= 0); }},
      {"udp6_socket", [](auto&) { must(socket(AF_INET6, SOCK_DGRAM, 0) >= 0); }},
      {"netlink_socket", [](auto&) { must(socket(AF_NETLINK, SOCK_RAW, 0) >= 0); }},
      {"pipe", [](auto&) {
         int p[2];
         must(pipe(p) == 0);
       }},
      {"fifo", [](const std::string& d) {
         const std::string f = d + "/fifo";
         must(mkfifo(f.c_str(), 0600) == 0 && open(f.c_str(), O_RDWR) >= 0);
       }},
      // A namespace file of each type the kernel has ("nsfs" kinds below).
      {"memfd_fd", [](auto&) { must(memfd_create("kind", 0) >= 0); }},
      {"deleted_file", [](const std::string& d) {
         const std::string f = d + "/deleted";
         must(open(f.c_str(), O_RDWR | O_CREAT, 0600) >= 0 && unlink(f.c_str()) == 0);
       }},
      {"deleted_dir", [](const std::string& d) {
         const std::string f = d + "/deleted-dir";
         must(mkdir(f.c_str(), 0700) == 0 && open(f.c_str(), O_RDONLY | O_DIRECTORY) >= 0 && rmdir(f.c_str()) == 0);
       }},
      {"o_path", [](const std::string& d) { must(open(d.c_str(), O_PATH) >= 0); }},
      {"directory", [](const std::string& d) { must(open(d.c_str(), O_RDONLY | O_DIRECTORY) >= 0); }},
      {"deleted_cwd", [](const std::string& d) {
         const std::string f = d + "/deleted-cwd";
         must(mkdir(f.c_str(), 0700) == 0 && chdir(f.c_str()) == 0 && rmdir(f.c_str()) == 0);
       }},
      {"dev_zero", [](auto&) { must(open("/dev/zero", O_RDONLY) >= 0); }, true},
      {"dev_null", [](auto&) { must(open("/dev/null", O_RDWR) >= 0); }, true},
      {"dev_full", [](auto&) { must(open("/dev/full", O_WRONLY) >= 0); }, true},
      {"dev_tty", [](auto&) {
         // ENXIO without a controlling terminal, as under ctest.
         if (open("/dev/tty", O_RDWR) < 0) _exit(errno == ENXIO ? kUnsupported : 1);
       }},
      {"dev_block", [](auto&) {
         // A block device, where there is one (a loop device needs no backing file to be opened).
         if (open("/dev/loop0", O_RDONLY) < 0) _exit(errno == ENOENT || errno == ENXIO ? kUnsupported : 1);
       }},
      {"dev_urandom", [](auto&) { must(open("/dev/urandom", O_RDONLY) >= 0); }, true},
      {"proc_file", [](auto&) { must(open("/proc/self/status", O_RDONLY) >= 0); }, true},
      {"proc_sys_file", [](auto&) { must(open("/proc/sys/kernel/pid_max", O_RDONLY) >= 0); }, true},
      {"pidfd_outside", [](auto&) { must(syscall(SYS_pidfd_open, getppid(), 0) >= 0); }},
      {"proc_file_outside", [](auto&) { must(open(fmt::format("/proc/{}/stat", getppid()).c_str(), O_RDONLY) >= 0); }},
      {"renamed_file", [](const std::string& d) {
         const std::string f = d + "/before";
         must(open(f.c_str(), O_RDWR | O_CREAT, 0600) >= 0 && rename(f.c_str(), (d + "/after").c_str()) == 0);
       }},
      {"anon_named", [](auto&) {
         void* p = map_anon(8192, MAP_PRIVATE);
         if (prctl(PR_SET_VMA, PR_SET_VMA_ANON_NAME, p, 8192, "ckpt-kind") != 0) _exit(kUnsupported);
       }},
      {"anon_shmem_named", [](auto&) {
         void* p = map_anon(8192, MAP_SHARED);
         if (prctl(PR_SET_VMA, PR_SET_VMA_ANON_NAME, p, 8192, "ckpt-kind") != 0) _exit(kUnsupported);
       }},
      {"anon_shared", [](auto&) { map_anon(8192, MAP_SHARED); }},
      {"dev_zero_private_map", [](auto&) {
         int fd = open("/dev/zero", O_RDONLY);
         must(fd >= 0 && mmap(nullptr, 8192, PROT_READ, MAP_PRIVATE, fd, 0) != MAP_FAILED && close(fd) == 0);
       }},
      {"memfd_map", [](auto&) {
         int fd = memfd_create("kind-map", 0);
         must(fd >= 0 && ftruncate(fd, 8192) == 0);
         must(mmap(nullptr, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) != MAP_FAILED && close(fd) == 0);
       }},
      {"deleted_file_map", [](const std::string& d) {
         const std::string f = d + "/mapped";
         int fd = open(f.c_str(), O_RDWR | O_CREAT, 0600);
         must(fd >= 0 && ftruncate(fd, 8192) == 0);
         must(mmap(nullptr, 8192, PROT_READ, MAP_SHARED, fd, 0) != MAP_FAILED && close(fd) == 0);
         must(unlink(f.c_str()) == 0);
       }},
      {"file_map", [](const std::string& d) {
         const std::string f = d + "/plain";
         int fd = open(f.c_str(), O_RDWR | O_CREAT, 0600);
         must(fd >= 0 && ftruncate(fd, 8192) == 0);
         must(mmap(nullptr, 8192, PROT_READ, MAP_PRIVATE, fd, 0) != MAP_FAILED && close(fd) == 0);
       }},
  };
  for (const char* ns : {"cgroup", "ipc", "mnt", "net", "pid", "pid_for_children", "time", "time_for_children",
                         "user", "uts"})
    out.push_back({fmt::format("nsfs_{}", ns), [ns](auto&) {
                     if (open(fmt::format("/proc/self/ns/{}", ns).c_str(), O_RDONLY) < 0)
                       _exit(errno == ENOENT ? kUnsupported : 1);
                   }});
  return out;
}

// The named lines of /proc/PID/maps (files, shared memory objects, the
// kernel's [vdso]...), with the inode of shared memory objects blanked:
// restore creates them anew. Anonymous private lines are left out: these
// processes are forks of the test, and how the kernel split or merged their
// anonymous VMAs depends on that fork history (ASan's, say), which a
// restore that maps them afresh does not repeat; the Workload tests compare
// whole maps of programs of their own.
std::string maps_of(pid_t pid) {
  std::istringstream in(read_text(fmt::format("/proc/{}/maps", pid)));
  std::string out;
  for (std::string line; std::getline(in, line);) {
    std::istringstream f(line);
    std::string range, perms, off, dev, inode;
    f >> range >> perms >> off >> dev >> inode;
    const size_t name = line.find_first_of("/[", range.size());
    if (name == std::string::npos && perms.ends_with('p')) continue;
    const bool shmem = line.find("/dev/zero (deleted)") != std::string::npos ||
                       line.find("/memfd:") != std::string::npos || line.find("[anon_shmem:") != std::string::npos;
    out += fmt::format("{} {} {} {} {} {}\n", range, perms, off, dev, shmem ? "-" : inode,
                       name == std::string::npos ? "" : line.substr(name));
  }
  return out;
}

// fds_of with each pipe's inode replaced by the order it first appears in:
// restore makes new pipes, with the same ends on the same fds.
std::string fds_with_pipes_numbered(pid_t pid) {
  std::istringstream in(fds_of(pid));
  std::map<std::string, int> pipes;
  std::string out;
  for (std::string line; std::getline(in, line);) {
    if (const size_t at = line.find(" pipe:["); at != std::string::npos) {
      const std::string ino = line.substr(at + 7);
      line = fmt::format("{} pipe {}", line.substr(0, at), pipes.try_emplace(ino, pipes.size()).first->second);
    }
    out += line + "\n";
  }
  return out;
}

// fds_of, with socket inode numbers blanked: restore makes new sockets.
std::string fds_without_inodes(pid_t pid) {
  static const std::regex socket_inode(R"(socket:\[[0-9]+\])");
  return std::regex_replace(fds_with_pipes_numbered(pid), socket_inode, "socket:[-]");
}

// The fdinfo lines that hold the settings of an eventfd, a signalfd or a
// timerfd (not their counts or times left), and every fd's flags.
std::string fd_state_of(pid_t pid) {
  static const char* const kKeys[] = {"flags:", "eventfd-semaphore:", "sigmask:", "clockid:", "settime flags:",
                                      "it_interval:"};
  std::string out;
  for (int fd = 0; fd < 64; fd++) {
    std::istringstream in(read_text(fmt::format("/proc/{}/fdinfo/{}", pid, fd)));
    for (std::string line; std::getline(in, line);)
      for (const char* key : kKeys)
        if (line.starts_with(key)) out += fmt::format("{} {}\n", fd, line);
  }
  return out;
}

// Where /proc/PID/cwd leads ("/x/y (deleted)" for a removed directory).
std::string cwd_of(pid_t pid) {
  std::error_code ec;
  return std::filesystem::read_symlink(fmt::format("/proc/{}/cwd", pid), ec).string();
}

class EveryKind : public ::testing::TestWithParam<Kind> {};

TEST_P(EveryKind, RestoredOrRefusedAtDump) {
  const Kind& k = GetParam();
  Harness h;
  const std::string work = h.dir() + "/work";
  ASSERT_EQ(mkdir(work.c_str(), 0700), 0);
  pid_t pid = spawn_paused([&] { k.setup(work); });
  // In its pause, or gone if its setup failed.
  int st = 0;
  for (auto until = std::chrono::steady_clock::now() + 10s;;) {
    if (waitpid(pid, &st, WNOHANG) == pid) {
      if (WIFEXITED(st) && WEXITSTATUS(st) == kUnsupported)
        GTEST_SKIP() << k.name << ": this machine can't make one (a kernel built without CONFIG_ANON_VMA_NAME, whose "
                        "prctl(PR_SET_VMA) fails; no controlling terminal; no such device or namespace), so no "
                        "process here can hold it";
      FAIL() << k.name << ": setup failed (status " << st << ")";
    }
    const std::string syscall = fmt::format("/proc/{}/syscall", pid);
    if (wait_until([&] { return read_text(syscall).starts_with(fmt::format("{} ", SYS_pause)); }, 50ms)) break;
    ASSERT_LT(std::chrono::steady_clock::now(), until) << k.name << ": never got to its pause";
  }
  const std::string fds = fds_with_pipes_numbered(pid), maps = maps_of(pid);
  const std::string fds_without_inodes_before = fds_without_inodes(pid), state = fd_state_of(pid), cwd = cwd_of(pid);
  CkptRun d = h.ckpt({"dump", "-t", std::to_string(pid), "-D", h.images()});
  if (d.exit_code() != 0) {
    // Refused: the process is as it was.
    std::this_thread::sleep_for(50ms);
    EXPECT_TRUE(alive(pid)) << k.name << ": refused, yet the process is gone: " << d.err;
    EXPECT_EQ(tracer_of(pid), 0);
    EXPECT_EQ(fds_with_pipes_numbered(pid), fds);
    EXPECT_EQ(maps_of(pid), maps) << k.name << ": refused, yet its maps changed";
    EXPECT_EQ(cwd_of(pid), cwd) << k.name << ": refused, yet its working directory changed";
    EXPECT_EQ(fd_state_of(pid), state) << k.name << ": refused, yet its fd flags or settings changed";
    EXPECT_NE(access((h.images() + "/inventory.img").c_str(), F_OK), 0);
    fmt::print("{}: refused at dump: {}", k.name, d.err);
    EXPECT_FALSE(k.restorable) << k.name << ": ckpt restores this kind, yet the dump refused it: " << d.err;
    kill(pid, SIGKILL);
    h.wait_child(pid);
    return;
  }
  h.wait_child(pid);
  CkptRun r = h.ckpt({"restore", "-D", h.images(), "-d"});
  ASSERT_EQ(r.exit_code(), 0) << k.name << ": the dump took the process, and no restore brings it back: " << r.err;
  EXPECT_TRUE(alive(pid));
  EXPECT_EQ(fds_without_inodes(pid), fds_without_inodes_before) << k.name << ": fds differ after restore";
  EXPECT_EQ(maps_of(pid), maps) << k.name << ": maps differ after restore";
  EXPECT_EQ(cwd_of(pid), cwd) << k.name << ": working directory differs after restore";
  EXPECT_EQ(fd_state_of(pid), state) << k.name << ": fd flags or settings differ after restore";
  fmt::print("{}: restored\n", k.name);
  kill(pid, SIGKILL);
  for (auto until = std::chrono::steady_clock::now() + 5s; kill(pid, 0) == 0 && std::chrono::steady_clock::now() < until;) {
    waitpid(pid, nullptr, WNOHANG);
    std::this_thread::sleep_for(1ms);
  }
}

INSTANTIATE_TEST_SUITE_P(Kinds, EveryKind, ::testing::ValuesIn(kinds()),
                         [](const ::testing::TestParamInfo<Kind>& i) { return i.param.name; });

}  // namespace
}  // namespace e2e
